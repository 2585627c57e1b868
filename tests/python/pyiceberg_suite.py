"""Helpers for running PyIceberg's own integration suite (its sdist's tests/integration) against Floe.

Those test files hard-code the catalog at http://localhost:8181 (see the sdist's tests/conftest.py,
`session_catalog`) and expect the tables that its Docker set-up (dev/provision.py, with Spark) creates.
scripts/test.sh (part `pyiceberg`) starts `floe serve --port 8181` and uses this file twice:

    python tests/python/pyiceberg_suite.py check-port 8181     # fail if anything answers on localhost:8181
    python tests/python/pyiceberg_suite.py provision URI       # namespace `default` + the tables the run needs

and then as a pytest plugin (`-p pyiceberg_suite`, with tests/python on PYTHONPATH), which

- deselects tests that need Spark Connect (the `spark` fixture) or a Hive metastore (`session_catalog_hive`,
  also as a parameter), neither of which exists here;
- puts a stand-in `pyspark` module in place when pyspark is not installed: several files import
  `pyspark.sql.SparkSession` at module level only for type hints, and every test that really uses Spark
  is deselected (the stand-in raises if anything touches it);
- prints pass/fail counts per file at the end.

Standard library and PyIceberg only.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
import types
from collections import Counter, defaultdict
from typing import Any

NEEDS = {
    "spark": "needs Spark Connect (sc://localhost:15002)",
    "session_catalog_hive": "needs a Hive metastore (thrift://localhost:9083)",
}


# ------------------------------------------------------------------------------------------ pytest plugin
def _install_pyspark_stand_in() -> None:
    if importlib.util.find_spec("pyspark") is not None:
        return

    class _NoSpark:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("pyspark is not installed: a test that uses Spark should have been deselected")

    pyspark = types.ModuleType("pyspark")
    sql = types.ModuleType("pyspark.sql")
    utils = types.ModuleType("pyspark.sql.utils")
    sql.SparkSession = type("SparkSession", (_NoSpark,), {})  # type: ignore[attr-defined]
    sql.DataFrame = type("DataFrame", (_NoSpark,), {})  # type: ignore[attr-defined]
    utils.AnalysisException = type("AnalysisException", (Exception,), {})  # type: ignore[attr-defined]
    pyspark.sql = sql  # type: ignore[attr-defined]
    sql.utils = utils  # type: ignore[attr-defined]
    sys.modules.update({"pyspark": pyspark, "pyspark.sql": sql, "pyspark.sql.utils": utils})


_install_pyspark_stand_in()


def _fixtures_used(item: Any) -> set[str]:
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    if callspec is not None:  # pytest-lazy-fixtures parameters: lf("session_catalog_hive")
        for value in callspec.params.values():
            name = getattr(value, "name", None)
            if isinstance(name, str):
                names.add(name)
    return names


_deselected_why: Counter[str] = Counter()


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    keep, drop = [], []
    for item in items:
        needs = sorted(_fixtures_used(item) & NEEDS.keys())
        if needs:
            drop.append(item)
            _deselected_why[NEEDS[needs[0]]] += 1
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    columns = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected")
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for outcome in columns:
        for report in terminalreporter.stats.get(outcome, []):  # test reports; items for "deselected"
            counts[report.nodeid.split("::")[0]][outcome] += 1
    if not counts:
        return
    width = max(len(name) for name in counts)
    terminalreporter.section("per-file results")
    terminalreporter.write_line(f"{'file':<{width}}  " + " ".join(f"{c:>10}" for c in columns))
    for name in sorted(counts):
        terminalreporter.write_line(f"{name:<{width}}  " + " ".join(f"{counts[name][c]:>10}" for c in columns))
    for why, n in sorted(_deselected_why.items()):
        terminalreporter.write_line(f"deselected, {why}: {n}")


# -------------------------------------------------------------------------------------------------- CLI
def check_port(port: int) -> int:
    """Non-zero if anything accepts connections on localhost:PORT (any address family) or it cannot be bound."""
    for family, kind, proto, _, address in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM):
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(1.0)
            if sock.connect_ex(address) == 0:
                print(f"port {port} is taken: something answers on {address[0]}:{port}", file=sys.stderr)
                return 1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server binds: connections of an earlier run lingering in TIME_WAIT must not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            print(f"port {port} is taken: cannot bind 127.0.0.1:{port}: {error}", file=sys.stderr)
            return 1
    return 0


def provision(uri: str) -> int:
    """What PyIceberg's dev/provision.py sets up that the selected tests need, written with PyIceberg.

    - namespace `default`;
    - `default.test_table_snapshot_operations` (test_snapshot_operations.py): v2, `number int`, snapshots from
      insert 1, insert 2, delete number = 2, insert 3, insert 4;
    - `default.test_all_types` (test_rest_manifest.py): v2, every Spark type, identity-partitioned by intCol;
    - `default.test_table_version` (test_reads.py): empty, v1, `dt date, number int, letter string`;
    - `default.test_table_add_column` (test_reads.py): `a string`, row '1', then column `b string` added, row ('2', '2').

    The other tables of dev/provision.py need Spark to be written (merge-on-read deletes, compaction, ...):
    the tests that read them are listed in pyiceberg_known_failures.txt.
    """
    import datetime
    import decimal

    import pyarrow as pa

    from pyiceberg.catalog import load_catalog
    from pyiceberg.expressions import EqualTo
    from pyiceberg.types import StringType

    catalog = load_catalog("provision", type="rest", uri=uri)
    catalog.create_namespace_if_not_exists("default")

    schema = pa.schema([pa.field("number", pa.int32())])
    table = catalog.create_table(
        "default.test_table_snapshot_operations", schema=schema, properties={"format-version": "2"}
    )
    table.append(pa.table({"number": pa.array([1], pa.int32())}))
    table.append(pa.table({"number": pa.array([2], pa.int32())}))
    table.delete(EqualTo("number", 2))
    table.append(pa.table({"number": pa.array([3], pa.int32())}))
    table.append(pa.table({"number": pa.array([4], pa.int32())}))

    decimal_type = pa.decimal128(10, 2)
    map_type = pa.map_(pa.int64(), decimal_type)
    list_type = pa.list_(pa.int64())
    schema = pa.schema(
        [
            pa.field("longCol", pa.int64(), nullable=False),
            pa.field("intCol", pa.int32()),
            pa.field("floatCol", pa.float32()),
            pa.field("doubleCol", pa.float64()),
            pa.field("dateCol", pa.date32()),
            pa.field("timestampCol", pa.timestamp("us", tz="UTC")),
            pa.field("stringCol", pa.string()),
            pa.field("booleanCol", pa.bool_()),
            pa.field("binaryCol", pa.binary()),
            pa.field("byteCol", pa.int32()),
            pa.field("decimalCol", decimal_type),
            pa.field("shortCol", pa.int32()),
            pa.field("mapCol", map_type),
            pa.field("arrayCol", list_type),
            pa.field("structCol", pa.struct([pa.field("mapCol", map_type), pa.field("arrayCol", list_type)])),
        ]
    )
    day = datetime.date.today() + datetime.timedelta(days=1)
    rows = []
    for n in range(5):
        amount = decimal.Decimal(n).quantize(decimal.Decimal("0.01"))
        rows.append(
            {
                "longCol": n, "intCol": n, "floatCol": float(n), "doubleCol": float(n), "dateCol": day,
                "timestampCol": datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc),
                "stringCol": day.isoformat(), "booleanCol": n > 5, "binaryCol": n.to_bytes(8, "big"),
                "byteCol": n, "decimalCol": amount, "shortCol": n, "mapCol": [(n, amount)], "arrayCol": [n],
                "structCol": {"mapCol": [(n, amount)], "arrayCol": [n]},
            }
        )
    table = catalog.create_table("default.test_all_types", schema=schema, properties={"format-version": "2"})
    with table.update_spec() as update:
        update.add_identity("intCol")
    table.append(pa.Table.from_pylist(rows, schema=schema))
    catalog.create_table(
        "default.test_table_version",
        schema=pa.schema([pa.field("dt", pa.date32()), pa.field("number", pa.int32()), pa.field("letter", pa.string())]),
        properties={"format-version": "1"},
    )

    table = catalog.create_table("default.test_table_add_column", schema=pa.schema([pa.field("a", pa.string())]))
    table.append(pa.table({"a": ["1"]}))
    with table.update_schema() as update:
        update.add_column("b", StringType())
    table.append(pa.table({"a": ["2"], "b": ["2"]}))

    tables = ", ".join(sorted(".".join(identifier) for identifier in catalog.list_tables("default")))
    print(f"provisioned {uri}: namespace default, tables {tables}")
    return 0


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-port", help="fail if localhost:PORT is in use").add_argument("port", type=int)
    commands.add_parser("provision", help="create what the suite expects").add_argument("uri")
    args = parser.parse_args()
    if args.command == "check-port":
        return check_port(args.port)
    return provision(args.uri)


if __name__ == "__main__":
    sys.exit(_main())
