"""Fixtures for Floe's Python end-to-end tests: a real `floe serve` and real PyIceberg clients.

- `floe_server` (session): one server on a free port with a temporary data dir, for the whole run; its
  default warehouse is local (`file://<data dir>/warehouse`).
- `floe_uri`: its base URI; `api`: raw HTTP on it.
- `seaweedfs` (session): a real S3 server (SeaweedFS, tests/python/seaweedfs.py) on 127.0.0.1, started
  only when a test needs it; `s3_floe_server` (session): a second server whose default warehouse is
  `s3://lake/warehouse` there (Floe signs with SeaweedFS's keys from its environment).
- `warehouse`: parametrized `file` / `s3`, a `Warehouse` (one of the two servers above, its root URL, a
  way to list the files of a table location on its storage); `catalog`: a PyIceberg `RestCatalog` on it.
  So every test that takes `catalog` (or `namespace`) runs twice, `[file]` and `[s3]`; tests that take
  only `floe_server`, `floe_uri` or `api` run once, on the local warehouse.
- `floe_launcher`: starts extra servers on a data dir of the test's choosing (restart tests);
  all of them are stopped when the test ends.
- `oauth2_server` (session): a server with `--auth oauth2` (its first administrator's credential is in its
  data dir), which may register warehouses under `oauth2_server.data_dir / "lake"`; `auth_admin`: its
  management API as that administrator (tests/python/auth_support.py).

Server logs go to `$FLOE_TEST_LOG_DIR` (scripts/test.sh sets it and prints their tails on failure),
else to a pytest temp dir.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest
import requests
from pyiceberg.catalog.rest import RestCatalog

from auth_support import AuthAdmin
from floe_server import FloeServer
from seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

HTTP_TIMEOUT_SECONDS = 30
# The bucket and prefix of `s3_floe_server`'s default warehouse.
S3_BUCKET = "lake"
S3_PREFIX = "warehouse"


def unique_name(prefix: str) -> str:
    """A namespace or table name that no other test uses."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def rest_catalog(uri: str, name: str = "floe") -> RestCatalog:
    """A PyIceberg REST catalog on a Floe server, independent of any ~/.pyiceberg.yaml or env config."""
    return RestCatalog(name, uri=uri)


