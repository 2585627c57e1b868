"""schemathesis fuzzes every Floe-served operation of both OpenAPI documents on `--auth oauth2`.

Two callers, each over both documents (catalog/rest-catalog-open-api.yaml and management-api.yaml):
first a principal holding only `read` on one namespace, then the administrator. Whatever the
generated paths, queries and bodies, no answer may be a 5xx (`not_a_server_error`), and the
low-privilege caller may get a 2xx only where its grant allows it (`no_success_beyond_grants` in
fuzz_hooks.py). The operations Floe does not serve (test_auth_routes.py's NOT_SERVED) are left out.

The administrator's run on the management API takes away access (deletes principals and roles,
revokes grants, rotates secrets) with names schemathesis learns from earlier responses: given the
chance it deletes the role `admin` and locks itself out. So the operations that take access away run
last, in a run of their own, and 403s after a lock-out there are expected.

The runs are bounded by `--max-examples` (the total must reach MIN_REQUESTS) and use one worker,
so that CI spends about a minute or two here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Generator, Sequence
from pathlib import Path

import pytest

from auth_support import AuthAdmin, Principal
from floe_server import FloeServer

REPO_ROOT = Path(__file__).resolve().parents[2]
REST_SPEC = REPO_ROOT / "catalog" / "rest-catalog-open-api.yaml"
MANAGEMENT_SPEC = REPO_ROOT / "catalog" / "management-api.yaml"
# The spec's operations Floe does not serve (they answer 404: test_auth_routes.py).
NOT_SERVED_REGEX = r"/functions|/plan|/tasks$|/unregister$|/credentials$|/register-view$"
# The management operations that take access away (see above): the administrator's last run.
TAKES_ACCESS_AWAY = [
    "DELETE /management/v1/principals/{principal}",
    "POST /management/v1/principals/{principal}/rotate-secret",
    "DELETE /management/v1/roles/{role}",
    "DELETE /management/v1/roles/{role}/principals/{principal}",
    "POST /management/v1/grants/revoke",
]
MAX_EXAMPLES = 30  # per operation and run
MIN_REQUESTS = 5000  # over the four runs
RUN_TIMEOUT_SECONDS = 600
GRANTED_NAMESPACE = "fuzz_ro"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, floe_log_dir: Path) -> Generator[FloeServer, None, None]:
    """A server of its own: the administrator's run creates and drops whatever it generates."""
    server = FloeServer(
        tmp_path_factory.mktemp("floe-fuzz-data"), floe_log_dir / "floe-pytest-fuzz.log", extra_args=["--auth", "oauth2"]
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def reader(fuzz_server: FloeServer) -> Principal:
    """A principal with `read` on namespace fuzz_ro (which holds a table) and nothing else."""
    admin = AuthAdmin(fuzz_server)
    admin.request("POST", "/v1/main/namespaces", expect=200, json={"namespace": [GRANTED_NAMESPACE]})
    admin.request(
        "POST",
        f"/v1/main/namespaces/{GRANTED_NAMESPACE}/tables",
        expect=200,
        json={"name": "t", "schema": {"type": "struct", "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]}},
    )
    principal = admin.principal_with([("read", f"namespace:main:{GRANTED_NAMESPACE}")], prefix="reader")
    admin.wait_for_policy()
    return principal


def schemathesis_run(
    server: FloeServer,
    spec: Path,
    token: str,
    work_dir: Path,
    granted_namespace: str = "",
    filters: Sequence[str] = (),
    phases: str = "examples,coverage,fuzzing",
) -> int:
    """Runs the schemathesis CLI on `spec` against `server` with `token` (and more filter options);
    fails the test on any failed check. Returns how many requests it sent."""
    count_file = work_dir / f"count-{len(list(work_dir.glob('count-*')))}"
    command = [
        str(Path(sys.executable).with_name("schemathesis")), "run", str(spec),
        "--url", server.uri,
        "--header", f"Authorization: Bearer {token}",
        "--checks", "not_a_server_error,no_success_beyond_grants",
        "--phases", phases,
        "--max-examples", str(MAX_EXAMPLES),
        "--workers", "1",
        "--seed", "20261207",
        "--exclude-path-regex", NOT_SERVED_REGEX,
        "--suppress-health-check", "all",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--no-color",
        *filters,
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parent),
        "SCHEMATHESIS_HOOKS": "fuzz_hooks",
        "FLOE_FUZZ_COUNT_FILE": str(count_file),
        "FLOE_FUZZ_GRANTED_NAMESPACE": granted_namespace,
    }
    result = subprocess.run(
        command, cwd=work_dir, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis on {spec.name} failed (exit {result.returncode}):\n{output[-20000:]}"
    return int(count_file.read_text())


def test_fuzzing_finds_no_server_error_and_no_success_beyond_grants(
    fuzz_server: FloeServer, reader: Principal, tmp_path: Path
) -> None:
    started = time.monotonic()
    counts = {}
    for spec in (REST_SPEC, MANAGEMENT_SPEC):
        # Most of the reader's requests stop at the middleware's 403: random fuzzing is enough there; the
        # coverage phase's thousands of boundary cases go to the administrator, whose requests reach handlers.
        counts[f"{spec.name} as reader"] = schemathesis_run(
            fuzz_server, spec, reader.token, tmp_path, GRANTED_NAMESPACE, phases="examples,fuzzing"
        )
    admin_token = fuzz_server.token()
    counts[f"{REST_SPEC.name} as admin"] = schemathesis_run(fuzz_server, REST_SPEC, admin_token, tmp_path)
    keeps_access = [option for name in TAKES_ACCESS_AWAY for option in ("--exclude-name", name)]
    # The management API is small: examples and random fuzzing cover it (its coverage phase once
    # ended in a schemathesis runtime error of its own).
    counts[f"{MANAGEMENT_SPEC.name} as admin"] = schemathesis_run(
        fuzz_server, MANAGEMENT_SPEC, admin_token, tmp_path, filters=keeps_access, phases="examples,fuzzing"
    )
    takes_access = [option for name in TAKES_ACCESS_AWAY for option in ("--include-name", name)]
    counts[f"{MANAGEMENT_SPEC.name} as admin, taking access away"] = schemathesis_run(
        fuzz_server, MANAGEMENT_SPEC, admin_token, tmp_path, filters=takes_access, phases="examples,fuzzing"
    )
    total = sum(counts.values())
    print(f"schemathesis: {total} requests in {time.monotonic() - started:.0f}s: {counts}")
    assert total >= MIN_REQUESTS, counts
    assert fuzz_server.is_running(), fuzz_server.log_tail()
