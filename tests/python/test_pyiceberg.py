"""Real PyIceberg 0.12 against a real Floe server: tables are written and read through the REST catalog.

Every test that takes `catalog` runs twice (conftest.py's `warehouse` fixture): `[file]` on a server whose
warehouse is a local directory, `[s3]` on one whose warehouse is `s3://lake/warehouse` on a real SeaweedFS.
Where a test checks files it does so on that storage (`warehouse.files_under`: the directory or the bucket).
Every test uses its own namespace (the `namespace` fixture) so tests do not see each other's tables.
Rows are compared exactly, sorted by `id`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
)
from pyiceberg.partitioning import PartitionField
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import BucketTransform, IdentityTransform
from pyiceberg.types import LongType, NestedField, StringType

from conftest import Warehouse, unique_name
from floe_server import FloeServer

ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


def people(*rows: tuple[int, str]) -> pa.Table:
    return pa.Table.from_pylist([{"id": i, "name": n} for i, n in rows], schema=ARROW_SCHEMA)


def rows_of(table: Table, row_filter: str | None = None) -> list[dict[str, Any]]:
    """All rows the table's current snapshot holds, as dicts sorted by id."""
    scan = table.scan(row_filter=row_filter) if row_filter else table.scan()
    return sorted(scan.to_arrow().to_pylist(), key=lambda row: row["id"])


def reload(catalog: RestCatalog, table: Table) -> Table:
    """The table as the server has it now (not the client's cached copy)."""
    return catalog.load_table(table.name())


def test_create_namespace_and_table(catalog: RestCatalog, warehouse: Warehouse) -> None:
    ns = unique_name("ns")
    catalog.create_namespace(ns, properties={"owner": "floe-tests"})
    assert (ns,) in catalog.list_namespaces()
    assert catalog.load_namespace_properties(ns)["owner"] == "floe-tests"
    with pytest.raises(NamespaceAlreadyExistsError):
        catalog.create_namespace(ns)

    table = catalog.create_table((ns, "people"), schema=ARROW_SCHEMA, properties={"color": "blue"})
    assert table.name() == (ns, "people")
    assert table.format_version == 2
    assert table.current_snapshot() is None
    assert rows_of(table) == []

    loaded = catalog.load_table((ns, "people"))
    assert loaded.metadata.table_uuid == table.metadata.table_uuid
    assert loaded.metadata_location == table.metadata_location
    assert [(f.field_id, f.name, f.field_type) for f in loaded.schema().fields] == [
        (1, "id", LongType()),
        (2, "name", StringType()),
    ]
    assert loaded.properties["color"] == "blue"
    # Floe hands out locations under the warehouse root: <data dir>/warehouse, or s3://lake/warehouse.
    assert loaded.location().startswith(f"{warehouse.root}/{ns}/people-"), loaded.location()
    assert loaded.metadata_location.startswith(loaded.location() + "/metadata/"), loaded.metadata_location
    assert warehouse.exists(loaded.metadata_location)
    assert warehouse.files_under(loaded.location()) == [loaded.metadata_location.removeprefix(loaded.location() + "/")]


def test_append_and_read_back(catalog: RestCatalog, warehouse: Warehouse, namespace: str) -> None:
    table = catalog.create_table((namespace, "t"), schema=ARROW_SCHEMA)

    table.append(people((2, "bob"), (1, "alice"), (3, "carol")))
    first = reload(catalog, table)
    assert first.current_snapshot() is not None
    assert first.current_snapshot().summary.operation.value == "append"
    assert rows_of(first) == [
        {"id": 1, "name": "alice"},
        {"id": 2, "name": "bob"},
        {"id": 3, "name": "carol"},
    ]

    table.append(people((4, "dave")))
    second = reload(catalog, table)
    assert len(second.snapshots()) == 2
    assert second.current_snapshot().parent_snapshot_id == first.current_snapshot().snapshot_id
    assert [row["id"] for row in rows_of(second)] == [1, 2, 3, 4]
    assert rows_of(second, "name = 'dave'") == [{"id": 4, "name": "dave"}]
    # Time travel to the first snapshot still sees three rows.
    old = second.scan(snapshot_id=first.current_snapshot().snapshot_id).to_arrow()
    assert sorted(old.column("id").to_pylist()) == [1, 2, 3]

    # On the warehouse's storage: one data file per append (written by PyIceberg), three metadata files
    # (create and two appends, written by Floe), and each append's manifest list and manifest.
    files = warehouse.files_under(second.location())
    assert sum(f.startswith("data/") and f.endswith(".parquet") for f in files) == 2, files
    assert sum(f.startswith("metadata/") and f.endswith(".metadata.json") for f in files) == 3, files
    assert sum(f.startswith("metadata/snap-") and f.endswith(".avro") for f in files) == 2, files
    assert set(f.split("/")[0] for f in files) == {"data", "metadata"}, files
    data_files = {task.file.file_path for task in second.scan().plan_files()}
    assert data_files == {f"{second.location()}/{f}" for f in files if f.endswith(".parquet")}


