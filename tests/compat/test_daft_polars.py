"""daft 0.7.26 and polars 2.1.0 against Floe (both reach the REST catalog through PyIceberg), and
`floe sql` (the real binary) as a reader and a writer of the cross-engine tables.

Engine features (columns daft and polars of the engine table), each with exact rows:

- write: the engine creates a table (daft with its own catalog API, `daft.catalog.Catalog.from_iceberg`;
  polars has none: PyIceberg creates it from the polars frame's Arrow schema), appends twice and
  overwrites; after every step the engine itself, PyIceberg and `floe sql` read the same rows.
- read: a partitioned table of many types written by PyIceberg, read whole and with a filter and a
  projection (pushed into PyIceberg's scan planning).
- time travel: the table as of each earlier snapshot (`snapshot_id=`).

Cross-engine (the table of test_cross_engine.py, which builds every writer's tables the same way):
`floe sql` reads what every engine wrote (a column `floe-sql`), and every engine reads what
`floe sql` wrote (rows `written by floe-sql`: CREATE TABLE ... PARTITIONED BY, INSERT, DELETE
copy-on-write; it has no ALTER TABLE, so its schema change is PyIceberg's, as for daft and polars).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Generator
from decimal import Decimal
from typing import Any, Optional

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import (
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
)

import test_cross_engine as cross
from conftest import duckdb_connect, floe_sql, floe_sql_rows, unique_name
from floe_server import FloeServer

Rows = list[tuple[Any, ...]]
DATAFRAME_ENGINES = ["daft", "polars"]
COLUMNS = ["id", "name", "score", "day", "ok"]
FIRST = [(1, "a", 1.5, datetime.date(2026, 1, 1), True), (2, "b", None, datetime.date(2026, 1, 2), False)]
SECOND = [(3, "c", -2.25, None, None)]
REPLACEMENT = [(10, "z", 0.0, datetime.date(2026, 12, 31), True)]


def frame(engine: str, rows: Rows) -> Any:
    """`rows` (of COLUMNS) as the engine's own data frame."""
    data = {c: [row[i] for row in rows] for i, c in enumerate(COLUMNS)}
    if engine == "daft":
        import daft

        return daft.from_pydict(data)
    import polars as pl

    return pl.DataFrame(data, schema={"id": pl.Int64, "name": pl.String, "score": pl.Float64, "day": pl.Date, "ok": pl.Boolean})


def engine_rows(engine: str, iceberg_table: Any, columns: list[str], snapshot_id: Optional[int] = None) -> Rows:
    """The rows of a PyIceberg table as daft or polars reads them, sorted."""
    if engine == "daft":
        import daft

        df = daft.read_iceberg(iceberg_table, snapshot_id=snapshot_id).select(*columns)
        return sorted((tuple(r[c] for c in columns) for r in df.to_pylist()), key=repr)
    import polars as pl

    return sorted(pl.scan_iceberg(iceberg_table, snapshot_id=snapshot_id).select(columns).collect().rows(), key=repr)


def pyiceberg_rows(iceberg_table: Any, columns: list[str], snapshot_id: Optional[int] = None) -> Rows:
    arrow = iceberg_table.scan(selected_fields=tuple(columns), snapshot_id=snapshot_id).to_arrow()
    return sorted((tuple(r[c] for c in columns) for r in arrow.to_pylist()), key=repr)


def floe_rows(floe_server: FloeServer, table: str, columns: list[str]) -> Rows:
    """`floe sql`'s rows; JSON has no date type: dates come back as ISO strings, turned into dates."""
    rows = floe_sql_rows(floe_server, f"SELECT {', '.join(columns)} FROM {table}", columns)
    fixed = [
        tuple(datetime.date.fromisoformat(v) if c == "day" and v is not None else v for c, v in zip(columns, row, strict=True))
        for row in rows
    ]
    return sorted(fixed, key=repr)


# ------------------------------------------------------------------------------------ engine features


