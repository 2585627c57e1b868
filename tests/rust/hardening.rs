//! What keeps clients and web pages from misusing a server, over real HTTP: JSON bodies only as
//! `application/json`, loopback servers only under loopback (or allowed) host names, slow
//! clients disconnected, a bound on requests in flight and on one request's time, capped pages,
//! and registered warehouses only under the operator's storage roots, never with the server's
//! own credentials.

use std::time::Duration;

use floe_testkit::seaweedfs::{self, TestS3};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn namespaces_url(server: &FloeServer) -> String {
    format!("{}/v1/main/namespaces", server.uri())
}

fn warehouses_url(server: &FloeServer) -> String {
    format!("{}/management/v1/warehouses", server.uri())
}

async fn namespace_exists(server: &FloeServer, name: &str) -> bool {
    let response = floe_testkit::http()
        .get(format!("{}/{name}", namespaces_url(server)))
        .send()
        .await
        .unwrap();
    response.status() == StatusCode::OK
}

/// The ErrorModel's `(type, code)`, after checking that `code` is the response's status.
async fn error_of(response: reqwest::Response) -> (String, u16) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("an ErrorModel body");
    assert_eq!(body["error"]["code"], status, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    (
        body["error"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        status,
    )
}

#[tokio::test]
async fn a_text_plain_post_is_refused_and_creates_nothing() {
    let server = FloeServer::start();
    let response = floe_testkit::http()
        .post(namespaces_url(&server))
        .header("content-type", "text/plain")
        .body(json!({"namespace": ["sneaky"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(response).await,
        ("UnsupportedMediaTypeException".to_string(), 415)
    );
    assert!(!namespace_exists(&server, "sneaky").await);
}

#[tokio::test]
async fn a_post_without_content_type_is_refused() {
    let server = FloeServer::start();
    let response = floe_testkit::http()
        .post(namespaces_url(&server))
        .body(json!({"namespace": ["untyped"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(response).await,
        ("UnsupportedMediaTypeException".to_string(), 415)
    );
    assert!(!namespace_exists(&server, "untyped").await);
}

#[tokio::test]
async fn json_with_a_charset_is_accepted() {
    let server = FloeServer::start();
    let response = floe_testkit::http()
        .post(namespaces_url(&server))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(json!({"namespace": ["typed"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(namespace_exists(&server, "typed").await);
}

#[tokio::test]
async fn a_loopback_server_answers_only_to_loopback_and_allowed_host_names() {
    let server = FloeServer::start_with_args(&["--allowed-host", "floe.internal"]);
    let config = format!("{}/v1/config", server.uri());
    let client = floe_testkit::http();
    let with_host = |host: String| client.get(&config).header("host", host).send();

    let refused = with_host("evil.example".into()).await.unwrap();
    assert_eq!(
        error_of(refused).await,
        ("MisdirectedRequestException".to_string(), 421)
    );
    let refused = with_host(format!("evil.example:{}", server.port()))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST);
    // A rebinding page cannot create anything either.
    let refused = client
        .post(namespaces_url(&server))
        .header("host", "evil.example")
        .json(&json!({"namespace": ["rebound"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(!namespace_exists(&server, "rebound").await);

    for host in [
        format!("localhost:{}", server.port()),
        "localhost".to_string(),
        format!("[::1]:{}", server.port()),
        "floe.internal".to_string(),
        format!("floe.internal:{}", server.port()),
    ] {
        let response = with_host(host.clone()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }

    // HTTP/1.0 without any Host header.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    stream
        .write_all(b"GET /v1/config HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream).await.expect("a response");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
}

/// Reads until the server closes the connection; what it sent, or `None` if it is still open
/// after a minute (a bound for a broken server, far above the configured timeouts).
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let server = FloeServer::start_with_args(&["--header-read-timeout-ms", "300"]);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    stream
        .write_all(b"GET /v1/config HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let received = read_until_closed(&mut stream)
        .await
        .expect("the server closed the connection");
    assert!(
        !String::from_utf8_lossy(&received).contains("200 OK"),
        "{}",
        String::from_utf8_lossy(&received)
    );
    // The server itself is fine.
    let response = floe_testkit::http()
        .get(format!("{}/v1/config", server.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Starts a namespace-creating POST that promises a body it never finishes sending.
async fn slow_upload(server: &FloeServer) -> TcpStream {
    slow_upload_with(server, "").await
}

/// [`slow_upload`] with more header lines (each ending in CRLF).
async fn slow_upload_with(server: &FloeServer, headers: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let head = format!(
        "POST /v1/main/namespaces HTTP/1.1\r\nHost: localhost\r\n{headers}\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"namespace\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_get_a_503_with_retry_after() {
    let server = FloeServer::start_with_args(&["--max-concurrent-requests", "2"]);
    let held = [slow_upload(&server).await, slow_upload(&server).await];
    let client = floe_testkit::http();
    let url = format!("{}/v1/config", server.uri());
    // The two uploads reach the handlers in their own time: ask until the limit shows.
    let mut refused = None;
    for _ in 0..200 {
        let response = client.get(&url).send().await.unwrap();
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status(), StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = refused.expect("a request beyond the limit was refused");
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(
        error_of(refused).await,
        ("ServiceUnavailableException".to_string(), 503)
    );
    // Liveness probes still get through.
    let health = client
        .get(format!("{}/health", server.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    drop(held);
    let mut served = false;
    for _ in 0..200 {
        if client.get(&url).send().await.unwrap().status() == StatusCode::OK {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served,
        "requests are served again once the slow ones are gone"
    );
}

/// Reads until the whole ErrorModel body is in (or the server closes); returns it as text.
async fn read_error_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&received).contains("}}") {
        match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test]
async fn a_request_running_past_the_request_timeout_gets_a_503() {
    let server = FloeServer::start_with_args(&["--request-timeout-ms", "300"]);
    let mut stream = slow_upload(&server).await;
    let text = read_error_response(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("ServiceUnavailableException"), "{text}");
    assert!(text.contains("request-timeout-ms"), "{text}");

    // With an Idempotency-Key too (that layer reads the body itself); the key stays usable.
    let mut stream = slow_upload_with(&server, "Idempotency-Key: slow-1\r\n").await;
    let text = read_error_response(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("request-timeout-ms"), "{text}");
    let retried = floe_testkit::http()
        .post(namespaces_url(&server))
        .header("idempotency-key", "slow-1")
        .json(&json!({"namespace": ["slow"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::OK);
    assert!(namespace_exists(&server, "slow").await);
}

async fn list_page(server: &FloeServer, query: &str) -> Value {
    let response = floe_testkit::http()
        .get(format!("{}?{query}", namespaces_url(server)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn names(page: &Value) -> Vec<String> {
    page["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|namespace| namespace[0].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn page_size_is_honoured_from_the_first_page_and_capped() {
    let server = FloeServer::start_with_args(&["--max-page-size", "4"]);
    let api = Api::new(&server);
    let mut expected: Vec<String> = (0..7).map(|i| format!("ns{i}")).collect();
    for name in &expected {
        api.create_namespace(&[name]).await;
    }
    expected.sort();

    let first = list_page(&server, "pageSize=3").await;
    assert_eq!(names(&first).len(), 3);
    let mut seen = names(&first);
    let mut token = first["next-page-token"].as_str().map(str::to_string);
    assert!(token.is_some(), "{first}");
    while let Some(next) = token {
        let page = list_page(&server, &format!("pageSize=3&pageToken={next}")).await;
        assert!(names(&page).len() <= 3, "{page}");
        seen.extend(names(&page));
        token = page["next-page-token"].as_str().map(str::to_string);
    }
    seen.sort();
    assert_eq!(seen, expected, "every namespace exactly once");

    let capped = list_page(&server, "pageSize=100").await;
    assert_eq!(names(&capped).len(), 4, "{capped}");
    assert!(capped["next-page-token"].is_string(), "{capped}");
    // A client that does not page gets everything, cap or not.
    let everything = list_page(&server, "").await;
    assert_eq!(names(&everything).len(), 7, "{everything}");
    assert!(everything["next-page-token"].is_null(), "{everything}");
}

async fn register(server: &FloeServer, body: Value) -> reqwest::Response {
    floe_testkit::http()
        .post(warehouses_url(server))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn dir_url(path: &std::path::Path) -> String {
    url::Url::from_directory_path(path).unwrap().to_string()
}

#[tokio::test]
async fn warehouses_outside_the_allowed_roots_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lakes = dir.path().join("lakes");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&lakes).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, lakes.join("link")).unwrap();
    let lakes_url = dir_url(&lakes);
    let server = FloeServer::start_with_args(&[
        "--allowed-storage-root",
        lakes_url.trim_end_matches('/'),
        "--allowed-storage-root",
        "s3://allowed-bucket/tables",
    ]);

    for storage_url in [
        dir_url(&outside),
        format!("{lakes_url}../outside"),
        format!("{lakes_url}%2e%2e/outside"),
        dir_url(&lakes.join("link/inner")),
        dir_url(&dir.path().join("lakes2")),
        "s3://other-bucket/tables".to_string(),
        "s3://allowed-bucket/tables2".to_string(),
    ] {
        let response = register(
            &server,
            json!({"name": "escape", "storage-url": storage_url}),
        )
        .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{storage_url}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("allowed storage root") && message.contains("s3://allowed-bucket"),
            "{storage_url}: {message}"
        );
    }
    assert!(!dir.path().join("lakes2").exists());
    assert!(!outside.join("inner").exists());

    let inside = dir_url(&lakes.join("archive"));
    let response = register(&server, json!({"name": "archive", "storage-url": inside})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(lakes.join("archive").is_dir());
}

#[tokio::test]
async fn by_default_only_the_data_dirs_warehouse_directory_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let server = FloeServer::start();
    let response = register(
        &server,
        json!({"name": "elsewhere", "storage-url": dir_url(dir.path())}),
    )
    .await;
    let (kind, status) = error_of(response).await;
    assert_eq!((kind.as_str(), status), ("BadRequestException", 400));
    let (ok, out, err) = floe(&[
        "warehouse",
        "create",
        "elsewhere",
        "--storage-url",
        &dir_url(dir.path()),
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(err.contains("allowed storage root"), "{err}");
    let (ok, out, err) = floe(&[
        "warehouse",
        "create",
        "elsewhere",
        "--storage-url",
        &dir_url(&dir.path().join("lakes/one")),
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--allowed-storage-root",
        dir_url(&dir.path().join("lakes")).as_str(),
    ]);
    assert!(ok, "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_warehouse_never_signs_with_the_servers_environment_keys() {
    let s3 = TestS3::start();
    s3.create_bucket("lake").await;
    // The server's environment holds keys SeaweedFS accepts.
    let server = FloeServer::start_with_env(
        &["--allowed-storage-root", "s3://lake"],
        &TestS3::credentials_env(),
    );
    let settings = json!({
        "s3.endpoint": s3.endpoint(),
        "s3.region": seaweedfs::REGION,
        "s3.path-style-access": "true",
    });
    let response = register(
        &server,
        json!({"name": "borrowed", "storage-url": "s3://lake/borrowed", "properties": settings}),
    )
    .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot use the storage of warehouse borrowed"),
        "{body}"
    );

    let mut own = settings.clone();
    own["s3.access-key-id"] = json!(seaweedfs::ACCESS_KEY_ID);
    own["s3.secret-access-key"] = json!(seaweedfs::SECRET_ACCESS_KEY);
    let response = register(
        &server,
        json!({"name": "owned", "storage-url": "s3://lake/owned", "properties": own}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}
