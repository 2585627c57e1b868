"""Fixtures for Floe's Python end-to-end tests: a real `floe serve` and real PyIceberg clients.

- `floe_server` (session): one server on a free port with a temporary data dir, for the whole run.
- `floe_uri`: its base URI; `catalog`: a PyIceberg `RestCatalog` on it; `api`: raw HTTP on it.
- `floe_launcher`: starts extra servers on a data dir of the test's choosing (restart tests);
  all of them are stopped when the test ends.

Server logs go to `$FLOE_TEST_LOG_DIR` (scripts/test.sh sets it and prints their tails on failure),
else to a pytest temp dir.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, Optional

import pytest
import requests
from pyiceberg.catalog.rest import RestCatalog

from floe_server import FloeServer

HTTP_TIMEOUT_SECONDS = 30


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


@pytest.fixture
def catalog(floe_uri: str) -> RestCatalog:
    return rest_catalog(floe_uri)


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
def floe_launcher(floe_log_dir: Path) -> Generator[Callable[[Path], FloeServer], None, None]:
    """`start(data_dir)` starts another server on that data dir; every one is stopped after the test."""
    started: list[FloeServer] = []

    def start(data_dir: Path) -> FloeServer:
        server = FloeServer(data_dir, floe_log_dir / f"floe-launcher-{uuid.uuid4().hex[:8]}.log")
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()
