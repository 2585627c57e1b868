"""The PostgreSQL set-up: two `floe serve` replicas on one shared metadata store (a throwaway PostgreSQL
cluster, tests/compat/postgres.py) and one `file://` warehouse directory, as docs/scale-out.md runs
them. Spark works through replica A; every other client (PyIceberg, DuckDB, `floe sql`) through
replica B, so each of their checks after a Spark write is a read-after-write across replicas.

This module's fixtures override the harness's: `spark` is a session of the harness's one JVM whose
catalogs (`floe`, `floe_refs`) are replica A (conftest.spark_session_on); `floe_server`/`floe_uri`,
and so `catalog`, `namespace` and the DuckDB connections, are replica B. On them run:

- every test of test_spark.py, unchanged: they are imported below, so they run a second time here,
  through these fixtures. Spark writes through A; the namespace it writes in was created through B,
  and the state Floe keeps (schemas, specs, refs, snapshots, file locations) is checked by PyIceberg
  through B. Plus concurrent commits from Spark sessions on both replicas to one table.
  Table "Spark → Floe on PostgreSQL (2 replicas)".
- Spark's life cycle of one table through A (CREATE + INSERT, INSERT, UPDATE and DELETE merge-on-read,
  MERGE copy-on-write, CTAS, RTAS): after every step PyIceberg, DuckDB and `floe sql` read it through
  B at once, exact rows; then time travel and the snapshot list (metadata tables) through B equal
  Spark's through A.
- The cross-engine recipes of test_cross_engine.py (appended, deleted, evolved): Spark's tables
  (through A) read through B, and PyIceberg's, DuckDB's and `floe sql`'s (through B) read by Spark
  through A, with test_daft_polars.py's fixtures that build them.
  Both in the table "Across replicas on PostgreSQL".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, Optional

import pytest
from pyiceberg.catalog.rest import RestCatalog

import test_cross_engine as cross
import test_spark
from conftest import duck_rows, floe_sql_rows, spark_rows, spark_session_on, unique_name
from floe_server import FloeServer
from postgres import TestPostgres

# Fixtures of other modules, used here by name: `ns` (test_spark.py); `written` (the cross-engine tables,
# built on first use), `engines` and `duck_module` (DuckDB through `floe_server`) of test_daft_polars.py.
from test_daft_polars import duck_module, engines, written  # noqa: F401
from test_spark import ns  # noqa: F401

SPARK_TABLE = "Spark → Floe on PostgreSQL (2 replicas)"
ACROSS_TABLE = (
    "Across replicas on PostgreSQL (row: what was written, through which replica; column: the engine that read it "
    "through the other replica)"
)

pytestmark = pytest.mark.compat(engine="spark", table=SPARK_TABLE)

# test_spark.py's tests, collected again in this module so that they run through its fixtures (their
# own `compat` markers name the feature; this module's `pytestmark` the table).
globals().update({name: test for name, test in vars(test_spark).items() if name.startswith("test_") and callable(test)})


# ---------------------------------------------------------------------------------------- the set-up


class Replicas(NamedTuple):
    a: FloeServer  # Spark's
    b: FloeServer  # every other client's


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Generator[Replicas, None, None]:
    """A PostgreSQL cluster with a database `floe`, and two replicas on it sharing one data dir (its
    `warehouse/`); logs `postgres-compat.log`, `floe-compat-pg-{a,b}.log`."""
    log_dir = Path(os.environ.get("FLOE_TEST_LOG_DIR") or tmp_path_factory.mktemp("floe-logs"))
    with TestPostgres(log_dir / "postgres-compat.log") as cluster:
        metastore = cluster.create_database("floe")
        data_dir = tmp_path_factory.mktemp("floe-pg-data")
        servers = [
            FloeServer(data_dir, log_dir / f"floe-compat-pg-{name}.log", extra_args=["--metastore", metastore])
            for name in ("a", "b")
        ]
        try:
            for server in servers:
                server.start()
            assert servers[0].config == servers[1].config, "the replicas serve different catalogs"
            assert not (data_dir / "catalog.db").exists(), "a replica used the embedded store"
            yield Replicas(*servers)
        finally:
            for server in servers:
                server.stop()


@pytest.fixture(scope="module")
def floe_server(replicas: Replicas) -> FloeServer:
    """Replica B: `catalog`, `namespace`, DuckDB and `floe sql` go through it."""
    return replicas.b


@pytest.fixture(scope="module")
def floe_uri(floe_server: FloeServer) -> str:
    return floe_server.uri


@pytest.fixture(scope="module")
def spark(spark: Any, replicas: Replicas) -> Any:
    """The harness's Spark, as a session whose catalogs are replica A."""
    return spark_session_on(spark, replicas.a.uri)


