//! `GET /metrics` with auth on: 401 without a token, 403 for a principal that is not an
//! administrator, 200 for one that is, and 200 for the metrics token (`--metrics-token-file`),
//! which is never logged.

use reqwest::StatusCode;

use super::{admin_of, create_principal, token_for};
use crate::support::*;

async fn scrape(server: &FloeServer, token: Option<&str>) -> reqwest::Response {
    let request = floe_testkit::http().get(format!("{}/metrics", server.uri()));
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.expect("GET /metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_admin_or_the_metrics_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("metrics-token");
    std::fs::write(&token_file, "scrape-me-0123456789\n").unwrap();
    let server = FloeServer::start_with_args(&[
        "--auth",
        "oauth2",
        "--log-format",
        "json",
        "--metrics-token-file",
        token_file.to_str().unwrap(),
    ]);

    let anonymous = scrape(&server, None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(
        anonymous.headers().contains_key("x-request-id"),
        "a 401 carries the request id too"
    );
    let body: serde_json::Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["type"], "NotAuthorizedException");

    assert_eq!(
        scrape(&server, Some("not-the-token")).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let credential = create_principal(server.data_dir(), "viewer");
    let viewer = token_for(&server, &credential).await;
    let denied = scrape(&server, Some(&viewer)).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = denied.json().await.unwrap();
    assert_eq!(body["error"]["type"], "ForbiddenException");

    let admin = admin_of(&server).await;
    assert_eq!(admin.get("/metrics").await.status(), StatusCode::OK);

    let response = scrape(&server, Some("scrape-me-0123456789")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    // The decisions so far: two 401s (no token, a wrong one), one 403, and two allowed: the
    // admin's scrape and this one (decided before it was rendered). Token requests are public.
    let count = |decision: &str| -> f64 {
        text.lines()
            .find(|line| {
                line.starts_with("floe_auth_decisions_total{")
                    && line.contains(&format!("decision=\"{decision}\""))
            })
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no {decision} decisions in:\n{text}"))
    };
    assert_eq!(count("unauthenticated"), 2.0, "{text}");
    assert_eq!(count("denied"), 1.0, "{text}");
    assert_eq!(count("allowed"), 2.0, "{text}");

    let log = server.log();
    assert!(!log.contains("scrape-me-0123456789"), "{log}");
    assert!(
        log.contains("\"principal\":\"metrics-token\""),
        "the access log names the token, not its value: {log}"
    );
}
