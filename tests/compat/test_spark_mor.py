"""Merge-on-read tables written by Spark, read by every engine through Floe: the rows must be Spark's.

Spark 3.5.9 + Iceberg 1.10.2 writes each table (one namespace for the module, each table built on
first use); every reader then reads it three ways: all rows, the `name`s of `category = 'b'` (a
filter pushed into the scan, over a partition column where the table has one, and a projection
without the columns the equality deletes compare) and `count(*)`
(which a reader may answer from metadata: wrong when it forgets the deletes). Every table is first
read by Spark itself and must hold the expected rows, so "the expected rows" below are Spark's.

    position deletes    Spark DELETE, UPDATE and MERGE with write.{delete,update,merge}.mode =
                        merge-on-read: position delete files (checked in the table's `files`)
    equality deletes    Spark SQL cannot write them: the Iceberg Java API inside the runtime jar can,
                        through PySpark's py4j gateway (`write_equality_deletes`): a GenericAppenderFactory
                        equality-delete Parquet file, committed with `table.newRowDelta().addDeletes(...)`
                        through the same REST catalog. Rows inserted after the delete with the same key
                        survive it (a delete applies to data of lower sequence numbers only), and in a
                        partitioned table only to its own partition.
    deletion vectors    format version 3: Spark's DELETE and UPDATE write Puffin deletion vectors.

Readers: Spark, `floe sql` (the real binary, `--catalog` the server), PyIceberg, DuckDB, daft and
polars (the last two plan their scans with PyIceberg). Where a reader cannot read a kind of delete
file the test is a strict xfail with the reason (for `floe sql`, a Floe limitation to be fixed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.rest import RestCatalog

from conftest import duck_rows, duckdb_connect, floe_sql_results, spark_rows, unique_name
from floe_server import FloeServer

READERS = ["spark", "floe-sql", "pyiceberg", "duckdb", "daft", "polars"]
MOR = "'write.delete.mode' = 'merge-on-read', 'write.update.mode' = 'merge-on-read', 'write.merge.mode' = 'merge-on-read'"

pytestmark = pytest.mark.compat(
    table="Merge-on-read tables written by Spark (row: how Spark deleted rows; column: the engine that read them)",
    engine="{reader}",
    feature="{case}",
)

Rows = list[tuple[Any, ...]]
ROW_GROUP_ROWS = 5000


@dataclass
class Case:
    """One table: how Spark builds it, its columns, the rows it must hold, the delete files it has."""

    build: Callable[[Any, str], None]
    columns: list[str]
    expected: Rows
    contents: set[int]  # the `content` of its live delete files: 1 position (or DV), 2 equality
    xfail: dict[str, tuple[str, type[BaseException]]] = field(default_factory=dict)  # reader: (reason, raises)

    def expected_b(self) -> Rows:
        """The names of the rows of category 'b' (a projection without the delete keys), sorted."""
        return sorted((row[2],) for row in self.expected if row[1] == "b")


# ------------------------------------------------------------------------------------ Spark's writes


def write_equality_deletes(
    spark: Any, table_name: str, columns: list[str], rows: Rows, partition: Optional[dict[str, Any]] = None
) -> None:
    """Commit one equality-delete file that deletes the rows whose `columns` equal one of `rows`,
    written and committed (a RowDelta) with the Iceberg Java API of the Spark runtime jar.

    `partition`: the partition values of the delete file (a partitioned table's delete applies to
    the data files of its own partition only); None for an unpartitioned table.
    """
    jvm = spark._jvm
    iceberg = jvm.org.apache.iceberg
    table = jvm.org.apache.iceberg.spark.Spark3Util.loadIcebergTable(spark._jsparkSession, table_name)
    schema, spec = table.schema(), table.spec()
    field_ids = spark.sparkContext._gateway.new_array(jvm.int, len(columns))
    for i, column in enumerate(columns):
        field_ids[i] = schema.findField(column).fieldId()
    delete_schema = schema.select(columns)
    factory = iceberg.data.GenericAppenderFactory(schema, spec, field_ids, delete_schema, None)
    files = iceberg.io.OutputFileFactory.builderFor(table, 1, 1).format(iceberg.FileFormat.PARQUET).build()
    key = None
    if partition is None:
        output = files.newOutputFile()
    else:
        key = iceberg.PartitionKey(spec, schema)
        row = iceberg.data.GenericRecord.create(schema)
        for name, value in partition.items():
            row.setField(name, value)
        key.partition(row)
        output = files.newOutputFile(spec, key)
    writer = factory.newEqDeleteWriter(output, iceberg.FileFormat.PARQUET, key)
    try:
        for values in rows:
            record = iceberg.data.GenericRecord.create(delete_schema)
            for name, value in zip(columns, values, strict=True):
                record.setField(name, value)
            writer.write(record)
    finally:
        writer.close()
    table.newRowDelta().addDeletes(writer.toDeleteFile()).commit()


def build_position_deletes(spark: Any, t: str) -> None:
    spark.sql(
        f"CREATE TABLE {t} (id bigint, category string, name string) USING iceberg "
        f"PARTITIONED BY (category) TBLPROPERTIES ({MOR})"
    )
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'a', 'z'), (4, 'b', 'w')")
    spark.sql(f"INSERT INTO {t} VALUES (5, 'c', 'v'), (6, 'a', 'u'), (7, 'b', 't')")
    spark.sql(f"DELETE FROM {t} WHERE id = 2")
    spark.sql(f"UPDATE {t} SET name = upper(name) WHERE id IN (3, 7)")
    spark.sql(
        f"""MERGE INTO {t} t
        USING (SELECT * FROM VALUES (4, 'b', 'w2', 'update'), (6, 'a', '', 'delete'), (8, 'c', 's', 'insert')
               AS s(id, category, name, op)) s
        ON t.id = s.id
        WHEN MATCHED AND s.op = 'delete' THEN DELETE
        WHEN MATCHED THEN UPDATE SET t.name = s.name
        WHEN NOT MATCHED THEN INSERT (id, category, name) VALUES (s.id, s.category, s.name)"""
    )


def build_position_deletes_evolved(spark: Any, t: str) -> None:
    spark.sql(f"CREATE TABLE {t} (id bigint, category string, name string) USING iceberg TBLPROPERTIES ({MOR})")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'a', 'z')")
    spark.sql(f"INSERT INTO {t} VALUES (4, 'b', 'w'), (5, 'c', 'v')")
    spark.sql(f"DELETE FROM {t} WHERE id = 1")
    spark.sql(f"DELETE FROM {t} WHERE id = 3")  # a second delete file for the same data file
    spark.sql(f"DELETE FROM {t} WHERE name IN ('w', 'v')")  # every row of the second data file
    spark.sql(f"ALTER TABLE {t} ADD COLUMN score double")
    spark.sql(f"INSERT INTO {t} VALUES (6, 'b', 'u', 6.5), (7, 'c', 't', 7.5)")
    spark.sql(f"UPDATE {t} SET score = 2.5 WHERE id = 2")  # a row of the old schema gets the new column
    spark.sql(f"UPDATE {t} SET name = 'uu' WHERE id = 6")


def build_position_deletes_row_groups(spark: Any, t: str) -> None:
    # One data file of many small row groups (sorted by id: a filter on category skips most of them),
    # scattered position deletes: a reader must map deleted positions across skipped row groups.
    spark.sql(
        f"CREATE TABLE {t} (id bigint, category string, name string) USING iceberg "
        f"TBLPROPERTIES ({MOR}, 'write.parquet.row-group-size-bytes' = '2048', 'write.parquet.page-row-limit' = '50')"
    )
    spark.sql(
        f"INSERT INTO {t} SELECT /*+ COALESCE(1) */ id, CASE WHEN id BETWEEN 2000 AND 2099 THEN 'b' ELSE 'a' END, "
        f"concat('n', id) FROM range({ROW_GROUP_ROWS}) ORDER BY id"
    )
    spark.sql(f"DELETE FROM {t} WHERE id % 7 = 0 OR id BETWEEN 2040 AND 2059 OR id = {ROW_GROUP_ROWS - 1}")
    ((path,),) = spark_rows(spark, f"SELECT file_path FROM {t}.files WHERE content = 0")
    row_groups = pq.ParquetFile(path.removeprefix("file:")).num_row_groups
    assert row_groups >= 10, f"{row_groups} row groups"


def build_equality_deletes(spark: Any, t: str) -> None:
    spark.sql(f"CREATE TABLE {t} (id int, category string, name string) USING iceberg TBLPROPERTIES ({MOR})")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'a', 'z'), (4, 'b', 'w'), (5, 'c', 'v')")
    spark.sql(f"DELETE FROM {t} WHERE id = 4")  # a position delete next to the equality deletes
    write_equality_deletes(spark, t, ["id"], [(2,), (5,)])
    write_equality_deletes(spark, t, ["category", "name"], [("a", "z")])
    # Same keys, written after the deletes (higher sequence numbers): not deleted.
    spark.sql(f"INSERT INTO {t} VALUES (2, 'b', 'again'), (9, 'a', 'z')")


def build_equality_deletes_partitioned(spark: Any, t: str) -> None:
    spark.sql(f"CREATE TABLE {t} (id int, category string, name string) USING iceberg PARTITIONED BY (category)")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 'y'), (2, 'b', 'y'), (3, 'b', 'z'), (4, 'a', 'z'), (5, 'b', 'y')")
    # name = 'y' in partition category = 'b' only: (1, 'a', 'y') stays.
    write_equality_deletes(spark, t, ["name"], [("y",)], partition={"category": "b"})
    # Floe keeps the delete file's partition as committed (what a reader must scope the delete by).
    assert spark_rows(spark, f"SELECT partition.category, equality_ids FROM {t}.files WHERE content = 2") == [("b", [3])]


def build_deletion_vectors(spark: Any, t: str) -> None:
    spark.sql(
        f"CREATE TABLE {t} (id bigint, category string, name string) USING iceberg "
        f"TBLPROPERTIES ('format-version' = '3', {MOR})"
    )
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'a', 'z'), (4, 'b', 'w')")
    spark.sql(f"DELETE FROM {t} WHERE id = 2")
    spark.sql(f"UPDATE {t} SET name = 'zz' WHERE id = 3")


PYICEBERG_EQUALITY = (
    "PyIceberg 0.12 does not read equality deletes: planning the scan raises ValueError('PyIceberg does not yet "
    "support equality deletes: https://github.com/apache/iceberg/issues/6568')"
)
EQUALITY_XFAIL = {
    "pyiceberg": (PYICEBERG_EQUALITY, ValueError),
    "daft": (f"daft 0.7.26 plans Iceberg scans with PyIceberg: {PYICEBERG_EQUALITY}", ValueError),
    "polars": (f"polars 2.1.0 plans Iceberg scans with PyIceberg: {PYICEBERG_EQUALITY}", ValueError),
}

CASES = {
    "position deletes: DELETE, UPDATE, MERGE (partitioned)": Case(
        build_position_deletes,
        ["id", "category", "name"],
        [(1, "a", "x"), (3, "a", "Z"), (4, "b", "w2"), (5, "c", "v"), (7, "b", "T"), (8, "c", "s")],
        {1},
    ),
    "position deletes: repeated DELETEs, a whole file deleted, column added, UPDATE": Case(
        build_position_deletes_evolved,
        ["id", "category", "name", "score"],
        [(2, "b", "y", 2.5), (6, "b", "uu", 6.5), (7, "c", "t", 7.5)],
        {1},
    ),
    "position deletes in a file of many row groups (the filter skips row groups)": Case(
        build_position_deletes_row_groups,
        ["id", "category", "name"],
        [
            (i, "b" if 2000 <= i <= 2099 else "a", f"n{i}")
            for i in range(ROW_GROUP_ROWS)
            if i % 7 and not 2040 <= i <= 2059 and i != ROW_GROUP_ROWS - 1
        ],
        {1},
    ),
    "equality deletes (Java API RowDelta) with a position delete; same keys re-inserted": Case(
        build_equality_deletes,
        ["id", "category", "name"],
        [(1, "a", "x"), (2, "b", "again"), (9, "a", "z")],
        {1, 2},
        EQUALITY_XFAIL,
    ),
    "equality deletes in a partitioned table (apply to their own partition only)": Case(
        build_equality_deletes_partitioned,
        ["id", "category", "name"],
        [(1, "a", "y"), (3, "b", "z"), (4, "a", "z")],
        {2},
        {
            **EQUALITY_XFAIL,
            "duckdb": (
                "DuckDB 1.5.5 applies an equality delete of partition category=b to the data files of every "
                "partition: it also drops (1, 'a', 'y') (by the Iceberg spec a partitioned equality delete applies "
                "only to data files of its own spec and partition; Spark and floe sql keep the row; Floe stores the "
                "delete file with partition {category: b}, checked)",
                AssertionError,
            ),
        },
    ),
    "deletion vectors (format version 3, Puffin)": Case(
        build_deletion_vectors,
        ["id", "category", "name"],
        [(1, "a", "x"), (3, "a", "zz"), (4, "b", "w")],
        {1},
        {
            "floe-sql": (
                "floe sql (iceberg-rust 0.10.1 scan) cannot apply deletion vectors: it refuses the table with a "
                "message naming them (test_floe_sql_names_deletion_vectors) instead of returning rows (Spark: 3 rows)",
                AssertionError,
            ),
            "daft": (
                "daft 0.7.26 reads the deletion vector (a .puffin file) as Parquet: DaftCoreException "
                "'DaftError::CorruptFile Parquet metadata error ... Invalid Parquet file. Corrupt footer'",
                ValueError,  # daft.exceptions.DaftCoreException
            ),
        },
    ),
}


# --------------------------------------------------------------------------------------------- readers


def read(reader: str, table: str, case: Case, server: FloeServer, duck: Callable[[], Any], spark: Callable[[], Any]) -> tuple[Rows, Rows, int]:
    """(all rows, the names of category 'b', the row count) as `reader` reads `table` (`ns.name`)."""
    cols = ", ".join(case.columns)
    if reader in ("spark", "duckdb"):
        run = (lambda sql: spark_rows(spark(), sql)) if reader == "spark" else (lambda sql: duck_rows(duck(), sql))
        name = f"floe.{table}" if reader == "spark" else f"ice.{table}"
        return (
            sorted(run(f"SELECT {cols} FROM {name}")),
            sorted(run(f"SELECT name FROM {name} WHERE category = 'b'")),
            run(f"SELECT count(*) FROM {name}")[0][0],
        )
    if reader == "floe-sql":
        everything, only_b, count = floe_sql_results(
            server,
            f"SELECT {cols} FROM {table}; SELECT name FROM {table} WHERE category = 'b'; "
            f"SELECT count(*) AS n FROM {table}",
        )
        return (
            sorted(tuple(row.get(c) for c in case.columns) for row in everything),
            sorted((row.get("name"),) for row in only_b),
            count[0]["n"],
        )
    catalog = RestCatalog("floe", uri=server.uri)
    iceberg_table = catalog.load_table(table)
    if reader == "pyiceberg":

        def rows(columns: list[str], row_filter: str = "True") -> Rows:
            arrow = iceberg_table.scan(row_filter=row_filter, selected_fields=tuple(columns)).to_arrow()
            return sorted(tuple(r[c] for c in columns) for r in arrow.to_pylist())

        return rows(case.columns), rows(["name"], "category == 'b'"), iceberg_table.scan().count()
    if reader == "daft":
        import daft

        frame = daft.read_iceberg(iceberg_table)

        def daft_rows(f: Any) -> Rows:
            return sorted(tuple(r.values()) for r in f.to_pylist())

        return (
            daft_rows(frame.select(*case.columns)),
            daft_rows(frame.where(daft.col("category") == "b").select("name")),
            frame.count_rows(),
        )
    if reader == "polars":
        import polars as pl

        lazy = pl.scan_iceberg(iceberg_table)
        return (
            sorted(lazy.select(case.columns).collect().rows()),
            sorted(lazy.filter(pl.col("category") == "b").select("name").collect().rows()),
            lazy.select(pl.len()).collect().item(),
        )
    raise ValueError(reader)


# -------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def mor_tables(request: pytest.FixtureRequest, floe_uri: str) -> Callable[[str], str]:
    """`mor_tables(case)`: the table (`ns.name`) Spark built for that case, built on first use and
    checked: Spark reads the expected rows and the table has the expected kinds of delete files.
    A build that fails fails every read of its table, with the build's error."""
    catalog = RestCatalog("floe", uri=floe_uri)
    namespace = unique_name("spark_mor")
    catalog.create_namespace(namespace)
    built: dict[str, tuple[Optional[str], Optional[BaseException]]] = {}

    def table(case_name: str) -> str:
        if case_name not in built:
            case = CASES[case_name]
            name = f"{namespace}.t{len(built)}"
            try:
                spark = request.getfixturevalue("spark")
                case.build(spark, f"floe.{name}")
                spark_read = sorted(spark_rows(spark, f"SELECT {', '.join(case.columns)} FROM floe.{name}"))
                assert spark_read == case.expected, f"Spark reads {spark_read}"
                contents = {c for (c,) in spark_rows(spark, f"SELECT DISTINCT content FROM floe.{name}.files")}
                assert contents == {0} | case.contents, f"live file contents {contents}"
                built[case_name] = (name, None)
            except Exception as error:  # noqa: BLE001  (reported by every read of this table)
                built[case_name] = (None, error)
        name, error = built[case_name]
        if error is not None:
            raise RuntimeError(f"Spark could not build the table '{case_name}': {error!r}") from error
        assert name is not None
        return name

    return table


