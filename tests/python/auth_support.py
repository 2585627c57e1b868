"""Principals, roles and grants on a Floe started with `--auth oauth2`, for the auth tests.

`AuthAdmin(server)` talks to the management API as the first administrator (whose credential the
server wrote into its data dir). `principal_with(grants)` makes a fresh principal holding exactly
those grants (through a role of its own) and returns its credential and a token. Grants reach the
server's in-memory policy within a quarter of a second, not at once: `wait_for_policy()` waits until
every change made so far is in force (the policy moves as one version, so a change made last being
visible means all earlier ones are).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional

import requests

from floe_server import FloeServer, fetch_token

HTTP_TIMEOUT_SECONDS = 30
POLICY_WAIT_SECONDS = 15.0

# Every privilege, weakest first (docs/security.md, crates/floe-auth/src/privilege.rs).
PRIVILEGES = ["read", "write", "create", "drop", "maintain", "manage-grants", "admin"]


def implies(held: str, wanted: str) -> bool:
    """Whether holding `held` is enough for what needs `wanted` (admin: everything; write: read too)."""
    return held == wanted or held == "admin" or (held == "write" and wanted == "read")


def all_but(privilege: str) -> list[str]:
    """Every privilege that does not give `privilege`: what a principal that must be refused may hold."""
    return [p for p in PRIVILEGES if not implies(p, privilege)]


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@dataclass
class Principal:
    name: str
    credential: str  # CLIENT_ID:SECRET
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class AuthAdmin:
    """The management API as the server's first administrator."""

    def __init__(self, server: FloeServer) -> None:
        self.server = server
        self.uri = server.uri
        self.token = server.token()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self._sentinel: Optional[tuple[str, Principal]] = None

    def request(self, method: str, path: str, expect: Optional[int] = None, **kwargs: Any) -> requests.Response:
        """`method {uri}{path}` as the administrator; with `expect`, fails unless that is the status."""
        kwargs.setdefault("timeout", HTTP_TIMEOUT_SECONDS)
        response = self.session.request(method, f"{self.uri}{path}", **kwargs)
        if expect is not None:
            assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def create_principal(self, name: str) -> str:
        """A new principal; returns its credential `CLIENT_ID:SECRET`."""
        body = self.request("POST", "/management/v1/principals", expect=201, json={"name": name}).json()
        return f"{body['client-id']}:{body['client-secret']}"

    def create_role(self, name: str) -> None:
        self.request("POST", "/management/v1/roles", expect=201, json={"name": name})

    def assign(self, role: str, principal: str) -> None:
        self.request("POST", f"/management/v1/roles/{role}/principals", expect=204, json={"principal": principal})

    def grant(self, role: str, privilege: str, on: str) -> None:
        self.request("POST", "/management/v1/grants", expect=204, json={"role": role, "privilege": privilege, "on": on})

    def principal_with(self, grants: list[tuple[str, str]], prefix: str = "p") -> Principal:
        """A fresh principal holding exactly `grants` ((privilege, securable) pairs) through its own role.
        The grants may not be in force yet: see `wait_for_policy`."""
        name = unique(prefix)
        credential = self.create_principal(name)
        role = f"{name}_role"
        self.create_role(role)
        self.assign(role, name)
        for privilege, on in grants:
            self.grant(role, privilege, on)
        return Principal(name, credential, fetch_token(self.uri, credential))

    def wait_for_policy(self, warehouse: str = "main") -> None:
        """Returns once every grant made so far decides requests: it grants a sentinel principal `read`
        on a namespace that does not exist and waits until asking for it is a 404 (allowed, missing)
        instead of a 403."""
        if self._sentinel is None:
            self._sentinel = (f"{unique('sentinel')}_role", Principal("", "", ""))
            role = self._sentinel[0]
            self.create_role(role)
            name = unique("sentinel")
            credential = self.create_principal(name)
            self.assign(role, name)
            self._sentinel = (role, Principal(name, credential, fetch_token(self.uri, credential)))
        role, sentinel = self._sentinel
        namespace = unique("barrier")
        self.grant(role, "read", f"namespace:{warehouse}:{namespace}")
        deadline = time.monotonic() + POLICY_WAIT_SECONDS
        while True:
            status = requests.head(
                f"{self.uri}/v1/{warehouse}/namespaces/{namespace}", headers=sentinel.headers(), timeout=HTTP_TIMEOUT_SECONDS
            ).status_code
            if status == 404:
                return
            assert status == 403, f"sentinel HEAD namespace answered {status}"
            assert time.monotonic() < deadline, f"a grant was not in force after {POLICY_WAIT_SECONDS}s"
            time.sleep(0.05)
