"""Iceberg views through Floe's REST catalog: Spark 3.5.9 + Iceberg 1.10.2 SQL, and PyIceberg's view calls.

Spark keeps a view's SQL text in the catalog (Iceberg view metadata, a file Floe writes) and expands
it on every read, so each test checks exact rows read through the view, and what Floe keeps (the
view's versions, its UUID) through PyIceberg where the feature is about that state. Views' SQL names
tables fully (`floe.<ns>.<table>`): Spark resolves names in a view against the catalog and namespace
current when it was created, which are not Floe's.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import NoSuchViewError
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType
from pyiceberg.view.metadata import SQLViewRepresentation, ViewVersion

from conftest import spark_rows, unique_name

pytestmark = pytest.mark.compat(engine="spark")


@pytest.fixture
def orders(spark: Any, namespace: str) -> str:
    """`floe.<ns>.orders (id bigint, item string, qty bigint)` with four rows."""
    table = f"floe.{namespace}.orders"
    spark.sql(f"CREATE TABLE {table} (id bigint, item string, qty bigint) USING iceberg")
    spark.sql(f"INSERT INTO {table} VALUES (1, 'apple', 5), (2, 'pear', 12), (3, 'plum', 30), (4, 'fig', 1)")
    return table


@pytest.mark.compat(feature="views: CREATE VIEW, SELECT from a view")
def test_create_view_and_select(spark: Any, catalog: RestCatalog, namespace: str, orders: str) -> None:
    view = f"floe.{namespace}.big_orders"
    spark.sql(f"CREATE VIEW {view} (id, item) COMMENT 'orders over 10' AS SELECT id, item FROM {orders} WHERE qty > 10")
    assert spark_rows(spark, f"SELECT id, item FROM {view} ORDER BY id") == [(2, "pear"), (3, "plum")]
    assert spark_rows(spark, f"SELECT count(*) FROM {view} WHERE item LIKE 'p%'") == [(2,)]

    # A view is its query: rows written to the table afterwards show through it.
    spark.sql(f"INSERT INTO {orders} VALUES (5, 'kiwi', 11)")
    assert spark_rows(spark, f"SELECT id, item FROM {view} ORDER BY id") == [(2, "pear"), (3, "plum"), (5, "kiwi")]

    # What Floe keeps: one version whose Spark SQL is the query, the schema Spark derived, the comment.
    kept = catalog.load_view((namespace, "big_orders"))
    assert [version.version_id for version in kept.versions] == [1]
    sql = kept.sql_for("spark")
    assert sql is not None and f"FROM {orders} WHERE qty > 10" in sql.sql
    assert [field.name for field in kept.schema().fields] == ["id", "item"]
    assert kept.properties.get("comment") == "orders over 10"
    assert catalog.view_exists((namespace, "big_orders"))
    assert not catalog.table_exists((namespace, "big_orders")), "a view is not a table"


@pytest.mark.compat(feature="views: CREATE OR REPLACE VIEW")
def test_create_or_replace_view(spark: Any, catalog: RestCatalog, namespace: str, orders: str) -> None:
    view = f"floe.{namespace}.by_item"
    spark.sql(f"CREATE VIEW {view} AS SELECT item, qty FROM {orders} WHERE qty < 10")
    assert spark_rows(spark, f"SELECT * FROM {view} ORDER BY item") == [("apple", 5), ("fig", 1)]
    first = catalog.load_view((namespace, "by_item"))

    # A replace commits a new version to the same view (assert-view-uuid), with a new schema.
    spark.sql(f"CREATE OR REPLACE VIEW {view} AS SELECT item, qty * 2 AS doubled, id FROM {orders} WHERE qty >= 12")
    assert spark_rows(spark, f"SELECT * FROM {view} ORDER BY item") == [("pear", 24, 2), ("plum", 60, 3)]
    replaced = catalog.load_view((namespace, "by_item"))
    assert replaced.uuid() == first.uuid()
    assert replaced.current_version().version_id != first.current_version().version_id
    assert len(replaced.versions) == 2
    assert [field.name for field in replaced.schema().fields] == ["item", "doubled", "id"]

    # Replacing again with the first query brings its rows back.
    spark.sql(f"CREATE OR REPLACE VIEW {view} AS SELECT item, qty FROM {orders} WHERE qty < 10")
    assert spark_rows(spark, f"SELECT * FROM {view} ORDER BY item") == [("apple", 5), ("fig", 1)]


@pytest.mark.compat(feature="views: SHOW VIEWS, DROP VIEW")
def test_show_and_drop_views(spark: Any, catalog: RestCatalog, namespace: str, orders: str) -> None:
    for name, bound in [("small", "qty < 10"), ("large", "qty >= 10")]:
        spark.sql(f"CREATE VIEW floe.{namespace}.{name} AS SELECT id FROM {orders} WHERE {bound}")
    assert spark_rows(spark, f"SHOW VIEWS IN floe.{namespace}") == [
        (namespace, "large", False),
        (namespace, "small", False),
    ]
    assert spark_rows(spark, f"SHOW TABLES IN floe.{namespace}") == [(namespace, "orders", False)]
    assert spark_rows(spark, f"SELECT id FROM floe.{namespace}.small ORDER BY id") == [(1,), (4,)]

    spark.sql(f"DROP VIEW floe.{namespace}.small")
    assert spark_rows(spark, f"SHOW VIEWS IN floe.{namespace}") == [(namespace, "large", False)]
    assert not catalog.view_exists((namespace, "small"))
    with pytest.raises(Exception, match="TABLE_OR_VIEW_NOT_FOUND"):
        spark.sql(f"SELECT * FROM floe.{namespace}.small").collect()
    spark.sql(f"DROP VIEW IF EXISTS floe.{namespace}.small")  # gone: nothing to do

    # The table under a dropped view is untouched.
    assert spark_rows(spark, f"SELECT count(*) FROM {orders}") == [(4,)]
    spark.sql(f"DROP VIEW floe.{namespace}.large")
    assert spark_rows(spark, f"SHOW VIEWS IN floe.{namespace}") == []


@pytest.mark.compat(feature="views: names shared with tables are refused, RENAME view")
def test_view_names_and_rename(spark: Any, catalog: RestCatalog, namespace: str, orders: str) -> None:
    with pytest.raises(Exception, match="(?i)already exists"):
        spark.sql(f"CREATE VIEW {orders} AS SELECT 1 AS one")
    spark.sql(f"CREATE VIEW floe.{namespace}.v AS SELECT id FROM {orders} WHERE id = 1")
    with pytest.raises(Exception, match="(?i)already exists"):
        spark.sql(f"CREATE TABLE floe.{namespace}.v (id bigint) USING iceberg")
    assert spark_rows(spark, f"SELECT id FROM {orders} ORDER BY id") == [(1,), (2,), (3,), (4,)]

    spark.sql(f"ALTER VIEW floe.{namespace}.v RENAME TO floe.{namespace}.first_order")
    assert spark_rows(spark, f"SELECT id FROM floe.{namespace}.first_order") == [(1,)]
    assert spark_rows(spark, f"SHOW VIEWS IN floe.{namespace}") == [(namespace, "first_order", False)]


@pytest.mark.compat(engine="pyiceberg", feature="views: create, list, load, exists, drop (PyIceberg)")
def test_pyiceberg_views(spark: Any, catalog: RestCatalog, namespace: str, orders: str) -> None:
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "item", StringType(), required=False),
    )
    version = ViewVersion(
        version_id=1,
        schema_id=0,
        timestamp_ms=int(time.time() * 1000),
        summary={"engine-name": "pyiceberg"},
        representations=[SQLViewRepresentation(type="sql", sql=f"SELECT id, item FROM {orders} WHERE id > 2", dialect="spark")],
        default_namespace=[namespace],
    )
    created = catalog.create_view((namespace, "late_orders"), schema=schema, view_version=version)
    assert created.current_version().version_id == 1
    assert catalog.list_views(namespace) == [(namespace, "late_orders")]
    assert catalog.view_exists((namespace, "late_orders"))
    loaded = catalog.load_view((namespace, "late_orders"))
    assert loaded.uuid() == created.uuid() and loaded.sql_for("spark") is not None

    # Spark expands the SQL PyIceberg stored.
    assert spark_rows(spark, f"SELECT * FROM floe.{namespace}.late_orders ORDER BY id") == [(3, "plum"), (4, "fig")]

    catalog.drop_view((namespace, "late_orders"))
    assert not catalog.view_exists((namespace, "late_orders"))
    assert catalog.list_views(namespace) == []
    with pytest.raises(NoSuchViewError):
        catalog.load_view((namespace, "late_orders"))
    name = unique_name("never")
    with pytest.raises(NoSuchViewError):
        catalog.drop_view((namespace, name))
