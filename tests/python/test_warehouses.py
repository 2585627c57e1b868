"""Two warehouses in one Floe server, through PyIceberg: the default one on local disk and `lake`, registered
at run time through the management API on SeaweedFS (`s3://second/tables`).

PyIceberg picks a warehouse with its `warehouse` property (`/v1/config?warehouse=lake` answers `prefix=lake`).
The same namespace and table names exist in both with different rows; each catalog sees only its own rows and
files, every location is under its own warehouse's root, and a table location in the other warehouse is
refused (400 BadRequestException) on create. See docs/operations.md, "Several warehouses".

`lake` is registered with its own keys (a registered warehouse never uses the server's `AWS_*` environment),
under the storage root the server allows (`--allowed-storage-root s3://second`); PyIceberg brings the same keys
as its own (`s3.access-key-id`...) and takes the endpoint from each table's `config`.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import BadRequestError

from conftest import HTTP_TIMEOUT_SECONDS, s3_client_properties, unique_name
from floe_server import FloeServer
from seaweedfs import ACCESS_KEY, REGION, SECRET_KEY, SeaweedFS

BUCKET = "second"  # the session SeaweedFS's `lake` bucket backs conftest's s3 server
LAKE = "lake"
LAKE_ROOT = f"s3://{BUCKET}/tables"
ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


@pytest.fixture(scope="module")
def server(
    seaweedfs: SeaweedFS, tmp_path_factory: pytest.TempPathFactory, floe_log_dir: Path
) -> Generator[FloeServer, None, None]:
    """A Floe with a local default warehouse that lets warehouses be registered in the `second` bucket."""
    seaweedfs.create_bucket(BUCKET)
    floe = FloeServer(
        tmp_path_factory.mktemp("floe-warehouses-data"),
        floe_log_dir / "floe-pytest-warehouses.log",
        extra_args=["--allowed-storage-root", f"s3://{BUCKET}"],
    )
    floe.start()
    try:
        yield floe
    finally:
        floe.stop()


def register_lake(server: FloeServer, seaweedfs: SeaweedFS, storage_url: str = LAKE_ROOT) -> requests.Response:
    return requests.post(
        f"{server.uri}/management/v1/warehouses",
        json={
            "name": LAKE,
            "storage-url": storage_url,
            "properties": {
                "s3.endpoint": seaweedfs.endpoint,
                "s3.region": REGION,
                "s3.path-style-access": "true",
                "s3.access-key-id": ACCESS_KEY,
                "s3.secret-access-key": SECRET_KEY,
            },
        },
        timeout=HTTP_TIMEOUT_SECONDS,
    )


@pytest.fixture(scope="module")
def registered(server: FloeServer, seaweedfs: SeaweedFS) -> dict[str, Any]:
    """`lake`, registered once for the module: the 201 answer's body."""
    response = register_lake(server, seaweedfs)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
def default_catalog(server: FloeServer, registered: dict[str, Any]) -> RestCatalog:
    return RestCatalog("default", uri=server.uri)


@pytest.fixture
def lake_catalog(server: FloeServer, registered: dict[str, Any]) -> RestCatalog:
    return RestCatalog(LAKE, uri=server.uri, warehouse=LAKE, **s3_client_properties())


def default_root(server: FloeServer) -> str:
    return f"file://{server.data_dir}/warehouse"


def local_files_under(location: str) -> list[str]:
    directory = Path(location.removeprefix("file://"))
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def s3_files_under(seaweedfs: SeaweedFS, location: str) -> list[str]:
    prefix = location.removeprefix(f"s3://{BUCKET}/").rstrip("/") + "/"
    return [key.removeprefix(prefix) for key in seaweedfs.keys_under(BUCKET, prefix)]


def people(*rows: tuple[int, str]) -> pa.Table:
    return pa.Table.from_pylist([{"id": i, "name": n} for i, n in rows], schema=ARROW_SCHEMA)


def rows(catalog: RestCatalog, identifier: tuple[str, str]) -> list[dict[str, Any]]:
    return sorted(catalog.load_table(identifier).scan().to_arrow().to_pylist(), key=lambda row: row["id"])


