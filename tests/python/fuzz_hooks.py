"""schemathesis hooks for test_auth_fuzz.py (loaded with SCHEMATHESIS_HOOKS=fuzz_hooks).

- Counts every request schemathesis sends and writes the count to `$FLOE_FUZZ_COUNT_FILE` at exit, so
  the test can tell how many requests a run made.
- The check `no_success_beyond_grants`: when `$FLOE_FUZZ_GRANTED_NAMESPACE` names the one namespace of
  warehouse `main` on which the caller holds `read` (and nothing else), a 2xx answer to anything that
  grant does not allow fails the run.
"""

from __future__ import annotations

import atexit
import os
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Optional

import schemathesis

WAREHOUSE = "main"
NAMESPACE_SEPARATOR = "\x1f"

_lock = threading.Lock()
_requests = 0


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    global _requests
    with _lock:
        _requests += 1


@atexit.register
def _write_count() -> None:
    if path := os.environ.get("FLOE_FUZZ_COUNT_FILE"):
        Path(path).write_text(str(_requests))


def _text(value: Any) -> str:
    return urllib.parse.unquote(str(value))


def read_only_may_succeed(method: str, template: str, params: dict[str, Any], query: dict[str, Any], granted: str) -> bool:
    """Whether `read` on namespace `granted` of `main` (and nothing more) allows `method template`
    with these parameters (docs/security.md's route table)."""

    def in_granted(raw: Optional[Any]) -> bool:
        return raw is not None and _text(raw).split(NAMESPACE_SEPARATOR)[0] == granted

    if (method, template) in {("POST", "/v1/oauth/tokens"), ("GET", "/management/v1/openapi.yaml"), ("GET", "/v1/config")}:
        return True
    if template.startswith("/management/v1/warehouses/{warehouse}/namespaces/"):
        # Maintenance settings: reading them needs read; changing them needs maintain.
        return method == "GET" and _text(params.get("warehouse")) == WAREHOUSE and in_granted(params.get("namespace"))
    if not template.startswith("/v1/{prefix}/") or _text(params.get("prefix")) != WAREHOUSE:
        return False
    if template == "/v1/{prefix}/namespaces":
        # The warehouse can be seen (something inside it is granted); other parents only under the grant.
        return method == "GET" and (query.get("parent") is None or in_granted(query.get("parent")))
    # Reporting metrics and signing an object-store read need only `read` on the table.
    reads = method in {"GET", "HEAD"} or (
        method == "POST" and template.endswith(("/tables/{table}/metrics", "/tables/{table}/sign"))
    )
    return reads and template.startswith("/v1/{prefix}/namespaces/{namespace}") and in_granted(params.get("namespace"))


@schemathesis.check
def no_success_beyond_grants(ctx: Any, response: Any, case: Any) -> Optional[bool]:
    granted = os.environ.get("FLOE_FUZZ_GRANTED_NAMESPACE")
    if not granted or not 200 <= response.status_code < 300:
        return None
    if not read_only_may_succeed(case.method.upper(), case.path, case.path_parameters or {}, case.query or {}, granted):
        raise AssertionError(
            f"{case.method} {case.path} answered {response.status_code} to a principal with only read on "
            f"namespace:{WAREHOUSE}:{granted} (path {case.path_parameters}, query {case.query})"
        )
    return None
