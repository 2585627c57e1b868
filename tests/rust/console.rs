//! What the web console needs of the server, over HTTP on the real binary: its static files with
//! their security headers, the read-only SQL route (rows, the row limit, time travel, refusals as
//! ErrorModel 400s, an unknown warehouse), and the server summary. The pages themselves are tested
//! in a browser by tests/python/test_console.py.

use serde_json::{Value, json};

use crate::support::*;

async fn sql(server: &FloeServer, warehouse: &str, body: Value) -> (u16, Value) {
    let response = floe_testkit::http()
        .post(format!(
            "{}/management/v1/warehouses/{warehouse}/sql",
            server.uri()
        ))
        .json(&body)
        .send()
        .await
        .expect("POST sql");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

fn error_type(body: &Value) -> &str {
    body["error"]["type"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn read_only_sql_over_http() {
    let server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "shop").await;
    let table = create_table(&catalog, &namespace, "orders").await;
    let first = append(&catalog, &table, &[1, 2, 3]).await.expect("append");
    append(&catalog, &first, &[4, 5]).await.expect("append");
    let first_snapshot = first
        .metadata()
        .current_snapshot()
        .expect("a snapshot")
        .snapshot_id();

    let (status, body) = sql(
        &server,
        "main",
        json!({"sql": "SELECT id FROM shop.orders ORDER BY id", "max-rows": 2}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["columns"], json!([{"name": "id", "type": "Int64"}]));
    assert_eq!(body["rows"], json!([["1"], ["2"]]));
    assert_eq!(body["truncated"], true);

    let (status, body) = sql(
        &server,
        "main",
        json!({"sql": format!("SELECT count(*) AS n FROM shop.orders FOR VERSION AS OF {first_snapshot}")}),
    )
    .await;
    assert_eq!((status, &body["rows"]), (200, &json!([["3"]])), "{body}");

    for refused in [
        "DELETE FROM shop.orders",
        "INSERT INTO shop.orders VALUES (9, 'x')",
        "DROP TABLE shop.orders",
        "SELECT 1; DROP TABLE shop.orders",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM '/etc/passwd'",
        "not sql at all",
    ] {
        let (status, body) = sql(&server, "main", json!({ "sql": refused })).await;
        assert_eq!(status, 400, "{refused}: {body}");
        assert_eq!(
            error_type(&body),
            "BadRequestException",
            "{refused}: {body}"
        );
    }
    let (status, body) = sql(
        &server,
        "main",
        json!({"sql": "SELECT count(*) FROM shop.orders"}),
    )
    .await;
    assert_eq!((status, &body["rows"]), (200, &json!([["5"]])), "{body}");

    let (status, body) = sql(&server, "main", json!({"sql": "SELECT 1", "max-rows": 0})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = sql(&server, "nowhere", json!({"sql": "SELECT 1"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_type(&body), "NoSuchWarehouseException");
}

#[tokio::test]
async fn console_files_and_server_summary() {
    let server = FloeServer::start();
    let client = floe_testkit::http();
    let page = client
        .get(format!("{}/console", server.uri()))
        .send()
        .await
        .expect("GET /console");
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .expect("ASCII")
        .to_string();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert!(
        page.text()
            .await
            .expect("body")
            .contains("/console/console.js")
    );
    let missing = client
        .get(format!("{}/console/secrets.txt", server.uri()))
        .send()
        .await
        .expect("GET a missing asset");
    assert_eq!(missing.status(), 404);

    let summary: Value = client
        .get(format!("{}/management/v1/server", server.uri()))
        .send()
        .await
        .expect("GET server")
        .json()
        .await
        .expect("JSON");
    assert_eq!(summary["warehouses"][0]["name"], "main");
    assert_eq!(summary["auth-mode"], "none");
    // This server's heartbeat, written before it started serving.
    assert_eq!(
        summary["replicas"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    assert_eq!(summary["replicas"][0]["answered-this-request"], true);
    assert_eq!(summary["open-scrub-findings"], 0);
}
