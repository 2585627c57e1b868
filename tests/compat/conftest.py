"""Fixtures for Floe's compatibility harness: one real `floe serve` and real clients on it.

- `floe_server` (session): the server, `embedded_floe`, started by tests/python/floe_server.py's
  `FloeServer` on a free loopback port with a temporary data dir; its log is `floe-compat.log` in
  `$FLOE_TEST_LOG_DIR` (scripts/test.sh sets it) or a pytest temp dir. `FLOE_LOG=debug` in the
  environment reaches it.
- `catalog`: a PyIceberg `RestCatalog`; `namespace`: a fresh namespace for one test.
- `spark` (session): ONE SparkSession (local[2], UI off) for the whole run, with the Iceberg REST
  catalog `floe` (and `floe_refs`: the same server with `snapshot-loading-mode=refs`); the runtime
  jar is `$FLOE_ICEBERG_SPARK_JAR` (scripts/test.sh extracts it). `spark_session_on(spark, uri)`:
  another session of that JVM whose catalogs are the Floe at `uri` (e.g. a replica).
- `duck`: a DuckDB connection with Floe attached as `ice`; the extensions are the files the
  duckdb-extension-* wheels ship (nothing is downloaded).
- `floe_sql_rows(floe_server, sql, columns)`, `floe_sql_results(...)`: the rows of queries run by the real `floe sql` binary
  (`--catalog <server> --format json`), the same binary the server runs.

The PostgreSQL set-up (two replicas on a throwaway PostgreSQL, tests/compat/postgres.py) overrides these
fixtures in its own module, test_postgres_setup.py, and runs test_spark.py's tests again through them.

The engine x feature matrix is the plugin in matrix.py; `--compat-doc PATH` writes it as Markdown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog.rest import RestCatalog

sys.path.append(str(Path(__file__).resolve().parents[1] / "python"))
from floe_server import FloeServer  # noqa: E402  (tests/python's launcher, shared)

from matrix import CompatMatrix  # noqa: E402

ICEBERG_SPARK_JAR = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
DUCKDB_EXTENSIONS = ["httpfs", "avro", "iceberg"]  # iceberg last: it needs the other two

# polars plans Iceberg scans with the optional polars_iceberg package when it is installed and warns
# when it is not; the harness tests the PyIceberg planner (the one its docs name) and keeps the log quiet.
os.environ.setdefault("POLARS_ICEBERG_PLANNER", "pyiceberg")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--compat-doc",
        metavar="PATH",
        default=None,
        help="write the engine x feature matrix as Markdown to PATH (scripts/test.sh: docs/compatibility.md)",
    )


def pytest_configure(config: pytest.Config) -> None:
    doc = config.getoption("--compat-doc")
    config.pluginmanager.register(CompatMatrix(Path(doc).resolve() if doc else None), "floe-compat-matrix")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Spark's module first (its features head the matrix), the cross-engine reads last; daft's and
    polars' module after those: it adds the `floe sql` reader and writer to the cross-engine table,
    as rows and a column after the ones test_cross_engine.py makes. Other modules in between; the
    PostgreSQL set-up at the very end (its tables close the report)."""
    order = {
        "test_spark.py": 0,
        "test_duckdb.py": 1,
        "test_cross_engine.py": 3,
        "test_daft_polars.py": 4,
        "test_postgres_setup.py": 5,
    }
    items.sort(key=lambda item: order.get(item.path.name, 2))  # stable: test order within a module kept


