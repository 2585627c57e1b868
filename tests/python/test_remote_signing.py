"""PyIceberg 0.12 appends to and reads a table on an S3 warehouse through remote signing, with no S3 keys
of its own: every object request it makes is signed by Floe (docs/security.md, "Remote signing").

PyIceberg signs through a REST signer only with its fsspec FileIO (s3fs), which cannot live in the main
venv (it breaks boto3: ../shared/clients.md); the client runs in its own venv, `$FLOE_SIGNING_PYTHON`, else
`$FLOE_CACHE_DIR/venv-signing/bin/python` (default cache ~/.cache/floe), which scripts/test.sh's setup
builds from requirements-signing.txt. Without it this test fails, saying how to build it; it never skips.
The refusals (other tables, the bucket root, another bucket, writes by readers) are tested in Rust:
tests/rust/remote_signing.rs.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Generator
from pathlib import Path

import pytest
import requests

from conftest import HTTP_TIMEOUT_SECONDS, unique_name
from floe_server import FloeServer
from seaweedfs import ACCESS_KEY, REGION, SECRET_KEY, SeaweedFS

BUCKET = "signed"
WAREHOUSE = "signed"
CLIENT = Path(__file__).with_name("remote_signing_client.py")


def signing_python() -> Path:
    if explicit := os.environ.get("FLOE_SIGNING_PYTHON"):
        return Path(explicit)
    cache = Path(os.environ.get("FLOE_CACHE_DIR") or Path.home() / ".cache" / "floe")
    return cache / "venv-signing" / "bin" / "python"


@pytest.fixture(scope="module")
def signing_server(
    seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory, floe_log_dir: Path
) -> Generator[FloeServer, None, None]:
    """A Floe (with no S3 keys in its environment) with warehouse `signed` registered at s3://signed/tables
    with SeaweedFS's keys and remote signing as its only delegation mode."""
    seaweedfs.create_bucket(BUCKET)
    server = FloeServer(
        tmp_path_factory.mktemp("floe-signing-data"),
        floe_log_dir / "floe-pytest-signing.log",
        extra_args=["--allowed-storage-root", f"s3://{BUCKET}"],
    )
    server.start()
    try:
        response = requests.post(
            f"{server.uri}/management/v1/warehouses",
            json={
                "name": WAREHOUSE,
                "storage-url": f"s3://{BUCKET}/tables",
                "properties": {
                    "s3.endpoint": seaweedfs.endpoint,
                    "s3.region": REGION,
                    "s3.path-style-access": "true",
                    "s3.access-key-id": ACCESS_KEY,
                    "s3.secret-access-key": SECRET_KEY,
                    "s3.access-delegation": "remote-signing",
                },
            },
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        assert response.status_code == 201, response.text
        yield server
    finally:
        server.stop()


def signed_requests(server: FloeServer) -> float:
    """`floe_remote_sign_requests_total{outcome="signed"}` of the server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{server.uri}/metrics", timeout=HTTP_TIMEOUT_SECONDS).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "floe_remote_sign_requests_total" and sample.labels.get("outcome") == "signed":
                return sample.value
    return 0.0


def test_pyiceberg_appends_and_reads_with_requests_signed_by_floe(
    signing_server: FloeServer, seaweedfs: SeaweedFS
) -> None:
    python = signing_python()
    assert python.exists(), (
        f"no PyIceberg signing venv at {python}: run `scripts/test.sh setup`, or "
        f"`python3 -m venv DIR && DIR/bin/pip install -r {Path(__file__).with_name('requirements-signing.txt')}` "
        "and set FLOE_SIGNING_PYTHON=DIR/bin/python"
    )
    signed_before = signed_requests(signing_server)
    # No keys of its own from anywhere: the environment is emptied of AWS settings and config files.
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"})
    # PyIceberg 0.12 registers its signer again in every thread that opens the (shared, cached) s3fs
    # filesystem, unregistering it first: a request another thread sends meanwhile goes out unsigned and
    # S3 refuses it (403; seen in about half the runs with the default pool). One worker avoids the race.
    env["PYICEBERG_MAX_WORKERS"] = "1"
    namespace = unique_name("signing")
    run = subprocess.run(
        [str(python), str(CLIENT), signing_server.uri, WAREHOUSE, namespace],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, f"{run.stderr[-4000:]}\n--- floe log:\n{signing_server.log_tail()}"
    result = json.loads(run.stdout.strip().splitlines()[-1])

    assert result["rows"] == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]
    io = result["io"]
    assert io.get("s3.remote-signing-enabled") == "true", io
    assert "s3.access-key-id" not in io and "s3.secret-access-key" not in io, io
    # The client's data files are in the bucket, under the table, and reached only through signatures.
    location = result["location"]
    assert location.startswith(f"s3://{BUCKET}/tables/{namespace}/signed"), location
    prefix = location.removeprefix(f"s3://{BUCKET}/") + "/"
    keys = seaweedfs.keys_under(BUCKET, prefix)
    assert len(result["data_files"]) == 2
    for data_file in result["data_files"]:
        assert data_file.removeprefix(f"s3://{BUCKET}/") in keys, (data_file, keys)
    assert signed_requests(signing_server) > signed_before
