"""DuckDB's side of benches/tpch.rs: runs the TPC-H queries in DuckDB over Floe's REST catalog.

Usage: `python duckdb_tpch.py JOB.json`, where the job (written by the bench) is

    {"uri": "http://127.0.0.1:<port>", "warehouse": "main", "namespace": "tpch", "runs": 3,
     "queries": [{"name": "q01", "sql": "select ..."}, ...]}

DuckDB 1.5.5 attaches the catalog as `ice` with the iceberg extension shipped by the
duckdb-extension-* wheels (loaded by path, nothing downloaded: the same way as
tests/compat/conftest.py), and `USE ice.<namespace>` so that the query texts name tables bare.

Each query runs once to warm up (its rows are kept, to compare with Floe's), then `runs` timed
times. One JSON line per query goes to stdout as soon as it is done:

    {"name": "q01", "first": 0.41, "seconds": [0.20, 0.19, 0.19], "rows": [[...], ...], "error": null}

Values are JSON: decimals as numbers, dates as ISO strings. A failing query has `error` set (the
first line of DuckDB's message) and the run goes on.
"""

from __future__ import annotations

import datetime
import decimal
import importlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

EXTENSIONS = ["httpfs", "avro", "iceberg"]  # iceberg last: it needs the other two


def extension_file(name: str) -> Path:
    package = Path(importlib.import_module(f"duckdb_extension_{name}").__path__[0])
    files = sorted(package.glob(f"extensions/*/{name}.duckdb_extension"))
    if len(files) != 1:
        raise SystemExit(f"expected one {name}.duckdb_extension in {package}, found {files}")
    return files[0]


def plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "extension_directory": tempfile.mkdtemp(prefix="floe-duckdb-ext-"),
        }
    )
    for name in EXTENSIONS:
        con.execute(f"LOAD '{extension_file(name)}'")
    con.execute(
        f"ATTACH '{job['warehouse']}' AS ice "
        f"(TYPE ICEBERG, ENDPOINT '{job['uri']}', AUTHORIZATION_TYPE 'none')"
    )
    con.execute(f"USE ice.{job['namespace']}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    print(json.dumps({"duckdb": duckdb.__version__, "threads": threads}), flush=True)
    for query in job["queries"]:
        result: dict[str, Any] = {"name": query["name"], "first": None, "seconds": [], "rows": None, "error": None}
        try:
            started = time.perf_counter()
            rows = con.execute(query["sql"]).fetchall()
            result["first"] = time.perf_counter() - started
            result["rows"] = [[plain(value) for value in row] for row in rows]
            for _ in range(job["runs"]):
                started = time.perf_counter()
                con.execute(query["sql"]).fetchall()
                result["seconds"].append(time.perf_counter() - started)
        except Exception as err:  # noqa: BLE001 - any failure is reported and the run goes on
            message = str(err).strip().splitlines()
            result["error"] = f"{type(err).__name__}: {message[0] if message else ''}"
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
