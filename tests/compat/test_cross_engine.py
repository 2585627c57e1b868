"""Tables written by one engine, read by every engine, through Floe: the rows must be identical.

Each writer (Spark, PyIceberg, DuckDB, daft, polars) builds three tables, partitioned by `category`,
with its own API, each in one more state:

    appended  CREATE TABLE and two appends          rows 1 a x, 2 b y, 3 a z
    deleted   ... then the row with id 2 deleted    rows 1, 3
    evolved   ... then a column `score double` added and a row with it appended (4 c w 4.5)

and every reader reads each of them. Spark deletes merge-on-read (position delete files), PyIceberg
copy-on-write, DuckDB with position deletes; daft and polars have no row delete or DDL of their own,
so they overwrite the table with the remaining rows, and their schema change is PyIceberg's (daft
creates its table with its own catalog API, polars through PyIceberg).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Optional

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import DoubleType, LongType, NestedField, StringType

from conftest import duck_rows, duckdb_connect, spark_rows, unique_name
from floe_server import FloeServer

ENGINES = ["spark", "pyiceberg", "duckdb", "daft", "polars"]
STAGES = ["appended", "deleted", "evolved"]
COLUMNS = ["id", "category", "name"]
FIRST = [(1, "a", "x"), (2, "b", "y")]
SECOND = [(3, "a", "z")]
EVOLVED_ROW = (4, "c", "w", 4.5)
EXPECTED = {
    "appended": [(1, "a", "x"), (2, "b", "y"), (3, "a", "z")],
    "deleted": [(1, "a", "x"), (3, "a", "z")],
    "evolved": [(1, "a", "x", None), (3, "a", "z", None), (4, "c", "w", 4.5)],
}

pytestmark = pytest.mark.compat(
    table="Cross-engine reads (row: the engine that wrote the table, and its state; column: the engine that read it)",
    engine="{reader}",
    feature="written by {writer}: {stage}",
)


def columns(stage: str) -> list[str]:
    return COLUMNS + ["score"] if stage == "evolved" else COLUMNS


def arrow_rows(rows: list[tuple[Any, ...]]) -> pa.Table:
    names = COLUMNS + ["score"] if rows and len(rows[0]) == 4 else COLUMNS
    return pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows])


def sql_values(rows: list[tuple[Any, ...]]) -> str:
    return ", ".join("(" + ", ".join(repr(v) for v in row) + ")" for row in rows)


# --------------------------------------------------------------------------------------------- writers


class Writer:
    """One engine's way to create, append to, delete from and evolve a table `ns.name`."""

    def __init__(self, catalog: RestCatalog, engine: Callable[[], Any]) -> None:
        self.catalog = catalog
        self.engine = engine  # the engine's session or connection, made on first use

    def create(self, table: str) -> None: ...
    def append(self, table: str, rows: list[tuple[Any, ...]]) -> None: ...
    def delete_id_2(self, table: str) -> None: ...
    def add_score_column(self, table: str) -> None:
        with self.catalog.load_table(table).update_schema() as update:
            update.add_column("score", DoubleType())

    def build(self, table: str, stage: str) -> None:
        self.create(table)
        self.append(table, FIRST)
        self.append(table, SECOND)
        if stage in ("deleted", "evolved"):
            self.delete_id_2(table)
        if stage == "evolved":
            self.add_score_column(table)
            self.append(table, [EVOLVED_ROW])


