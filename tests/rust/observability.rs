//! What a server tells its operators, over real HTTP: request ids on every response, one
//! access-log line per request (never a secret), and `GET /metrics` on the main port or on
//! `--metrics-port` only. Its auth (admin or the metrics token) is in `auth/metrics.rs`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

const REQUEST_ID: &str = "x-request-id";

fn request_id_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The access-log lines of the server's log (`--log-format json`), parsed.
fn access_lines(server: &FloeServer) -> Vec<Value> {
    server
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "floe::access")
        .collect()
}

#[tokio::test]
async fn a_sane_client_request_id_is_kept_and_others_are_replaced_on_every_response() {
    let server = FloeServer::start_with_args(&["--log-format", "json"]);
    let http = floe_testkit::http();

    // Kept, on a success and on an error (404 from a handler, and from no route at all).
    for path in ["/v1/config", "/v1/main/namespaces/absent", "/no/such/route"] {
        let response = http
            .get(format!("{}{path}", server.uri()))
            .header(REQUEST_ID, "client-id-42")
            .send()
            .await
            .unwrap();
        assert_eq!(request_id_of(&response), "client-id-42", "{path}");
    }

    // Replaced: too long, or not visible ASCII. A made id is a UUID, new for every request.
    let mut made = Vec::new();
    for bad in ["x".repeat(129), "has space".to_string(), String::new()] {
        let response = http
            .get(format!("{}/v1/config", server.uri()))
            .header(REQUEST_ID, bad.as_str())
            .send()
            .await
            .unwrap();
        let id = request_id_of(&response);
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id:?} is a UUID");
        made.push(id);
    }
    let response = http
        .get(format!("{}/health", server.uri()))
        .send()
        .await
        .unwrap();
    made.push(request_id_of(&response));
    made.sort();
    made.dedup();
    assert_eq!(made.len(), 4, "every made id is new: {made:?}");
}

#[tokio::test]
async fn every_request_logs_one_access_line_with_its_route_template_and_no_secret() {
    let server = FloeServer::start_with_args(&["--log-format", "json"]);
    let http = floe_testkit::http();
    let secret = "Bearer very-secret-token-value";
    let response = http
        .get(format!("{}/v1/main/namespaces/hidden_ns", server.uri()))
        .header("authorization", secret)
        .header(REQUEST_ID, "access-log-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = http
        .post(format!("{}/v1/main/namespaces", server.uri()))
        .header(REQUEST_ID, "access-log-2")
        .json(&serde_json::json!({"namespace": ["logged"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // The line is written after the response: wait for it rather than for a time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let lines = access_lines(&server);
        if lines
            .iter()
            .any(|line| line["fields"]["request_id"] == "access-log-2")
            || std::time::Instant::now() > deadline
        {
            break lines;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let of = |id: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|line| line["fields"]["request_id"] == id)
            .collect()
    };
    let first = of("access-log-1");
    assert_eq!(first.len(), 1, "one line per request: {lines:?}");
    let fields = &first[0]["fields"];
    assert_eq!(first[0]["level"], "INFO");
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/v1/{prefix}/namespaces/{namespace}");
    assert_eq!(fields["status"], 404);
    assert_eq!(fields["principal"], "anonymous");
    assert!(fields["duration_ms"].as_f64().is_some(), "{fields}");
    let second = of("access-log-2");
    assert_eq!(second.len(), 1, "{lines:?}");
    assert_eq!(second[0]["fields"]["route"], "/v1/{prefix}/namespaces");
    assert_eq!(second[0]["fields"]["status"], 200);

    let log = server.log();
    assert!(!log.contains("very-secret-token-value"), "{log}");
}

#[tokio::test]
async fn metrics_are_on_the_main_port_by_default_with_route_templates() {
    let server = FloeServer::start();
    let http = floe_testkit::http();
    for name in ["a", "b"] {
        let response = http
            .get(format!("{}/v1/main/namespaces/{name}", server.uri()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let response = http
        .get(format!("{}/metrics", server.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let text = response.text().await.unwrap();
    let line = text
        .lines()
        .find(|line| {
            line.starts_with("floe_http_requests_total{")
                && line.contains(r#"route="/v1/{prefix}/namespaces/{namespace}""#)
                && line.contains(r#"status="404""#)
        })
        .unwrap_or_else(|| panic!("no request series for the template:\n{text}"));
    assert!(line.ends_with(" 2"), "both requests, one series: {line}");
    assert!(
        !text.contains("namespaces/a"),
        "raw paths never become labels"
    );
    for series in [
        "floe_commits_total",
        "floe_object_store_operations_total",
        "floe_metadata_cache_hits_total",
        "floe_store_connections",
        "floe_scrub_findings_open",
        "floe_auth_decisions_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {series} ")),
            "{series} is described:\n{text}"
        );
    }
}

#[tokio::test]
async fn with_a_metrics_port_metrics_are_served_there_and_not_on_the_main_port() {
    let port = floe_testkit::free_port();
    let server = FloeServer::start_with_args(&["--metrics-port", &port.to_string()]);
    let http = floe_testkit::http();
    let main = http
        .get(format!("{}/metrics", server.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), StatusCode::NOT_FOUND);
    let metrics_uri = format!("http://127.0.0.1:{port}");
    let response = http
        .get(format!("{metrics_uri}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!request_id_of(&response).is_empty());
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"route="unmatched""#) && text.contains(r#"status="404""#),
        "the main port's 404 is counted:\n{text}"
    );
    // The metrics port serves nothing else.
    let other = http
        .get(format!("{metrics_uri}/v1/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}