# ------------------------------------------------------------------------- Spark through both replicas


@pytest.mark.compat(feature="concurrent commits through both replicas (409 on conflict, client retries)")
def test_concurrent_appends_through_both_replicas(spark: Any, ns: str, replicas: Replicas) -> None:
    t = f"{ns}.t"
    spark.sql(f"CREATE TABLE {t} (id bigint, writer int) USING iceberg TBLPROPERTIES ('commit.retry.num-retries' = '20')")
    on_b = spark_session_on(spark, replicas.b.uri)  # a second Spark session, on replica B
    sessions = [spark, on_b, spark, on_b]

    def insert(writer: int) -> None:
        for i in range(3):
            sessions[writer].sql(f"INSERT INTO {t} VALUES ({writer * 10 + i}, {writer})")

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(insert, range(4)))  # re-raises the first failure
    expected = [(w * 10 + i,) for w in range(4) for i in range(3)]
    for session in (spark, on_b):
        assert spark_rows(session, f"SELECT id FROM {t} ORDER BY id") == expected
        history = spark_rows(session, f"SELECT snapshot_id, parent_id FROM {t}.history ORDER BY made_current_at")
        assert len(history) == 12
        assert all(parent == previous for (_, parent), (previous, _) in zip(history[1:], history, strict=False)), history


# ------------------------------------------------------ Spark's life cycle through A, read through B

COLUMNS = ["id", "category", "name"]
READERS = ["pyiceberg", "duckdb", "floe-sql"]
Rows = list[tuple[Any, ...]]


class Step(NamedTuple):
    name: str  # the matrix row
    table: str  # the table it leaves changed, which the readers read: "t" or "ctas"
    statements: tuple[str, ...]  # Spark SQL; {t} and {ctas} are the tables' names
    rows: Rows  # that table's rows after it, sorted


STEPS = [
    Step(
        "Spark through replica A: CREATE TABLE (partitioned), INSERT",
        "t",
        (
            "CREATE TABLE {t} (id bigint, category string, name string) USING iceberg PARTITIONED BY (category) "
            "TBLPROPERTIES ('format-version' = '2', 'write.delete.mode' = 'merge-on-read', "
            "'write.update.mode' = 'merge-on-read', 'write.merge.mode' = 'copy-on-write')",
            "INSERT INTO {t} VALUES (1, 'a', 'x'), (2, 'b', 'y'), (3, 'a', 'z')",
        ),
        [(1, "a", "x"), (2, "b", "y"), (3, "a", "z")],
    ),
    Step(
        "Spark through replica A: INSERT",
        "t",
        ("INSERT INTO {t} VALUES (4, 'c', 'w'), (5, 'b', 'v')",),
        [(1, "a", "x"), (2, "b", "y"), (3, "a", "z"), (4, "c", "w"), (5, "b", "v")],
    ),
    Step(
        "Spark through replica A: UPDATE (merge-on-read)",
        "t",
        ("UPDATE {t} SET name = upper(name) WHERE id IN (1, 5)",),
        [(1, "a", "X"), (2, "b", "y"), (3, "a", "z"), (4, "c", "w"), (5, "b", "V")],
    ),
    Step(
        "Spark through replica A: DELETE (merge-on-read)",
        "t",
        ("DELETE FROM {t} WHERE id = 2 OR category = 'c'",),
        [(1, "a", "X"), (3, "a", "z"), (5, "b", "V")],
    ),
    Step(
        "Spark through replica A: MERGE INTO (copy-on-write)",
        "t",
        (
            """MERGE INTO {t} t
            USING (SELECT * FROM VALUES (3, 'a', 'zz', 'update'), (5, 'b', '', 'delete'), (6, 'd', 'u', 'insert')
                   AS s(id, category, name, op)) s
            ON t.id = s.id
            WHEN MATCHED AND s.op = 'delete' THEN DELETE
            WHEN MATCHED THEN UPDATE SET t.name = s.name
            WHEN NOT MATCHED THEN INSERT (id, category, name) VALUES (s.id, s.category, s.name)""",
        ),
        [(1, "a", "X"), (3, "a", "zz"), (6, "d", "u")],
    ),
    Step(
        "Spark through replica A: CREATE TABLE AS SELECT",
        "ctas",
        ("CREATE TABLE {ctas} USING iceberg PARTITIONED BY (category) AS SELECT * FROM {t} WHERE id < 6",),
        [(1, "a", "X"), (3, "a", "zz")],
    ),
    Step(
        "Spark through replica A: REPLACE TABLE AS SELECT",
        "ctas",
        ("REPLACE TABLE {ctas} USING iceberg AS SELECT id * 10 AS id, category, upper(name) AS name FROM {t}",),
        [(10, "a", "X"), (30, "a", "ZZ"), (60, "d", "U")],
    ),
]


