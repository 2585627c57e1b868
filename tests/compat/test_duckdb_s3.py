"""DuckDB 1.5.5 on an s3:// warehouse: Floe keeps its tables in a bucket of SeaweedFS (loopback), DuckDB
attaches Floe over REST and reads and writes the data files in the bucket with its own S3 secret
(`CREATE SECRET (TYPE S3, ...)`: path style, no TLS); PyIceberg reads what DuckDB wrote and the reverse.

DuckDB is attached with `ACCESS_DELEGATION_MODE 'none'`. In its default mode (`vended_credentials`) the iceberg
extension turns each table's `config` (Floe sends `s3.endpoint`, `s3.region`, `s3.path-style-access`, no keys
unless `--s3-share-credentials`) into a secret scoped to the table's location, which takes precedence over the
user's S3 secret (`__internal_ic_*` secrets in `duckdb_secrets()`), so it signs nothing and SeaweedFS answers
403: see `test_default_access_delegation_mode`. With `--s3-share-credentials` the config carries the keys and
the default mode works: `test_default_mode_with_shared_credentials`.

This module has its own Floe (`--warehouse-url s3://duck/warehouse`) and SeaweedFS (tests/python/seaweedfs.py,
exactly the flags of shared/clients.md); the rest of the harness runs on the `file://` warehouse.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog

from conftest import duck_rows, duckdb_connect, unique_name
from floe_server import FloeServer
from seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

BUCKET = "duck"
TABLE = "DuckDB on an s3:// warehouse (SeaweedFS)"

pytestmark = pytest.mark.compat(engine="duckdb", table=TABLE)


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Generator[SeaweedFS, None, None]:
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.create_bucket(BUCKET)
        yield server


def start_floe_on_s3(
    seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory, name: str, extra: list[str]
) -> FloeServer:
    """A Floe whose warehouse is s3://duck/<name>; it signs with the keys in its environment."""
    log_dir = Path(os.environ.get("FLOE_TEST_LOG_DIR") or tmp_path_factory.mktemp("floe-logs"))
    server = FloeServer(
        tmp_path_factory.mktemp(f"floe-{name}-data"),
        log_dir / f"floe-compat-{name}.log",
        extra_args=[*seaweedfs.floe_args(BUCKET, name), *extra],
        env=SeaweedFS.credentials_env(),
    )
    return server.start()