def unique_name(prefix: str) -> str:
    """A namespace or table name that no other test uses (lower case: Spark and DuckDB fold case)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# ---------------------------------------------------------------------------------------------- Floe


@pytest.fixture(scope="session")
def embedded_floe(tmp_path_factory: pytest.TempPathFactory) -> Generator[FloeServer, None, None]:
    """The harness's Floe: the embedded metadata store, a `file://` warehouse."""
    log_dir = Path(os.environ.get("FLOE_TEST_LOG_DIR") or tmp_path_factory.mktemp("floe-logs"))
    server = FloeServer(tmp_path_factory.mktemp("floe-data"), log_dir / "floe-compat.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def floe_server(embedded_floe: FloeServer) -> FloeServer:
    """The Floe the tests talk to (a module of another set-up overrides it)."""
    return embedded_floe


@pytest.fixture(scope="session")
def floe_uri(floe_server: FloeServer) -> str:
    return floe_server.uri


@pytest.fixture
def catalog(floe_uri: str) -> RestCatalog:
    return RestCatalog("floe", uri=floe_uri)


@pytest.fixture
def namespace(catalog: RestCatalog) -> str:
    """A fresh, empty namespace for one test."""
    name = unique_name("ns")
    catalog.create_namespace(name)
    return name


# --------------------------------------------------------------------------------------------- Spark


def iceberg_spark_jar() -> Path:
    configured = os.environ.get("FLOE_ICEBERG_SPARK_JAR")
    cache = Path(os.environ.get("FLOE_CACHE_DIR") or Path.home() / ".cache" / "floe")
    jar = Path(configured) if configured else cache / "iceberg-spark-runtime" / ICEBERG_SPARK_JAR
    if not jar.is_file():
        pytest.fail(
            f"Iceberg Spark runtime jar not found at {jar}: `scripts/test.sh compat` extracts it from the "
            "snowpark-connect-deps-iceberg 1.0.2 wheel; or set FLOE_ICEBERG_SPARK_JAR"
        )
    return jar


@pytest.fixture(scope="session")
def spark(embedded_floe: FloeServer, tmp_path_factory: pytest.TempPathFactory) -> Generator[Any, None, None]:
    """One SparkSession for the run: a JVM start costs ~6 s and CI has 2 cores. Its catalogs are the
    embedded Floe (not `floe_server`, which another set-up's module overrides: it overrides `spark`
    too, with `spark_session_on`)."""
    from pyspark.sql import SparkSession

    jar = iceberg_spark_jar()
    scratch = tmp_path_factory.mktemp("spark")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # bind and talk on loopback only
    os.environ["SPARK_LOCAL_DIRS"] = str(scratch / "local")
    settings = {
        "spark.jars": str(jar),
        "spark.sql.extensions": "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.catalog.floe": "org.apache.iceberg.spark.SparkCatalog",
        "spark.sql.catalog.floe.type": "rest",
        "spark.sql.catalog.floe.uri": embedded_floe.uri,
        # Other engines change the tables between Spark's reads: always load them from the catalog.
        "spark.sql.catalog.floe.cache-enabled": "false",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.warehouse.dir": str(scratch / "spark-warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={scratch}",
    }
    # The same server as a second catalog that loads only referenced snapshots (`snapshots=refs`).
    for key, value in list(settings.items()):
        if key.startswith("spark.sql.catalog.floe"):
            settings[key.replace("spark.sql.catalog.floe", "spark.sql.catalog.floe_refs", 1)] = value
    settings["spark.sql.catalog.floe_refs.snapshot-loading-mode"] = "refs"
    builder = SparkSession.builder.master("local[2]").appName("floe-compat")
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def spark_session_on(spark: Any, uri: str) -> Any:
    """A new session of `spark`'s JVM (its own SQL conf and catalogs, the same SparkContext) whose
    catalogs `floe` and `floe_refs` are the Floe at `uri`: Spark loads a catalog from the session's conf
    on first use, so the new session's settings apply to it."""
    session = spark.newSession()
    for catalog in ("floe", "floe_refs"):
        session.conf.set(f"spark.sql.catalog.{catalog}.uri", uri)
    return session


def spark_rows(spark: Any, sql: str) -> list[tuple[Any, ...]]:
    """The rows of a Spark SQL query as tuples, in the query's order."""
    return [tuple(row) for row in spark.sql(sql).collect()]


# -------------------------------------------------------------------------------------------- DuckDB


def duckdb_connect(floe_server: FloeServer, warehouse: str | None = None, attach_options: str = "") -> Any:
    """A DuckDB connection with the wheel-shipped extensions loaded and Floe attached as `ice`
    (`attach_options`: more ATTACH options, e.g. ", ACCESS_DELEGATION_MODE 'none'")."""
    import duckdb

    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            # LOAD by path installs nothing; keep DuckDB from touching ~/.duckdb all the same.
            "extension_directory": tempfile.mkdtemp(prefix="floe-duckdb-ext-"),
        }
    )
    for name in DUCKDB_EXTENSIONS:
        con.execute(f"LOAD '{duckdb_extension_file(name)}'")
    con.execute(
        f"ATTACH '{warehouse or floe_server.prefix}' AS ice "
        f"(TYPE ICEBERG, ENDPOINT '{floe_server.uri}', AUTHORIZATION_TYPE 'none'{attach_options})"
    )
    return con


def duckdb_extension_file(name: str) -> Path:
    import importlib

    package = Path(importlib.import_module(f"duckdb_extension_{name}").__path__[0])
    files = sorted(package.glob(f"extensions/*/{name}.duckdb_extension"))
    assert len(files) == 1, f"expected one {name}.duckdb_extension in {package}, found {files}"
    return files[0]


@pytest.fixture
def duck(floe_server: FloeServer) -> Generator[Any, None, None]:
    con = duckdb_connect(floe_server)
    try:
        yield con
    finally:
        con.close()


def duck_rows(con: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in con.execute(sql).fetchall()]


# ----------------------------------------------------------------------------------------- floe sql


def floe_sql(floe_server: FloeServer, sql: str, output_format: str = "json") -> str:
    """Standard output of the real `floe sql --catalog <server> -e <sql>`; fails the test with its
    standard error when it exits non-zero."""
    result = subprocess.run(
        [str(floe_server.binary), "sql", "--catalog", floe_server.uri, "--format", output_format, "-e", sql],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NO_COLOR": "1"},
    )
    if result.returncode != 0:
        raise AssertionError(f"floe sql -e {sql!r} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def floe_sql_results(floe_server: FloeServer, sql: str) -> list[list[dict[str, Any]]]:
    """The result of every statement of `sql` run by `floe sql` (JSON output: one array of row
    objects per statement; a NULL is a key the JSON writer leaves out)."""
    return [json.loads(line) for line in floe_sql(floe_server, sql).splitlines() if line.strip()]


def floe_sql_rows(floe_server: FloeServer, sql: str, columns: list[str]) -> list[tuple[Any, ...]]:
    """The rows of one query run by `floe sql`, as tuples of `columns` in that order (NULL: None)."""
    (rows,) = floe_sql_results(floe_server, sql)
    return [tuple(row.get(c) for c in columns) for row in rows]