def test_schema_evolution(catalog: RestCatalog, namespace: str) -> None:
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string()), pa.field("age", pa.int32())])
    table = catalog.create_table((namespace, "t"), schema=schema)
    table.append(pa.Table.from_pylist([{"id": 1, "name": "alice", "age": 30}, {"id": 2, "name": "bob", "age": 40}], schema=schema))
    name_field_id = table.schema().find_field("name").field_id

    with table.update_schema() as update:
        update.add_column("email", StringType())
        update.rename_column("name", "full_name")
        update.delete_column("age")

    evolved = reload(catalog, table)
    assert evolved.schema().column_names == ["id", "full_name", "email"]
    assert evolved.schema().find_field("full_name").field_id == name_field_id
    assert evolved.schema().schema_id != table.metadata.schemas[0].schema_id
    assert len(evolved.schemas()) == 2

    new_schema = pa.schema([pa.field("id", pa.int64()), pa.field("full_name", pa.string()), pa.field("email", pa.string())])
    evolved.append(pa.Table.from_pylist([{"id": 3, "full_name": "carol", "email": "c@example.com"}], schema=new_schema))

    assert rows_of(reload(catalog, table)) == [
        {"id": 1, "full_name": "alice", "email": None},
        {"id": 2, "full_name": "bob", "email": None},
        {"id": 3, "full_name": "carol", "email": "c@example.com"},
    ]


def test_partition_evolution(catalog: RestCatalog, namespace: str) -> None:
    schema = pa.schema([pa.field("id", pa.int64()), pa.field("category", pa.string())])
    table = catalog.create_table((namespace, "t"), schema=schema)
    table.append(pa.Table.from_pylist([{"id": 1, "category": "a"}, {"id": 2, "category": "b"}], schema=schema))
    assert table.spec().is_unpartitioned()

    with table.update_spec() as update:
        update.add_identity("category")

    evolved = reload(catalog, table)
    assert evolved.spec().spec_id == 1
    assert [(f.name, f.transform) for f in evolved.spec().fields] == [("category", IdentityTransform())]
    assert len(evolved.specs()) == 2

    evolved.append(
        pa.Table.from_pylist([{"id": 3, "category": "a"}, {"id": 4, "category": "c"}, {"id": 5, "category": "c"}], schema=schema)
    )
    after = reload(catalog, table)
    files = [task.file for task in after.scan().plan_files()]
    old_files = [f for f in files if f.spec_id == 0]
    new_files = [f for f in files if f.spec_id == 1]
    assert len(old_files) == 1
    assert sorted(f.partition[0] for f in new_files) == ["a", "c"]
    assert [row["id"] for row in rows_of(after)] == [1, 2, 3, 4, 5]
    assert rows_of(after, "category = 'a'") == [{"id": 1, "category": "a"}, {"id": 3, "category": "a"}]

    # A second evolution: add a bucket field next to the identity one.
    with after.update_spec() as update:
        update.add_field("id", BucketTransform(4), "id_bucket")
    final = reload(catalog, table)
    assert final.spec().spec_id == 2
    assert [(f.name, f.transform) for f in final.spec().fields] == [
        ("category", IdentityTransform()),
        ("id_bucket", BucketTransform(4)),
    ]
    assert isinstance(final.spec().fields[1], PartitionField)
    assert final.spec().fields[1].source_id == final.schema().find_field("id").field_id
    assert [row["id"] for row in rows_of(final)] == [1, 2, 3, 4, 5]


def test_overwrite(catalog: RestCatalog, namespace: str) -> None:
    table = catalog.create_table((namespace, "t"), schema=ARROW_SCHEMA)
    table.append(people((1, "a"), (2, "b"), (3, "c")))

    table.overwrite(people((10, "x"), (11, "y")))
    after_full = reload(catalog, table)
    assert rows_of(after_full) == [{"id": 10, "name": "x"}, {"id": 11, "name": "y"}]

    table.append(people((1, "a")))
    table.overwrite(people((12, "z")), overwrite_filter="id >= 10")
    after_filtered = reload(catalog, table)
    assert rows_of(after_filtered) == [{"id": 1, "name": "a"}, {"id": 12, "name": "z"}]
    operations = [s.summary.operation.value for s in after_filtered.snapshots()]
    assert "overwrite" in operations or "delete" in operations, operations