def test_registered_warehouse_is_listed_and_chosen_by_name(
    server: FloeServer, seaweedfs: SeaweedFS, registered: dict[str, Any]
) -> None:
    assert registered["name"] == LAKE
    assert registered["prefix"] == LAKE
    assert registered["storage-url"] == LAKE_ROOT
    assert registered["default"] is False
    # Its own keys (a registered warehouse never borrows the server's), the secret masked.
    assert registered["properties"] == {
        "s3.endpoint": seaweedfs.endpoint,
        "s3.region": REGION,
        "s3.path-style-access": "true",
        "s3.access-key-id": ACCESS_KEY,
        "s3.secret-access-key": "***",
    }
    assert SECRET_KEY not in json.dumps(registered)

    listed = requests.get(f"{server.uri}/management/v1/warehouses", timeout=HTTP_TIMEOUT_SECONDS).json()
    assert [(w["name"], w["storage-url"], w["default"]) for w in listed["warehouses"]] == [
        ("main", default_root(server), True),
        (LAKE, LAKE_ROOT, False),
    ]

    # PyIceberg's `warehouse` property: by name or by storage URL; none is the default warehouse.
    for chosen in (LAKE, LAKE_ROOT):
        config = requests.get(f"{server.uri}/v1/config", params={"warehouse": chosen}, timeout=HTTP_TIMEOUT_SECONDS)
        assert config.status_code == 200, config.text
        assert config.json()["overrides"]["prefix"] == LAKE
    assert server.prefix == "main"


def test_registering_a_taken_name_is_409(server: FloeServer, seaweedfs: SeaweedFS, registered: dict[str, Any]) -> None:
    """Another storage URL under a name already taken: 409 AlreadyExistsException, and nothing changes."""
    again = register_lake(server, seaweedfs, f"s3://{BUCKET}/elsewhere")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["type"] == "AlreadyExistsException"
    shown = requests.get(f"{server.uri}/management/v1/warehouses/{LAKE}", timeout=HTTP_TIMEOUT_SECONDS).json()
    assert shown["storage-url"] == LAKE_ROOT


def test_registering_the_same_warehouse_again_is_409(
    server: FloeServer, seaweedfs: SeaweedFS, registered: dict[str, Any]
) -> None:
    again = register_lake(server, seaweedfs)
    assert (again.status_code, again.json()["error"]["type"]) == (409, "AlreadyExistsException"), again.text


def test_same_names_in_two_warehouses_hold_their_own_rows(
    server: FloeServer, seaweedfs: SeaweedFS, default_catalog: RestCatalog, lake_catalog: RestCatalog
) -> None:
    namespace = unique_name("shared")
    identifier = (namespace, "people")
    for catalog in (default_catalog, lake_catalog):
        catalog.create_namespace(namespace)
        catalog.create_table(identifier, schema=ARROW_SCHEMA)
    default_catalog.load_table(identifier).append(people((1, "local-a"), (2, "local-b")))
    lake_catalog.load_table(identifier).append(people((10, "lake-x")))
    lake_catalog.load_table(identifier).append(people((11, "lake-y")))

    assert rows(default_catalog, identifier) == [{"id": 1, "name": "local-a"}, {"id": 2, "name": "local-b"}]
    assert rows(lake_catalog, identifier) == [{"id": 10, "name": "lake-x"}, {"id": 11, "name": "lake-y"}]
    assert len(default_catalog.load_table(identifier).snapshots()) == 1
    assert len(lake_catalog.load_table(identifier).snapshots()) == 2

    # Two different tables, each under its own warehouse's root, with its files on its own storage.
    local = default_catalog.load_table(identifier)
    lake = lake_catalog.load_table(identifier)
    assert local.metadata.table_uuid != lake.metadata.table_uuid
    assert local.location().startswith(f"{default_root(server)}/{namespace}/people-"), local.location()
    assert lake.location().startswith(f"{LAKE_ROOT}/{namespace}/people-"), lake.location()
    for table in (local, lake):
        assert table.metadata_location.startswith(table.location() + "/metadata/"), table.metadata_location
        assert all(task.file.file_path.startswith(table.location() + "/") for task in table.scan().plan_files())
    local_files = local_files_under(local.location())
    lake_files = s3_files_under(seaweedfs, lake.location())
    assert sum(f.endswith(".parquet") for f in local_files) == 1, local_files
    assert sum(f.endswith(".parquet") for f in lake_files) == 2, lake_files
    assert sum(f.endswith(".metadata.json") for f in local_files) == 2, local_files
    assert sum(f.endswith(".metadata.json") for f in lake_files) == 3, lake_files
    # Nothing of this namespace in the bucket outside lake's table, nor on disk outside the local one.
    assert seaweedfs.keys_under(BUCKET, f"tables/{namespace}/") == [
        f"{lake.location().removeprefix(f's3://{BUCKET}/')}/{f}" for f in lake_files
    ]
    assert local_files_under(f"{default_root(server)}/{namespace}") == [
        f"{local.location().rpartition('/')[2]}/{f}" for f in local_files
    ]

    # Listing is per warehouse too.
    assert default_catalog.list_tables(namespace) == [identifier]
    assert lake_catalog.list_tables(namespace) == [identifier]
    lake_catalog.create_table((namespace, "only_in_lake"), schema=ARROW_SCHEMA)
    assert default_catalog.list_tables(namespace) == [identifier]
    assert sorted(lake_catalog.list_tables(namespace)) == [(namespace, "only_in_lake"), identifier]
    assert not default_catalog.table_exists((namespace, "only_in_lake"))


