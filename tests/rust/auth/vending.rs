//! Vended credentials follow the caller's grants: a principal with `read` on a table gets
//! credentials that read it and cannot write it, one with `write` gets credentials that write it,
//! and one with no grant on the table gets no credentials at all (403, audited).

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Caller, admin_of, create_principal, grant_role, send, token_for};
use crate::support::*;
use crate::vending::client_of;
use floe_testkit::seaweedfs::{self, TestS3};

async fn vended_config(caller: &Caller, path: &str) -> Value {
    let response = send(
        caller
            .request(Method::GET, path)
            .header("X-Iceberg-Access-Delegation", "vended-credentials"),
    )
    .await;
    assert_eq!(response.status(), 200, "GET {path}");
    let body: Value = response.json().await.expect("json");
    body["storage-credentials"][0]["config"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vended_credentials_are_read_only_without_write_and_absent_without_read() {
    let s3 = TestS3::start_with_sts();
    s3.create_bucket("lake").await;
    let server =
        FloeServer::start_with_args(&["--auth", "oauth2", "--allowed-storage-root", "s3://lake"]);
    let admin = admin_of(&server).await;
    let created = admin
        .post(
            "/management/v1/warehouses",
            &json!({
                "name": "vend",
                "storage-url": "s3://lake/vend",
                "properties": s3.warehouse_properties(json!({
                    "s3.sts-role-arn": seaweedfs::STS_ROLE_ARN,
                })),
            }),
        )
        .await;
    assert_eq!(created.status(), 201);
    let namespace = admin
        .post("/v1/vend/namespaces", &json!({ "namespace": ["sales"] }))
        .await;
    assert_eq!(namespace.status(), 200);
    let table = admin
        .post(
            "/v1/vend/namespaces/sales/tables",
            &json!({ "name": "orders", "schema": id_schema_json() }),
        )
        .await;
    assert_eq!(table.status(), 200);
    let table: Value = table.json().await.unwrap();
    let metadata_key = table["metadata-location"]
        .as_str()
        .unwrap()
        .strip_prefix("s3://lake/")
        .unwrap()
        .to_string();
    let table_key = table["metadata"]["location"]
        .as_str()
        .unwrap()
        .strip_prefix("s3://lake/")
        .unwrap()
        .to_string();

    let dir = server.data_dir();
    let reader = create_principal(dir, "reader");
    grant_role(
        dir,
        "readers",
        &[("read", "table:vend:sales.orders")],
        "reader",
    );
    let writer = create_principal(dir, "writer");
    grant_role(
        dir,
        "writers",
        &[("write", "table:vend:sales.orders")],
        "writer",
    );
    let stranger = create_principal(dir, "stranger");
    let reader = Caller::new(&server, &token_for(&server, &reader).await);
    let writer = Caller::new(&server, &token_for(&server, &writer).await);
    let stranger = Caller::new(&server, &token_for(&server, &stranger).await);
    let path = "/v1/vend/namespaces/sales/tables/orders";
    reader.wait_for(path, reqwest::StatusCode::OK).await;
    writer.wait_for(path, reqwest::StatusCode::OK).await;

    let read_config = vended_config(&reader, path).await;
    let read_only = client_of(&s3, &read_config);
    read_only
        .get(&Path::from(metadata_key.clone()))
        .await
        .expect("read with read credentials");
    let refused = read_only
        .put(
            &Path::from(format!("{table_key}/data/x.parquet")),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("AccessDenied") || refused.contains("403"),
        "{refused}"
    );
    let refreshed = vended_config(&reader, &format!("{path}/credentials")).await;
    assert_eq!(
        refreshed["s3.access-key-id"],
        read_config["s3.access-key-id"]
    );

    let write_config = vended_config(&writer, path).await;
    assert_ne!(
        write_config["s3.access-key-id"],
        read_config["s3.access-key-id"]
    );
    client_of(&s3, &write_config)
        .put(
            &Path::from(format!("{table_key}/data/x.parquet")),
            PutPayload::from_static(b"x"),
        )
        .await
        .expect("write with write credentials");

    for route in [path.to_string(), format!("{path}/credentials")] {
        let denied = send(
            stranger
                .request(Method::GET, &route)
                .header("X-Iceberg-Access-Delegation", "vended-credentials"),
        )
        .await;
        assert_eq!(denied.status(), 403, "{route}");
        let text = denied.text().await.unwrap();
        assert!(!text.contains("s3.session-token"), "{text}");
    }
    // The audit log is written in batches: wait for the denial to land.
    let deadline = std::time::Instant::now() + super::PATIENCE;
    loop {
        let audit: Value = admin
            .get("/management/v1/audit")
            .await
            .json()
            .await
            .unwrap();
        let denied = audit["records"]
            .as_array()
            .expect("audit records")
            .iter()
            .any(|record| {
                record["principal"] == "stranger"
                    && record["outcome"] == "denied"
                    && record["route"]
                        .as_str()
                        .is_some_and(|r| r.ends_with("/credentials"))
            });
        if denied {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no audited denial: {audit}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
