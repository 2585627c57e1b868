"""PyIceberg 0.12 with `credential=CLIENT_ID:SECRET` against `floe serve --auth oauth2`.

PyIceberg trades the credential for a token at `oauth2-server-uri` (set explicitly, as its own suite
does: without it PyIceberg warns that the default endpoint is deprecated) and sends the token on every
request. A principal granted one namespace works inside it and is refused (ForbiddenError) outside;
without a credential the catalog cannot even be opened. A server without auth still takes PyIceberg
with no credential at all (the quick start).
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.exceptions import ForbiddenError, OAuthError, UnauthorizedError

from auth_support import AuthAdmin, unique
from floe_server import FloeServer

WAREHOUSE = "main"


def catalog_with(server: FloeServer, credential: str) -> RestCatalog:
    return RestCatalog(
        "floe",
        uri=server.uri,
        credential=credential,
        **{"oauth2-server-uri": f"{server.uri}/v1/oauth/tokens"},
    )


def rows(n: int, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()), "name": [f"row {i}" for i in range(start, start + n)]})


def test_principal_granted_a_namespace_works_inside_it_and_is_refused_outside(
    oauth2_server: FloeServer, auth_admin: AuthAdmin
) -> None:
    admin = catalog_with(oauth2_server, oauth2_server.admin_credential or "")
    team, other = unique("team"), unique("other")
    admin.create_namespace(team)
    admin.create_namespace(other)
    admin.create_table((other, "secret"), schema=rows(1).schema).append(rows(1))
    grants = [(privilege, f"namespace:{WAREHOUSE}:{team}") for privilege in ("read", "write", "create", "drop")]
    principal = auth_admin.principal_with(grants, prefix="analyst")
    auth_admin.wait_for_policy()

    catalog = catalog_with(oauth2_server, principal.credential)
    catalog.create_namespace((team, "sales"))
    table = catalog.create_table((team, "sales", "orders"), schema=rows(1).schema)
    table.append(rows(3))
    table.append(rows(2, start=3))
    scanned = catalog.load_table((team, "sales", "orders")).scan().to_arrow()
    assert sorted(scanned["id"].to_pylist()) == [0, 1, 2, 3, 4]
    assert catalog.list_tables((team, "sales")) == [(team, "sales", "orders")]
    # Lists are filtered: the other namespace is not even shown.
    assert (other,) not in catalog.list_namespaces()
    assert (team,) in catalog.list_namespaces()

    with pytest.raises(ForbiddenError):
        catalog.load_table((other, "secret"))
    with pytest.raises(ForbiddenError):
        catalog.create_table((other, "mine"), schema=rows(1).schema)
    with pytest.raises(ForbiddenError):
        catalog.drop_table((other, "secret"))
    # The administrator's table is untouched.
    assert admin.load_table((other, "secret")).scan().to_arrow().num_rows == 1


def test_no_credential_is_refused(oauth2_server: FloeServer) -> None:
    with pytest.raises(UnauthorizedError):
        RestCatalog("floe", uri=oauth2_server.uri)


def test_wrong_secret_is_refused(oauth2_server: FloeServer) -> None:
    client_id, _, _ = (oauth2_server.admin_credential or "").partition(":")
    with pytest.raises(OAuthError, match="invalid_client"):
        catalog_with(oauth2_server, f"{client_id}:not-the-secret")


def test_without_auth_pyiceberg_needs_no_credential(floe_server: FloeServer) -> None:
    catalog = RestCatalog("floe", uri=floe_server.uri)
    namespace = unique("open")
    catalog.create_namespace(namespace)
    table = catalog.create_table((namespace, "t"), schema=rows(1).schema)
    table.append(rows(2))
    assert catalog.load_table((namespace, "t")).scan().to_arrow().num_rows == 2