@pytest.mark.parametrize("engine", DATAFRAME_ENGINES)
@pytest.mark.compat(engine="{engine}", feature="write: create table, append, overwrite; PyIceberg and floe sql read it")
def test_write(engine: str, catalog: RestCatalog, namespace: str, floe_server: FloeServer) -> None:
    name = f"{namespace}.t"
    if engine == "daft":
        from daft.catalog import Catalog

        daft_catalog = Catalog.from_iceberg(catalog)
        daft_table = daft_catalog.create_table(name, frame("daft", FIRST).schema())
        assert daft_catalog.has_table(name)
        daft_table.append(frame("daft", FIRST))
        daft_table.append(frame("daft", SECOND))
    else:
        catalog.create_table(name, schema=frame("polars", FIRST).to_arrow().schema)
        frame("polars", FIRST).write_iceberg(catalog.load_table(name), mode="append")
        frame("polars", SECOND).write_iceberg(catalog.load_table(name), mode="append")

    table = catalog.load_table(name)
    assert [f.name for f in table.schema().fields] == COLUMNS
    assert [str(f.field_type) for f in table.schema().fields] == ["long", "string", "double", "date", "boolean"]
    expected = sorted(FIRST + SECOND, key=repr)
    assert engine_rows(engine, table, COLUMNS) == expected
    assert pyiceberg_rows(table, COLUMNS) == expected
    assert floe_rows(floe_server, name, COLUMNS) == expected
    assert [s.summary.operation.value for s in table.snapshots()] == ["append", "append"]

    if engine == "daft":
        daft_table.overwrite(frame("daft", REPLACEMENT))
        assert sorted((tuple(r[c] for c in COLUMNS) for r in daft_table.read().to_pylist()), key=repr) == REPLACEMENT
    else:
        frame("polars", REPLACEMENT).write_iceberg(catalog.load_table(name), mode="overwrite")
    table = catalog.load_table(name)
    assert engine_rows(engine, table, COLUMNS) == REPLACEMENT
    assert pyiceberg_rows(table, COLUMNS) == REPLACEMENT
    assert floe_rows(floe_server, name, COLUMNS) == REPLACEMENT
    assert len(table.snapshots()) > 2  # the overwrite is new snapshots; the history is kept


@pytest.fixture(scope="module")
def typed_table(floe_uri: str) -> str:
    """A table partitioned by `category`, of many types, written by PyIceberg."""
    catalog = RestCatalog("floe", uri=floe_uri)
    namespace = unique_name("typed")
    catalog.create_namespace(namespace)
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "category", StringType(), required=False),
        NestedField(3, "amount", DecimalType(10, 2), required=False),
        NestedField(4, "score", DoubleType(), required=False),
        NestedField(5, "day", DateType(), required=False),
        NestedField(6, "ts", TimestampType(), required=False),
        NestedField(7, "ok", BooleanType(), required=False),
    )
    spec = PartitionSpec(PartitionField(2, 1000, IdentityTransform(), "category"))
    table = catalog.create_table(f"{namespace}.typed", schema=schema, partition_spec=spec)
    table.append(pa.Table.from_pylist(TYPED_ROWS, schema=table.schema().as_arrow()))
    return f"{namespace}.typed"


TYPED_ROWS = [
    {
        "id": 1,
        "category": "a",
        "amount": Decimal("12.50"),
        "score": 0.5,
        "day": datetime.date(2026, 2, 28),
        "ts": datetime.datetime(2026, 2, 28, 12, 34, 56, 789012),
        "ok": True,
    },
    {"id": 2, "category": "b", "amount": Decimal("-1.05"), "score": None, "day": None, "ts": None, "ok": False},
    {
        "id": 3,
        "category": "a",
        "amount": None,
        "score": 3.25,
        "day": datetime.date(1999, 12, 31),
        "ts": datetime.datetime(1999, 12, 31, 23, 59, 59),
        "ok": None,
    },
]
TYPED_COLUMNS = list(TYPED_ROWS[0])


