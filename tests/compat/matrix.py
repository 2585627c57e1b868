"""The engine x feature matrix of the compatibility harness: a pytest plugin (registered by conftest.py).

Every test carries `@pytest.mark.compat(...)` markers (the test's own, its parameters', its module's;
the closest one wins per keyword):

    engine   the column: the client that ran the feature ("spark", "duckdb", ..., "floe-sql" for Floe's
             own `floe sql`; for cross-engine tests the reader)
    feature  the row, e.g. "MERGE INTO ({mode})": `{name}` is filled from the test's parameters
    table    which table of the report the cell belongs to (default "Engine features")

At the end of the run the plugin prints the matrix (pass/fail/xfail/skip counts per cell) and, with
`--compat-doc PATH`, writes it as Markdown to PATH (scripts/test.sh writes docs/compatibility.md), with
the reason of every expected failure and the first line of every failure. A test's outcome is the worst
of its phases: an error in a fixture counts as a failure of the cells that needed it. Any test module
takes part through its markers; tests without one are named in the terminal summary, not in the matrix.
"""

from __future__ import annotations

import importlib.metadata
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

DEFAULT_TABLE = "Engine features"
ENGINE_ORDER = ["spark", "floe-sql", "pyiceberg", "duckdb", "daft", "polars"]
# Engines that are Floe's own (their expected failures are Floe's limitations, listed apart from the clients').
FLOE_ENGINES = {"floe-sql"}
OUTCOMES = ["passed", "failed", "xfailed", "skipped"]
# Worst first: the outcome a test gets when its phases disagree (e.g. passed call, failed teardown).
SEVERITY = {"failed": 0, "xfailed": 1, "skipped": 2, "passed": 3}
PACKAGES = [
    "pyspark",
    "duckdb",
    "duckdb-extension-iceberg",
    "pyiceberg",
    "pyarrow",
    "daft",
    "polars",
]


@dataclass
class Cell:
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def text(self) -> str:
        total = sum(self.counts.values())
        if total == 0:
            return ""
        passed, failed = self.counts["passed"], self.counts["failed"]
        xfailed, skipped = self.counts["xfailed"], self.counts["skipped"]
        if passed == total:
            return f"pass {passed}" if total > 1 else "pass"
        parts = []
        if failed:
            parts.append(f"FAIL {failed}")
        if xfailed:
            parts.append(f"xfail {xfailed}")
        if skipped:
            parts.append(f"skip {skipped}")
        if passed:
            parts.append(f"pass {passed}")
        return ", ".join(parts)


@dataclass
class Outcome:
    nodeid: str
    table: str
    engine: str
    feature: str
    outcome: str = "passed"
    detail: str = ""


def cell_of(item: pytest.Item) -> Optional[tuple[str, str, str]]:
    """(table, engine, feature) of a test from its `compat` markers, or None if it has none."""
    values: dict[str, str] = {}
    for marker in item.iter_markers("compat"):  # closest first
        for key, value in marker.kwargs.items():
            values.setdefault(key, value)
    if "engine" not in values or "feature" not in values:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    params = {key: getattr(value, "name", value) for key, value in params.items()}
    return (
        values.get("table", DEFAULT_TABLE).format(**params),
        values["engine"].format(**params),
        values["feature"].format(**params),
    )


def first_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:240] if lines else ""