@pytest.fixture(scope="module")
def s3_floe(seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Generator[FloeServer, None, None]:
    server = start_floe_on_s3(seaweedfs, tmp_path_factory, "warehouse", [])
    try:
        yield server
    finally:
        server.stop()


def s3_duckdb_connect(floe: FloeServer, seaweedfs: SeaweedFS, attach_options: str) -> Any:
    """DuckDB with Floe attached as `ice` and an S3 secret for the SeaweedFS (its own keys: Floe hands out none)."""
    con = duckdb_connect(floe, attach_options=attach_options)
    con.execute(
        f"CREATE SECRET floe_s3 (TYPE S3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', "
        f"ENDPOINT '127.0.0.1:{seaweedfs.port}', URL_STYLE 'path', USE_SSL false, REGION 'us-east-1')"
    )
    return con


@pytest.fixture
def s3_duck(s3_floe: FloeServer, seaweedfs: SeaweedFS) -> Generator[Any, None, None]:
    con = s3_duckdb_connect(s3_floe, seaweedfs, ", ACCESS_DELEGATION_MODE 'none'")
    try:
        yield con
    finally:
        con.close()


@pytest.fixture
def s3_catalog(s3_floe: FloeServer) -> RestCatalog:
    """PyIceberg with its own S3 keys; endpoint, region and path style come from the table config."""
    return RestCatalog("floe", uri=s3_floe.uri, **{"s3.access-key-id": ACCESS_KEY, "s3.secret-access-key": SECRET_KEY})


@pytest.fixture
def schema(s3_duck: Any) -> str:
    name = unique_name("duck_s3")
    s3_duck.execute(f"CREATE SCHEMA ice.{name}")
    return name


def pyiceberg_rows(catalog: RestCatalog, namespace: str, table: str) -> list[tuple[Any, ...]]:
    arrow = catalog.load_table((namespace, table)).scan().to_arrow()
    return sorted(tuple(row.values()) for row in arrow.to_pylist())


@pytest.mark.compat(feature="CREATE TABLE, INSERT, SELECT, DELETE; PyIceberg reads")
def test_duckdb_writes_on_s3(s3_duck: Any, schema: str, s3_catalog: RestCatalog, seaweedfs: SeaweedFS) -> None:
    table = f"ice.{schema}.people"
    s3_duck.execute(f"CREATE TABLE {table} (id BIGINT, name VARCHAR)")
    s3_duck.execute(f"INSERT INTO {table} VALUES (1, 'ada'), (2, 'bob'), (3, 'cy')")
    s3_duck.execute(f"INSERT INTO {table} VALUES (4, 'dee')")
    assert duck_rows(s3_duck, f"SELECT id, name FROM {table} ORDER BY id") == [
        (1, "ada"), (2, "bob"), (3, "cy"), (4, "dee"),
    ]

    location = s3_catalog.load_table((schema, "people")).location()
    assert location.startswith(f"s3://{BUCKET}/warehouse/{schema}/people"), location
    keys = seaweedfs.keys_under(BUCKET, location.removeprefix(f"s3://{BUCKET}/"))
    assert sum(key.endswith(".parquet") for key in keys) == 2, keys
    assert any(key.endswith(".metadata.json") for key in keys), keys
    assert pyiceberg_rows(s3_catalog, schema, "people") == [(1, "ada"), (2, "bob"), (3, "cy"), (4, "dee")]

    s3_duck.execute(f"DELETE FROM {table} WHERE id IN (2, 4)")
    assert duck_rows(s3_duck, f"SELECT id, name FROM {table} ORDER BY id") == [(1, "ada"), (3, "cy")]
    assert pyiceberg_rows(s3_catalog, schema, "people") == [(1, "ada"), (3, "cy")]
    operations = duck_rows(
        s3_duck, f"SELECT operation FROM iceberg_snapshots({table}) ORDER BY sequence_number"
    )
    assert [op for (op,) in operations] == ["append", "append", "delete"], operations


@pytest.mark.compat(feature="reads PyIceberg's writes; PyIceberg reads its INSERT")
def test_pyiceberg_writes_duckdb_reads_on_s3(s3_duck: Any, schema: str, s3_catalog: RestCatalog) -> None:
    arrow_schema = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])
    table = s3_catalog.create_table((schema, "pets"), schema=arrow_schema)
    assert table.location().startswith(f"s3://{BUCKET}/warehouse/"), table.location()
    table.append(pa.Table.from_pylist([{"id": 1, "name": "rex"}, {"id": 2, "name": "tom"}], schema=arrow_schema))

    qualified = f"ice.{schema}.pets"
    assert duck_rows(s3_duck, f"SELECT id, name FROM {qualified} ORDER BY id") == [(1, "rex"), (2, "tom")]
    s3_duck.execute(f"INSERT INTO {qualified} VALUES (3, 'kit')")
    assert pyiceberg_rows(s3_catalog, schema, "pets") == [(1, "rex"), (2, "tom"), (3, "kit")]

    s3_catalog.load_table((schema, "pets")).delete("id = 1")
    assert duck_rows(s3_duck, f"SELECT id, name FROM {qualified} ORDER BY id") == [(2, "tom"), (3, "kit")]


@pytest.mark.compat(feature="default ACCESS_DELEGATION_MODE with a user S3 secret")
@pytest.mark.xfail(
    strict=True,
    raises=duckdb.HTTPException,
    reason="DuckDB: in vended_credentials mode the iceberg extension makes a secret from the table config "
    "(endpoint, region, path style; no keys) scoped to the table location, which overrides the user's S3 "
    "secret, so requests are unsigned (403); ACCESS_DELEGATION_MODE 'none' uses the user's secret",
)
def test_default_access_delegation_mode(s3_floe: FloeServer, seaweedfs: SeaweedFS) -> None:
    con = s3_duckdb_connect(s3_floe, seaweedfs, "")
    try:
        name = unique_name("duck_s3")
        con.execute(f"CREATE SCHEMA ice.{name}")
        con.execute(f"CREATE TABLE ice.{name}.t (id BIGINT)")
        con.execute(f"INSERT INTO ice.{name}.t VALUES (1), (2)")
        assert duck_rows(con, f"SELECT id FROM ice.{name}.t ORDER BY id") == [(1,), (2,)]
    finally:
        con.close()


@pytest.mark.compat(feature="default ACCESS_DELEGATION_MODE, floe --s3-share-credentials")
def test_default_mode_with_shared_credentials(seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No user secret at all: the keys come in the table config."""
    server = start_floe_on_s3(seaweedfs, tmp_path_factory, "shared", ["--s3-share-credentials"])
    con = duckdb_connect(server)
    try:
        name = unique_name("duck_s3")
        con.execute(f"CREATE SCHEMA ice.{name}")
        con.execute(f"CREATE TABLE ice.{name}.t (id BIGINT, name VARCHAR)")
        con.execute(f"INSERT INTO ice.{name}.t VALUES (1, 'a'), (2, 'b')")
        con.execute(f"DELETE FROM ice.{name}.t WHERE id = 1")
        assert duck_rows(con, f"SELECT id, name FROM ice.{name}.t ORDER BY id") == [(2, "b")]
    finally:
        con.close()
        server.stop()
