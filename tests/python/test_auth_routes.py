"""Every operation of both OpenAPI documents against `floe serve --auth oauth2`, from one table.

The documents are the Iceberg REST spec (catalog/rest-catalog-open-api.yaml, a copy of Apache
Iceberg's) and Floe's management API (catalog/management-api.yaml). `ROUTES` maps each of their
(method, path) operations to how to call it (fresh resources made by the administrator, a valid body),
what it needs (docs/security.md's route → privilege table) and the status it answers on success; or to
`NOT_SERVED` for the spec's operations Floe does not serve yet. An operation of the documents missing
from the table fails `test_every_documented_operation_is_in_the_table`.

For each served operation: without a token, 401 (`NotAuthorizedException`, `WWW-Authenticate: Bearer`);
as a principal that holds every privilege except the one needed, on the very securable it needs it on,
403 (`ForbiddenException`); as one that holds just what is needed, the success status. Public routes
answer without a token. Operations not served answer 404 with or without a token (the router has no
such route, so there is nothing to authorize: the 404 says nothing about any table or namespace).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import pytest
import requests
import yaml

from auth_support import AuthAdmin, Principal, all_but, unique
from floe_server import FloeServer

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO_ROOT / "catalog" / "rest-catalog-open-api.yaml", REPO_ROOT / "catalog" / "management-api.yaml"]
HTTP_METHODS = {"get", "put", "post", "delete", "head", "patch", "options", "trace"}
WAREHOUSE = "main"  # the default warehouse's REST prefix

PUBLIC = "public"  # needs nothing
AUTHENTICATED = "authenticated"  # needs any valid token


@dataclass
class Need:
    """`privilege` on `securable`; privilege `see` means "may see it exists" (any privilege on, above or inside it)."""

    privilege: str
    securable: str


@dataclass
class Call:
    """One concrete request of an operation, and what it needs."""

    method: str
    path: str
    needs: Union[str, list[Need]]
    status: int
    json: Any = None
    form: Optional[dict[str, str]] = None
    params: dict[str, str] = field(default_factory=dict)


NOT_SERVED = "not served"


# ------------------------------------------------------------------------------------ fresh resources


class Resources:
    """Namespaces, tables, views and more, made fresh for one call by the administrator."""

    def __init__(self, admin: AuthAdmin) -> None:
        self.admin = admin

    def namespace(self) -> str:
        name = unique("ns")
        self.admin.request("POST", f"/v1/{WAREHOUSE}/namespaces", expect=200, json={"namespace": [name]})
        return name

    def table(self, namespace: str) -> str:
        name = unique("t")
        self.admin.request("POST", f"/v1/{WAREHOUSE}/namespaces/{namespace}/tables", expect=200, json=table_body(name))
        return name

    def view(self, namespace: str) -> str:
        name = unique("v")
        self.admin.request(
            "POST", f"/v1/{WAREHOUSE}/namespaces/{namespace}/views", expect=200, json=view_body(namespace, name)
        )
        return name

    def dropped_table_metadata(self, namespace: str) -> str:
        """The metadata file of a table that was dropped without purge (its files stay): registrable."""
        table = self.table(namespace)
        path = f"/v1/{WAREHOUSE}/namespaces/{namespace}/tables/{table}"
        location = self.admin.request("GET", path, expect=200).json()["metadata-location"]
        self.admin.request("DELETE", path, expect=204)
        return str(location)

    def warehouse(self) -> str:
        name = unique("wh")
        self.admin.request("POST", "/management/v1/warehouses", expect=201, json=warehouse_body(self.admin.server, name))
        return name

    def principal(self) -> str:
        name = unique("someone")
        self.admin.create_principal(name)
        return name

    def role(self) -> str:
        name = unique("role")
        self.admin.create_role(name)
        return name


def table_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "schema": {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]},
    }


def view_body(namespace: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "schema": {"type": "struct", "schema-id": 0, "fields": [{"id": 1, "name": "id", "type": "long", "required": False}]},
        "view-version": {
            "version-id": 1,
            "schema-id": 0,
            "timestamp-ms": int(time.time() * 1000),
            "summary": {"engine-name": "floe-auth-tests"},
            "representations": [{"type": "sql", "sql": "SELECT 1 AS id", "dialect": "spark"}],
            "default-namespace": [namespace],
        },
        "properties": {},
    }


def warehouse_body(server: FloeServer, name: str) -> dict[str, Any]:
    return {"name": name, "storage-url": f"file://{server.data_dir}/lake/{name}"}


SET_PROPERTY = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"touched": "yes"}}]}
MAINTENANCE_UPDATE = {"updates": {"floe.maintenance.compaction.min-input-files": "3"}}


def ns_path(namespace: str) -> str:
    return f"/v1/{WAREHOUSE}/namespaces/{namespace}"


def table_need(privilege: str, namespace: str, table: str) -> Need:
    return Need(privilege, f"table:{WAREHOUSE}:{namespace}.{table}")


def view_need(privilege: str, namespace: str, view: str) -> Need:
    return Need(privilege, f"view:{WAREHOUSE}:{namespace}.{view}")


def namespace_need(privilege: str, namespace: str) -> Need:
    return Need(privilege, f"namespace:{WAREHOUSE}:{namespace}")


# ------------------------------------------------------------------------------------ the route table


def table_call(method: str, privilege: str, status: int, suffix: str = "", body: Any = None) -> Callable[[Resources], Call]:
    def prepare(r: Resources) -> Call:
        ns = r.namespace()
        t = r.table(ns)
        return Call(method, f"{ns_path(ns)}/tables/{t}{suffix}", [table_need(privilege, ns, t)], status, json=body)

    return prepare


def view_call(method: str, privilege: str, status: int, body: Any = None) -> Callable[[Resources], Call]:
    def prepare(r: Resources) -> Call:
        ns = r.namespace()
        v = r.view(ns)
        return Call(method, f"{ns_path(ns)}/views/{v}", [view_need(privilege, ns, v)], status, json=body)

    return prepare


def namespace_call(method: str, privilege: str, status: int, suffix: str = "", body: Any = None) -> Callable[[Resources], Call]:
    def prepare(r: Resources) -> Call:
        ns = r.namespace()
        return Call(method, f"{ns_path(ns)}{suffix}", [namespace_need(privilege, ns)], status, json=body)

    return prepare


def admin_call(method: str, path: str, status: int, body: Any = None) -> Callable[[Resources], Call]:
    return lambda r: Call(method, path, [Need("admin", "server")], status, json=body)


def create_table(r: Resources) -> Call:
    ns = r.namespace()
    return Call("POST", f"{ns_path(ns)}/tables", [namespace_need("create", ns)], 200, json=table_body(unique("t")))


def register_table(r: Resources) -> Call:
    ns = r.namespace()
    body = {"name": unique("registered"), "metadata-location": r.dropped_table_metadata(ns)}
    return Call("POST", f"{ns_path(ns)}/register", [namespace_need("create", ns)], 200, json=body)


def rename(kind: str) -> Callable[[Resources], Call]:
    def prepare(r: Resources) -> Call:
        source_ns, destination_ns = r.namespace(), r.namespace()
        name = r.table(source_ns) if kind == "tables" else r.view(source_ns)
        need = table_need if kind == "tables" else view_need
        body = {
            "source": {"namespace": [source_ns], "name": name},
            "destination": {"namespace": [destination_ns], "name": unique("renamed")},
        }
        needs = [need("drop", source_ns, name), namespace_need("create", destination_ns)]
        return Call("POST", f"/v1/{WAREHOUSE}/{kind}/rename", needs, 204, json=body)

    return prepare


def commit_transaction(r: Resources) -> Call:
    ns = r.namespace()
    tables = [r.table(ns), r.table(ns)]
    body = {
        "table-changes": [
            {"identifier": {"namespace": [ns], "name": t}, **SET_PROPERTY} for t in tables
        ]
    }
    return Call("POST", f"/v1/{WAREHOUSE}/transactions/commit", [table_need("write", ns, t) for t in tables], 204, json=body)


def create_view(r: Resources) -> Call:
    ns = r.namespace()
    return Call("POST", f"{ns_path(ns)}/views", [namespace_need("create", ns)], 200, json=view_body(ns, unique("v")))


def create_namespace(r: Resources) -> Call:
    return Call(
        "POST", f"/v1/{WAREHOUSE}/namespaces", [Need("create", f"warehouse:{WAREHOUSE}")], 200,
        json={"namespace": [unique("ns")], "properties": {"owner": "tests"}},
    )


def get_token(r: Resources) -> Call:
    client_id, _, secret = (r.admin.server.admin_credential or "").partition(":")
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "catalog"}
    return Call("POST", "/v1/oauth/tokens", PUBLIC, 200, form=form)


def maintenance_table(method: str, privilege: str, body: Any = None) -> Callable[[Resources], Call]:
    def prepare(r: Resources) -> Call:
        ns = r.namespace()
        t = r.table(ns)
        path = f"/management/v1/warehouses/{WAREHOUSE}/namespaces/{ns}/tables/{t}/maintenance"
        return Call(method, path, [table_need(privilege, ns, t)], 200, json=body)

    return prepare


def maintenance_namespace(method: str, privilege: str, body: Any = None) -> Callable[[Resources], Call]:
    def prepare(r: Resources) -> Call:
        ns = r.namespace()
        path = f"/management/v1/warehouses/{WAREHOUSE}/namespaces/{ns}/maintenance"
        return Call(method, path, [namespace_need(privilege, ns)], 200, json=body)

    return prepare


def sql_query(r: Resources) -> Call:
    ns = r.namespace()
    t = r.table(ns)
    body = {"sql": f'SELECT count(*) AS n FROM "{ns}"."{t}"'}
    return Call("POST", f"/management/v1/warehouses/{WAREHOUSE}/sql", [table_need("read", ns, t)], 200, json=body)


def register_warehouse(r: Resources) -> Call:
    return admin_call("POST", "/management/v1/warehouses", 201, warehouse_body(r.admin.server, unique("wh")))(r)


def drop_warehouse(r: Resources) -> Call:
    return admin_call("DELETE", f"/management/v1/warehouses/{r.warehouse()}", 204)(r)


def delete_principal(r: Resources) -> Call:
    return admin_call("DELETE", f"/management/v1/principals/{r.principal()}", 204)(r)


def rotate_secret(r: Resources) -> Call:
    return admin_call("POST", f"/management/v1/principals/{r.principal()}/rotate-secret", 200)(r)


def delete_role(r: Resources) -> Call:
    return admin_call("DELETE", f"/management/v1/roles/{r.role()}", 204)(r)


def assign_role(r: Resources) -> Call:
    return admin_call("POST", f"/management/v1/roles/{r.role()}/principals", 204, {"principal": r.principal()})(r)


def unassign_role(r: Resources) -> Call:
    role, principal = r.role(), r.principal()
    r.admin.assign(role, principal)
    return admin_call("DELETE", f"/management/v1/roles/{role}/principals/{principal}", 204)(r)


def grant_call(revoke: bool) -> Callable[[Resources], Call]:
    def prepare(r: Resources) -> Call:
        ns, role = r.namespace(), r.role()
        grant = {"role": role, "privilege": "read", "on": f"namespace:{WAREHOUSE}:{ns}"}
        if revoke:
            r.admin.grant(role, "read", grant["on"])
        path = "/management/v1/grants/revoke" if revoke else "/management/v1/grants"
        return Call("POST", path, [namespace_need("manage-grants", ns)], 204, json=grant)

    return prepare


P = "/v1/{prefix}/namespaces/{namespace}"
T = P + "/tables/{table}"
V = P + "/views/{view}"
M = "/management/v1"

# (method, path of the document) → how to call it, or NOT_SERVED.
ROUTES: dict[tuple[str, str], Union[str, Callable[[Resources], Call]]] = {
    # --- the Iceberg REST spec
    ("GET", "/v1/config"): lambda r: Call("GET", "/v1/config", AUTHENTICATED, 200),
    ("POST", "/v1/oauth/tokens"): get_token,
    ("GET", "/v1/{prefix}/namespaces"): lambda r: Call(
        "GET", f"/v1/{WAREHOUSE}/namespaces", [Need("see", f"warehouse:{WAREHOUSE}")], 200
    ),
    ("POST", "/v1/{prefix}/namespaces"): create_namespace,
    ("GET", P): namespace_call("GET", "see", 200),
    ("HEAD", P): namespace_call("HEAD", "see", 204),
    ("DELETE", P): namespace_call("DELETE", "drop", 204),
    ("POST", P + "/properties"): namespace_call("POST", "write", 200, "/properties", {"updates": {"k": "v"}, "removals": []}),
    ("GET", P + "/tables"): namespace_call("GET", "see", 200, "/tables"),
    ("POST", P + "/tables"): create_table,
    ("POST", P + "/register"): register_table,
    ("GET", T): table_call("GET", "read", 200),
    ("HEAD", T): table_call("HEAD", "read", 204),
    ("POST", T): table_call("POST", "write", 200, body=SET_PROPERTY),
    ("DELETE", T): table_call("DELETE", "drop", 204),
    ("POST", T + "/metrics"): table_call("POST", "read", 204, "/metrics", {"report-type": "scan-report"}),
    # The default warehouse is local: an authorized caller is told it offers no signing (400).
    # Signing itself, and the write check for PUT/POST/DELETE, are tested on S3 in
    # tests/rust/remote_signing.rs.
    ("POST", T + "/sign"): table_call(
        "POST", "read", 400, "/sign", {"region": "us-east-1", "uri": "http://127.0.0.1:1/b/k", "method": "GET", "headers": {}}
    ),
    # The default warehouse is local: it vends nothing, and says so with an empty list.
    ("GET", T + "/credentials"): table_call("GET", "read", 200, "/credentials"),
    ("POST", "/v1/{prefix}/tables/rename"): rename("tables"),
    ("POST", "/v1/{prefix}/transactions/commit"): commit_transaction,
    ("GET", P + "/views"): namespace_call("GET", "see", 200, "/views"),
    ("POST", P + "/views"): create_view,
    ("GET", V): view_call("GET", "read", 200),
    ("HEAD", V): view_call("HEAD", "read", 204),
    ("POST", V): view_call("POST", "write", 200, SET_PROPERTY),
    ("DELETE", V): view_call("DELETE", "drop", 204),
    ("POST", "/v1/{prefix}/views/rename"): rename("views"),
    # Not served yet: scan planning, functions, register-view and unregister.
    ("GET", P + "/functions"): NOT_SERVED,
    ("GET", P + "/functions/{function}"): NOT_SERVED,
    ("POST", T + "/plan"): NOT_SERVED,
    ("GET", T + "/plan/{plan-id}"): NOT_SERVED,
    ("DELETE", T + "/plan/{plan-id}"): NOT_SERVED,
    ("POST", T + "/tasks"): NOT_SERVED,
    ("POST", T + "/unregister"): NOT_SERVED,
    ("POST", P + "/register-view"): NOT_SERVED,
    # --- Floe's management API
    ("GET", M + "/warehouses"): admin_call("GET", M + "/warehouses", 200),
    ("POST", M + "/warehouses"): register_warehouse,
    ("GET", M + "/warehouses/{name}"): admin_call("GET", f"{M}/warehouses/{WAREHOUSE}", 200),
    ("DELETE", M + "/warehouses/{name}"): drop_warehouse,
    ("GET", M + "/warehouses/{warehouse}/namespaces/{namespace}/tables/{table}/maintenance"): maintenance_table("GET", "read"),
    ("POST", M + "/warehouses/{warehouse}/namespaces/{namespace}/tables/{table}/maintenance"): maintenance_table(
        "POST", "maintain", MAINTENANCE_UPDATE
    ),
    ("GET", M + "/warehouses/{warehouse}/namespaces/{namespace}/maintenance"): maintenance_namespace("GET", "read"),
    ("POST", M + "/warehouses/{warehouse}/namespaces/{namespace}/maintenance"): maintenance_namespace(
        "POST", "maintain", MAINTENANCE_UPDATE
    ),
    ("POST", M + "/warehouses/{warehouse}/sql"): sql_query,
    ("GET", M + "/server"): admin_call("GET", M + "/server", 200),
    ("GET", M + "/maintenance/jobs"): admin_call("GET", M + "/maintenance/jobs", 200),
    ("GET", M + "/scrub/findings"): lambda r: Call("GET", M + "/scrub/findings", [Need("maintain", "server")], 200),
    ("GET", M + "/principals"): admin_call("GET", M + "/principals", 200),
    ("POST", M + "/principals"): lambda r: admin_call("POST", M + "/principals", 201, {"name": unique("new")})(r),
    ("DELETE", M + "/principals/{principal}"): delete_principal,
    ("POST", M + "/principals/{principal}/rotate-secret"): rotate_secret,
    ("GET", M + "/roles"): admin_call("GET", M + "/roles", 200),
    ("POST", M + "/roles"): lambda r: admin_call("POST", M + "/roles", 201, {"name": unique("role")})(r),
    ("DELETE", M + "/roles/{role}"): delete_role,
    ("POST", M + "/roles/{role}/principals"): assign_role,
    ("DELETE", M + "/roles/{role}/principals/{principal}"): unassign_role,
    ("GET", M + "/grants"): admin_call("GET", M + "/grants", 200),
    ("POST", M + "/grants"): grant_call(revoke=False),
    ("POST", M + "/grants/revoke"): grant_call(revoke=True),
    ("GET", M + "/audit"): admin_call("GET", M + "/audit", 200),
    ("GET", M + "/openapi.yaml"): lambda r: Call("GET", M + "/openapi.yaml", PUBLIC, 200),
}

# Routes outside both documents (load balancers' probes, the console's static files): public too.
PROBES = ["/health", "/ready", "/console", "/console/console.js"]

SERVED = sorted((op for op, how in ROUTES.items() if how != NOT_SERVED), key=lambda op: (op[1], op[0]))
UNSERVED = sorted((op for op, how in ROUTES.items() if how == NOT_SERVED), key=lambda op: (op[1], op[0]))


def documented_operations() -> set[tuple[str, str]]:
    operations = set()
    for document in DOCUMENTS:
        spec = yaml.safe_load(document.read_text())
        for path, item in spec["paths"].items():
            operations.update((method.upper(), path) for method in item if method in HTTP_METHODS)
    return operations


def op_id(op: tuple[str, str]) -> str:
    return f"{op[0]} {op[1]}"


# ------------------------------------------------------------------------------------------ requests


def send(server: FloeServer, call: Call, principal: Optional[Principal] = None) -> requests.Response:
    return requests.request(
        call.method,
        f"{server.uri}{call.path}",
        headers=principal.headers() if principal else {},
        json=call.json,
        data=call.form,
        params=call.params,
        timeout=30,
    )


def assert_error(response: requests.Response, status: int, kind: str, what: str) -> None:
    assert response.status_code == status, f"{what}: expected {status}, got {response.status_code}: {response.text}"
    if response.request.method != "HEAD":
        error = response.json()["error"]
        assert (error["code"], error["type"]) == (status, kind), f"{what}: {error}"
        assert error["message"], what


def refused_grants(needs: list[Need], missing: int) -> list[tuple[str, str]]:
    """Grants of a principal that holds everything the call needs but `needs[missing]`: every other
    privilege on that need's securable (for `see`, everything on a sibling it cannot see through)."""
    grants = [(n.privilege if n.privilege != "see" else "read", n.securable) for i, n in enumerate(needs) if i != missing]
    need = needs[missing]
    if need.privilege == "see":
        kind, _, rest = need.securable.partition(":")
        elsewhere = f"warehouse:{unique('elsewhere')}" if kind == "warehouse" else f"namespace:{WAREHOUSE}:{unique('sibling')}"
        grants += [(p, elsewhere) for p in all_but("admin")]
    else:
        grants += [(p, need.securable) for p in all_but(need.privilege)]
    return grants


