//! Remote signing on a real S3 server (SeaweedFS, which checks SigV4): a warehouse registered
//! with its keys and `s3.access-delegation=remote-signing` hands clients signing settings and no
//! keys; a request Floe signs for one of the table's objects is accepted by S3; requests for
//! another table, the bucket root, another bucket, or a write by a reader are refused (403) and
//! audited.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use floe_testkit::seaweedfs::{self, TestS3};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const WAREHOUSE: &str = "lake";

/// A server (with `args`) and, registered on it, warehouse `lake` at `s3://lake/tables` with the
/// S3 server's keys and remote signing as its only delegation mode.
async fn signing_server(s3: &TestS3, args: &[&str]) -> FloeServer {
    s3.create_bucket("lake").await;
    s3.create_bucket("other").await;
    let mut all = vec!["--allowed-storage-root", "s3://lake"];
    all.extend_from_slice(args);
    FloeServer::start_with_args(&all)
}

async fn register_warehouse(server: &FloeServer, s3: &TestS3, token: Option<&str>) {
    let request = floe_testkit::http()
        .post(format!("{}/management/v1/warehouses", server.uri()))
        .json(&json!({
            "name": WAREHOUSE,
            "storage-url": "s3://lake/tables",
            "properties": s3.warehouse_properties(json!({
                "s3.access-delegation": "remote-signing",
            })),
        }));
    let response = with_token(request, token).send().await.expect("register");
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

fn with_token(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

fn table_url(server: &FloeServer, namespace: &str, table: &str) -> String {
    format!(
        "{}/v1/{WAREHOUSE}/namespaces/{namespace}/tables/{table}",
        server.uri()
    )
}

async fn create_table(server: &FloeServer, token: Option<&str>, namespace: &str, table: &str) {
    let http = floe_testkit::http();
    let namespaces = format!("{}/v1/{WAREHOUSE}/namespaces", server.uri());
    let exists = with_token(http.get(format!("{namespaces}/{namespace}")), token)
        .send()
        .await
        .expect("namespace");
    if exists.status() == StatusCode::NOT_FOUND {
        let created = with_token(http.post(&namespaces), token)
            .json(&json!({ "namespace": [namespace] }))
            .send()
            .await
            .expect("create namespace");
        assert_eq!(created.status(), 200);
    }
    let response = with_token(http.post(format!("{namespaces}/{namespace}/tables")), token)
        .json(&json!({ "name": table, "schema": id_schema_json() }))
        .send()
        .await
        .expect("create table");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// loadTable with `X-Iceberg-Access-Delegation: <delegation>` (none when `None`).
async fn load(
    server: &FloeServer,
    token: Option<&str>,
    namespace: &str,
    table: &str,
    delegation: Option<&str>,
) -> Value {
    let mut request = floe_testkit::http().get(table_url(server, namespace, table));
    if let Some(delegation) = delegation {
        request = request.header("X-Iceberg-Access-Delegation", delegation);
    }
    let response = with_token(request, token).send().await.expect("load");
    assert_eq!(response.status(), 200);
    response.json().await.expect("LoadTableResult")
}

/// Asks Floe to sign `method uri` (with `body` for DeleteObjects): the response.
async fn ask_to_sign(
    server: &FloeServer,
    token: Option<&str>,
    (namespace, table): (&str, &str),
    method: &str,
    uri: &str,
    request_id: &str,
) -> reqwest::Response {
    let request = floe_testkit::http()
        .post(format!("{}/sign", table_url(server, namespace, table)))
        .header("x-request-id", request_id)
        .json(&json!({
            "region": seaweedfs::REGION,
            "uri": uri,
            "method": method,
            "headers": { "User-Agent": ["floe-e2e"] },
        }));
    with_token(request, token).send().await.expect("sign")
}

/// Sends the request Floe signed to S3, with `body`.
async fn send_signed(method: &str, signed: &Value, body: &'static [u8]) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let uri = signed["uri"].as_str().expect("uri");
    let mut request = floe_testkit::http().request(method, uri).body(body);
    let headers: BTreeMap<String, Vec<String>> =
        serde_json::from_value(signed["headers"].clone()).expect("headers");
    for (name, values) in headers {
        for value in values {
            request = request.header(&name, value);
        }
    }
    request.send().await.expect("S3 answers")
}

/// The path-style URI of `key` in `bucket` on the S3 server.
fn object_uri(s3: &TestS3, bucket: &str, key: &str) -> String {
    format!("{}/{bucket}/{key}", s3.endpoint())
}

/// The key of an `s3://lake/...` location.
fn key_of(location: &str) -> String {
    location
        .strip_prefix("s3://lake/")
        .expect("a location in s3://lake")
        .to_string()
}

/// Audit records (through `token`) until every one of `request_ids` has one.
async fn audit_records(
    server: &FloeServer,
    token: Option<&str>,
    request_ids: &[&str],
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request =
            floe_testkit::http().get(format!("{}/management/v1/audit?limit=1000", server.uri()));
        let response = with_token(request, token).send().await.expect("audit");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("audit records");
        let records = body["records"].as_array().expect("records").clone();
        if request_ids
            .iter()
            .all(|id| records.iter().any(|record| record["request-id"] == *id))
        {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "audit records of {request_ids:?} missing: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn record_of<'a>(records: &'a [Value], request_id: &str) -> &'a Value {
    records
        .iter()
        .find(|record| record["request-id"] == request_id)
        .unwrap_or_else(|| panic!("no audit record of {request_id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_signed_by_floe_reach_only_the_tables_objects() {
    let s3 = TestS3::start();
    let server = signing_server(&s3, &[]).await;
    register_warehouse(&server, &s3, None).await;
    create_table(&server, None, "sales", "orders").await;
    create_table(&server, None, "sales", "secrets").await;

    // The table config: signing settings, the endpoint and region, never the warehouse's keys.
    let loaded = load(&server, None, "sales", "orders", Some("remote-signing")).await;
    let config = &loaded["config"];
    assert_eq!(config["s3.remote-signing-enabled"], "true", "{config}");
    assert_eq!(config["s3.signer"], "S3V4RestSigner");
    assert_eq!(
        config["s3.signer.endpoint"],
        "v1/lake/namespaces/sales/tables/orders/sign"
    );
    assert_eq!(config["s3.endpoint"], s3.endpoint());
    let text = config.to_string();
    assert!(
        !text.contains(seaweedfs::SECRET_ACCESS_KEY) && !text.contains(seaweedfs::ACCESS_KEY_ID),
        "{text}"
    );
    // The warehouse's default is its only mode; a client asking only for another gets none.
    let default = load(&server, None, "sales", "orders", None).await;
    assert_eq!(default["config"]["s3.remote-signing-enabled"], "true");
    let vending = load(&server, None, "sales", "orders", Some("vended-credentials")).await;
    assert!(vending["config"].get("s3.remote-signing-enabled").is_none());

    // A read of the table's metadata file, signed by Floe, is served by S3.
    let metadata_key = key_of(loaded["metadata-location"].as_str().expect("location"));
    let orders = ("sales", "orders");
    let uri = object_uri(&s3, "lake", &metadata_key);
    let response = ask_to_sign(&server, None, orders, "GET", &uri, "get-ok").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-cache")
    );
    let signed: Value = response.json().await.expect("RemoteSignResult");
    let object = send_signed("GET", &signed, b"").await;
    assert_eq!(object.status(), 200, "{}", s3.log());
    let metadata: Value = object.json().await.expect("metadata JSON");
    assert_eq!(metadata["location"], loaded["metadata"]["location"]);

    // The signature covers the URI: the same headers for another key are refused by S3.
    let other_key = key_of(
        load(&server, None, "sales", "secrets", None).await["metadata-location"]
            .as_str()
            .expect("location"),
    );
    let mut replayed = signed.clone();
    replayed["uri"] = json!(object_uri(&s3, "lake", &other_key));
    assert_eq!(send_signed("GET", &replayed, b"").await.status(), 403);

    // A write of a new object and a listing of the table, each signed, then read back.
    let table_prefix = format!(
        "{}/",
        key_of(loaded["metadata"]["location"].as_str().expect("location"))
    );
    let new_key = format!("{table_prefix}data/signed.parquet");
    let put_uri = object_uri(&s3, "lake", &new_key);
    let response = ask_to_sign(&server, None, orders, "PUT", &put_uri, "put-ok").await;
    assert_eq!(response.status(), 200);
    let signed: Value = response.json().await.expect("RemoteSignResult");
    let put = send_signed("PUT", &signed, b"written through a signature").await;
    assert!(put.status().is_success(), "{}", put.status());
    assert!(s3.list("lake", &table_prefix).await.contains(&new_key));
    let list_uri = format!(
        "{}/lake?list-type=2&prefix={}",
        s3.endpoint(),
        encode_segment(&table_prefix)
    );
    let response = ask_to_sign(&server, None, orders, "GET", &list_uri, "list-ok").await;
    assert_eq!(response.status(), 200);
    let signed: Value = response.json().await.expect("RemoteSignResult");
    let listing = send_signed("GET", &signed, b"").await;
    assert_eq!(listing.status(), 200);
    assert!(listing.text().await.unwrap().contains("signed.parquet"));

    // DeleteObjects names its keys in its body, and SeaweedFS (like other S3-compatible servers)
    // does not check a body against the signed hash: with a signature for one body, another
    // could be sent. So it is not signed on such an endpoint.
    let delete_body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Delete><Object><Key>{new_key}</Key></Object></Delete>"#
    );
    let response = floe_testkit::http()
        .post(format!("{}/sign", table_url(&server, "sales", "orders")))
        .json(&json!({
            "region": seaweedfs::REGION,
            "uri": format!("{}/lake?delete", s3.endpoint()),
            "method": "POST",
            "headers": {},
            "body": delete_body,
        }))
        .send()
        .await
        .expect("sign");
    let (kind, status, message) = error_model(response).await;
    assert_eq!(
        (kind.as_str(), status),
        ("ForbiddenException", 403),
        "{message}"
    );
    assert!(message.contains("only for AWS"), "{message}");

    // Another table's key, the bucket root listing, another bucket: 403, audited.
    let refusals = [
        ("other-table", object_uri(&s3, "lake", &other_key)),
        ("bucket-root", format!("{}/lake?list-type=2", s3.endpoint())),
        (
            "other-bucket",
            object_uri(&s3, "other", &format!("{table_prefix}data/x.parquet")),
        ),
    ];
    for (id, uri) in &refusals {
        let response = ask_to_sign(&server, None, orders, "GET", uri, id).await;
        let (kind, status, message) = error_model(response).await;
        assert_eq!(
            (kind.as_str(), status),
            ("ForbiddenException", 403),
            "{id}: {message}"
        );
    }
    let ids: Vec<&str> = refusals.iter().map(|(id, _)| *id).collect();
    let records = audit_records(&server, None, &ids).await;
    for (id, uri) in &refusals {
        let record = record_of(&records, id);
        assert_eq!(record["outcome"], "denied", "{record}");
        assert_eq!(record["status"], 403);
        assert_eq!(
            record["route"],
            "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/sign"
        );
        let target = record["target"].as_str().expect("target");
        assert!(
            target.starts_with("table:lake:sales.orders") && target.contains(uri.as_str()),
            "{target}"
        );
    }
    // Allowed signings are not audit records (a scan signs one request per file).
    assert!(
        !records
            .iter()
            .any(|record| record["request-id"] == "get-ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_gets_reads_signed_but_not_writes() {
    let s3 = TestS3::start();
    let server = signing_server(&s3, &["--auth", "oauth2"]).await;
    let dir = server.data_dir().to_str().expect("utf-8").to_string();
    let admin_credential = std::fs::read_to_string(server.data_dir().join("admin-credential"))
        .expect("admin credential");
    let admin = token_for(&server, admin_credential.trim()).await;
    register_warehouse(&server, &s3, Some(&admin)).await;
    create_table(&server, Some(&admin), "sales", "orders").await;

    let floe_ok = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--data-dir", &dir]);
        let (ok, stdout, stderr) = floe(&all);
        assert!(ok, "floe {args:?}: {stderr}");
        stdout
    };
    let created = floe_ok(&["principal", "create", "reader"]);
    let credential = created
        .lines()
        .find_map(|line| line.strip_prefix("credential:"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("credential line")
        .to_string();
    floe_ok(&["role", "create", "readers"]);
    floe_ok(&[
        "grant",
        "read",
        "--on",
        "table:lake:sales.orders",
        "--to",
        "readers",
    ]);
    floe_ok(&["role", "assign", "readers", "reader"]);
    let reader = token_for(&server, &credential).await;

    let loaded = load(&server, Some(&admin), "sales", "orders", None).await;
    let metadata_key = key_of(loaded["metadata-location"].as_str().expect("location"));
    let uri = object_uri(&s3, "lake", &metadata_key);
    let orders = ("sales", "orders");
    // Grants reach the server's policy within its refresh: wait for the read to be allowed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let signed = loop {
        let response = ask_to_sign(&server, Some(&reader), orders, "GET", &uri, "reader-get").await;
        if response.status() == 200 {
            break response.json::<Value>().await.expect("RemoteSignResult");
        }
        assert!(Instant::now() < deadline, "reader never got a signature");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(send_signed("GET", &signed, b"").await.status(), 200);

    let put_uri = object_uri(&s3, "lake", &format!("{}.copy", metadata_key));
    for method in ["PUT", "DELETE"] {
        let id = format!("reader-{method}");
        let response = ask_to_sign(&server, Some(&reader), orders, method, &put_uri, &id).await;
        let (kind, status, message) = error_model(response).await;
        assert_eq!(
            (kind.as_str(), status),
            ("ForbiddenException", 403),
            "{method}"
        );
        assert!(message.contains("write"), "{message}");
    }
    let records = audit_records(&server, Some(&admin), &["reader-PUT", "reader-DELETE"]).await;
    for id in ["reader-PUT", "reader-DELETE"] {
        let record = record_of(&records, id);
        assert_eq!(record["principal"], "reader");
        assert_eq!(record["outcome"], "denied");
    }
    // The administrator (write on everything) gets the same PUT signed.
    let response = ask_to_sign(&server, Some(&admin), orders, "PUT", &put_uri, "admin-put").await;
    assert_eq!(response.status(), 200);
}