def test_a_location_in_the_other_warehouse_is_refused(
    server: FloeServer, seaweedfs: SeaweedFS, default_catalog: RestCatalog, lake_catalog: RestCatalog
) -> None:
    namespace = unique_name("fence")
    for catalog in (default_catalog, lake_catalog):
        catalog.create_namespace(namespace)
    into_default = f"{default_root(server)}/{namespace}/intruder"
    into_lake = f"{LAKE_ROOT}/{namespace}/intruder"

    with pytest.raises(BadRequestError):
        lake_catalog.create_table((namespace, "intruder"), schema=ARROW_SCHEMA, location=into_default)
    with pytest.raises(BadRequestError):
        default_catalog.create_table((namespace, "intruder"), schema=ARROW_SCHEMA, location=into_lake)
    assert lake_catalog.list_tables(namespace) == []
    assert default_catalog.list_tables(namespace) == []
    assert not Path(into_default.removeprefix("file://")).exists()
    assert seaweedfs.keys_under(BUCKET, f"tables/{namespace}/") == []

    # The answer itself: 400 BadRequestException, as the REST spec's ErrorModel.
    response = requests.post(
        f"{server.uri}/v1/{LAKE}/namespaces/{namespace}/tables",
        json={
            "name": "intruder",
            "location": into_default,
            "schema": {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]},
        },
        timeout=HTTP_TIMEOUT_SECONDS,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "BadRequestException"
    assert response.json()["error"]["code"] == 400

    # A location inside its own warehouse is fine, in both.
    own_local = default_catalog.create_table(
        (namespace, "placed"), schema=ARROW_SCHEMA, location=f"{default_root(server)}/{namespace}/placed-here"
    )
    own_lake = lake_catalog.create_table((namespace, "placed"), schema=ARROW_SCHEMA, location=f"{into_lake}-not")
    assert own_local.location() == f"{default_root(server)}/{namespace}/placed-here"
    assert own_lake.location() == f"{into_lake}-not"


def test_purge_in_one_warehouse_leaves_the_other(
    seaweedfs: SeaweedFS, default_catalog: RestCatalog, lake_catalog: RestCatalog
) -> None:
    namespace = unique_name("purge")
    identifier = (namespace, "t")
    tables = {}
    for name, catalog in (("local", default_catalog), ("lake", lake_catalog)):
        catalog.create_namespace(namespace)
        tables[name] = catalog.create_table(identifier, schema=ARROW_SCHEMA)
        tables[name].append(people((1, name)))
    lake_files = s3_files_under(seaweedfs, tables["lake"].location())
    local_files = local_files_under(tables["local"].location())

    default_catalog.purge_table(identifier)
    assert local_files_under(tables["local"].location()) == []
    assert s3_files_under(seaweedfs, tables["lake"].location()) == lake_files
    assert rows(lake_catalog, identifier) == [{"id": 1, "name": "lake"}]

    lake_catalog.purge_table(identifier)
    assert s3_files_under(seaweedfs, tables["lake"].location()) == []
    assert not lake_catalog.table_exists(identifier)
    assert local_files  # (the local table did have files before its purge)