class LifeCycle:
    """Spark's STEPS through replica A, in a fresh namespace, each run once when a test first needs it.

    Tests read the state a step leaves, so they run step by step (the parameters' order); a step that
    fails fails every later read, with Spark's error.
    """

    def __init__(self, spark: Any, namespace: str) -> None:
        self.spark = spark
        self.namespace = namespace
        self.done = 0  # steps run
        self.error: Optional[tuple[str, BaseException]] = None

    def name(self, table: str) -> str:
        return f"{self.namespace}.{table}"

    def reach(self, step: int) -> str:
        """Runs the steps up to `step` (an index into STEPS); the name of the table it changed."""
        while self.done <= step and self.error is None:
            current = STEPS[self.done]
            try:
                for statement in current.statements:
                    self.spark.sql(statement.format(t=f"floe.{self.name('t')}", ctas=f"floe.{self.name('ctas')}"))
                self.done += 1
            except Exception as error:  # noqa: BLE001  (reported by every read from here on)
                self.error = (current.name, error)
        if self.error is not None:
            name, error = self.error
            raise RuntimeError(f"Spark's step {name!r} failed: {error!r}") from error
        table = STEPS[step].table
        later = [s.name for s in STEPS[step + 1 : self.done] if s.table == table]
        assert not later, f"{table} was already changed by {later}: run the tests in order"
        return self.name(table)

    def snapshots(self) -> list[tuple[int, str]]:
        """(snapshot id, operation) of every snapshot of table t, as Spark sees them through replica A."""
        return spark_rows(
            self.spark, f"SELECT snapshot_id, operation FROM floe.{self.name('t')}.snapshots ORDER BY committed_at"
        )


@pytest.fixture(scope="module")
def life_cycle(spark: Any, floe_uri: str) -> LifeCycle:
    namespace = unique_name("pg_life_cycle")
    RestCatalog("floe", uri=floe_uri).create_namespace(namespace)  # through replica B
    return LifeCycle(spark, namespace)


def read(reader: str, table: str, floe_server: FloeServer, duck: Any, snapshot_id: Optional[int] = None) -> Rows:
    """The rows of `table` (at `snapshot_id`, else current) as `reader` reads them through `floe_server`, sorted."""
    columns = ", ".join(COLUMNS)
    if reader == "pyiceberg":
        iceberg_table = RestCatalog("floe", uri=floe_server.uri).load_table(table)
        scan = iceberg_table.scan(selected_fields=tuple(COLUMNS), snapshot_id=snapshot_id)
        return sorted(tuple(row[c] for c in COLUMNS) for row in scan.to_arrow().to_pylist())
    if reader == "duckdb":
        at = f" AT (VERSION => {snapshot_id})" if snapshot_id is not None else ""
        return sorted(duck_rows(duck, f"SELECT {columns} FROM ice.{table}{at}"))
    if reader == "floe-sql":
        at = f" FOR VERSION AS OF {snapshot_id}" if snapshot_id is not None else ""
        return sorted(floe_sql_rows(floe_server, f"SELECT {columns} FROM {table}{at}", COLUMNS))
    raise ValueError(reader)