@pytest.mark.parametrize("engine", DATAFRAME_ENGINES)
@pytest.mark.compat(engine="{engine}", feature="read: types, filter and projection (partitioned table written by PyIceberg)")
def test_read_filter_projection(engine: str, catalog: RestCatalog, typed_table: str) -> None:
    table = catalog.load_table(typed_table)
    everything = [tuple(row.values()) for row in TYPED_ROWS]
    assert engine_rows(engine, table, TYPED_COLUMNS) == sorted(everything, key=repr)
    if engine == "daft":
        import daft

        df = daft.read_iceberg(table)
        filtered = df.where((daft.col("category") == "a") & (daft.col("id") > 1)).select("id", "amount", "day").to_pylist()
        projected = [tuple(r.values()) for r in filtered]
    else:
        import polars as pl

        lazy = pl.scan_iceberg(table)
        projected = lazy.filter((pl.col("category") == "a") & (pl.col("id") > 1)).select("id", "amount", "day").collect().rows()
    assert projected == [(3, None, datetime.date(1999, 12, 31))]


DAFT_COUNT = (
    "daft 0.7.26: count_rows() of a read_iceberg frame filtered on an identity partition column answers the whole "
    "table's count (3 for category = 'a', whose rows it reads as 2); PyIceberg plans 1 file of 2 records for the "
    "filter (Floe's manifests are right), and on an unpartitioned table daft counts 2"
)


@pytest.mark.parametrize(
    "engine", [pytest.param("daft", marks=pytest.mark.xfail(strict=True, reason=DAFT_COUNT, raises=AssertionError)), "polars"]
)
@pytest.mark.compat(engine="{engine}", feature="count with a filter (partition column and data column)")
def test_count_with_filter(engine: str, catalog: RestCatalog, typed_table: str) -> None:
    table = catalog.load_table(typed_table)
    if engine == "daft":
        import daft

        df = daft.read_iceberg(table)
        counts = [df.count_rows(), df.where(daft.col("id") > 1).count_rows(), df.where(daft.col("category") == "a").count_rows()]
    else:
        import polars as pl

        lazy = pl.scan_iceberg(table)
        counts = [lazy.select(pl.len()).collect().item()] + [
            lazy.filter(condition).select(pl.len()).collect().item() for condition in (pl.col("id") > 1, pl.col("category") == "a")
        ]
    assert counts == [3, 2, 2]


@pytest.mark.parametrize("engine", DATAFRAME_ENGINES)
@pytest.mark.compat(engine="{engine}", feature="time travel (snapshot id)")
def test_time_travel(engine: str, catalog: RestCatalog, namespace: str) -> None:
    name = f"{namespace}.t"
    table = catalog.create_table(name, schema=pa.schema([("id", pa.int64()), ("name", pa.string())]))
    states: list[tuple[int, Rows]] = []
    for rows in ([(1, "a")], [(2, "b"), (3, "c")]):
        table.append(pa.Table.from_pylist([{"id": i, "name": n} for i, n in rows], schema=table.schema().as_arrow()))
        states.append((table.current_snapshot().snapshot_id, sorted(states[-1][1] + rows if states else rows)))
    table.delete("id = 1")
    states.append((table.current_snapshot().snapshot_id, [(2, "b"), (3, "c")]))
    table = catalog.load_table(name)
    for snapshot_id, expected in states:
        assert engine_rows(engine, table, ["id", "name"], snapshot_id=snapshot_id) == expected, snapshot_id
    assert engine_rows(engine, table, ["id", "name"]) == [(2, "b"), (3, "c")]


@pytest.mark.compat(engine="daft", feature="namespaces and tables (daft's catalog API)")
def test_daft_catalog(catalog: RestCatalog) -> None:
    from daft.catalog import Catalog

    daft_catalog = Catalog.from_iceberg(catalog)
    ns = unique_name("daft_ns")
    daft_catalog.create_namespace(ns)
    assert daft_catalog.has_namespace(ns)
    daft_catalog.create_table(f"{ns}.t", frame("daft", FIRST).schema())
    daft_catalog.create_table(f"{ns}.u", frame("daft", FIRST).schema())
    assert sorted(str(t) for t in daft_catalog.list_tables(ns)) == [f"{ns}.t", f"{ns}.u"]
    daft_catalog.get_table(f"{ns}.t").append(frame("daft", SECOND))
    assert [tuple(r.values()) for r in daft_catalog.read_table(f"{ns}.t").to_pylist()] == SECOND
    daft_catalog.drop_table(f"{ns}.u")
    assert not daft_catalog.has_table(f"{ns}.u")
    assert catalog.list_tables(ns) == [(ns, "t")]


