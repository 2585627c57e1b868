"""Raw HTTP against a real Floe server: error responses, commit requirements and ETags, as the REST spec
(shared/spec/rest-catalog-open-api.yaml) describes them.

Every error must be an IcebergErrorResponse: `{"error": {"message": str, "type": str, "code": int}}`
with `code` equal to the HTTP status.
"""

from __future__ import annotations

import uuid
from typing import Any, Optional

import pytest
import requests

from conftest import RestApi, unique_name

SCHEMA = {
    "type": "struct",
    "schema-id": 0,
    "fields": [
        {"id": 1, "name": "id", "type": "long", "required": True},
        {"id": 2, "name": "data", "type": "string", "required": False},
    ],
}


def assert_error(response: requests.Response, status: int, error_type: Optional[str] = None) -> dict[str, Any]:
    """The response is `status` with a well-formed ErrorModel (of `error_type`, if given); returns the model."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("message"), str) and error["message"], error
    assert isinstance(error.get("type"), str) and error["type"], error
    assert error.get("code") == status, error
    if error_type is not None:
        assert error["type"] == error_type, error
    return error


def create_namespace(api: RestApi, name: Optional[str] = None) -> str:
    name = name or unique_name("ns")
    response = api.post("namespaces", json={"namespace": [name], "properties": {}})
    assert response.status_code == 200, response.text
    return name


def create_table(api: RestApi, namespace: str, name: str = "t") -> dict[str, Any]:
    response = api.post(f"namespaces/{namespace}/tables", json={"name": name, "schema": SCHEMA})
    assert response.status_code == 200, response.text
    return response.json()


def load_table(api: RestApi, namespace: str, name: str = "t") -> dict[str, Any]:
    response = api.get(f"namespaces/{namespace}/tables/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def test_config_names_the_default_warehouse(floe_uri: str) -> None:
    response = requests.get(f"{floe_uri}/v1/config", timeout=30)
    assert response.status_code == 200, response.text
    config = response.json()
    assert isinstance(config.get("defaults"), dict), config
    overrides = config.get("overrides")
    assert isinstance(overrides, dict), config
    assert isinstance(overrides.get("prefix"), str) and overrides["prefix"], config
    assert isinstance(overrides.get("warehouse"), str) and overrides["warehouse"], config


def test_malformed_json_is_400(api: RestApi) -> None:
    response = api.post("namespaces", data=b'{"namespace": ["x"', headers={"Content-Type": "application/json"})
    assert_error(response, 400)


def test_wrong_json_shape_is_400(api: RestApi) -> None:
    response = api.post("namespaces", json={"namespace": "not-a-list"})
    assert_error(response, 400)


def test_unknown_namespace_is_404(api: RestApi) -> None:
    missing = unique_name("ns_missing")
    assert_error(api.get(f"namespaces/{missing}"), 404, "NoSuchNamespaceException")
    assert_error(api.get(f"namespaces/{missing}/tables"), 404, "NoSuchNamespaceException")
    assert_error(api.delete(f"namespaces/{missing}"), 404, "NoSuchNamespaceException")
    assert api.head(f"namespaces/{missing}").status_code == 404
    create = api.post(f"namespaces/{missing}/tables", json={"name": "t", "schema": SCHEMA})
    assert_error(create, 404, "NoSuchNamespaceException")


def test_unknown_table_is_404(api: RestApi) -> None:
    namespace = create_namespace(api)
    assert_error(api.get(f"namespaces/{namespace}/tables/missing"), 404, "NoSuchTableException")
    assert_error(api.delete(f"namespaces/{namespace}/tables/missing"), 404, "NoSuchTableException")
    assert api.head(f"namespaces/{namespace}/tables/missing").status_code == 404
    commit = api.post(f"namespaces/{namespace}/tables/missing", json={"requirements": [], "updates": []})
    assert_error(commit, 404, "NoSuchTableException")


def test_existing_namespace_is_409(api: RestApi) -> None:
    namespace = create_namespace(api)
    response = api.post("namespaces", json={"namespace": [namespace], "properties": {}})
    assert_error(response, 409, "AlreadyExistsException")


def test_existing_table_is_409(api: RestApi) -> None:
    namespace = create_namespace(api)
    first = create_table(api, namespace)
    response = api.post(f"namespaces/{namespace}/tables", json={"name": "t", "schema": SCHEMA})
    assert_error(response, 409, "AlreadyExistsException")
    # The first table is untouched.
    assert load_table(api, namespace)["metadata-location"] == first["metadata-location"]


def test_failed_requirement_is_409_and_changes_nothing(api: RestApi) -> None:
    namespace = create_namespace(api)
    before = create_table(api, namespace)
    commit = {
        "requirements": [{"type": "assert-table-uuid", "uuid": str(uuid.uuid4())}],
        "updates": [{"action": "set-properties", "updates": {"changed": "yes"}}],
    }
    response = api.post(f"namespaces/{namespace}/tables/t", json=commit)
    assert_error(response, 409, "CommitFailedException")

    after = load_table(api, namespace)
    assert after["metadata-location"] == before["metadata-location"]
    assert "changed" not in after["metadata"].get("properties", {})

    # The same commit with the right uuid succeeds, so the 409 was the requirement's doing.
    commit["requirements"][0]["uuid"] = before["metadata"]["table-uuid"]
    ok = api.post(f"namespaces/{namespace}/tables/t", json=commit)
    assert ok.status_code == 200, ok.text
    assert ok.json()["metadata"]["properties"]["changed"] == "yes"
    assert load_table(api, namespace)["metadata-location"] == ok.json()["metadata-location"]


def test_stale_current_schema_requirement_is_409(api: RestApi) -> None:
    namespace = create_namespace(api)
    create_table(api, namespace)
    commit = {
        "requirements": [{"type": "assert-current-schema-id", "current-schema-id": 7}],
        "updates": [{"action": "set-properties", "updates": {"k": "v"}}],
    }
    assert_error(api.post(f"namespaces/{namespace}/tables/t", json=commit), 409, "CommitFailedException")


@pytest.mark.parametrize(
    "commit",
    [
        pytest.param({"requirements": [], "updates": [{"action": "frobnicate-table"}]}, id="unknown-update"),
        pytest.param(
            {"requirements": [{"type": "assert-frobnicated"}], "updates": [{"action": "set-properties", "updates": {"k": "v"}}]},
            id="unknown-requirement",
        ),
    ],
)
def test_unknown_update_or_requirement_is_400(api: RestApi, commit: dict[str, Any]) -> None:
    namespace = create_namespace(api)
    before = create_table(api, namespace)
    assert_error(api.post(f"namespaces/{namespace}/tables/t", json=commit), 400)
    assert load_table(api, namespace)["metadata-location"] == before["metadata-location"]


def test_dropping_non_empty_namespace_is_409(api: RestApi) -> None:
    namespace = create_namespace(api)
    create_table(api, namespace)
    assert_error(api.delete(f"namespaces/{namespace}"), 409, "NamespaceNotEmptyException")
    assert api.get(f"namespaces/{namespace}").status_code == 200

    assert api.delete(f"namespaces/{namespace}/tables/t").status_code == 204
    assert api.delete(f"namespaces/{namespace}").status_code == 204
    assert_error(api.get(f"namespaces/{namespace}"), 404, "NoSuchNamespaceException")


def test_load_table_etag_and_if_none_match(api: RestApi) -> None:
    namespace = create_namespace(api)
    create_table(api, namespace)
    path = f"namespaces/{namespace}/tables/t"

    first = api.get(path)
    assert first.status_code == 200, first.text
    etag = first.headers.get("ETag")
    assert etag, f"no ETag header on loadTable: {dict(first.headers)}"
    assert api.get(path).headers.get("ETag") == etag, "ETag changed without a commit"

    not_modified = api.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304, not_modified.text
    assert not_modified.content == b""

    other = api.get(path, headers={"If-None-Match": '"not-the-etag"'})
    assert other.status_code == 200, other.text

    commit = {"requirements": [], "updates": [{"action": "set-properties", "updates": {"k": "v"}}]}
    assert api.post(path, json=commit).status_code == 200

    changed = api.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200, changed.text
    assert changed.json()["metadata"]["properties"]["k"] == "v"
    new_etag = changed.headers.get("ETag")
    assert new_etag and new_etag != etag
    assert api.get(path, headers={"If-None-Match": new_etag}).status_code == 304


def test_etag_differs_between_snapshot_modes(api: RestApi) -> None:
    """The spec: responses for `snapshots=refs` and `snapshots=all` should carry distinct ETags."""
    namespace = create_namespace(api)
    create_table(api, namespace)
    path = f"namespaces/{namespace}/tables/t"
    all_etag = api.get(path, params={"snapshots": "all"}).headers.get("ETag")
    refs_etag = api.get(path, params={"snapshots": "refs"}).headers.get("ETag")
    assert all_etag and refs_etag
    assert all_etag != refs_etag
    refs_304 = api.get(path, params={"snapshots": "refs"}, headers={"If-None-Match": refs_etag})
    assert refs_304.status_code == 304