class SparkWriter(Writer):
    def create(self, table: str) -> None:
        self.engine().sql(
            f"CREATE TABLE floe.{table} (id bigint, category string, name string) USING iceberg "
            "PARTITIONED BY (category) TBLPROPERTIES ('write.delete.mode' = 'merge-on-read')"
        )

    def append(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.engine().sql(f"INSERT INTO floe.{table} VALUES {sql_values(rows)}")

    def delete_id_2(self, table: str) -> None:
        self.engine().sql(f"DELETE FROM floe.{table} WHERE id = 2")

    def add_score_column(self, table: str) -> None:
        self.engine().sql(f"ALTER TABLE floe.{table} ADD COLUMN score double")


class PyIcebergWriter(Writer):
    def create(self, table: str) -> None:
        schema = Schema(
            NestedField(1, "id", LongType()),
            NestedField(2, "category", StringType()),
            NestedField(3, "name", StringType()),
        )
        spec = PartitionSpec(PartitionField(2, 1000, IdentityTransform(), "category"))
        self.catalog.create_table(table, schema=schema, partition_spec=spec)

    def append(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.catalog.load_table(table).append(arrow_rows(rows))

    def delete_id_2(self, table: str) -> None:
        self.catalog.load_table(table).delete("id = 2")


class DuckDBWriter(Writer):
    def create(self, table: str) -> None:
        self.engine().execute(f"CREATE TABLE ice.{table} (id BIGINT, category VARCHAR, name VARCHAR) PARTITIONED BY (category)")

    def append(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.engine().execute(f"INSERT INTO ice.{table} VALUES {sql_values(rows)}")

    def delete_id_2(self, table: str) -> None:
        self.engine().execute(f"DELETE FROM ice.{table} WHERE id = 2")

    def add_score_column(self, table: str) -> None:
        self.engine().execute(f"ALTER TABLE ice.{table} ADD COLUMN score DOUBLE")


class DaftWriter(Writer):
    def create(self, table: str) -> None:
        import daft
        from daft.catalog import Catalog
        from daft.io.partitioning import PartitionField as DaftPartitionField
        from daft.io.partitioning import PartitionTransform

        schema = daft.from_pydict({"id": [1], "category": ["a"], "name": ["x"]}).schema()
        category = schema["category"]
        partition = DaftPartitionField.create(category, category, PartitionTransform.identity())
        Catalog.from_iceberg(self.catalog).create_table(table, schema, partition_fields=[partition])

    def append(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        import daft

        daft.from_arrow(arrow_rows(rows)).write_iceberg(self.catalog.load_table(table), mode="append")

    def delete_id_2(self, table: str) -> None:
        import daft

        iceberg_table = self.catalog.load_table(table)
        remaining = daft.read_iceberg(iceberg_table).where(daft.col("id") != 2).collect()
        remaining.write_iceberg(iceberg_table, mode="overwrite")


class PolarsWriter(PyIcebergWriter):  # creates (and evolves) the table with PyIceberg
    def append(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        import polars as pl

        pl.from_arrow(arrow_rows(rows)).write_iceberg(self.catalog.load_table(table), mode="append")

    def delete_id_2(self, table: str) -> None:
        import polars as pl

        iceberg_table = self.catalog.load_table(table)
        remaining = pl.scan_iceberg(iceberg_table).filter(pl.col("id") != 2).collect()
        remaining.write_iceberg(iceberg_table, mode="overwrite")


WRITERS = {"spark": SparkWriter, "pyiceberg": PyIcebergWriter, "duckdb": DuckDBWriter, "daft": DaftWriter, "polars": PolarsWriter}


# --------------------------------------------------------------------------------------------- readers


def read(reader: str, table: str, stage: str, catalog: RestCatalog, engine: Callable[[], Any]) -> list[tuple[Any, ...]]:
    cols = columns(stage)
    if reader == "spark":
        return spark_rows(engine(), f"SELECT {', '.join(cols)} FROM floe.{table}")
    if reader == "duckdb":
        return duck_rows(engine(), f"SELECT {', '.join(cols)} FROM ice.{table}")
    iceberg_table = catalog.load_table(table)
    if reader == "pyiceberg":
        return [tuple(row[c] for c in cols) for row in iceberg_table.scan(selected_fields=tuple(cols)).to_arrow().to_pylist()]
    if reader == "daft":
        import daft

        return [tuple(row[c] for c in cols) for row in daft.read_iceberg(iceberg_table).select(*cols).to_pylist()]
    if reader == "polars":
        import polars as pl

        return pl.scan_iceberg(iceberg_table).select(cols).collect().rows()
    raise ValueError(reader)


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def duck_module(floe_server: FloeServer) -> Generator[Any, None, None]:
    con = duckdb_connect(floe_server)
    try:
        yield con
    finally:
        con.close()


@pytest.fixture(scope="module")
def engines(request: pytest.FixtureRequest, duck_module: Any) -> Callable[[str], Callable[[], Any]]:
    """`engines(name)()`: Spark's session (started on first use) or the DuckDB connection; else None."""

    def engine(name: str) -> Callable[[], Any]:
        if name == "spark":
            return lambda: request.getfixturevalue("spark")
        if name == "duckdb":
            return lambda: duck_module
        return lambda: None

    return engine


@pytest.fixture(scope="module")
def written(floe_uri: str, engines: Callable[[str], Callable[[], Any]]) -> Callable[[str, str], str]:
    """`written(writer, stage)`: the name of that writer's table in that state, built on first use.

    A writer that fails fails every read of its table, with the writer's error.
    """
    catalog = RestCatalog("floe", uri=floe_uri)
    built: dict[tuple[str, str], tuple[Optional[str], Optional[BaseException]]] = {}
    namespaces: dict[str, str] = {}

    def table(writer: str, stage: str) -> str:
        if (writer, stage) not in built:
            if writer not in namespaces:
                namespaces[writer] = unique_name(f"cross_{writer}")
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


# ----------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("reader", ENGINES)
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("writer", ENGINES)
def test_read(
    writer: str,
    stage: str,
    reader: str,
    written: Callable[[str, str], str],
    catalog: RestCatalog,
    engines: Callable[[str], Callable[[], Any]],
) -> None:
    table = written(writer, stage)
    assert sorted(read(reader, table, stage, catalog, engines(reader))) == EXPECTED[stage]
