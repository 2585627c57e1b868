"""DuckDB 1.5.5 with its iceberg extension, attached to Floe over REST (`ATTACH ... (TYPE ICEBERG)`).

The `duck` fixture is a connection with Floe attached as `ice`. Every test works in its own schema
(a namespace) and asserts exact rows; PyIceberg checks what Floe stored where that is the point.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest
from pyiceberg.catalog.rest import RestCatalog

from conftest import duck_rows, duckdb_connect, unique_name
from floe_server import FloeServer

pytestmark = pytest.mark.compat(engine="duckdb")


@pytest.fixture
def schema(duck: Any) -> str:
    """A fresh schema (namespace), as DuckDB names it (`ice.<ns>`)."""
    name = unique_name("duck")
    duck.execute(f"CREATE SCHEMA ice.{name}")
    return f"ice.{name}"


def snapshots(con: Any, table: str) -> list[tuple[int, int, str]]:
    """(sequence number, snapshot id, operation) of every snapshot, oldest first."""
    return duck_rows(
        con, f"SELECT sequence_number, snapshot_id, operation FROM iceberg_snapshots({table}) ORDER BY sequence_number"
    )


@pytest.mark.compat(feature="namespaces")
def test_attach_and_schemas(floe_server: FloeServer, catalog: RestCatalog) -> None:
    name = unique_name("duck")
    for warehouse in (floe_server.prefix, floe_server.warehouse):
        con = duckdb_connect(floe_server, warehouse)
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS ice.{name}")
            schemas = duck_rows(con, "SELECT schema_name FROM duckdb_schemas() WHERE database_name = 'ice' ORDER BY 1")
            assert (name,) in schemas, (warehouse, schemas)
        finally:
            con.close()
    assert (name,) in catalog.list_namespaces()

    con = duckdb_connect(floe_server)
    try:
        con.execute(f"DROP SCHEMA ice.{name}")
        assert (name,) not in duck_rows(con, "SELECT schema_name FROM duckdb_schemas() WHERE database_name = 'ice'")
    finally:
        con.close()
    assert (name,) not in catalog.list_namespaces()


@pytest.mark.compat(feature="CREATE TABLE, INSERT, SELECT (types)")
def test_create_insert_select(duck: Any, schema: str, catalog: RestCatalog) -> None:
    t = f"{schema}.t"
    duck.execute(
        f"CREATE TABLE {t} (id BIGINT, name VARCHAR, price DECIMAL(10, 2), score DOUBLE, day DATE, "
        "ts TIMESTAMP, flag BOOLEAN, n INTEGER)"
    )
    duck.execute(
        f"INSERT INTO {t} VALUES "
        "(1, 'a', 1.50, 0.5, DATE '2026-01-01', TIMESTAMP '2026-01-01 10:00:00', true, 7), "
        "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    duck.execute(f"INSERT INTO {t} (id, name) VALUES (3, 'c')")

    assert duck_rows(duck, f"SELECT * FROM {t} ORDER BY id") == [
        (1, "a", Decimal("1.50"), 0.5, datetime.date(2026, 1, 1), datetime.datetime(2026, 1, 1, 10, 0), True, 7),
        (2, None, None, None, None, None, None, None),
        (3, "c", None, None, None, None, None, None),
    ]
    assert duck_rows(duck, f"SELECT id FROM {t} WHERE name = 'c'") == [(3,)]
    table = catalog.load_table(t.removeprefix("ice."))
    assert [(f.name, str(f.field_type)) for f in table.schema().fields] == [
        ("id", "long"),
        ("name", "string"),
        ("price", "decimal(10, 2)"),
        ("score", "double"),
        ("day", "date"),
        ("ts", "timestamp"),
        ("flag", "boolean"),
        ("n", "int"),
    ]
    assert len(table.scan().to_arrow()) == 3
    assert [op for _, _, op in snapshots(duck, t)] == ["append", "append"]


@pytest.mark.compat(feature="UPDATE, DELETE (merge-on-read)")  # DuckDB writes position deletes
def test_delete_and_update(duck: Any, schema: str, catalog: RestCatalog) -> None:
    t = f"{schema}.t"
    duck.execute(f"CREATE TABLE {t} (id BIGINT, name VARCHAR)")
    duck.execute(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')")
    duck.execute(f"DELETE FROM {t} WHERE id = 2")
    assert duck_rows(duck, f"SELECT * FROM {t} ORDER BY id") == [(1, "a"), (3, "c"), (4, "d")]
    duck.execute(f"UPDATE {t} SET name = 'cc' WHERE id = 3")
    assert duck_rows(duck, f"SELECT * FROM {t} ORDER BY id") == [(1, "a"), (3, "cc"), (4, "d")]
    duck.execute(f"DELETE FROM {t} WHERE name = 'a' OR id = 4")
    assert duck_rows(duck, f"SELECT * FROM {t} ORDER BY id") == [(3, "cc")]
    # What DuckDB committed, as PyIceberg reads it from Floe.
    table = catalog.load_table(t.removeprefix("ice."))
    assert table.scan().to_arrow().to_pylist() == [{"id": 3, "name": "cc"}]


@pytest.mark.compat(feature="snapshots and metadata tables")
def test_snapshots_and_metadata(duck: Any, schema: str) -> None:
    t = f"{schema}.t"
    duck.execute(f"CREATE TABLE {t} (id BIGINT)")
    duck.execute(f"INSERT INTO {t} VALUES (1), (2)")
    duck.execute(f"INSERT INTO {t} VALUES (3)")
    duck.execute(f"DELETE FROM {t} WHERE id = 1")
    assert [(seq, op) for seq, _, op in snapshots(duck, t)] == [(1, "append"), (2, "append"), (3, "delete")]
    entries = duck_rows(
        duck,
        f"SELECT manifest_sequence_number, manifest_content, status, record_count FROM iceberg_metadata({t}) "
        "ORDER BY manifest_sequence_number",
    )
    assert entries == [(1, "DATA", "ADDED", 2), (2, "DATA", "ADDED", 1), (3, "DELETE", "ADDED", 1)]


@pytest.mark.compat(feature="time travel")
def test_time_travel(duck: Any, schema: str) -> None:
    t = f"{schema}.t"
    duck.execute(f"CREATE TABLE {t} (id BIGINT)")
    duck.execute(f"INSERT INTO {t} VALUES (1), (2)")
    duck.execute(f"INSERT INTO {t} VALUES (3)")
    duck.execute(f"DELETE FROM {t} WHERE id = 1")
    first, second, _ = (snapshot for _, snapshot, _ in snapshots(duck, t))

    assert duck_rows(duck, f"SELECT id FROM {t} AT (VERSION => {first}) ORDER BY id") == [(1,), (2,)]
    assert duck_rows(duck, f"SELECT id FROM {t} AT (VERSION => {second}) ORDER BY id") == [(1,), (2,), (3,)]
    assert duck_rows(duck, f"SELECT id FROM {t} ORDER BY id") == [(2,), (3,)]


@pytest.mark.compat(feature="multi-statement transactions (BEGIN, COMMIT, ROLLBACK)")
def test_transactions(duck: Any, schema: str) -> None:
    t = f"{schema}.t"
    duck.execute(f"CREATE TABLE {t} (id BIGINT)")
    duck.execute("BEGIN")
    duck.execute(f"INSERT INTO {t} VALUES (1)")
    duck.execute(f"INSERT INTO {t} VALUES (2)")
    duck.execute("COMMIT")
    duck.execute("BEGIN")
    duck.execute(f"INSERT INTO {t} VALUES (3)")
    duck.execute("ROLLBACK")
    assert duck_rows(duck, f"SELECT id FROM {t} ORDER BY id") == [(1,), (2,)]
    assert len(snapshots(duck, t)) >= 1


@pytest.mark.compat(feature="schema evolution (ALTER TABLE ... COLUMN)")
def test_schema_evolution(duck: Any, schema: str, catalog: RestCatalog) -> None:
    t = f"{schema}.t"
    duck.execute(f"CREATE TABLE {t} (id BIGINT, category VARCHAR, name VARCHAR)")
    duck.execute(f"INSERT INTO {t} VALUES (1, 'a', 'x')")
    duck.execute(f"ALTER TABLE {t} ADD COLUMN score DOUBLE")
    duck.execute(f"INSERT INTO {t} VALUES (2, 'b', 'y', 2.5)")
    duck.execute(f"ALTER TABLE {t} DROP COLUMN name")
    assert duck_rows(duck, f"SELECT * FROM {t} ORDER BY id") == [(1, "a", None), (2, "b", 2.5)]
    assert catalog.load_table(t.removeprefix("ice.")).schema().column_names == ["id", "category", "score"]


@pytest.mark.compat(feature="partitioned table")
def test_partitioned_table(duck: Any, schema: str, catalog: RestCatalog) -> None:
    p = f"{schema}.p"
    duck.execute(f"CREATE TABLE {p} (id BIGINT, category VARCHAR) PARTITIONED BY (category)")
    duck.execute(f"INSERT INTO {p} VALUES (1, 'a'), (2, 'b'), (3, 'a')")
    assert duck_rows(duck, f"SELECT * FROM {p} WHERE category = 'a' ORDER BY id") == [(1, "a"), (3, "a")]
    table = catalog.load_table(p.removeprefix("ice."))
    assert [(table.schema().find_column_name(f.source_id), str(f.transform)) for f in table.spec().fields] == [
        ("category", "identity")
    ]
    assert sorted(task.file.partition[0] for task in table.scan().plan_files()) == ["a", "b"]
    # An UPDATE that moves a row to another partition.
    duck.execute(f"UPDATE {p} SET category = 'z' WHERE id = 3")
    assert duck_rows(duck, f"SELECT * FROM {p} ORDER BY id") == [(1, "a"), (2, "b"), (3, "z")]
    table = catalog.load_table(p.removeprefix("ice."))
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "category": "a"},
        {"id": 2, "category": "b"},
        {"id": 3, "category": "z"},
    ]


@pytest.mark.compat(feature="partition evolution")
@pytest.mark.xfail(
    strict=True,
    reason="DuckDB 1.5.5 writes the position delete for a row of a data file written before SET PARTITIONED BY "
    "(spec 0, unpartitioned) into a manifest of the new spec 1 with partition {c: null}; by the Iceberg spec a "
    "position delete only applies to data files of its own spec and partition, so PyIceberg and Spark still "
    "see the row while DuckDB does not. Floe stores the commit as sent (checked in the manifests).",
)
def test_partition_evolution_then_delete(duck: Any, schema: str, catalog: RestCatalog) -> None:
    t = f"{schema}.t"
    duck.execute(f"CREATE TABLE {t} (id BIGINT, c VARCHAR)")
    duck.execute(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b')")
    duck.execute(f"ALTER TABLE {t} SET PARTITIONED BY (c)")
    duck.execute(f"INSERT INTO {t} VALUES (3, 'a')")
    duck.execute(f"DELETE FROM {t} WHERE id = 3")
    duck.execute(f"DELETE FROM {t} WHERE id = 1")
    assert duck_rows(duck, f"SELECT * FROM {t} ORDER BY id") == [(2, "b")]
    table = catalog.load_table(t.removeprefix("ice."))
    assert table.scan().to_arrow().to_pylist() == [{"id": 2, "c": "b"}]


@pytest.mark.compat(feature="RENAME TABLE")
def test_rename_table(duck: Any, schema: str, catalog: RestCatalog) -> None:
    duck.execute(f"CREATE TABLE {schema}.t (id BIGINT)")
    duck.execute(f"INSERT INTO {schema}.t VALUES (1)")
    duck.execute(f"ALTER TABLE {schema}.t RENAME TO renamed")
    namespace = schema.removeprefix("ice.")
    assert catalog.list_tables(namespace) == [(namespace, "renamed")]
    duck.execute(f"INSERT INTO {schema}.renamed VALUES (2)")
    assert duck_rows(duck, f"SELECT id FROM {schema}.renamed ORDER BY id") == [(1,), (2,)]


@pytest.mark.compat(feature="DROP TABLE")
def test_drop_table(duck: Any, schema: str, catalog: RestCatalog) -> None:
    t = f"{schema}.t"
    duck.execute(f"CREATE TABLE {t} (id BIGINT)")
    duck.execute(f"INSERT INTO {t} VALUES (1)")
    duck.execute(f"DROP TABLE {t}")
    assert not catalog.table_exists(t.removeprefix("ice."))
    assert duck_rows(duck, f"SELECT table_name FROM duckdb_tables() WHERE schema_name = '{schema.removeprefix('ice.')}'") == []


@pytest.mark.compat(feature="CREATE TABLE AS SELECT, REPLACE TABLE AS SELECT (staged create)")
def test_create_table_as_select(duck: Any, schema: str) -> None:
    t = f"{schema}.ctas"
    duck.execute(f"CREATE TABLE {t} AS SELECT * FROM (VALUES (1, 'a'), (2, 'b')) v(id, name)")
    assert duck_rows(duck, f"SELECT * FROM {t} ORDER BY id") == [(1, "a"), (2, "b")]