def test_row_delete(catalog: RestCatalog, namespace: str) -> None:
    table = catalog.create_table((namespace, "t"), schema=ARROW_SCHEMA)
    table.append(people((1, "a"), (2, "b"), (3, "c"), (4, "d")))
    before = reload(catalog, table).current_snapshot().snapshot_id

    table.delete("id = 3")
    after = reload(catalog, table)
    assert after.current_snapshot().snapshot_id != before
    assert rows_of(after) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 4, "name": "d"}]

    table.delete("name = 'a' or id = 4")
    assert rows_of(reload(catalog, table)) == [{"id": 2, "name": "b"}]
    # The old snapshot still has all four rows.
    assert len(reload(catalog, table).scan(snapshot_id=before).to_arrow()) == 4


def test_create_table_transaction(catalog: RestCatalog, namespace: str) -> None:
    identifier = (namespace, "staged")
    txn = catalog.create_table_transaction(identifier, schema=ARROW_SCHEMA, properties={"k": "v"})
    txn.append(people((1, "a"), (2, "b")))
    assert not catalog.table_exists(identifier)

    txn.commit_transaction()

    assert catalog.table_exists(identifier)
    table = catalog.load_table(identifier)
    assert table.properties["k"] == "v"
    assert len(table.snapshots()) == 1
    assert rows_of(table) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    assert identifier in catalog.list_tables(namespace)


def test_load_table_snapshots_refs(catalog: RestCatalog, warehouse: Warehouse, namespace: str) -> None:
    """`?snapshots=refs` returns only the snapshots that a branch or tag points at; `all` (the default) all."""
    api = warehouse.api()
    table = catalog.create_table((namespace, "t"), schema=ARROW_SCHEMA)
    for i in range(3):
        table.append(people((i, f"row{i}")))
    history = sorted(reload(catalog, table).snapshots(), key=lambda s: s.sequence_number)
    s1, s2, s3 = [s.snapshot_id for s in history]
    table.manage_snapshots().create_tag(s1, "first").commit()
    assert reload(catalog, table).current_snapshot().snapshot_id == s3

    path = f"namespaces/{namespace}/tables/t"

    def snapshot_ids(response: Any) -> list[int]:
        assert response.status_code == 200, response.text
        return sorted(s["snapshot-id"] for s in response.json()["metadata"].get("snapshots", []))

    refs = api.get(path, params={"snapshots": "refs"})
    assert snapshot_ids(refs) == sorted([s1, s3])
    refs_metadata = refs.json()["metadata"]
    assert refs_metadata["current-snapshot-id"] == s3
    assert {name: ref["snapshot-id"] for name, ref in refs_metadata["refs"].items()} == {"main": s3, "first": s1}

    assert snapshot_ids(api.get(path, params={"snapshots": "all"})) == sorted([s1, s2, s3])
    assert snapshot_ids(api.get(path)) == sorted([s1, s2, s3])

    # PyIceberg (which loads with the default) still sees the whole history.
    assert {s.snapshot_id for s in reload(catalog, table).snapshots()} == {s1, s2, s3}


def test_list_namespaces_and_tables(catalog: RestCatalog, namespace: str) -> None:
    for name in ("t_b", "t_a", "t_c"):
        catalog.create_table((namespace, name), schema=ARROW_SCHEMA)
    assert sorted(catalog.list_tables(namespace)) == [(namespace, "t_a"), (namespace, "t_b"), (namespace, "t_c")]
    assert (namespace,) in catalog.list_namespaces()

    empty = unique_name("ns_empty")
    catalog.create_namespace(empty)
    assert catalog.list_tables(empty) == []
    assert catalog.namespace_exists(empty)
    assert not catalog.namespace_exists(unique_name("ns_missing"))
    with pytest.raises(NoSuchNamespaceError):
        catalog.list_tables(unique_name("ns_missing"))


def test_nested_namespaces(catalog: RestCatalog) -> None:
    parent = unique_name("ns_parent")
    catalog.create_namespace(parent)
    catalog.create_namespace((parent, "child"))
    assert catalog.list_namespaces(parent) == [(parent, "child")]
    assert (parent,) in catalog.list_namespaces()
    assert (parent, "child") not in catalog.list_namespaces()

    catalog.create_table((parent, "child", "t"), schema=ARROW_SCHEMA)
    assert catalog.list_tables((parent, "child")) == [(parent, "child", "t")]
    assert catalog.load_table((parent, "child", "t")).name() == (parent, "child", "t")


