//! `Idempotency-Key`: a retried request applies once and gets the first response back; a key
//! reused for another request is refused; different keys are different requests.

use serde_json::{Value, json};

use crate::support::*;

fn new_key() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn post_with_key(api: &Api, url: &str, key: &str, body: &Value) -> (u16, Value) {
    let response = api
        .client
        .post(url)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn a_retried_commit_applies_once() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let created = api.create_table(&["ns"], "t", json!({})).await;
    let location = location_of(&created);
    let url = api.table_url(&["ns"], "t");
    let body = set_properties_body(json!({"k": "v1"}));

    let key = new_key();
    let (status, first) = post_with_key(&api, &url, &key, &body).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = post_with_key(&api, &url, &key, &body).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second, first, "the retry must get the first response back");
    assert_eq!(metadata_files(&location).len(), 2, "applied more than once");
    let loaded = api.load_table(&["ns"], "t").await;
    assert_eq!(metadata_location_of(&loaded), metadata_location_of(&first));
    assert_eq!(
        loaded["metadata"]["metadata-log"].as_array().unwrap().len(),
        1
    );

    // Several retries at once: all get the first response, none applies again.
    let key = new_key();
    let body = set_properties_body(json!({"k": "v2"}));
    let results =
        futures::future::join_all((0..4).map(|_| post_with_key(&api, &url, &key, &body))).await;
    for (status, response) in &results {
        assert_eq!(*status, 200, "{response}");
        assert_eq!(response, &results[0].1);
    }
    assert_eq!(metadata_files(&location).len(), 3);

    // The same key for a different body (or another table) is a client error, and applies nothing.
    for (url, body) in [
        (url.clone(), set_properties_body(json!({"k": "other"}))),
        (
            api.table_url(&["ns"], "u"),
            set_properties_body(json!({"k": "v2"})),
        ),
    ] {
        let response = api
            .client
            .post(&url)
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (kind, status, _) = error_model(response).await;
        assert_eq!((kind.as_str(), status), ("BadRequestException", 400));
    }
    let loaded = api.load_table(&["ns"], "t").await;
    assert_eq!(loaded["metadata"]["properties"]["k"], "v2");
    assert_eq!(metadata_files(&location).len(), 3);

    // Different keys are different requests: the same body applies twice.
    let body = set_properties_body(json!({"k": "v3"}));
    let (_, first) = post_with_key(&api, &url, &new_key(), &body).await;
    let (_, second) = post_with_key(&api, &url, &new_key(), &body).await;
    assert_ne!(metadata_location_of(&first), metadata_location_of(&second));
    assert_eq!(metadata_files(&location).len(), 5);

    // Without a key, too.
    api.set_properties(&["ns"], "t", json!({"k": "v3"})).await;
    assert_eq!(metadata_files(&location).len(), 6);
}

#[tokio::test]
async fn a_retried_create_gets_the_first_answer_not_a_conflict() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    let key = new_key();
    let namespaces = format!("{}/namespaces", api.base);
    let body = json!({"namespace": ["sales"], "properties": {"owner": "ana"}});

    let (status, first) = post_with_key(&api, &namespaces, &key, &body).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = post_with_key(&api, &namespaces, &key, &body).await;
    assert_eq!(status, 200, "a retried create must not be a 409: {second}");
    assert_eq!(second, first);
    // Without the key it is a real duplicate.
    let response = api
        .client
        .post(&namespaces)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_model(response).await.1, 409);

    // Tables alike: the retry returns the first table, with the same metadata file.
    let tables = format!("{}/tables", api.namespace_url(&["sales"]));
    let body = json!({"name": "orders", "schema": id_schema_json()});
    let key = new_key();
    let (status, first) = post_with_key(&api, &tables, &key, &body).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = post_with_key(&api, &tables, &key, &body).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second, first);
    assert_eq!(metadata_files(&location_of(&first)).len(), 1);
    assert_eq!(
        files_under(&server.warehouse_dir()).len(),
        1,
        "the retry created files"
    );

    // A final error is replayed too: the key's request already had its answer.
    let key = new_key();
    let dup = json!({"namespace": ["sales"]});
    let (status, first) = post_with_key(&api, &namespaces, &key, &dup).await;
    assert_eq!(status, 409);
    let (status, second) = post_with_key(&api, &namespaces, &key, &dup).await;
    assert_eq!(status, 409);
    assert_eq!(second, first);
}

/// A server killed after running a request but before recording its outcome leaves the key
/// claimed. Its claim is no longer renewed, so once `--idempotency-takeover-ms` has passed, the
/// retry on the restarted server takes it over and runs, instead of getting a 503 until the key
/// expires.
#[tokio::test]
async fn a_claim_left_by_a_killed_server_is_taken_over_after_the_timeout() {
    let mut server = FloeServer::start_with_args(&["--idempotency-takeover-ms", "1000"]);
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    api.create_table(&["ns"], "t", json!({})).await;
    let url = api.table_url(&["ns"], "t");
    let body = set_properties_body(json!({"k": "v1"}));
    let key = new_key();
    let (status, first) = post_with_key(&api, &url, &key, &body).await;
    assert_eq!(status, 200, "{first}");
    server.kill();

    // What the killed server would have left had it died before recording the outcome: the key
    // claimed by it, renewed a moment ago.
    let database = server.data_dir().join("catalog.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let left = sqlx::query(
        "UPDATE idempotency_keys SET state = 'claimed', status = NULL, body = NULL, \
         content_type = NULL, owner = 'the-killed-server', renewed_at = ? WHERE key = ?",
    )
    .bind(now_ms)
    .bind(&key)
    .execute(&pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(left, 1);
    pool.close().await;

    server.restart();
    let api = Api::new(&server);
    let (status, retried) = post_with_key(&api, &url, &key, &body).await;
    assert_eq!(
        status, 200,
        "the retry took the claim over and ran: {retried}"
    );
    assert_eq!(retried["metadata"]["properties"]["k"], "v1");
    let (status, replayed) = post_with_key(&api, &url, &key, &body).await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(
        replayed, retried,
        "the new outcome is recorded and replayed"
    );
}