def granted(needs: list[Need]) -> list[tuple[str, str]]:
    return [(n.privilege if n.privilege != "see" else "read", n.securable) for n in needs]


# --------------------------------------------------------------------------------------------- tests


def test_every_documented_operation_is_in_the_table() -> None:
    documented = documented_operations()
    assert len(documented) > 50, f"the documents parsed to only {len(documented)} operations"
    missing = sorted(documented - ROUTES.keys())
    assert not missing, f"operations of the OpenAPI documents without an entry in ROUTES: {missing}"
    stale = sorted(ROUTES.keys() - documented)
    assert not stale, f"ROUTES entries that no document has: {stale}"


def test_served_spec_operations_are_the_ones_the_server_advertises(oauth2_server: FloeServer) -> None:
    advertised = set(oauth2_server.config["endpoints"])
    served = {op_id(op) for op in SERVED if op[1].startswith("/v1/{prefix}/")}
    assert advertised == served


@pytest.mark.parametrize("path", PROBES + ["/management/v1/openapi.yaml"])
def test_public_routes_answer_without_a_token(oauth2_server: FloeServer, path: str) -> None:
    response = requests.get(f"{oauth2_server.uri}{path}", timeout=30)
    assert response.status_code == 200, response.text
    if path.endswith("openapi.yaml"):
        assert yaml.safe_load(response.text)["paths"]