def test_drop_table(catalog: RestCatalog, warehouse: Warehouse, namespace: str) -> None:
    """A drop without purge removes the table from the catalog and leaves its files (docs/views.md)."""
    table = catalog.create_table((namespace, "doomed"), schema=ARROW_SCHEMA)
    table.append(people((1, "a")))
    catalog.create_table((namespace, "kept"), schema=ARROW_SCHEMA)
    files_before = warehouse.files_under(table.location())

    catalog.drop_table((namespace, "doomed"))
    assert warehouse.files_under(table.location()) == files_before

    assert not catalog.table_exists((namespace, "doomed"))
    with pytest.raises(NoSuchTableError):
        catalog.load_table((namespace, "doomed"))
    with pytest.raises(NoSuchTableError):
        catalog.drop_table((namespace, "doomed"))
    assert catalog.list_tables(namespace) == [(namespace, "kept")]

    # The name can be used again, for a new, empty table.
    again = catalog.create_table((namespace, "doomed"), schema=ARROW_SCHEMA)
    assert again.metadata.table_uuid != table.metadata.table_uuid
    assert again.location() != table.location()
    assert rows_of(again) == []


def test_drop_with_purge(catalog: RestCatalog, warehouse: Warehouse, namespace: str) -> None:
    """`purge_table` (DELETE with purgeRequested) removes every file of the table and nothing of its neighbour."""
    table = catalog.create_table((namespace, "gone"), schema=ARROW_SCHEMA)
    table.append(people((1, "a"), (2, "b")))
    table.delete("id = 1")  # a second data file, and more metadata
    neighbour = catalog.create_table((namespace, "gone_not"), schema=ARROW_SCHEMA)  # a name sharing the prefix
    neighbour.append(people((3, "c")))
    files = warehouse.files_under(table.location())
    assert any(f.endswith(".parquet") for f in files), files
    assert any(f.endswith(".avro") for f in files), files
    neighbour_files = warehouse.files_under(neighbour.location())

    catalog.purge_table((namespace, "gone"))

    assert not catalog.table_exists((namespace, "gone"))
    assert warehouse.files_under(table.location()) == []
    assert warehouse.files_under(neighbour.location()) == neighbour_files
    assert rows_of(catalog.load_table((namespace, "gone_not"))) == [{"id": 3, "name": "c"}]
    with pytest.raises(NoSuchTableError):
        catalog.purge_table((namespace, "gone"))


def test_rename_table(catalog: RestCatalog, namespace: str) -> None:
    table = catalog.create_table((namespace, "old"), schema=ARROW_SCHEMA)
    table.append(people((1, "a")))
    other = unique_name("ns_other")
    catalog.create_namespace(other)

    renamed = catalog.rename_table((namespace, "old"), (namespace, "new"))
    assert renamed.name() == (namespace, "new")
    assert not catalog.table_exists((namespace, "old"))
    with pytest.raises(NoSuchTableError):
        catalog.load_table((namespace, "old"))

    moved = catalog.rename_table((namespace, "new"), (other, "moved"))
    assert catalog.list_tables(namespace) == []
    assert catalog.list_tables(other) == [(other, "moved")]
    assert moved.metadata.table_uuid == table.metadata.table_uuid
    assert rows_of(catalog.load_table((other, "moved"))) == [{"id": 1, "name": "a"}]

    # The renamed table still takes commits.
    moved.append(people((2, "b")))
    assert [row["id"] for row in rows_of(catalog.load_table((other, "moved")))] == [1, 2]


def test_namespace_properties_update(catalog: RestCatalog) -> None:
    ns = unique_name("ns")
    catalog.create_namespace(ns, properties={"owner": "alice", "team": "data"})

    summary = catalog.update_namespace_properties(ns, removals={"owner", "not-there"}, updates={"team": "infra", "tier": "gold"})

    assert sorted(summary.removed) == ["owner"]
    assert sorted(summary.updated) == ["team", "tier"]
    assert sorted(summary.missing) == ["not-there"]
    properties = catalog.load_namespace_properties(ns)
    assert "owner" not in properties
    assert properties["team"] == "infra"
    assert properties["tier"] == "gold"


def test_drop_namespace(catalog: RestCatalog) -> None:
    ns = unique_name("ns")
    catalog.create_namespace(ns)
    catalog.drop_namespace(ns)
    assert not catalog.namespace_exists(ns)
    assert (ns,) not in catalog.list_namespaces()
    with pytest.raises(NoSuchNamespaceError):
        catalog.drop_namespace(ns)