def snapshots(reader: str, table: str, floe_server: FloeServer, duck: Any) -> list[tuple[int, str]]:
    """(snapshot id, operation) of every snapshot of `table`, oldest first, as `reader` lists them."""
    if reader == "pyiceberg":
        iceberg_table = RestCatalog("floe", uri=floe_server.uri).load_table(table)
        return [(s.snapshot_id, s.summary.operation.value) for s in iceberg_table.snapshots()]
    if reader == "duckdb":
        return duck_rows(
            duck, f"SELECT snapshot_id, operation FROM iceberg_snapshots(ice.{table}) ORDER BY sequence_number"
        )
    if reader == "floe-sql":
        query = f"SELECT snapshot_id, operation FROM {table}$snapshots ORDER BY committed_at"
        return floe_sql_rows(floe_server, query, ["snapshot_id", "operation"])
    raise ValueError(reader)


@pytest.mark.compat(table=ACROSS_TABLE, engine="{reader}", feature="{step}")  # {step}: the step's name
@pytest.mark.parametrize(
    ("step", "reader"),
    [pytest.param(step, reader, id=f"{i}-{reader}") for i, step in enumerate(STEPS) for reader in READERS],
)
def test_life_cycle_read_after_write(
    step: Step, reader: str, life_cycle: LifeCycle, floe_server: FloeServer, duck_module: Any
) -> None:
    table = life_cycle.reach(STEPS.index(step))
    assert read(reader, table, floe_server, duck_module) == step.rows


def step_named(prefix: str) -> int:
    (index,) = [i for i, step in enumerate(STEPS) if step.name.startswith(f"Spark through replica A: {prefix}")]
    return index


@pytest.mark.compat(table=ACROSS_TABLE, engine="{reader}", feature="Spark through replica A: time travel")
@pytest.mark.parametrize("reader", READERS)
def test_life_cycle_time_travel(reader: str, life_cycle: LifeCycle, floe_server: FloeServer, duck_module: Any) -> None:
    """The table as of its first snapshot, and of the one after the merge-on-read DELETE (delete files)."""
    table = life_cycle.reach(step_named("MERGE"))
    ids = [snapshot_id for snapshot_id, _ in life_cycle.snapshots()]
    first, deleted = step_named("CREATE TABLE (partitioned)"), step_named("DELETE")
    # One snapshot per step of table t (the CREATE TABLE makes none).
    assert len(ids) == step_named("MERGE") + 1, ids
    assert read(reader, table, floe_server, duck_module, ids[first]) == STEPS[first].rows
    assert read(reader, table, floe_server, duck_module, ids[deleted]) == STEPS[deleted].rows


@pytest.mark.compat(table=ACROSS_TABLE, engine="{reader}", feature="Spark through replica A: snapshots (metadata tables)")
@pytest.mark.parametrize("reader", READERS)
def test_life_cycle_snapshots(reader: str, life_cycle: LifeCycle, floe_server: FloeServer, duck_module: Any) -> None:
    table = life_cycle.reach(step_named("MERGE"))
    expected = life_cycle.snapshots()
    assert [operation for _, operation in expected] == ["append", "append", "overwrite", "delete", "overwrite"]
    assert snapshots(reader, table, floe_server, duck_module) == expected


# --------------------------------------------------- the cross-engine tables, written and read across


def across_params() -> list[Any]:
    """Spark's tables (through A) read through B; the tables of the others (through B) read by Spark (A)."""
    others = ["pyiceberg", "duckdb", "floe-sql"]
    params = [("spark", "A", stage, reader) for stage in cross.STAGES for reader in others]
    params += [(writer, "B", stage, "spark") for writer in others for stage in cross.STAGES]
    return [pytest.param(*p, id="-".join(p)) for p in params]


@pytest.mark.compat(table=ACROSS_TABLE, engine="{reader}", feature="written by {writer} through replica {through}: {stage}")
@pytest.mark.parametrize(("writer", "through", "stage", "reader"), across_params())
def test_cross_engine_read_across_replicas(
    writer: str,
    through: str,
    stage: str,
    reader: str,
    written: Callable[[str, str], str],
    catalog: RestCatalog,
    engines: Callable[[str], Callable[[], Any]],
    floe_server: FloeServer,
) -> None:
    # `written` builds Spark's tables with `spark` (replica A), the others' through `floe_server` (replica B).
    assert through == ("A" if writer == "spark" else "B")
    table = written(writer, stage)
    if reader == "floe-sql":
        rows = floe_sql_rows(floe_server, f"SELECT {', '.join(cross.columns(stage))} FROM {table}", cross.columns(stage))
    else:
        rows = cross.read(reader, table, stage, catalog, engines(reader))
    assert sorted(rows) == cross.EXPECTED[stage]