@pytest.mark.parametrize("op", UNSERVED, ids=op_id)
def test_operations_not_served_answer_404_with_or_without_a_token(auth_admin: AuthAdmin, op: tuple[str, str]) -> None:
    method, template = op
    path = (
        template.replace("{prefix}", WAREHOUSE).replace("{namespace}", "ns").replace("{table}", "t")
        .replace("{function}", "f").replace("{plan-id}", "plan")
    )
    url = f"{auth_admin.uri}{path}"
    body = {} if method == "POST" else None
    anonymous = requests.request(method, url, json=body, timeout=30)
    assert_error(anonymous, 404, "NotFoundException", f"{op_id(op)} without a token")
    as_admin = requests.request(method, url, json=body, headers={"Authorization": f"Bearer {auth_admin.token}"}, timeout=30)
    assert_error(as_admin, 404, "NotFoundException", f"{op_id(op)} as admin")


@pytest.mark.parametrize("op", SERVED, ids=op_id)
def test_served_operation_needs_its_privilege(auth_admin: AuthAdmin, oauth2_server: FloeServer, op: tuple[str, str]) -> None:
    how = ROUTES[op]
    assert callable(how)
    call = how(Resources(auth_admin))
    assert call.method == op[0]

    if call.needs == PUBLIC:
        response = send(oauth2_server, call)
        assert response.status_code == call.status, response.text
        return

    anonymous = send(oauth2_server, call)
    assert_error(anonymous, 401, "NotAuthorizedException", "without a token")
    assert anonymous.headers.get("WWW-Authenticate") == "Bearer"
    forged = send(oauth2_server, call, Principal("forged", "", "not.a.token"))
    assert_error(forged, 401, "NotAuthorizedException", "with an invalid token")

    if call.needs == AUTHENTICATED:
        nobody = auth_admin.principal_with([], prefix="nothing")
        response = send(oauth2_server, call, nobody)
        assert response.status_code == call.status, response.text
        return

    assert isinstance(call.needs, list)
    refused = [auth_admin.principal_with(refused_grants(call.needs, i), prefix="refused") for i in range(len(call.needs))]
    allowed = auth_admin.principal_with(granted(call.needs), prefix="allowed")
    auth_admin.wait_for_policy()
    for principal, missing in zip(refused, call.needs):
        response = send(oauth2_server, call, principal)
        assert_error(response, 403, "ForbiddenException", f"without {missing.privilege} on {missing.securable}")
    response = send(oauth2_server, call, allowed)
    assert response.status_code == call.status, f"with {call.needs}: {response.status_code} {response.text}"