def test_concurrent_appends(catalog: RestCatalog, warehouse: Warehouse, namespace: str) -> None:
    """Writers racing on one table: each retries on CommitFailedException (409) from a fresh load, and in
    the end every acknowledged append is in the table exactly once, one snapshot each, in one line.

    PyIceberg's own commit retries are off (`commit.retry.num-retries=0`) so every 409 reaches the writer,
    and the writers start each round together (a barrier) so they do race: all load the same snapshot,
    one commit wins and the others must fail and retry.
    """
    writers, rounds, max_attempts = 4, 3, 50
    catalog.create_table((namespace, "t"), schema=ARROW_SCHEMA, properties={"commit.retry.num-retries": "0"})
    barrier = threading.Barrier(writers)
    acknowledged: list[int] = []  # first id of each append whose commit returned
    conflicts: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        own_catalog = warehouse.catalog()  # one HTTP session per thread
        try:
            for r in range(rounds):
                first_id = 1000 * w + 10 * r
                batch = people(*((first_id + k, f"w{w}r{r}k{k}") for k in range(2)))
                barrier.wait(timeout=120)
                for _ in range(max_attempts):
                    try:
                        own_catalog.load_table((namespace, "t")).append(batch)
                        break
                    except CommitFailedException:
                        with lock:
                            conflicts.append(w)
                else:
                    raise AssertionError(f"writer {w} round {r}: still conflicting after {max_attempts} attempts")
                with lock:
                    acknowledged.append(first_id)
        except BaseException as error:  # noqa: BLE001 (reported by the main thread)
            barrier.abort()
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert errors == [], errors
    assert len(acknowledged) == writers * rounds
    assert conflicts, "the writers never raced: no commit was refused"

    final = catalog.load_table((namespace, "t"))
    ids = Counter(row["id"] for row in final.scan().to_arrow().to_pylist())
    expected = Counter(first_id + k for first_id in acknowledged for k in range(2))
    assert ids == expected  # every acknowledged row, each exactly once, nothing else
    snapshots = final.snapshots()
    assert len(snapshots) == len(acknowledged)
    assert all(s.summary.operation.value == "append" for s in snapshots)
    # One line of history: each snapshot's parent is the one before it.
    by_sequence = sorted(snapshots, key=lambda s: s.sequence_number)
    assert [s.sequence_number for s in by_sequence] == list(range(1, len(snapshots) + 1))
    assert [s.parent_snapshot_id for s in by_sequence] == [None] + [s.snapshot_id for s in by_sequence[:-1]]
    assert final.current_snapshot().snapshot_id == by_sequence[-1].snapshot_id

    # On storage: every referenced data file exists; refused commits left no metadata file of Floe's
    # (one per accepted commit: the create and each append).
    data_files = {task.file.file_path for task in final.scan().plan_files()}
    assert len(data_files) == len(acknowledged)
    files = warehouse.files_under(final.location())
    assert data_files <= {f"{final.location()}/{f}" for f in files}
    metadata_files = [f for f in files if f.endswith(".metadata.json")]
    assert len(metadata_files) == 1 + len(acknowledged), (len(conflicts), metadata_files)


def test_data_survives_restart(
    tmp_path: Path, warehouse: Warehouse, floe_launcher: Callable[..., FloeServer]
) -> None:
    """Stop a server and start another on the same data dir (and the same warehouse storage): it has it all."""
    data_dir = tmp_path / "floe-data"
    extra_args, env = warehouse.launch_args(unique_name("restart"))
    first = floe_launcher(data_dir, extra_args, env)
    catalog = RestCatalog("floe", uri=first.uri, **warehouse.client_properties)
    catalog.create_namespace("durable")
    table = catalog.create_table(("durable", "t"), schema=ARROW_SCHEMA)
    table.append(people((1, "a"), (2, "b")))
    metadata_location = catalog.load_table(("durable", "t")).metadata_location
    first.stop()

    second = floe_launcher(data_dir, extra_args, env)
    catalog = RestCatalog("floe", uri=second.uri, **warehouse.client_properties)
    assert ("durable",) in catalog.list_namespaces()
    reloaded = catalog.load_table(("durable", "t"))
    assert reloaded.metadata_location == metadata_location
    assert rows_of(reloaded) == [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    reloaded.append(people((3, "c")))
    assert [row["id"] for row in rows_of(catalog.load_table(("durable", "t")))] == [1, 2, 3]
