"""Vended credentials with real clients: PyIceberg 0.12 and DuckDB 1.5.5 hold no S3 keys of their own; Floe hands
each table's loader short-lived STS credentials scoped to that table (SeaweedFS with STS, which enforces the
session policy). PyIceberg appends and reads, DuckDB reads what PyIceberg wrote and writes rows PyIceberg reads,
and the credentials one table's load carries are refused on another table's files.

The warehouse is registered through the management API with `s3.sts-role-arn` (docs/security.md "Vended
credentials"); SeaweedFS runs with exactly the flags of shared/clients.md plus its identity and IAM files.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog.rest import RestCatalog

from conftest import duck_rows, duckdb_connect, unique_name
from floe_server import FloeServer
from seaweedfs import ACCESS_KEY, REGION, SECRET_KEY, STS_ROLE_ARN, SeaweedFS

BUCKET = "vend"
WAREHOUSE = "vended"
TABLE = "Vended credentials (S3 warehouse on SeaweedFS with STS)"
ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])

pytestmark = pytest.mark.compat(table=TABLE)


@pytest.fixture(scope="module")
def sts_s3(tmp_path_factory: pytest.TempPathFactory) -> Generator[SeaweedFS, None, None]:
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs-sts"), sts=True) as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture(scope="module")
def floe(sts_s3: SeaweedFS, tmp_path_factory: pytest.TempPathFactory) -> Generator[FloeServer, None, None]:
    log_dir = Path(os.environ.get("FLOE_TEST_LOG_DIR") or tmp_path_factory.mktemp("floe-logs"))
    server = FloeServer(
        tmp_path_factory.mktemp("floe-vend-data"),
        log_dir / "floe-compat-vended.log",
        extra_args=["--allowed-storage-root", f"s3://{BUCKET}"],
    ).start()
    response = requests.post(
        f"{server.uri}/management/v1/warehouses",
        json={
            "name": WAREHOUSE,
            "storage-url": f"s3://{BUCKET}/{WAREHOUSE}",
            "properties": {
                "s3.endpoint": sts_s3.endpoint,
                "s3.region": REGION,
                "s3.path-style-access": "true",
                "s3.access-key-id": ACCESS_KEY,
                "s3.secret-access-key": SECRET_KEY,
                "s3.sts-role-arn": STS_ROLE_ARN,
                "s3.access-delegation": "vended-credentials",
            },
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def catalog(floe: FloeServer) -> RestCatalog:
    """PyIceberg with no S3 keys (and none in its environment: the test process has no AWS_* variables)."""
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
    assert not any(name in os.environ for name in keys), "the client must hold no keys"
    return RestCatalog("floe", uri=floe.uri, warehouse=WAREHOUSE)


def rows(catalog: RestCatalog, namespace: str, table: str) -> list[tuple[Any, ...]]:
    arrow = catalog.load_table((namespace, table)).scan().to_arrow()
    return sorted(tuple(row.values()) for row in arrow.to_pylist())


@pytest.mark.compat(engine="pyiceberg", feature="appends and reads with vended credentials only")
def test_pyiceberg_writes_and_reads_with_vended_credentials(catalog: RestCatalog) -> None:
    namespace = unique_name("vend")
    catalog.create_namespace(namespace)
    table = catalog.create_table((namespace, "people"), schema=ARROW_SCHEMA)
    assert table.io.properties.get("s3.session-token"), "PyIceberg got vended credentials"
    assert table.io.properties["s3.access-key-id"] != ACCESS_KEY
    table.append(pa.Table.from_pylist([{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}], schema=ARROW_SCHEMA))
    table.append(pa.Table.from_pylist([{"id": 3, "name": "cy"}], schema=ARROW_SCHEMA))
    assert rows(catalog, namespace, "people") == [(1, "ada"), (2, "bob"), (3, "cy")]
    catalog.load_table((namespace, "people")).delete("id = 2")
    assert rows(catalog, namespace, "people") == [(1, "ada"), (3, "cy")]


@pytest.mark.compat(engine="pyiceberg", feature="credentials of one table are refused on another's files")
def test_one_tables_credentials_do_not_reach_another(catalog: RestCatalog, sts_s3: SeaweedFS) -> None:
    namespace = unique_name("vend")
    catalog.create_namespace(namespace)
    first = catalog.create_table((namespace, "first"), schema=ARROW_SCHEMA)
    second = catalog.create_table((namespace, "second"), schema=ARROW_SCHEMA)
    second.append(pa.Table.from_pylist([{"id": 9, "name": "z"}], schema=ARROW_SCHEMA))
    second_metadata = catalog.load_table((namespace, "second")).metadata_location.removeprefix(f"s3://{BUCKET}/")
    properties = first.io.properties
    s3 = boto3.client(
        "s3",
        endpoint_url=sts_s3.endpoint,
        region_name=REGION,
        aws_access_key_id=properties["s3.access-key-id"],
        aws_secret_access_key=properties["s3.secret-access-key"],
        aws_session_token=properties["s3.session-token"],
    )
    first_prefix = first.location().removeprefix(f"s3://{BUCKET}/") + "/"
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix=first_prefix)["KeyCount"] >= 1
    for attempt in (
        lambda: s3.get_object(Bucket=BUCKET, Key=second_metadata),
        lambda: s3.list_objects_v2(Bucket=BUCKET),
        lambda: s3.put_object(Bucket=BUCKET, Key=f"{WAREHOUSE}/planted.txt", Body=b"x"),
    ):
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            attempt()
        assert refused.value.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.compat(engine="duckdb", feature="reads and writes with vended credentials (default ACCESS_DELEGATION_MODE)")
def test_duckdb_reads_and_writes_with_vended_credentials(floe: FloeServer, catalog: RestCatalog) -> None:
    namespace = unique_name("vend")
    catalog.create_namespace(namespace)
    table = catalog.create_table((namespace, "pets"), schema=ARROW_SCHEMA)
    table.append(pa.Table.from_pylist([{"id": 1, "name": "rex"}, {"id": 2, "name": "tom"}], schema=ARROW_SCHEMA))
    con = duckdb_connect(floe, warehouse=WAREHOUSE)
    try:
        qualified = f"ice.{namespace}.pets"
        assert duck_rows(con, f"SELECT id, name FROM {qualified} ORDER BY id") == [(1, "rex"), (2, "tom")]
        con.execute(f"INSERT INTO {qualified} VALUES (3, 'kit')")
    finally:
        con.close()
    assert rows(catalog, namespace, "pets") == [(1, "rex"), (2, "tom"), (3, "kit")]
