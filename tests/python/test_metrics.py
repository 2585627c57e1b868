"""`/metrics` after a known sequence shows exactly that sequence, parsed with Prometheus' own text
parser (`prometheus_client`), never grepped.

The table and its small data files are written by PyIceberg first; a scrape then takes a baseline, and
the sequence that follows (loads, commits, one conflict from a stale requirement, a compaction by the
server's scheduler) must move each series by exactly its own count. The server's warehouse defaults
turn maintenance off, so nothing runs until the sequence turns compaction on for the one table.

Also: every metric name the Grafana dashboard (docs/grafana/floe.json) queries exists in the output.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import rest_catalog, unique_name
from floe_server import FloeServer

REPO_ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = REPO_ROOT / "docs" / "grafana" / "floe.json"
TIMEOUT = 30

APPENDS = 3  # small data files the compaction rewrites into one
LOADS = 3
COMMITS = 2

TABLE_ROUTE = "/v1/{prefix}/namespaces/{namespace}/tables/{table}"
SETTINGS_ROUTE = "/management/v1/warehouses/{warehouse}/namespaces/{namespace}/tables/{table}/maintenance"
JOBS_ROUTE = "/management/v1/maintenance/jobs"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(uri: str) -> tuple[Samples, set[str]]:
    """Every sample of `/metrics`, keyed by (sample name, labels), and every family's name."""
    response = requests.get(f"{uri}/metrics", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    families: set[str] = set()
    for family in text_string_to_metric_families(response.text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, families


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of a series over all its label values."""
    return sum(v for (sample, _), v in samples.items() if sample == name)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture()
def server(tmp_path: Path, floe_log_dir: Path) -> Iterator[FloeServer]:
    config = tmp_path / "floe.toml"
    config.write_text('[maintenance-defaults]\n"floe.maintenance.enabled" = "false"\n')
    with FloeServer(
        tmp_path / "data",
        floe_log_dir / f"floe-metrics-{tmp_path.name}.log",
        extra_args=["--config", str(config), "--maintenance-interval-ms", "200"],
    ) as server:
        yield server


def test_metrics_count_exactly_the_requests_commits_conflict_and_compaction(server: FloeServer) -> None:
    uri = server.uri
    catalog = rest_catalog(uri)
    namespace = unique_name("metrics")
    catalog.create_namespace(namespace)
    table = catalog.create_table(f"{namespace}.events", schema=pa.schema([("id", pa.int64()), ("name", pa.string())]))
    for batch in range(APPENDS):
        table.append(pa.table({"id": [batch * 10 + i for i in range(10)], "name": [f"n{i}" for i in range(10)]}))
    data_bytes = sum(table.inspect.files().column("file_size_in_bytes").to_pylist())
    assert len(table.inspect.files()) == APPENDS

    before, _ = scrape(uri)
    table_url = f"{uri}/v1/{server.prefix}/namespaces/{namespace}/tables/events"
    session = requests.Session()

    for _ in range(LOADS):
        assert session.get(table_url, timeout=TIMEOUT).status_code == 200
    loaded = session.get(table_url, timeout=TIMEOUT).json()
    table_uuid = loaded["metadata"]["table-uuid"]
    current_schema = loaded["metadata"]["current-schema-id"]
    for commit in range(COMMITS):
        body = {
            "requirements": [{"type": "assert-table-uuid", "uuid": table_uuid}],
            "updates": [{"action": "set-properties", "updates": {"touched": str(commit)}}],
        }
        response = session.post(table_url, json=body, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
    stale = {
        "requirements": [{"type": "assert-current-schema-id", "current-schema-id": current_schema + 1}],
        "updates": [{"action": "set-properties", "updates": {"lost": "yes"}}],
    }
    conflict = session.post(table_url, json=stale, timeout=TIMEOUT)
    assert conflict.status_code == 409, conflict.text
    assert conflict.json()["error"]["type"] == "CommitFailedException"

    settings = {
        "updates": {
            "floe.maintenance.enabled": "true",
            "floe.maintenance.compaction.enabled": "true",
            "floe.maintenance.compaction.min-input-files": "2",
            "floe.maintenance.snapshot-expiry.enabled": "false",
            "floe.maintenance.manifest-rewrite.enabled": "false",
            "floe.maintenance.unreferenced-files.enabled": "false",
            "floe.maintenance.scrub.enabled": "false",
        }
    }
    settings_url = f"{uri}/management/v1/warehouses/{server.prefix}/namespaces/{namespace}/tables/events/maintenance"
    response = session.post(settings_url, json=settings, timeout=TIMEOUT)
    assert response.status_code == 200, response.text

    polls = 0
    job: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while not job:
        assert time.monotonic() < deadline, "the scheduler did not compact the table within 60 s"
        polls += 1
        jobs = session.get(f"{uri}{JOBS_ROUTE}", params={"kind": "compaction"}, timeout=TIMEOUT)
        assert jobs.status_code == 200, jobs.text
        job = next((j for j in jobs.json()["jobs"] if j["table"] == "events"), {})
        if not job:
            time.sleep(0.2)
    assert job["outcome"] == "succeeded", job
    assert int(job["stats"]["files-in"]) == APPENDS
    assert int(job["stats"]["files-out"]) == 1
    compaction_commits = int(job["stats"]["commits"])
    assert compaction_commits == 1

    after, _ = scrape(uri)

    # Requests: by route template and status, and nothing else.
    http = "floe_http_requests_total"
    assert delta(before, after, http, method="GET", route=TABLE_ROUTE, status="200") == LOADS + 1
    assert delta(before, after, http, method="POST", route=TABLE_ROUTE, status="200") == COMMITS
    assert delta(before, after, http, method="POST", route=TABLE_ROUTE, status="409") == 1
    assert delta(before, after, http, method="POST", route=SETTINGS_ROUTE, status="200") == 1
    assert delta(before, after, http, method="GET", route=JOBS_ROUTE, status="200") == polls
    assert delta(before, after, http, method="GET", route="/metrics", status="200") == 1  # the baseline
    requests_made = LOADS + 1 + COMMITS + 1 + 1 + polls + 1
    assert total(after, http) - total(before, http) == requests_made
    # Each request is timed once.
    duration_count = "floe_http_request_duration_seconds_count"
    assert delta(before, after, duration_count, method="POST", route=TABLE_ROUTE) == COMMITS + 1
    assert total(after, duration_count) - total(before, duration_count) == requests_made

    # Commits: the two, the settings update, the compaction; the stale requirement's conflict; no
    # retries and no failures (nothing raced).
    assert delta(before, after, "floe_commits_total", outcome="committed") == COMMITS + 1 + compaction_commits
    assert delta(before, after, "floe_commits_total", outcome="conflict") == 1
    assert delta(before, after, "floe_commits_total", outcome="failed") == 0
    assert delta(before, after, "floe_commit_retries_total") == 0
    # Every pointer swap is timed: one per successful commit (the conflict failed before its swap).
    assert delta(before, after, "floe_commit_swap_duration_seconds_count") == COMMITS + 1 + compaction_commits

    # Maintenance: one compaction, which rewrote the appended files into one.
    jobs_total = "floe_maintenance_jobs_total"
    assert delta(before, after, jobs_total, kind="compaction", outcome="succeeded") == 1
    assert total(after, jobs_total) - total(before, jobs_total) == 1
    files = "floe_maintenance_files_total"
    assert delta(before, after, files, kind="compaction", action="rewritten") == APPENDS
    assert delta(before, after, files, kind="compaction", action="written") == 1
    assert delta(before, after, "floe_maintenance_bytes_total", kind="compaction", action="rewritten") == data_bytes
    assert (
        delta(before, after, "floe_maintenance_bytes_total", kind="compaction", action="written")
        == int(job["stats"]["bytes-out"])
    )

    # Auth is off: every request of the sequence was decided, and allowed.
    assert delta(before, after, "floe_auth_decisions_total", decision="allowed") == requests_made
    assert delta(before, after, "floe_auth_decisions_total", decision="denied") == 0
    assert delta(before, after, "floe_auth_decisions_total", decision="unauthenticated") == 0

    # Series read at scrape time, and series that only move: present, and sane.
    pool = value(after, "floe_store_connections", state="in_use") + value(after, "floe_store_connections", state="idle")
    assert 0 < pool <= value(after, "floe_store_max_connections")
    for kind in ("missing", "size-mismatch"):
        assert value(after, "floe_scrub_findings_open", kind=kind) == 0
    assert delta(before, after, "floe_object_store_operations_total", operation="put") > 0
    assert value(after, "floe_object_store_errors_total", operation="put") == 0
    assert value(after, "floe_metadata_cache_hits_total") > 0
    assert value(after, "floe_metadata_cache_bytes") > 0
    assert value(after, "floe_commit_integrity_failures_total") == 0


def dashboard_metric_names() -> set[str]:
    """Every metric name the dashboard's queries use."""
    dashboard = json.loads(DASHBOARD.read_text())
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            expression = node.get("expr")
            if isinstance(expression, str):
                names.update(re.findall(r"\bfloe_[a-z_]+", expression))
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(dashboard)
    return names


def test_every_metric_the_dashboard_queries_is_exported(floe_server: FloeServer) -> None:
    names = dashboard_metric_names()
    assert len(names) >= 10, names
    # Histograms appear with their first observation: a table created and written gives every one
    # of them some (requests, pointer swaps, object-store calls, store connections).
    catalog = rest_catalog(floe_server.uri)
    namespace = unique_name("dashboard")
    catalog.create_namespace(namespace)
    table = catalog.create_table(f"{namespace}.t", schema=pa.schema([("id", pa.int64())]))
    table.append(pa.table({"id": [1, 2, 3]}))
    # A histogram's family is named without its _bucket/_sum/_count; a counter's without _total.
    samples, families = scrape(floe_server.uri)
    exported = {name for name, _ in samples} | families
    missing = sorted(name for name in names if name not in exported)
    assert not missing, f"the dashboard queries series the server does not export: {missing}"
