"""`floe maintain --compact` on merge-on-read tables Spark wrote: Spark reads the same rows after.

Spark 3.5.9 + Iceberg 1.10.2 builds each table through the shared Floe server: position deletes from
DELETE, UPDATE and MERGE in merge-on-read mode, and equality deletes committed as a RowDelta with the
Iceberg Java API (`write_equality_deletes` of test_spark_mor.py), including rows re-inserted after the
delete with the same key (a delete applies to data of lower sequence numbers only). Then the real
`floe maintain <table> --compact` runs on the server's data dir while the server keeps running (it
commits through the same commit engine). Spark must then read exactly the rows it read before, the
current snapshot must be a `replace` without any delete file, and time travel to the snapshot before
the compaction must still read the old rows through the old files and their deletes.

One more table has Spark's `WRITE ORDERED BY category ASC NULLS FIRST, id DESC` and position deletes:
`floe maintain --compact --strategy sort` must leave one data file, in that order (checked with
pyarrow), carrying the table's sort order id, and Spark must read the same rows.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.rest import RestCatalog

from conftest import spark_rows, unique_name
from floe_server import FloeServer
from test_spark_mor import MOR, write_equality_deletes

pytestmark = pytest.mark.compat(
    table="Maintenance by floe on tables Spark wrote (row: the table; column: the engine that read it after)",
    engine="spark",
)


def build_position_deletes(spark: Any, t: str) -> None:
    spark.sql(
        f"CREATE TABLE {t} (id bigint, category string, name string) USING iceberg "
        f"PARTITIONED BY (category) TBLPROPERTIES ({MOR})"
    )
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'a', 'z'), (4, 'b', 'w')")
    spark.sql(f"INSERT INTO {t} VALUES (5, 'c', 'v'), (6, 'a', 'u'), (7, 'b', 't')")
    spark.sql(f"INSERT INTO {t} VALUES (10, 'a', 'p'), (11, 'b', 'q')")
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


def build_equality_deletes(spark: Any, t: str) -> None:
    spark.sql(f"CREATE TABLE {t} (id int, category string, name string) USING iceberg TBLPROPERTIES ({MOR})")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'a', 'z'), (4, 'b', 'w'), (5, 'c', 'v')")
    spark.sql(f"INSERT INTO {t} VALUES (6, 'a', 'r'), (7, 'b', 's')")
    spark.sql(f"DELETE FROM {t} WHERE id = 4")  # a position delete next to the equality deletes
    write_equality_deletes(spark, t, ["id"], [(2,), (5,), (7,)])
    write_equality_deletes(spark, t, ["category", "name"], [("a", "z")])
    # Same keys, written after the deletes (higher sequence numbers): not deleted, before or after.
    spark.sql(f"INSERT INTO {t} VALUES (2, 'b', 'again'), (9, 'a', 'z')")


def build_equality_deletes_partitioned(spark: Any, t: str) -> None:
    spark.sql(f"CREATE TABLE {t} (id int, category string, name string) USING iceberg PARTITIONED BY (category)")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 'y'), (2, 'b', 'y'), (3, 'b', 'z'), (4, 'a', 'z'), (5, 'b', 'y')")
    spark.sql(f"INSERT INTO {t} VALUES (6, 'b', 'y'), (7, 'a', 'y')")
    # name = 'y' in partition category = 'b' only: the rows of 'a' stay.
    write_equality_deletes(spark, t, ["name"], [("y",)], partition={"category": "b"})


CASES: dict[str, tuple[Callable[[Any, str], None], list[tuple[Any, ...]]]] = {
    "position deletes (DELETE, UPDATE, MERGE; partitioned)": (
        build_position_deletes,
        [(1, "a", "x"), (3, "a", "Z"), (4, "b", "w2"), (5, "c", "v"), (7, "b", "T"), (8, "c", "s"), (10, "a", "p"), (11, "b", "q")],
    ),
    "equality deletes and a position delete; same keys re-inserted": (
        build_equality_deletes,
        [(1, "a", "x"), (2, "b", "again"), (6, "a", "r"), (9, "a", "z")],
    ),
    "equality deletes of one partition": (
        build_equality_deletes_partitioned,
        [(1, "a", "y"), (3, "b", "z"), (4, "a", "z"), (7, "a", "y")],
    ),
}


def maintain(server: FloeServer, table: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(server.binary), "maintain", table, *args, "--data-dir", str(server.data_dir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("case", list(CASES), ids=["position", "equality", "equality-partitioned"])
@pytest.mark.compat(feature="floe maintain --compact: {case}")
def test_compaction_applies_sparks_deletes(case: str, spark: Any, floe_server: FloeServer) -> None:
    build, expected = CASES[case]
    namespace = unique_name("maint")
    spark.sql(f"CREATE NAMESPACE floe.{namespace}")
    table = f"{namespace}.t"
    name = f"floe.{table}"
    build(spark, name)
    before = sorted(spark_rows(spark, f"SELECT id, category, name FROM {name}"))
    assert before == sorted(expected)
    contents = {c for (c,) in spark_rows(spark, f"SELECT DISTINCT content FROM {name}.files")}
    assert contents - {0}, f"no delete files to compact: {contents}"
    ((pre,),) = spark_rows(spark, f"SELECT snapshot_id FROM {name}.snapshots ORDER BY committed_at DESC LIMIT 1")

    dry = maintain(floe_server, table, "--compact", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run, nothing written" in dry.stdout, dry.stdout
    assert sorted(spark_rows(spark, f"SELECT id, category, name FROM {name}")) == before

    run = maintain(floe_server, table, "--compact")
    assert run.returncode == 0, run.stderr
    assert "committed snapshot" in run.stdout and "delete file(s) applied" in run.stdout, run.stdout
    assert f"{table}: summary: " in run.stdout, run.stdout

    # Spark reads the same rows, from data files only.
    assert sorted(spark_rows(spark, f"SELECT id, category, name FROM {name}")) == before
    assert spark_rows(spark, f"SELECT DISTINCT content FROM {name}.files") == [(0,)]
    ((operation, summary),) = spark_rows(
        spark, f"SELECT operation, summary FROM {name}.snapshots ORDER BY committed_at DESC LIMIT 1"
    )
    assert operation == "replace"
    assert summary["total-delete-files"] == "0", summary
    assert int(summary["removed-delete-files"]) >= 1, summary
    # The snapshot before the compaction still reads the old files with their deletes.
    assert sorted(spark_rows(spark, f"SELECT id, category, name FROM {name} VERSION AS OF {pre}")) == before
    # And Spark can keep writing to the compacted table.
    spark.sql(f"INSERT INTO {name} VALUES (100, 'a', 'after')")
    assert sorted(spark_rows(spark, f"SELECT id, category, name FROM {name}")) == sorted(before + [(100, "a", "after")])


@pytest.mark.compat(feature="floe maintain --compact --strategy sort: Spark's WRITE ORDERED BY, with deletes")
def test_sort_compaction_follows_sparks_write_order(spark: Any, floe_server: FloeServer) -> None:
    namespace = unique_name("maint")
    spark.sql(f"CREATE NAMESPACE floe.{namespace}")
    table = f"{namespace}.t"
    name = f"floe.{table}"
    spark.sql(f"CREATE TABLE {name} (id bigint, category string, name string) USING iceberg TBLPROPERTIES ({MOR})")
    spark.sql(f"ALTER TABLE {name} WRITE ORDERED BY category ASC NULLS FIRST, id DESC")
    for batch in range(4):
        values = ", ".join(
            f"({(batch * 10 + i) * 7 % 40}, {'NULL' if i == 3 else repr('abc'[i % 3])}, 'n{batch}-{i}')" for i in range(10)
        )
        spark.sql(f"INSERT INTO {name} VALUES {values}")
    spark.sql(f"DELETE FROM {name} WHERE id % 5 = 0")
    before = sorted(spark_rows(spark, f"SELECT id, category, name FROM {name}"), key=repr)
    assert len(before) == 32
    order_id = RestCatalog("floe", uri=floe_server.uri).load_table(table).metadata.default_sort_order_id
    assert order_id > 0

    run = maintain(floe_server, table, "--compact", "--strategy", "sort")
    assert run.returncode == 0, run.stderr
    assert "; 1 file(s), " in run.stdout, run.stdout

    assert sorted(spark_rows(spark, f"SELECT id, category, name FROM {name}"), key=repr) == before
    files = spark_rows(spark, f"SELECT content, file_path, sort_order_id FROM {name}.files")
    assert [(content, sort_order) for content, _, sort_order in files] == [(0, order_id)], files
    # The one output records the table's sort order and holds the rows in the table's order: category ascending, nulls first, then
    # id descending.
    written = pq.read_table(files[0][1].removeprefix("file:")).to_pylist()
    keys = [(row["category"] is not None, row["category"] or "", -row["id"]) for row in written]
    assert keys == sorted(keys), keys