# ---------------------------------------------------------------------------- cross-engine: floe sql


class FloeSqlWriter(cross.Writer):
    """`floe sql` against the server (`engine()` is the FloeServer); the schema change is PyIceberg's."""

    def create(self, table: str) -> None:
        floe_sql(self.engine(), f"CREATE TABLE {table} (id BIGINT, category VARCHAR, name VARCHAR) PARTITIONED BY (category)")

    def append(self, table: str, rows: Rows) -> None:
        floe_sql(self.engine(), f"INSERT INTO {table} VALUES {cross.sql_values(rows)}")

    def delete_id_2(self, table: str) -> None:
        floe_sql(self.engine(), f"DELETE FROM {table} WHERE id = 2")


WRITERS: dict[str, type[cross.Writer]] = {**cross.WRITERS, "floe-sql": FloeSqlWriter}
ENGINES = [*cross.ENGINES, "floe-sql"]


@pytest.fixture(scope="module")
def duck_module(floe_server: FloeServer) -> Generator[Any, None, None]:
    con = duckdb_connect(floe_server)
    try:
        yield con
    finally:
        con.close()


@pytest.fixture(scope="module")
def engines(request: pytest.FixtureRequest, floe_server: FloeServer) -> Callable[[str], Callable[[], Any]]:
    """`engines(name)()`: Spark's session, the DuckDB connection (each made on first use), the server
    for `floe sql`; else None."""

    def engine(name: str) -> Callable[[], Any]:
        if name == "spark":
            return lambda: request.getfixturevalue("spark")
        if name == "duckdb":
            return lambda: request.getfixturevalue("duck_module")
        if name == "floe-sql":
            return lambda: floe_server
        return lambda: None

    return engine


@pytest.fixture(scope="module")
def written(floe_uri: str, engines: Callable[[str], Callable[[], Any]]) -> Callable[[str, str], str]:
    """`written(writer, stage)`: that writer's table in that state (test_cross_engine.py's recipe),
    built on first use. A writer that fails fails every read of its table, with the writer's error."""
    catalog = RestCatalog("floe", uri=floe_uri)
    built: dict[tuple[str, str], tuple[Optional[str], Optional[BaseException]]] = {}
    namespaces: dict[str, str] = {}

    def table(writer: str, stage: str) -> str:
        if (writer, stage) not in built:
            if writer not in namespaces:
                namespaces[writer] = unique_name(f"cross_sql_{writer.replace('-', '_')}")
                catalog.create_namespace(namespaces[writer])
            name = f"{namespaces[writer]}.{stage}"
            try:
                WRITERS[writer](catalog, engines(writer)).build(name, stage)
                built[(writer, stage)] = (name, None)
            except Exception as error:  # noqa: BLE001  (reported by every read of this table)
                built[(writer, stage)] = (None, error)
        name, error = built[(writer, stage)]
        if error is not None:
            raise RuntimeError(f"{writer} could not write the '{stage}' table: {error!r}") from error
        assert name is not None
        return name

    return table


def cross_params() -> list[Any]:
    """floe sql reads every writer's tables; every reader reads floe sql's (test_cross_engine.py has the rest)."""
    return [
        pytest.param(writer, stage, reader, id=f"{writer}-{stage}-{reader}")
        for writer in ENGINES
        for stage in cross.STAGES
        for reader in ENGINES
        if "floe-sql" in (writer, reader)
    ]


@pytest.mark.compat(
    table=cross.pytestmark.kwargs["table"], engine="{reader}", feature="written by {writer}: {stage}"
)
@pytest.mark.parametrize(("writer", "stage", "reader"), cross_params())
def test_cross_engine_read(
    writer: str,
    stage: str,
    reader: str,
    written: Callable[[str, str], str],
    catalog: RestCatalog,
    engines: Callable[[str], Callable[[], Any]],
    floe_server: FloeServer,
) -> None:
    table = written(writer, stage)
    if reader == "floe-sql":
        rows = floe_sql_rows(floe_server, f"SELECT {', '.join(cross.columns(stage))} FROM {table}", cross.columns(stage))
    else:
        rows = cross.read(reader, table, stage, catalog, engines(reader))
    assert sorted(rows) == cross.EXPECTED[stage]