class CompatMatrix:
    def __init__(self, doc_path: Optional[Path]) -> None:
        self.doc_path = doc_path
        self.outcomes: dict[str, Outcome] = {}
        self.untagged: list[str] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        self.record(item, report)
        return report

    def record(self, item: pytest.Item, report: pytest.TestReport) -> None:
        cell = cell_of(item)
        if cell is None:
            if report.when == "call" and item.nodeid not in self.untagged:
                self.untagged.append(item.nodeid)
            return
        entry = self.outcomes.setdefault(item.nodeid, Outcome(item.nodeid, *cell))
        if hasattr(report, "wasxfail"):  # xfailed, or passed although marked xfail (not strict)
            outcome = "xfailed" if report.skipped else "passed"
            detail = report.wasxfail
        elif report.failed:  # including a strict xfail that passed ("[XPASS(strict)] reason")
            outcome, detail = "failed", first_line(report)
        elif report.skipped:
            outcome = "skipped"
            detail = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
        else:
            outcome, detail = "passed", ""
        if SEVERITY[outcome] < SEVERITY[entry.outcome]:
            entry.outcome, entry.detail = outcome, detail

    def tables(self) -> dict[str, tuple[list[str], list[str], dict[tuple[str, str], Cell]]]:
        """Per report table: its engines (columns), features (rows, in test order) and cells."""
        result: dict[str, tuple[list[str], list[str], dict[tuple[str, str], Cell]]] = {}
        for entry in self.outcomes.values():
            engines, features, cells = result.setdefault(entry.table, ([], [], defaultdict(Cell)))
            if entry.engine not in engines:
                engines.append(entry.engine)
            if entry.feature not in features:
                features.append(entry.feature)
            cells[(entry.feature, entry.engine)].counts[entry.outcome] += 1
        for engines, _, _ in result.values():
            engines.sort(key=engine_order)
        return result

    def totals(self, engine: Optional[str] = None, table: Optional[str] = None) -> dict[str, int]:
        """Outcome counts of one engine's tests, or one table's, or (neither given) all."""
        counts = {outcome: 0 for outcome in OUTCOMES}
        for entry in self.outcomes.values():
            if engine in (None, entry.engine) and table in (None, entry.table):
                counts[entry.outcome] += 1
        return counts

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.outcomes:
            return
        write = terminalreporter.write_line
        terminalreporter.section("compatibility matrix")
        for title, (engines, features, cells) in self.tables().items():
            width = max(len(f) for f in features) + 2
            col = max(14, *(len(e) + 2 for e in engines))
            write("")
            write(title)
            write("".ljust(width) + "".join(e.ljust(col) for e in engines))
            for feature in features:
                write(feature.ljust(width) + "".join((cells[(feature, e)].text() or "-").ljust(col) for e in engines))
        write("")
        engines = sorted({e.engine for e in self.outcomes.values()}, key=engine_order)
        for engine in engines:
            counts = self.totals(engine)
            write(f"{engine}: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES))
        for title in self.tables():
            counts = self.totals(table=title)
            write(f"table {short_title(title)!r}: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES))
        if self.untagged:
            write(f"tests without a compat marker (not in the matrix): {', '.join(self.untagged)}")
        if self.doc_path is not None:
            self.doc_path.parent.mkdir(parents=True, exist_ok=True)
            self.doc_path.write_text(self.markdown())
            write(f"wrote {self.doc_path}")

    def markdown(self) -> str:
        out = [
            "# Client compatibility",
            "",
            "<!-- Generated by tests/compat (scripts/test.sh compat writes it); do not edit by hand. -->",
            "",
            "What real Iceberg clients do against Floe's REST catalog, as tested by `tests/compat` "
            "(one Floe server with its embedded metadata store, `file://` warehouse; the DuckDB-on-S3 table: Floe "
            "with an `s3://` warehouse on SeaweedFS, `tests/compat/test_duckdb_s3.py`; the PostgreSQL tables: two "
            "`floe serve` replicas on one PostgreSQL metadata store (`--metastore`) sharing one `file://` warehouse, "
            "Spark through replica A and PyIceberg, DuckDB and `floe sql` through replica B, so that every read "
            "after a write crosses replicas, `tests/compat/test_postgres_setup.py`: it runs every Spark test of "
            "the first table again there). `floe-sql` is Floe's own SQL client, the real "
            "`floe sql --catalog <server>` binary of this source tree. A cell counts the tests of that feature for "
            "that engine: `pass`, `FAIL` (a failure, listed below), `xfail` (an expected failure: a known limitation "
            "of the client or of this machine, not of Floe's catalog; in the `floe-sql` column a limitation of "
            "`floe sql` itself, listed apart; reasons below), `skip`. How each engine writes its tables for the "
            "cross-engine reads (its own DDL, deletes and schema changes, or PyIceberg's where it has none) is "
            "described in `tests/compat/test_cross_engine.py` (and, for `floe sql`, `test_daft_polars.py`); how "
            "Spark writes its merge-on-read tables (position deletes, equality deletes through the Iceberg Java API, "
            "deletion vectors) in `tests/compat/test_spark_mor.py`. PyIceberg's own features are tested by "
            "`tests/python` and PyIceberg's suite (`scripts/test.sh python pyiceberg`).",
            "",
            "Client versions: "
            + ", ".join(f"{name} {version(name)}" for name in PACKAGES)
            + ", Iceberg Spark runtime 1.10.2 (Spark 3.5, Scala 2.12)"
            + f"; PostgreSQL {postgres_version()} (the PostgreSQL set-up).",
            "",
            "| engine | pass | fail | xfail | skip |",
            "|---|---|---|---|---|",
        ]
        engines = sorted({e.engine for e in self.outcomes.values()}, key=engine_order)
        for engine in engines:
            counts = self.totals(engine)
            out.append(f"| {engine} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
        out += ["", "| table | pass | fail | xfail | skip |", "|---|---|---|---|---|"]
        for title in self.tables():
            counts = self.totals(table=title)
            out.append(f"| [{short_title(title)}](#{anchor(title)}) | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
        for title, (engines, features, cells) in self.tables().items():
            out += ["", f"## {title}", "", "| feature | " + " | ".join(engines) + " |"]
            out.append("|---" * (len(engines) + 1) + "|")
            for feature in features:
                row = [cells[(feature, e)].text() or "–" for e in engines]
                out.append(f"| {feature} | " + " | ".join(row) + " |")
        sections = [
            ("Failures", lambda e: e.outcome == "failed"),
            ("Known client limitations (xfail)", lambda e: e.outcome == "xfailed" and e.engine not in FLOE_ENGINES),
            (
                "Known limitations of floe sql (xfail: Floe's own, to be fixed in Floe)",
                lambda e: e.outcome == "xfailed" and e.engine in FLOE_ENGINES,
            ),
        ]
        for heading, selected in sections:
            entries = [e for e in self.outcomes.values() if selected(e)]
            if entries:
                out += ["", f"## {heading}", ""]
                out += [f"- `{e.nodeid}`: {markdown_text(e.detail)}" for e in entries]
        return "\n".join(out) + "\n"


def markdown_text(text: str) -> str:
    """Plain text safe in a Markdown list item (no HTML tags, no table pipes)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "/")


def short_title(title: str) -> str:
    """A table's title without a long parenthetical (the cross-engine tables explain their rows and columns)."""
    return title if len(title) <= 60 else title.split(" (")[0]


def anchor(title: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, spaces to '-', punctuation dropped."""
    kept = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def postgres_version() -> str:
    try:
        from postgres import server_version  # tests/compat/postgres.py
    except ImportError:
        return "(not installed)"
    return server_version() or "(not installed)"


def engine_order(engine: str) -> tuple[int, str]:
    return (ENGINE_ORDER.index(engine) if engine in ENGINE_ORDER else len(ENGINE_ORDER), engine)


def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"