@pytest.fixture(scope="module")
def duck_module(floe_server: FloeServer) -> Any:
    con = duckdb_connect(floe_server)
    try:
        yield con
    finally:
        con.close()


def params() -> list[Any]:
    result = []
    for case_name, case in CASES.items():
        for reader in READERS:
            marks = []
            if reader in case.xfail:
                reason, raises = case.xfail[reader]
                marks.append(pytest.mark.xfail(strict=True, reason=reason, raises=raises))
            result.append(pytest.param(case_name, reader, marks=marks, id=f"{case.build.__name__[6:]}-{reader}"))
    return result


# ----------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("case", "reader"), params())
def test_read(
    case: str, reader: str, mor_tables: Callable[[str], str], floe_server: FloeServer, request: pytest.FixtureRequest
) -> None:
    table = mor_tables(case)
    spec = CASES[case]
    got = read(
        reader,
        table,
        spec,
        floe_server,
        duck=lambda: request.getfixturevalue("duck_module"),
        spark=lambda: request.getfixturevalue("spark"),
    )
    assert got == (spec.expected, spec.expected_b(), len(spec.expected))


@pytest.mark.compat(engine="floe-sql", feature="merge-on-read: deletion vectors refused with a clear message")
def test_floe_sql_names_deletion_vectors(mor_tables: Callable[[str], str], floe_server: FloeServer) -> None:
    """Until floe sql can apply deletion vectors, it must say so, not fail on a "corrupt footer"."""
    table = mor_tables("deletion vectors (format version 3, Puffin)")
    with pytest.raises(AssertionError) as failure:
        floe_sql_results(floe_server, f"SELECT * FROM {table}")
    message = str(failure.value)
    assert "has deletion vectors (Iceberg format v3" in message, message
    assert ".puffin" in message and "Corrupt footer" not in message, message
