"""Spark 3.5.9 + Iceberg 1.10.2 (the Java reference client) against Floe's REST catalog.

One SparkSession for the run (the `spark` fixture); every test works in its own namespace. Each test
asserts exact rows, and the table state Floe keeps (specs, sort orders, refs, snapshots) where the
feature is about that state.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table.sorting import SortDirection
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform

from conftest import spark_rows, unique_name
from floe_server import FloeServer

pytestmark = pytest.mark.compat(engine="spark")

MODES = ["copy-on-write", "merge-on-read"]


@pytest.fixture
def ns(spark: Any, namespace: str) -> str:
    """A fresh namespace, as Spark names it (`floe.<ns>`)."""
    return f"floe.{namespace}"


def local_path(uri: str) -> Path:
    """A `file:` URI (Floe's `file:///x` or Hadoop's `file:/x`) as a path."""
    return Path("/" + uri.removeprefix("file:").lstrip("/"))


def snapshot_ids(spark: Any, table: str) -> list[int]:
    return [row[0] for row in spark_rows(spark, f"SELECT snapshot_id FROM {table}.snapshots ORDER BY committed_at")]


def file_contents(spark: Any, table: str) -> dict[int, int]:
    """{content: number of live files}: 0 data, 1 position deletes, 2 equality deletes."""
    return dict(spark_rows(spark, f"SELECT content, count(*) FROM {table}.files GROUP BY content"))


@pytest.mark.compat(feature="namespaces")
def test_namespaces(spark: Any, catalog: RestCatalog) -> None:
    ns = unique_name("spark_ns")
    spark.sql(f"CREATE NAMESPACE floe.{ns} WITH PROPERTIES ('purpose' = 'compat')")
    spark.sql(f"CREATE NAMESPACE floe.{ns}.child")
    assert (ns,) in spark_rows(spark, "SHOW NAMESPACES IN floe")
    assert spark_rows(spark, f"SHOW NAMESPACES IN floe.{ns}") == [(f"{ns}.child",)]

    spark.sql(f"ALTER NAMESPACE floe.{ns} SET PROPERTIES ('team' = 'floe', 'purpose' = 'compat2')")
    properties = catalog.load_namespace_properties(ns)
    assert {k: properties[k] for k in ("purpose", "team")} == {"purpose": "compat2", "team": "floe"}
    described = dict(spark_rows(spark, f"DESCRIBE NAMESPACE EXTENDED floe.{ns}"))
    assert "(purpose,compat2)" in described["Properties"] and "(team,floe)" in described["Properties"]

    # A table in the nested namespace (its path travels as `ns%1Fchild` in URLs).
    spark.sql(f"CREATE TABLE floe.{ns}.child.t (id bigint) USING iceberg")
    spark.sql(f"INSERT INTO floe.{ns}.child.t VALUES (1), (2)")
    assert spark_rows(spark, f"SELECT id FROM floe.{ns}.child.t ORDER BY id") == [(1,), (2,)]
    assert spark_rows(spark, f"SHOW TABLES IN floe.{ns}.child") == [(f"{ns}.child", "t", False)]
    assert catalog.list_tables((ns, "child")) == [(ns, "child", "t")]
    spark.sql(f"DROP TABLE floe.{ns}.child.t")

    # The REST API has no cascading drop: Floe answers 409 NamespaceNotEmpty (Spark's CASCADE is not passed on).
    with pytest.raises(Exception, match="NamespaceNotEmptyException"):
        spark.sql(f"DROP NAMESPACE floe.{ns}")
    spark.sql(f"DROP NAMESPACE floe.{ns}.child")
    spark.sql(f"DROP NAMESPACE floe.{ns}")
    assert (ns,) not in spark_rows(spark, "SHOW NAMESPACES IN floe")


@pytest.mark.compat(feature="CREATE TABLE, INSERT, SELECT (types)")
def test_types(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.types"
    spark.sql(
        f"CREATE TABLE {t} (id bigint, i int, f float, d double, dec decimal(12, 3), s string, b boolean, "
        "day date, ts timestamp, ts_ntz timestamp_ntz, bin binary, tags array<string>, attrs map<string, int>, "
        "point struct<x: double, y: double>) USING iceberg"
    )
    spark.sql(
        f"INSERT INTO {t} VALUES (1, 7, 1.5, 2.25, 123456789.125, 'héllo', true, DATE '2026-02-28', "
        "TIMESTAMP '2026-02-28 12:34:56.789012', TIMESTAMP_NTZ '2026-02-28 01:02:03', X'CAFE', array('a', 'b'), "
        "map('k', 1), named_struct('x', 1.0, 'y', -2.0)), "
        "(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    assert spark_rows(
        spark,
        f"SELECT id, i, f, d, CAST(dec AS string), s, b, CAST(day AS string), CAST(ts AS string), CAST(ts_ntz AS string), "
        f"hex(bin), tags, attrs, point.x, point.y FROM {t} ORDER BY id",
    ) == [
        (
            1,
            7,
            1.5,
            2.25,
            "123456789.125",
            "héllo",
            True,
            "2026-02-28",
            "2026-02-28 12:34:56.789012",
            "2026-02-28 01:02:03",
            "CAFE",
            ["a", "b"],
            {"k": 1},
            1.0,
            -2.0,
        ),
        (2, None, None, None, None, None, None, None, None, None, None, None, None, None, None),
    ]
    schema = catalog.load_table(t.removeprefix("floe.")).schema()
    assert [str(f.field_type) for f in schema.fields][:11] == [
        "long",
        "int",
        "float",
        "double",
        "decimal(12, 3)",
        "string",
        "boolean",
        "date",
        "timestamptz",
        "timestamp",
        "binary",
    ]
    assert schema.find_field("point.y").field_id > schema.find_field("point").field_id


@pytest.mark.compat(feature="partitioned table")
def test_create_partitioned_sorted_table(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.events"
    spark.sql(
        f"CREATE TABLE {t} (id bigint, category string, ts timestamp, amount decimal(10,2)) USING iceberg "
        "PARTITIONED BY (category, days(ts)) TBLPROPERTIES ('format-version' = '2')"
    )
    spark.sql(
        f"INSERT INTO {t} VALUES "
        "(1, 'a', TIMESTAMP '2026-01-01 10:00:00', 1.50), (2, 'b', TIMESTAMP '2026-01-01 11:00:00', 2.25), "
        "(3, 'a', TIMESTAMP '2026-01-02 09:30:00', 3.00), (4, 'a', TIMESTAMP '2026-01-01 23:59:59', 4.75)"
    )

    assert spark_rows(spark, f"SELECT id, category, CAST(ts AS string), CAST(amount AS string) FROM {t} ORDER BY id") == [
        (1, "a", "2026-01-01 10:00:00", "1.50"),
        (2, "b", "2026-01-01 11:00:00", "2.25"),
        (3, "a", "2026-01-02 09:30:00", "3.00"),
        (4, "a", "2026-01-01 23:59:59", "4.75"),
    ]
    assert spark_rows(spark, f"SELECT id FROM {t} WHERE category = 'a' AND ts < TIMESTAMP '2026-01-02' ORDER BY id") == [
        (1,),
        (4,),
    ]
    assert spark_rows(
        spark, f"SELECT partition.category, CAST(partition.ts_day AS string), record_count FROM {t}.partitions ORDER BY 1, 2"
    ) == [("a", "2026-01-01", 2), ("a", "2026-01-02", 1), ("b", "2026-01-01", 1)]

    table = catalog.load_table(t.removeprefix("floe."))
    assert [(f.name, f.transform) for f in table.spec().fields] == [
        ("category", IdentityTransform()),
        ("ts_day", DayTransform()),
    ]
    assert sorted(spark_rows(spark, f"SELECT spec_id, count(*) FROM {t}.files GROUP BY spec_id")) == [(0, 3)]


@pytest.mark.compat(feature="sort order (WRITE ORDERED BY)")
def test_sort_order(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, category string) USING iceberg")
    spark.sql(f"ALTER TABLE {t} WRITE ORDERED BY category ASC NULLS FIRST, id DESC")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'b'), (2, 'a'), (3, 'b'), (4, NULL), (5, 'a')")
    table = catalog.load_table(t.removeprefix("floe."))
    assert [
        (table.schema().find_column_name(f.source_id), f.direction, f.null_order.value) for f in table.sort_order().fields
    ] == [
        ("category", SortDirection.ASC, "nulls-first"),
        ("id", SortDirection.DESC, "nulls-last"),
    ]
    # One file (the sort is global), its rows in the table's sort order.
    assert spark_rows(spark, f"SELECT count(*) FROM {t}.files") == [(1,)]
    assert spark_rows(spark, f"SELECT id FROM (SELECT id, input_file_name() FROM {t})") == [(4,), (5,), (2,), (3,), (1,)]
    # (Iceberg 1.10's Spark writer does not record sort_order_id in data files: apache/iceberg#13634.)

    spark.sql(f"ALTER TABLE {t} WRITE UNORDERED")
    assert catalog.load_table(t.removeprefix("floe.")).sort_order().is_unsorted


@pytest.mark.compat(feature="CREATE TABLE AS SELECT, REPLACE TABLE AS SELECT (staged create)")
def test_ctas_and_rtas(spark: Any, ns: str, catalog: RestCatalog) -> None:
    src = f"{ns}.src"
    spark.sql(f"CREATE TABLE {src} (id bigint, name string) USING iceberg")
    spark.sql(f"INSERT INTO {src} VALUES (1, 'a'), (2, 'b'), (3, 'c')")

    t = f"{ns}.ctas"
    spark.sql(f"CREATE TABLE {t} USING iceberg PARTITIONED BY (bucket(2, id)) AS SELECT id, name FROM {src} WHERE id <= 2")
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "a"), (2, "b")]
    created = catalog.load_table(t.removeprefix("floe."))
    assert [(f.name, f.transform) for f in created.spec().fields] == [("id_bucket", BucketTransform(2))]
    with pytest.raises(Exception, match="already exists"):
        spark.sql(f"CREATE TABLE {t} USING iceberg AS SELECT * FROM {src}")

    spark.sql(f"REPLACE TABLE {t} USING iceberg AS SELECT id, upper(name) AS name, id * 10 AS score FROM {src}")
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "A", 10), (2, "B", 20), (3, "C", 30)]
    replaced = catalog.load_table(t.removeprefix("floe."))
    assert replaced.metadata.table_uuid == created.metadata.table_uuid  # a replace keeps the table
    assert replaced.spec().is_unpartitioned()
    assert replaced.schema().column_names == ["id", "name", "score"]
    assert len(replaced.snapshots()) == 2  # and its history

    spark.sql(f"CREATE OR REPLACE TABLE {ns}.fresh USING iceberg AS SELECT id FROM {src} WHERE id = 3")
    spark.sql(f"CREATE OR REPLACE TABLE {ns}.fresh USING iceberg AS SELECT id, 'x' AS tag FROM {src} WHERE id < 3")
    assert spark_rows(spark, f"SELECT * FROM {ns}.fresh ORDER BY id") == [(1, "x"), (2, "x")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.compat(feature="MERGE INTO ({mode})")
def test_merge_into(spark: Any, ns: str, mode: str) -> None:
    t = f"{ns}.target"
    spark.sql(f"CREATE TABLE {t} (id bigint, name string, score int) USING iceberg TBLPROPERTIES ('write.merge.mode' = '{mode}')")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30)")
    spark.sql(
        f"""MERGE INTO {t} t
        USING (SELECT * FROM VALUES (2, 'bb', 21, 'update'), (3, 'cc', 0, 'delete'), (4, 'dd', 40, 'insert')
               AS s(id, name, score, op)) s
        ON t.id = s.id
        WHEN MATCHED AND s.op = 'delete' THEN DELETE
        WHEN MATCHED THEN UPDATE SET t.name = s.name, t.score = s.score
        WHEN NOT MATCHED THEN INSERT (id, name, score) VALUES (s.id, s.name, s.score)"""
    )
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "a", 10), (2, "bb", 21), (4, "dd", 40)]
    contents = file_contents(spark, t)
    if mode == "merge-on-read":
        assert contents.get(1, 0) >= 1, contents  # position delete files
    else:
        assert set(contents) == {0}, contents


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.compat(feature="UPDATE, DELETE ({mode})")
def test_update_and_delete(spark: Any, ns: str, mode: str) -> None:
    t = f"{ns}.t"
    spark.sql(
        f"CREATE TABLE {t} (id bigint, name string, score int) USING iceberg "
        f"TBLPROPERTIES ('write.delete.mode' = '{mode}', 'write.update.mode' = '{mode}')"
    )
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30), (4, 'd', 40), (5, 'e', 50)")
    spark.sql(f"UPDATE {t} SET score = score + 1, name = upper(name) WHERE id IN (2, 3)")
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [
        (1, "a", 10),
        (2, "B", 21),
        (3, "C", 31),
        (4, "d", 40),
        (5, "e", 50),
    ]
    spark.sql(f"DELETE FROM {t} WHERE id = 4 OR name = 'C'")
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "a", 10), (2, "B", 21), (5, "e", 50)]
    assert spark_rows(spark, f"SELECT count(*) FROM {t} WHERE score > 20") == [(2,)]

    contents = file_contents(spark, t)
    if mode == "merge-on-read":
        assert contents.get(1, 0) >= 1, contents
    else:
        assert set(contents) == {0}, contents
    operations = [row[0] for row in spark_rows(spark, f"SELECT operation FROM {t}.snapshots ORDER BY committed_at")]
    assert operations[0] == "append" and len(operations) == 3, operations


@pytest.mark.compat(feature="INSERT OVERWRITE")
def test_insert_overwrite(spark: Any, ns: str) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, category string) USING iceberg PARTITIONED BY (category)")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    spark.conf.set("spark.sql.sources.partitionOverwriteMode", "dynamic")
    try:
        spark.sql(f"INSERT OVERWRITE {t} VALUES (10, 'a'), (20, 'b')")
    finally:
        spark.conf.unset("spark.sql.sources.partitionOverwriteMode")
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(3, "c"), (10, "a"), (20, "b")]
    spark.sql(f"INSERT OVERWRITE {t} PARTITION (category = 'c') SELECT 30")
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(10, "a"), (20, "b"), (30, "c")]
    spark.sql(f"INSERT OVERWRITE {t} SELECT 99, 'z'")  # static: the whole table
    assert spark_rows(spark, f"SELECT * FROM {t}") == [(99, "z")]


@pytest.mark.compat(feature="schema evolution (ALTER TABLE ... COLUMN)")
def test_schema_evolution(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, name string, score int) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a', 10)")
    ids_before = {f.name: f.field_id for f in catalog.load_table(t.removeprefix("floe.")).schema().fields}

    spark.sql(f"ALTER TABLE {t} ADD COLUMN note string")
    spark.sql(f"ALTER TABLE {t} ADD COLUMNS (weight double COMMENT 'kg')")
    spark.sql(f"ALTER TABLE {t} RENAME COLUMN name TO full_name")
    spark.sql(f"ALTER TABLE {t} ALTER COLUMN score TYPE bigint")
    spark.sql(f"ALTER TABLE {t} DROP COLUMN note")
    spark.sql(f"ALTER TABLE {t} ALTER COLUMN weight AFTER id")
    spark.sql(f"INSERT INTO {t} VALUES (2, 2.5, 'b', 20000000000)")

    assert spark.table(t).columns == ["id", "weight", "full_name", "score"]
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, None, "a", 10), (2, 2.5, "b", 20000000000)]
    schema = catalog.load_table(t.removeprefix("floe.")).schema()
    assert schema.find_field("full_name").field_id == ids_before["name"]
    assert schema.find_field("score").field_id == ids_before["score"]
    assert str(schema.find_field("score").field_type) == "long"
    assert schema.find_field("weight").doc == "kg"


@pytest.mark.compat(feature="schema evolution: nested fields, NOT NULL, identifier fields")
def test_nested_schema_evolution(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint NOT NULL, s struct<x: int>, tags array<string>, m map<string, int>) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, named_struct('x', 1), array('a'), map('k', 1))")
    spark.sql(f"ALTER TABLE {t} SET IDENTIFIER FIELDS id")
    spark.sql(f"ALTER TABLE {t} ADD COLUMN s.y string")
    spark.sql(f"ALTER TABLE {t} ALTER COLUMN s.x TYPE bigint")
    spark.sql(f"ALTER TABLE {t} ALTER COLUMN id COMMENT 'the key'")
    spark.sql(f"INSERT INTO {t} VALUES (2, named_struct('x', 20000000000, 'y', 'q'), array('b', 'c'), map('k', 2))")
    assert spark_rows(spark, f"SELECT id, s.x, s.y, tags, m FROM {t} ORDER BY id") == [
        (1, 1, None, ["a"], {"k": 1}),
        (2, 20000000000, "q", ["b", "c"], {"k": 2}),
    ]
    schema = catalog.load_table(t.removeprefix("floe.")).schema()
    assert schema.identifier_field_names() == {"id"}
    assert schema.find_field("id").required and schema.find_field("id").doc == "the key"
    assert str(schema.find_field("s.x").field_type) == "long"

    spark.sql(f"ALTER TABLE {t} DROP IDENTIFIER FIELDS id")
    spark.sql(f"ALTER TABLE {t} ALTER COLUMN id DROP NOT NULL")
    spark.sql(f"INSERT INTO {t} (id, s, tags, m) VALUES (NULL, NULL, NULL, NULL)")
    schema = catalog.load_table(t.removeprefix("floe.")).schema()
    assert schema.identifier_field_names() == set() and not schema.find_field("id").required
    assert spark_rows(spark, f"SELECT count(*) FROM {t} WHERE id IS NULL") == [(1,)]


@pytest.mark.compat(feature="table properties")
def test_table_properties(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint) USING iceberg TBLPROPERTIES ('k1' = 'v1', 'k3' = 'v3')")
    spark.sql(f"ALTER TABLE {t} SET TBLPROPERTIES ('k2' = 'v2', 'k1' = 'changed')")
    spark.sql(f"ALTER TABLE {t} UNSET TBLPROPERTIES ('k2')")
    properties = catalog.load_table(t.removeprefix("floe.")).properties
    assert {k: properties.get(k) for k in ("k1", "k2", "k3")} == {"k1": "changed", "k2": None, "k3": "v3"}
    assert {("k1", "changed"), ("k3", "v3")} <= set(spark_rows(spark, f"SHOW TBLPROPERTIES {t}"))


@pytest.mark.compat(feature="partition evolution")
def test_partition_evolution(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, category string) USING iceberg PARTITIONED BY (category)")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b')")
    spark.sql(f"ALTER TABLE {t} ADD PARTITION FIELD bucket(4, id) AS id_bucket")
    spark.sql(f"INSERT INTO {t} VALUES (3, 'a'), (4, 'c')")
    spark.sql(f"ALTER TABLE {t} DROP PARTITION FIELD category")
    spark.sql(f"INSERT INTO {t} VALUES (5, 'a')")
    spark.sql(f"ALTER TABLE {t} REPLACE PARTITION FIELD id_bucket WITH truncate(10, id) AS id_trunc")
    spark.sql(f"INSERT INTO {t} VALUES (16, 'd')")

    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "a"), (16, "d")]
    assert spark_rows(spark, f"SELECT id FROM {t} WHERE category = 'a' ORDER BY id") == [(1,), (3,), (5,)]
    table = catalog.load_table(t.removeprefix("floe."))
    assert [[f.name for f in spec.fields] for spec in table.specs().values()] == [
        ["category"],
        ["category", "id_bucket"],
        ["id_bucket"],
        ["id_trunc"],
    ]
    assert table.spec().spec_id == 3
    assert spark_rows(spark, f"SELECT spec_id, count(*) FROM {t}.files GROUP BY spec_id ORDER BY spec_id") == [
        (0, 2),
        (1, 2),
        (2, 1),
        (3, 1),
    ]


@pytest.mark.compat(feature="branches and tags")
def test_branches_and_tags(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, name string) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a')")
    first = snapshot_ids(spark, t)[-1]
    spark.sql(f"ALTER TABLE {t} CREATE TAG v1")
    spark.sql(f"ALTER TABLE {t} CREATE BRANCH dev RETAIN 7 DAYS WITH SNAPSHOT RETENTION 2 SNAPSHOTS")
    spark.sql(f"INSERT INTO {t}.branch_dev VALUES (2, 'b')")
    spark.sql(f"INSERT INTO {t} VALUES (3, 'c')")

    assert spark_rows(spark, f"SELECT id FROM {t} ORDER BY id") == [(1,), (3,)]
    assert spark_rows(spark, f"SELECT id FROM {t} VERSION AS OF 'dev' ORDER BY id") == [(1,), (2,)]
    assert spark_rows(spark, f"SELECT id FROM {t}.branch_dev ORDER BY id") == [(1,), (2,)]
    assert spark_rows(spark, f"SELECT id FROM {t}.tag_v1") == [(1,)]
    assert spark_rows(spark, f"SELECT name, type, snapshot_id = {first} FROM {t}.refs ORDER BY name") == [
        ("dev", "BRANCH", False),
        ("main", "BRANCH", False),
        ("v1", "TAG", True),
    ]
    refs = catalog.load_table(t.removeprefix("floe.")).metadata.refs
    assert refs["dev"].max_ref_age_ms == 7 * 24 * 3600 * 1000 and refs["dev"].min_snapshots_to_keep == 2

    # A branch that main can fast-forward to.
    spark.sql(f"ALTER TABLE {t} CREATE BRANCH feature")
    spark.sql(f"INSERT INTO {t}.branch_feature VALUES (4, 'd')")
    assert spark_rows(spark, f"CALL floe.system.fast_forward('{t.removeprefix('floe.')}', 'main', 'feature')")[0][0] == "main"
    assert spark_rows(spark, f"SELECT id FROM {t} ORDER BY id") == [(1,), (3,), (4,)]

    spark.sql(f"ALTER TABLE {t} CREATE OR REPLACE TAG v1 AS OF VERSION {snapshot_ids(spark, t)[-1]}")
    assert spark_rows(spark, f"SELECT id FROM {t} VERSION AS OF 'v1' ORDER BY id") == [(1,), (3,), (4,)]
    spark.sql(f"ALTER TABLE {t} DROP TAG v1")
    spark.sql(f"ALTER TABLE {t} DROP BRANCH dev")
    spark.sql(f"ALTER TABLE {t} DROP BRANCH feature")
    assert spark_rows(spark, f"SELECT name FROM {t}.refs") == [("main",)]
    assert set(catalog.load_table(t.removeprefix("floe.")).metadata.refs) == {"main"}


@pytest.mark.compat(feature="concurrent commits (409 on conflict, client retries)")
def test_concurrent_appends(spark: Any, ns: str) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, writer int) USING iceberg TBLPROPERTIES ('commit.retry.num-retries' = '20')")

    def insert(writer: int) -> None:
        for i in range(3):
            spark.sql(f"INSERT INTO {t} VALUES ({writer * 10 + i}, {writer})")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(insert, range(4)))  # re-raises the first failure
    assert spark_rows(spark, f"SELECT id FROM {t} ORDER BY id") == [(w * 10 + i,) for w in range(4) for i in range(3)]
    history = spark_rows(spark, f"SELECT snapshot_id, parent_id FROM {t}.history ORDER BY made_current_at")
    assert len(history) == 12
    assert all(parent == previous for (_, parent), (previous, _) in zip(history[1:], history, strict=False)), history


@pytest.mark.compat(feature="snapshot-loading-mode=refs")
def test_snapshot_loading_mode_refs(spark: Any, ns: str) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint) USING iceberg")
    for i in range(1, 4):
        spark.sql(f"INSERT INTO {t} VALUES ({i})")
    first = snapshot_ids(spark, t)[0]
    refs = t.replace("floe.", "floe_refs.", 1)  # a second catalog on the same server: see conftest
    assert spark_rows(spark, f"SELECT id FROM {refs} ORDER BY id") == [(1,), (2,), (3,)]
    # Not referenced by a branch or tag: the client must load all snapshots to find it.
    assert spark_rows(spark, f"SELECT id FROM {refs} VERSION AS OF {first}") == [(1,)]
    assert spark_rows(spark, f"SELECT count(*) FROM {refs}.snapshots") == [(3,)]
    spark.sql(f"INSERT INTO {refs} VALUES (4)")
    assert spark_rows(spark, f"SELECT count(*) FROM {t}.snapshots") == [(4,)]
    assert spark_rows(spark, f"SELECT id FROM {t} ORDER BY id") == [(1,), (2,), (3,), (4,)]


@pytest.mark.compat(feature="time travel")
def test_time_travel(spark: Any, ns: str) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, name string) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a')")
    time.sleep(0.05)
    spark.sql(f"INSERT INTO {t} VALUES (2, 'b')")
    time.sleep(0.05)
    spark.sql(f"DELETE FROM {t} WHERE id = 1")
    s1, s2, s3 = snapshot_ids(spark, t)
    committed = dict(spark_rows(spark, f"SELECT snapshot_id, CAST(committed_at AS string) FROM {t}.snapshots"))

    assert spark_rows(spark, f"SELECT id FROM {t} VERSION AS OF {s1}") == [(1,)]
    assert spark_rows(spark, f"SELECT id FROM {t} VERSION AS OF {s2} ORDER BY id") == [(1,), (2,)]
    assert spark_rows(spark, f"SELECT id FROM {t}") == [(2,)]
    assert spark_rows(spark, f"SELECT id FROM {t} TIMESTAMP AS OF '{committed[s2]}' ORDER BY id") == [(1,), (2,)]
    assert spark_rows(spark, f"SELECT id FROM {t} TIMESTAMP AS OF '{committed[s1]}'") == [(1,)]
    assert spark_rows(spark, f"SELECT snapshot_id, parent_id, is_current_ancestor FROM {t}.history ORDER BY made_current_at") == [
        (s1, None, True),
        (s2, s1, True),
        (s3, s2, True),
    ]

    spark.sql(f"CALL floe.system.rollback_to_snapshot('{t.removeprefix('floe.')}', {s2})")
    assert spark_rows(spark, f"SELECT id FROM {t} ORDER BY id") == [(1,), (2,)]
    assert spark_rows(spark, f"SELECT snapshot_id, is_current_ancestor FROM {t}.history ORDER BY made_current_at") == [
        (s1, True),
        (s2, True),
        (s3, False),
        (s2, True),
    ]


@pytest.mark.compat(feature="snapshots and metadata tables")
def test_metadata_tables(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, category string) USING iceberg PARTITIONED BY (category)")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'a')")
    spark.sql(f"INSERT INTO {t} VALUES (4, 'b')")
    s1, s2 = snapshot_ids(spark, t)
    table = catalog.load_table(t.removeprefix("floe."))

    assert spark_rows(
        spark, f"SELECT snapshot_id, parent_id, operation, summary['added-records'] FROM {t}.snapshots ORDER BY committed_at"
    ) == [
        (s1, None, "append", "3"),
        (s2, s1, "append", "1"),
    ]
    files = spark_rows(spark, f"SELECT partition.category, record_count, file_path, file_format FROM {t}.files ORDER BY 1, 2")
    assert [(c, n, f) for c, n, _, f in files] == [("a", 2, "PARQUET"), ("b", 1, "PARQUET"), ("b", 1, "PARQUET")]
    assert all(
        local_path(path).is_file() and str(local_path(path)).startswith(str(local_path(table.location())))
        for _, _, path, _ in files
    )
    assert spark_rows(spark, f"SELECT snapshot_id, is_current_ancestor FROM {t}.history ORDER BY made_current_at") == [
        (s1, True),
        (s2, True),
    ]
    assert spark_rows(
        spark, f"SELECT added_snapshot_id, added_data_files_count FROM {t}.manifests ORDER BY added_snapshot_id = {s2}"
    ) == [
        (s1, 2),
        (s2, 1),
    ]
    assert spark_rows(spark, f"SELECT partition.category, record_count, file_count FROM {t}.partitions ORDER BY 1") == [
        ("a", 2, 1),
        ("b", 2, 2),
    ]
    # One metadata file per commit: create, two appends; the last is the table's current one.
    log = spark_rows(spark, f"SELECT file, latest_snapshot_id FROM {t}.metadata_log_entries ORDER BY timestamp")
    assert [snapshot for _, snapshot in log] == [None, s1, s2]
    assert local_path(log[-1][0]) == local_path(table.metadata_location)
    assert all(local_path(path).is_file() for path, _ in log)


@pytest.mark.compat(feature="CALL rewrite_data_files")
def test_rewrite_data_files(spark: Any, ns: str) -> None:
    t = f"{ns}.t"
    name = t.removeprefix("floe.")
    spark.sql(f"CREATE TABLE {t} (id bigint, name string) USING iceberg")
    for i in range(1, 5):
        spark.sql(f"INSERT INTO {t} VALUES ({i}, 'n{i}')")
    spark.sql(f"DELETE FROM {t} WHERE id = 2")  # copy-on-write by default: still one file per row
    assert spark_rows(spark, f"SELECT count(*) FROM {t}.files") == [(3,)]

    result = spark_rows(spark, f"CALL floe.system.rewrite_data_files(table => '{name}', options => map('min-input-files', '2'))")
    assert [(r[0], r[1]) for r in result] == [(3, 1)]  # rewritten, added data files
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "n1"), (3, "n3"), (4, "n4")]
    assert spark_rows(spark, f"SELECT count(*) FROM {t}.files") == [(1,)]
    assert spark_rows(spark, f"SELECT operation FROM {t}.snapshots ORDER BY committed_at DESC LIMIT 1") == [("replace",)]

    spark.sql(f"INSERT INTO {t} VALUES (0, 'n0')")
    result = spark_rows(
        spark,
        f"CALL floe.system.rewrite_data_files(table => '{name}', strategy => 'sort', sort_order => 'id DESC NULLS LAST', "
        "options => map('min-input-files', '2'))",
    )
    assert [(r[0], r[1]) for r in result] == [(2, 1)]
    assert spark_rows(spark, f"SELECT id FROM (SELECT id, input_file_name() FROM {t})") == [(4,), (3,), (1,), (0,)]


@pytest.mark.compat(feature="CALL expire_snapshots")
def test_expire_snapshots(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    name = t.removeprefix("floe.")
    spark.sql(f"CREATE TABLE {t} (id bigint) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1)")
    spark.sql(f"INSERT INTO {t} VALUES (2)")
    old_files = [local_path(p) for (p,) in spark_rows(spark, f"SELECT file_path FROM {t}.files")]
    spark.sql(f"INSERT OVERWRITE {t} VALUES (3)")
    assert len(snapshot_ids(spark, t)) == 3
    assert all(p.is_file() for p in old_files)

    now = (datetime.now(timezone.utc) + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    result = spark.sql(
        f"CALL floe.system.expire_snapshots(table => '{name}', older_than => TIMESTAMP '{now}', retain_last => 1)"
    ).collect()[0]
    assert result.deleted_data_files_count == 2
    assert result.deleted_manifest_lists_count == 2
    assert spark_rows(spark, f"SELECT id FROM {t}") == [(3,)]
    assert len(snapshot_ids(spark, t)) == 1
    assert len(catalog.load_table(name).snapshots()) == 1
    assert not any(p.exists() for p in old_files)


@pytest.mark.compat(feature="CALL expire_snapshots (clean_expired_metadata: remove specs and schemas)")
def test_expire_snapshots_clean_metadata(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    name = t.removeprefix("floe.")
    spark.sql(f"CREATE TABLE {t} (id bigint, a string, c int) USING iceberg PARTITIONED BY (a)")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'x', 1)")
    spark.sql(f"ALTER TABLE {t} DROP PARTITION FIELD a")
    spark.sql(f"ALTER TABLE {t} DROP COLUMN c")
    spark.sql(f"INSERT OVERWRITE {t} SELECT 3, 'z'")
    # (The overwrite's manifest of deleted spec-0 entries keeps spec 0 in use until the next commit.)
    spark.sql(f"INSERT INTO {t} VALUES (4, 'w')")
    before = catalog.load_table(name)
    assert (len(before.specs()), len(before.schemas())) == (2, 2)
    spark.sql(
        f"CALL floe.system.expire_snapshots(table => '{name}', older_than => TIMESTAMP '2100-01-01 00:00:00', "
        "retain_last => 1, clean_expired_metadata => true)"
    )
    after = catalog.load_table(name)
    assert list(after.specs()) == [after.spec().spec_id]  # the unused spec and schema are gone
    assert [s.schema_id for s in after.schemas().values()] == [after.schema().schema_id]
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(3, "z"), (4, "w")]


@pytest.mark.compat(feature="CALL rewrite_manifests")
def test_rewrite_manifests(spark: Any, ns: str) -> None:
    t = f"{ns}.t"
    name = t.removeprefix("floe.")
    spark.sql(f"CREATE TABLE {t} (id bigint, category string) USING iceberg PARTITIONED BY (category)")
    for i, c in [(1, "a"), (2, "b"), (3, "a")]:
        spark.sql(f"INSERT INTO {t} VALUES ({i}, '{c}')")
    assert spark_rows(spark, f"SELECT count(*) FROM {t}.manifests") == [(3,)]
    assert spark_rows(spark, f"CALL floe.system.rewrite_manifests('{name}')") == [(3, 1)]
    assert spark_rows(spark, f"SELECT count(*), sum(existing_data_files_count) FROM {t}.manifests") == [(1, 3)]
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "a"), (2, "b"), (3, "a")]
    assert spark_rows(spark, f"SELECT operation FROM {t}.snapshots ORDER BY committed_at DESC LIMIT 1") == [("replace",)]


@pytest.mark.compat(feature="CALL remove_orphan_files")
def test_remove_orphan_files(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    name = t.removeprefix("floe.")
    spark.sql(f"CREATE TABLE {t} (id bigint) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1), (2)")
    spark.sql(f"INSERT INTO {t} VALUES (3)")
    location = local_path(catalog.load_table(name).location())
    orphan = location / "data" / "orphan-from-a-failed-job.parquet"
    orphan.write_bytes(b"not referenced by any snapshot")
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(orphan, (week_ago, week_ago))

    # The procedure refuses a cut-off less than 24 hours ago (files of running jobs look orphaned).
    cutoff = (datetime.now(timezone.utc) - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")
    call = f"CALL floe.system.remove_orphan_files(table => '{name}', older_than => TIMESTAMP '{cutoff}'"
    dry = spark_rows(spark, f"{call}, dry_run => true)")
    # Only the planted file: every file Floe wrote (metadata JSON of every version) is reachable.
    assert [local_path(p) for (p,) in dry] == [orphan]
    assert orphan.exists()
    removed = spark_rows(spark, f"{call})")
    assert [local_path(p) for (p,) in removed] == [orphan]
    assert not orphan.exists()
    assert spark_rows(spark, f"SELECT id FROM {t} ORDER BY id") == [(1,), (2,), (3,)]


@pytest.mark.compat(feature="register table")
def test_register_table(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    name = t.removeprefix("floe.")
    spark.sql(f"CREATE TABLE {t} (id bigint, name string) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b')")
    metadata_location = catalog.load_table(name).metadata_location
    data_files = spark_rows(spark, f"SELECT count(*) FROM {t}.files")[0][0]
    spark.sql(f"DROP TABLE {t}")  # without PURGE: the files stay
    assert not catalog.table_exists(name)

    result = spark.sql(
        f"CALL floe.system.register_table(table => '{name}_again', metadata_file => '{metadata_location}')"
    ).collect()[0]
    assert (result.total_records_count, result.total_data_files_count) == (2, data_files)
    assert spark_rows(spark, f"SELECT * FROM {t}_again ORDER BY id") == [(1, "a"), (2, "b")]
    spark.sql(f"INSERT INTO {t}_again VALUES (3, 'c')")
    assert spark_rows(spark, f"SELECT count(*) FROM {t}_again") == [(3,)]


@pytest.mark.compat(feature="format version 3 (deletion vectors, row lineage, upgrade from v2)")
def test_format_version_3(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.v3"
    spark.sql(
        f"CREATE TABLE {t} (id bigint, name string) USING iceberg "
        "TBLPROPERTIES ('format-version' = '3', 'write.delete.mode' = 'merge-on-read')"
    )
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    spark.sql(f"DELETE FROM {t} WHERE id = 2")
    assert spark_rows(spark, f"SELECT * FROM {t} ORDER BY id") == [(1, "a"), (3, "c")]
    # The delete is a deletion vector (a Puffin file); rows keep their lineage ids.
    assert ("PUFFIN", 1) in spark_rows(spark, f"SELECT file_format, content FROM {t}.files")
    assert spark_rows(spark, f"SELECT _row_id, _last_updated_sequence_number FROM {t} ORDER BY id") == [(0, 1), (2, 1)]
    table = catalog.load_table(t.removeprefix("floe."))
    assert table.format_version == 3 and table.metadata.next_row_id == 3

    up = f"{ns}.upgraded"
    spark.sql(f"CREATE TABLE {up} (id bigint) USING iceberg TBLPROPERTIES ('format-version' = '2')")
    spark.sql(f"INSERT INTO {up} VALUES (1)")
    spark.sql(f"ALTER TABLE {up} SET TBLPROPERTIES ('format-version' = '3')")
    spark.sql(f"INSERT INTO {up} VALUES (2)")
    assert spark_rows(spark, f"SELECT id FROM {up} ORDER BY id") == [(1,), (2,)]
    assert catalog.load_table(up.removeprefix("floe.")).format_version == 3


@pytest.mark.compat(feature="CALL compute_table_stats (Puffin statistics)")
def test_compute_table_stats(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, name string) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (2, 'c')")
    ((stats_file,),) = spark_rows(spark, f"CALL floe.system.compute_table_stats(table => '{t.removeprefix('floe.')}')")
    table = catalog.load_table(t.removeprefix("floe."))
    assert [(s.snapshot_id, local_path(s.statistics_path)) for s in table.metadata.statistics] == [
        (table.current_snapshot().snapshot_id, local_path(stats_file))
    ]
    assert local_path(stats_file).is_file()
    blobs = table.metadata.statistics[0].blob_metadata
    # One NDV sketch per column: id has 2 distinct values, name 3.
    assert sorted((b.type, b.fields, b.properties.get("ndv")) for b in blobs) == [
        ("apache-datasketches-theta-v1", [1], "2"),
        ("apache-datasketches-theta-v1", [2], "3"),
    ]


@pytest.mark.compat(feature="metadata file retention (write.metadata.delete-after-commit)")
def test_metadata_file_retention(spark: Any, ns: str, catalog: RestCatalog) -> None:
    t = f"{ns}.t"
    spark.sql(
        f"CREATE TABLE {t} (id bigint) USING iceberg TBLPROPERTIES "
        "('write.metadata.delete-after-commit.enabled' = 'true', 'write.metadata.previous-versions-max' = '2')"
    )
    for i in range(1, 6):
        spark.sql(f"INSERT INTO {t} VALUES ({i})")
    table = catalog.load_table(t.removeprefix("floe."))
    log = [local_path(entry.metadata_file) for entry in table.metadata.metadata_log]
    assert len(log) == 2  # Floe trims the log to previous-versions-max ...
    metadata_dir = local_path(table.metadata_location).parent
    # ... and Spark deletes the files that fell out of it: only the log's files and the current one remain.
    assert sorted(metadata_dir.glob("*.metadata.json")) == sorted(log + [local_path(table.metadata_location)])
    assert spark_rows(spark, f"SELECT count(*) FROM {t}") == [(5,)]


@pytest.mark.compat(feature="CREATE TABLE ... LOCATION (inside the warehouse; outside is refused)")
def test_create_table_location(spark: Any, ns: str, floe_server: FloeServer) -> None:
    custom = floe_server.data_dir / "warehouse" / "custom" / unique_name("t")
    spark.sql(f"CREATE TABLE {ns}.t (id bigint) USING iceberg LOCATION '{custom}'")
    spark.sql(f"INSERT INTO {ns}.t VALUES (1)")
    assert spark_rows(spark, f"SELECT id FROM {ns}.t") == [(1,)]
    assert any(custom.glob("data/*.parquet")) and any(custom.glob("metadata/*.metadata.json"))
    # A managed service keeps tables in its warehouse: 400 BadRequest.
    outside = floe_server.data_dir / "elsewhere"
    with pytest.raises(Exception, match="BadRequestException"):
        spark.sql(f"CREATE TABLE {ns}.outside (id bigint) USING iceberg LOCATION '{outside}'")


@pytest.mark.compat(feature="RENAME TABLE")
def test_rename_table(spark: Any, ns: str, catalog: RestCatalog) -> None:
    name = ns.removeprefix("floe.")
    other = unique_name("ns")
    catalog.create_namespace(other)
    spark.sql(f"CREATE TABLE {ns}.t (id bigint) USING iceberg")
    spark.sql(f"INSERT INTO {ns}.t VALUES (1)")
    spark.sql(f"ALTER TABLE {ns}.t RENAME TO {name}.renamed")  # the new name is within the catalog
    assert spark_rows(spark, f"SHOW TABLES IN {ns}") == [(name, "renamed", False)]
    assert spark_rows(spark, f"SELECT id FROM {ns}.renamed") == [(1,)]
    spark.sql(f"ALTER TABLE {ns}.renamed RENAME TO {other}.moved")
    assert spark_rows(spark, f"SHOW TABLES IN {ns}") == []
    spark.sql(f"INSERT INTO floe.{other}.moved VALUES (2)")
    assert spark_rows(spark, f"SELECT id FROM floe.{other}.moved ORDER BY id") == [(1,), (2,)]


@pytest.mark.compat(feature="DROP TABLE")
def test_drop_table(spark: Any, ns: str, catalog: RestCatalog) -> None:
    name = ns.removeprefix("floe.")
    spark.sql(f"CREATE TABLE {ns}.kept (id bigint) USING iceberg")
    spark.sql(f"INSERT INTO {ns}.kept VALUES (1)")
    kept = local_path(catalog.load_table(f"{name}.kept").location())
    spark.sql(f"DROP TABLE {ns}.kept")  # without PURGE: the files stay (register_table relies on it)
    assert any(kept.rglob("*.parquet")) and any(kept.rglob("*.metadata.json"))

    spark.sql(f"CREATE TABLE {ns}.t (id bigint) USING iceberg")
    spark.sql(f"INSERT INTO {ns}.t VALUES (1)")
    location = local_path(catalog.load_table(f"{name}.t").location())
    spark.sql(f"DROP TABLE {ns}.t PURGE")
    assert spark_rows(spark, f"SHOW TABLES IN {ns}") == []
    with pytest.raises(NoSuchTableError):
        catalog.load_table(f"{name}.t")
    # The purge deletes the table's files (Floe may do it after answering: give it a moment).
    deadline = time.monotonic() + 10
    while any(location.rglob("*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(location.rglob("*.parquet")), sorted(location.rglob("*"))