class RestApi:
    """Raw HTTP against one Floe server: `url("namespaces/x")` is `{uri}/v1/{prefix}/namespaces/x`."""

    def __init__(self, uri: str, prefix: Optional[str]) -> None:
        self.uri = uri
        self.base = f"{uri}/v1/{prefix}" if prefix else f"{uri}/v1"
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT_SECONDS)
        return self.session.request(method, self.url(path), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("HEAD", path, **kwargs)


@pytest.fixture(scope="session")
def floe_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if log_dir := os.environ.get("FLOE_TEST_LOG_DIR"):
        path = Path(log_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("floe-logs")


@pytest.fixture(scope="session")
def floe_server(tmp_path_factory: pytest.TempPathFactory, floe_log_dir: Path) -> Generator[FloeServer, None, None]:
    server = FloeServer(tmp_path_factory.mktemp("floe-data"), floe_log_dir / "floe-pytest-session.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def floe_uri(floe_server: FloeServer) -> str:
    return floe_server.uri


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Generator[SeaweedFS, None, None]:
    """One SeaweedFS on 127.0.0.1 for the whole run, with the bucket `lake`; modules add their own buckets."""
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.create_bucket(S3_BUCKET)
        yield server


@pytest.fixture(scope="session")
def s3_floe_server(
    seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory, floe_log_dir: Path
) -> Generator[FloeServer, None, None]:
    """A Floe whose default warehouse is s3://lake/warehouse; its S3 keys come from the environment."""
    server = FloeServer(
        tmp_path_factory.mktemp("floe-s3-data"),
        floe_log_dir / "floe-pytest-s3.log",
        extra_args=seaweedfs.floe_args(S3_BUCKET, S3_PREFIX),
        env=SeaweedFS.credentials_env(),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def s3_client_properties() -> dict[str, str]:
    """PyIceberg's own S3 keys and nothing else: endpoint, region and path style come from each table's config."""
    return {"s3.access-key-id": ACCESS_KEY, "s3.secret-access-key": SECRET_KEY}


@dataclass
class Warehouse:
    """Where a test's tables live: a Floe server whose default warehouse is at `root`, on local disk or S3.

    `files_under(location)` lists what a table location holds on that storage (relative paths, sorted),
    so tests check files the same way on both.
    """

    flavour: str  # "file" or "s3"
    server: FloeServer
    root: str  # every table location starts with root + "/"
    client_properties: dict[str, str] = field(default_factory=dict)
    s3: Optional[SeaweedFS] = None

    def catalog(self) -> RestCatalog:
        """A new PyIceberg catalog on this warehouse (one per thread in concurrent tests)."""
        return RestCatalog("floe", uri=self.server.uri, **self.client_properties)

    def api(self) -> RestApi:
        return RestApi(self.server.uri, self.server.prefix)

    def files_under(self, location: str) -> list[str]:
        """Every file (object) under a table location (or any directory URL), relative to it, sorted."""
        location = location.rstrip("/")
        if self.flavour == "file":
            directory = Path(location.removeprefix("file://"))
            return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
        assert self.s3 is not None
        bucket, _, prefix = location.removeprefix("s3://").partition("/")
        return [key.removeprefix(prefix + "/") for key in self.s3.keys_under(bucket, prefix + "/")]

    def exists(self, url: str) -> bool:
        """Whether one file (object) exists at `url`."""
        parent, _, name = url.rpartition("/")
        return name in self.files_under(parent)

    def launch_args(self, prefix: str) -> tuple[list[str], dict[str, str]]:
        """`floe serve` flags and environment for another server on this kind of storage: a fresh local
        warehouse in its data dir, or s3://lake/<prefix> on the same SeaweedFS."""
        if self.flavour == "file":
            return [], {}
        assert self.s3 is not None
        return self.s3.floe_args(S3_BUCKET, prefix), SeaweedFS.credentials_env()


@pytest.fixture(scope="session")
def file_warehouse(floe_server: FloeServer) -> Warehouse:
    return Warehouse("file", floe_server, f"file://{floe_server.data_dir}/warehouse")


@pytest.fixture(scope="session")
def s3_warehouse(s3_floe_server: FloeServer, seaweedfs: SeaweedFS) -> Warehouse:
    return Warehouse("s3", s3_floe_server, f"s3://{S3_BUCKET}/{S3_PREFIX}", s3_client_properties(), seaweedfs)


@pytest.fixture(params=["file", "s3"])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    """The local warehouse, then the s3:// one: each test that uses it (or `catalog`) runs on both.

    The servers behind them are session-scoped; SeaweedFS and the S3 server start at the first `[s3]` test.
    """
    return request.getfixturevalue(f"{request.param}_warehouse")


@pytest.fixture
def catalog(warehouse: Warehouse) -> RestCatalog:
    """PyIceberg on the test's warehouse: `[file]` on `floe_server`, `[s3]` on `s3_floe_server`."""
    return warehouse.catalog()


@pytest.fixture
def api(floe_server: FloeServer) -> RestApi:
    return RestApi(floe_server.uri, floe_server.prefix)


@pytest.fixture
def namespace(catalog: RestCatalog) -> str:
    """A fresh, empty namespace for one test."""
    name = unique_name("ns")
    catalog.create_namespace(name)
    return name


@pytest.fixture
def floe_launcher(floe_log_dir: Path) -> Generator[Callable[..., FloeServer], None, None]:
    """`start(data_dir, extra_args=(), env=None)` starts another server on that data dir (more `floe serve`
    flags and environment optional); every one is stopped after the test."""
    started: list[FloeServer] = []

    def start(data_dir: Path, extra_args: Sequence[str] = (), env: Optional[dict[str, str]] = None) -> FloeServer:
        server = FloeServer(
            data_dir, floe_log_dir / f"floe-launcher-{uuid.uuid4().hex[:8]}.log", extra_args=extra_args, env=env
        )
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def oauth2_server(tmp_path_factory: pytest.TempPathFactory, floe_log_dir: Path) -> Generator[FloeServer, None, None]:
    """A server that authenticates every request (`--auth oauth2`); warehouses may be registered in `lake/`."""
    data_dir = tmp_path_factory.mktemp("floe-oauth2-data")
    (data_dir / "lake").mkdir()
    server = FloeServer(
        data_dir,
        floe_log_dir / "floe-pytest-oauth2.log",
        extra_args=["--auth", "oauth2", "--allowed-storage-root", f"file://{data_dir}/lake"],
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def auth_admin(oauth2_server: FloeServer) -> AuthAdmin:
    return AuthAdmin(oauth2_server)
