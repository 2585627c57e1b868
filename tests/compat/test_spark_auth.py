"""Spark 3.5 + Iceberg 1.10 against `floe serve --auth oauth2`, with `credential` as its docs describe.

Spark's REST catalog trades `spark.sql.catalog.X.credential` (CLIENT_ID:SECRET) for a token at the
catalog's token endpoint, then sends it on every request. The harness's one SparkSession serves: each
test adds catalogs to a new session of it (Spark loads a catalog from the session's conf on first use).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from auth_support import AuthAdmin
from conftest import spark_rows, unique_name
from floe_server import FloeServer


@pytest.fixture(scope="module")
def oauth2_floe(tmp_path_factory: pytest.TempPathFactory) -> Generator[FloeServer, None, None]:
    log_dir = Path(os.environ.get("FLOE_TEST_LOG_DIR") or tmp_path_factory.mktemp("logs"))
    server = FloeServer(
        tmp_path_factory.mktemp("floe-oauth2-data"), log_dir / "floe-compat-oauth2.log", extra_args=["--auth", "oauth2"]
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def session_with_credential(spark: Any, server: FloeServer, catalog: str, credential: str) -> Any:
    """A session of the harness's Spark whose catalog `catalog` is `server`, reached with `credential`."""
    session = spark.newSession()
    prefix = f"spark.sql.catalog.{catalog}"
    for key, value in {
        "": "org.apache.iceberg.spark.SparkCatalog",
        ".type": "rest",
        ".uri": server.uri,
        ".credential": credential,
        ".oauth2-server-uri": f"{server.uri}/v1/oauth/tokens",
        ".scope": "catalog",
        ".cache-enabled": "false",
    }.items():
        session.conf.set(prefix + key, value)
    return session


@pytest.mark.compat(feature="--auth oauth2: credential, grants (read-only principal cannot write)")
def test_spark_with_a_credential_reads_and_writes_within_its_grants(spark: Any, oauth2_floe: FloeServer) -> None:
    admin_credential = oauth2_floe.admin_credential
    assert admin_credential is not None
    as_admin = session_with_credential(spark, oauth2_floe, "floe_admin", admin_credential)
    ns = unique_name("sec")
    as_admin.sql(f"CREATE NAMESPACE floe_admin.{ns}")
    as_admin.sql(f"CREATE TABLE floe_admin.{ns}.t (id bigint, v string) USING iceberg")
    as_admin.sql(f"INSERT INTO floe_admin.{ns}.t VALUES (1, 'a'), (2, 'b')")
    assert spark_rows(as_admin, f"SELECT id, v FROM floe_admin.{ns}.t ORDER BY id") == [(1, "a"), (2, "b")]

    admin = AuthAdmin(oauth2_floe)
    reader = admin.principal_with([("read", f"namespace:main:{ns}")], prefix="spark_reader")
    admin.wait_for_policy()
    as_reader = session_with_credential(spark, oauth2_floe, "floe_reader", reader.credential)
    assert spark_rows(as_reader, f"SELECT id FROM floe_reader.{ns}.t ORDER BY id") == [(1,), (2,)]
    with pytest.raises(Exception) as refused:
        as_reader.sql(f"INSERT INTO floe_reader.{ns}.t VALUES (3, 'c')")
    assert "ForbiddenException" in str(refused.value) or "403" in str(refused.value), str(refused.value)[-2000:]
    # The refused write changed nothing.
    assert spark_rows(as_admin, f"SELECT count(*) FROM floe_admin.{ns}.t") == [(2,)]

    with pytest.raises(Exception) as unauthenticated:
        session_with_credential(spark, oauth2_floe, "floe_wrong", "floe-nobody:wrong-secret").sql(
            "SHOW NAMESPACES IN floe_wrong"
        ).collect()
    text = str(unauthenticated.value)
    assert "invalid_client" in text or "401" in text or "NotAuthorized" in text, text[-2000:]
