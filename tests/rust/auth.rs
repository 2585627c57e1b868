//! Identities, grants and audit over real HTTP (docs/security.md): `floe serve --auth oauth2` issues
//! tokens to the principals `floe principal create` makes and to its first administrator; roles
//! confine each principal to what they were granted (lists filtered, everything else 403); a revoke
//! through one replica holds on another within a second; `--auth oidc` accepts only tokens its
//! issuer's JWKS signed for it; a non-loopback server refuses to run without auth; and every
//! denial and mutation lands in the audit log with the client's request id.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floe_testkit::postgres::TestPostgres;
use iceberg::io::LocalFsStorageFactory;
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableIdent};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

mod grants_api;
mod metrics;
mod oidc;
mod vending;

/// How long a test waits for something the server does in the background (a policy refresh, an
/// audit batch) before it gives up. Only a bound on waiting; nothing is asserted about speed.
const PATIENCE: Duration = Duration::from_secs(10);

/// A caller of one server: a bearer token (or none) and the server's address.
#[derive(Clone)]
struct Caller {
    http: reqwest::Client,
    uri: String,
    token: Option<String>,
}

impl Caller {
    fn new(server: &FloeServer, token: &str) -> Self {
        Self {
            http: floe_testkit::http(),
            uri: server.uri(),
            token: Some(token.to_string()),
        }
    }

    /// `path` starts with `/` (e.g. `/v1/main/namespaces`).
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.uri));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn get(&self, path: &str) -> Response {
        send(self.request(Method::GET, path)).await
    }

    async fn delete(&self, path: &str) -> Response {
        send(self.request(Method::DELETE, path)).await
    }

    async fn post(&self, path: &str, body: &Value) -> Response {
        send(self.request(Method::POST, path).json(body)).await
    }

    /// Polls `GET path` until it answers `expected`; panics with the last answer after [`PATIENCE`].
    async fn wait_for(&self, path: &str, expected: StatusCode) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let response = self.get(path).await;
            if response.status() == expected {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "GET {path} still answers {} (not {expected}): {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn send(request: reqwest::RequestBuilder) -> Response {
    request.send().await.expect("request reaches the server")
}

fn table_path(namespace: &str, table: &str) -> String {
    format!("/v1/main/namespaces/{namespace}/tables/{table}")
}

/// Asserts `response` is `status` with the ErrorModel `kind`.
async fn assert_error(response: Response, status: u16, kind: &str, what: &str) {
    assert_eq!(response.status().as_u16(), status, "{what}");
    if status == 401 {
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer"),
            "{what}: a 401 names the scheme"
        );
    }
    let (found, _, message) = error_model(response).await;
    assert_eq!(found, kind, "{what}: {message}");
}

/// The first administrator's credential, as the first `oauth2` start wrote it.
fn admin_credential(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("admin-credential"))
        .expect("read admin-credential")
        .trim()
        .to_string()
}

async fn admin_of(server: &FloeServer) -> Caller {
    let credential = admin_credential(server.data_dir());
    Caller::new(server, &token_for(server, &credential).await)
}

/// Runs `floe ARGS --data-dir DIR` and asserts it succeeded; returns its stdout.
fn cli(data_dir: &Path, args: &[&str]) -> String {
    let dir = data_dir.to_str().expect("utf-8 data dir");
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir]);
    let (ok, stdout, stderr) = floe(&all);
    assert!(ok, "floe {args:?} failed: {stderr}");
    stdout
}

/// `floe principal create NAME`: its `client_id:client_secret`.
fn create_principal(data_dir: &Path, name: &str) -> String {
    let stdout = cli(data_dir, &["principal", "create", name]);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("credential:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no credential line in: {stdout}"))
        .to_string()
}

/// Creates `role`, grants it each (privilege, securable) and gives it to `principal`.
fn grant_role(data_dir: &Path, role: &str, grants: &[(&str, &str)], principal: &str) {
    cli(data_dir, &["role", "create", role]);
    for (privilege, on) in grants {
        cli(data_dir, &["grant", privilege, "--on", on, "--to", role]);
    }
    cli(data_dir, &["role", "assign", role, principal]);
}

async fn create_namespace_as(caller: &Caller, name: &str) {
    let response = caller
        .post("/v1/main/namespaces", &json!({ "namespace": [name] }))
        .await;
    assert_eq!(response.status(), 200, "create namespace {name}");
}

async fn create_table_as(caller: &Caller, namespace: &str, name: &str) {
    let response = caller
        .post(
            &format!("/v1/main/namespaces/{namespace}/tables"),
            &json!({ "name": name, "schema": id_name_schema() }),
        )
        .await;
    assert_eq!(
        response.status(),
        200,
        "create table {namespace}.{name}: {}",
        response.text().await.unwrap_or_default()
    );
}

/// `id: long (required), name: string`: what support's `append` writes.
fn id_name_schema() -> Value {
    let mut schema = id_schema_json();
    schema["fields"]
        .as_array_mut()
        .expect("fields")
        .push(json!({ "id": 2, "name": "name", "required": false, "type": "string" }));
    schema
}

/// iceberg-rust's REST client, logging in with `credential` at the token endpoint.
async fn rest_catalog_with_credential(server: &FloeServer, credential: &str) -> RestCatalog {
    RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load(
            "floe",
            HashMap::from([
                ("uri".to_string(), server.uri()),
                ("credential".to_string(), credential.to_string()),
            ]),
        )
        .await
        .expect("connect RestCatalog with a credential")
}

// ---- 1. oauth2: the first administrator and the token endpoint

#[tokio::test]
async fn oauth2_first_start_writes_a_private_admin_credential_that_gets_tokens() {
    let server = FloeServer::start_with_args(&["--auth", "oauth2"]);
    let path = server.data_dir().join("admin-credential");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path)
            .expect("admin-credential exists")
            .permissions(),
    );
    assert_eq!(
        mode & 0o777,
        0o600,
        "admin-credential is for its owner only"
    );
    let credential = admin_credential(server.data_dir());
    let (client_id, secret) = credential.split_once(':').expect("id:secret");
    assert!(!client_id.is_empty() && secret.len() >= 32, "{client_id}");

    // The form body, as PyIceberg sends it.
    let token = token_for(&server, &credential).await;
    let admin = Caller::new(&server, &token);
    assert_eq!(admin.get("/v1/config").await.status(), 200);
    assert_eq!(admin.get("/management/v1/principals").await.status(), 200);
    let anonymous = Caller {
        token: None,
        ..admin.clone()
    };
    assert_error(
        anonymous.get("/v1/config").await,
        401,
        "NotAuthorizedException",
        "no token",
    )
    .await;

    // HTTP Basic, as Iceberg Java sends it.
    let basic = send(
        floe_testkit::http()
            .post(format!("{}/v1/oauth/tokens", server.uri()))
            .basic_auth(client_id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=catalog"),
    )
    .await;
    assert_eq!(basic.status(), 200, "HTTP Basic client credentials");
    let basic: Value = basic.json().await.expect("token response");
    let basic_token = basic["access_token"].as_str().expect("access_token");
    assert_eq!(
        Caller::new(&server, basic_token)
            .get("/v1/config")
            .await
            .status(),
        200
    );

    // A wrong secret, in either form, is the RFC 6749 invalid_client.
    let wrong_form = send(
        floe_testkit::http()
            .post(format!("{}/v1/oauth/tokens", server.uri()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={client_id}&client_secret=not-{secret}"
            )),
    )
    .await;
    let wrong_basic = send(
        floe_testkit::http()
            .post(format!("{}/v1/oauth/tokens", server.uri()))
            .basic_auth(client_id, Some("wrong"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials"),
    )
    .await;
    for wrong in [wrong_form, wrong_basic] {
        assert_eq!(wrong.status(), 401);
        let body: Value = wrong.json().await.expect("OAuth error body");
        assert_eq!(body["error"], "invalid_client", "{body}");
        assert!(body.get("access_token").is_none(), "{body}");
    }

    // A token is only good where its keys live: another server's admin token is refused here.
    let other = FloeServer::start_with_args(&["--auth", "oauth2"]);
    let foreign = admin_of(&other).await;
    assert_eq!(foreign.get("/v1/config").await.status(), 200, "at home");
    let foreign_here = Caller {
        uri: server.uri(),
        ..foreign
    };
    assert_error(
        foreign_here.get("/v1/config").await,
        401,
        "NotAuthorizedException",
        "another server's token",
    )
    .await;

    let log = server.log();
    assert!(
        log.contains("created the first administrator"),
        "the log says the credential was written: {log}"
    );
    assert!(!log.contains(secret), "the admin secret is in the log");
    assert!(
        !log.contains(&token) && !log.contains(basic_token),
        "a token is in the log"
    );
}

#[tokio::test]
async fn a_leftover_admin_credential_file_is_made_private_before_the_secret_goes_in() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let path = data_dir.join("admin-credential");
    std::fs::write(&path, "old-id:old-secret\n").expect("leftover file");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod 644");
    let server = FloeServer::start_in_with_args(&data_dir, &["--auth", "oauth2"]);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("metadata").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let credential = admin_credential(&data_dir);
    assert_ne!(
        credential, "old-id:old-secret",
        "the new credential replaced the old"
    );
    token_for(&server, &credential).await;
}

// ---- 2. principals confined to their roles' grants

/// What a principal who holds nothing on `namespace` gets for each thing it tries there.
async fn assert_shut_out(caller: &Caller, who: &str, namespace: &str, table: &str) {
    let table = table_path(namespace, table);
    let forbidden = [
        (
            caller
                .get(&format!("/v1/main/namespaces/{namespace}/tables"))
                .await,
            "list tables",
        ),
        (caller.get(&table).await, "load"),
        (
            caller.get(&table_path(namespace, "no_such_table")).await,
            "load a table that does not exist",
        ),
        (
            caller
                .post(&table, &set_properties_body(json!({"owner": who})))
                .await,
            "commit",
        ),
        (caller.delete(&table).await, "drop"),
        (
            caller.delete(&format!("{table}?purgeRequested=true")).await,
            "purge",
        ),
    ];
    for (response, what) in forbidden {
        assert_error(
            response,
            403,
            "ForbiddenException",
            &format!("{who}: {what} in {namespace}"),
        )
        .await;
    }
}

/// A principal with write, create and drop on `namespace` does all of it there.
async fn assert_owns(server: &FloeServer, caller: &Caller, credential: &str, namespace: &str) {
    for table in ["kept", "dropped", "purged"] {
        create_table_as(caller, namespace, table).await;
    }
    let listed = caller
        .get(&format!("/v1/main/namespaces/{namespace}/tables"))
        .await;
    assert_eq!(listed.status(), 200);
    assert_eq!(
        table_names(listed).await,
        BTreeSet::from(["dropped".into(), "kept".into(), "purged".into()])
    );
    assert_eq!(
        caller.get(&table_path(namespace, "kept")).await.status(),
        200
    );

    // A real commit by iceberg-rust, which logs in with the credential itself.
    let catalog = rest_catalog_with_credential(server, credential).await;
    let ident = TableIdent::new(NamespaceIdent::new(namespace.to_string()), "kept".into());
    let table = catalog.load_table(&ident).await.expect("load own table");
    let committed = append(&catalog, &table, &[1, 2, 3])
        .await
        .expect("append to own table");
    assert_eq!(read_ids(&committed).await, [1, 2, 3]);

    assert_eq!(
        caller
            .delete(&table_path(namespace, "dropped"))
            .await
            .status(),
        204
    );
    assert_eq!(
        caller
            .delete(&format!(
                "{}?purgeRequested=true",
                table_path(namespace, "purged")
            ))
            .await
            .status(),
        204
    );
    assert_eq!(
        table_names(
            caller
                .get(&format!("/v1/main/namespaces/{namespace}/tables"))
                .await
        )
        .await,
        BTreeSet::from(["kept".into()])
    );
}

async fn table_names(response: Response) -> BTreeSet<String> {
    let body: Value = response.json().await.expect("ListTablesResponse");
    body["identifiers"]
        .as_array()
        .expect("identifiers")
        .iter()
        .map(|id| id["name"].as_str().expect("name").to_string())
        .collect()
}

async fn namespace_names(caller: &Caller) -> BTreeSet<String> {
    let response = caller.get("/v1/main/namespaces").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("ListNamespacesResponse");
    body["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|levels| levels[0].as_str().expect("level").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn principals_reach_only_the_namespaces_their_roles_were_granted() {
    let server = FloeServer::start_with_args(&["--auth", "oauth2"]);
    let dir = server.data_dir();
    let admin = admin_of(&server).await;
    for namespace in ["ns_a", "ns_b", "shared"] {
        create_namespace_as(&admin, namespace).await;
    }
    for table in ["t1", "t2"] {
        create_table_as(&admin, "shared", table).await;
    }

    let alice_credential = create_principal(dir, "alice");
    let bob_credential = create_principal(dir, "bob");
    let carol_credential = create_principal(dir, "carol");
    // Alice and bob own a namespace each and read one table each of `shared`; carol reads ns_a.
    let owner_of = |namespace: &str, shared_table: &str| {
        let mut grants: Vec<(&str, String)> = ["write", "create", "drop"]
            .map(|privilege| (privilege, format!("namespace:main:{namespace}")))
            .to_vec();
        grants.push(("read", format!("table:main:shared.{shared_table}")));
        grants
    };
    for (role, principal, grants) in [
        ("owners_a", "alice", owner_of("ns_a", "t1")),
        ("owners_b", "bob", owner_of("ns_b", "t2")),
        (
            "readers_a",
            "carol",
            vec![("read", "namespace:main:ns_a".to_string())],
        ),
    ] {
        let grants: Vec<(&str, &str)> = grants.iter().map(|(p, on)| (*p, on.as_str())).collect();
        grant_role(dir, role, &grants, principal);
    }

    let alice = Caller::new(&server, &token_for(&server, &alice_credential).await);
    let bob = Caller::new(&server, &token_for(&server, &bob_credential).await);
    let carol = Caller::new(&server, &token_for(&server, &carol_credential).await);
    // The grants were written by another process; the server picks them up within a second.
    alice
        .wait_for("/v1/main/namespaces/ns_a", StatusCode::OK)
        .await;
    bob.wait_for("/v1/main/namespaces/ns_b", StatusCode::OK)
        .await;
    carol
        .wait_for("/v1/main/namespaces/ns_a", StatusCode::OK)
        .await;

    assert_owns(&server, &alice, &alice_credential, "ns_a").await;
    assert_owns(&server, &bob, &bob_credential, "ns_b").await;
    assert_shut_out(&alice, "alice", "ns_b", "kept").await;
    assert_shut_out(&bob, "bob", "ns_a", "kept").await;

    // iceberg-rust sees the same 403 as an error, not a table.
    let alice_catalog = rest_catalog_with_credential(&server, &alice_credential).await;
    let bobs = TableIdent::new(NamespaceIdent::new("ns_b".into()), "kept".into());
    assert!(alice_catalog.load_table(&bobs).await.is_err());

    // Nothing bob owns was touched by alice's attempts.
    let bobs_table = admin.get(&table_path("ns_b", "kept")).await;
    assert_eq!(bobs_table.status(), 200);
    let bobs_table: Value = bobs_table.json().await.expect("LoadTableResult");
    assert!(
        bobs_table["metadata"]["properties"].get("owner").is_none(),
        "{bobs_table}"
    );

    // Lists are filtered, not refused: each sees its own namespace and what it reads in `shared`.
    assert_eq!(
        namespace_names(&alice).await,
        BTreeSet::from(["ns_a".into(), "shared".into()])
    );
    assert_eq!(
        namespace_names(&bob).await,
        BTreeSet::from(["ns_b".into(), "shared".into()])
    );
    assert_eq!(
        namespace_names(&admin).await,
        BTreeSet::from(["ns_a".into(), "ns_b".into(), "shared".into()])
    );
    assert_eq!(
        namespace_names(&carol).await,
        BTreeSet::from(["ns_a".into()])
    );
    let shared_tables = "/v1/main/namespaces/shared/tables";
    assert_eq!(
        table_names(alice.get(shared_tables).await).await,
        BTreeSet::from(["t1".into()])
    );
    assert_eq!(
        table_names(bob.get(shared_tables).await).await,
        BTreeSet::from(["t2".into()])
    );
    assert_eq!(
        table_names(admin.get(shared_tables).await).await,
        BTreeSet::from(["t1".into(), "t2".into()])
    );

    // read: load, but neither commit nor drop.
    let kept = table_path("ns_a", "kept");
    assert_eq!(carol.get(&kept).await.status(), 200);
    assert_error(
        carol
            .post(&kept, &set_properties_body(json!({"owner": "carol"})))
            .await,
        403,
        "ForbiddenException",
        "read-only commit",
    )
    .await;
    assert_error(
        carol.delete(&kept).await,
        403,
        "ForbiddenException",
        "read-only drop",
    )
    .await;
    assert_eq!(alice.get(&kept).await.status(), 200, "still there");
}

// ---- 3. a revoke through one replica holds on the other within a second

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_on_one_replica_is_enforced_by_another_within_a_second() {
    let metastore = tokio::task::spawn_blocking(|| TestPostgres::shared().create_database())
        .await
        .expect("create database");
    let dir = tempfile::tempdir().expect("temp dir");
    let (replica1, replica2) = {
        let (metastore, dir) = (metastore.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || {
            let first = FloeServer::start_replica(&metastore, &dir, &["--auth", "oauth2"]);
            let second = FloeServer::start_replica(&metastore, &dir, &["--auth", "oauth2"]);
            (first, second)
        })
        .await
        .expect("start replicas")
    };
    let admin = admin_of(&replica1).await;
    create_namespace_as(&admin, "fresh").await;
    create_table_as(&admin, "fresh", "t").await;

    let created = admin
        .post("/management/v1/principals", &json!({"name": "dave"}))
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.expect("new principal");
    let dave_credential = format!(
        "{}:{}",
        created["client-id"].as_str().expect("client-id"),
        created["client-secret"].as_str().expect("client-secret")
    );
    let role = admin
        .post("/management/v1/roles", &json!({"name": "fresh_readers"}))
        .await;
    assert_eq!(role.status(), 201);
    let assigned = admin
        .post(
            "/management/v1/roles/fresh_readers/principals",
            &json!({"principal": "dave"}),
        )
        .await;
    assert_eq!(assigned.status(), 204);
    let grant = json!({"role": "fresh_readers", "privilege": "read", "on": "table:main:fresh.t"});
    assert_eq!(
        admin.post("/management/v1/grants", &grant).await.status(),
        204
    );

    // Dave's token comes from replica 2: the signing keys are shared through the store.
    let dave = Caller::new(&replica2, &token_for(&replica2, &dave_credential).await);
    let table = table_path("fresh", "t");
    dave.wait_for(&table, StatusCode::OK).await;

    let revoked = admin.post("/management/v1/grants/revoke", &grant).await;
    assert_eq!(revoked.status(), 204);
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut last = StatusCode::OK;
    while Instant::now() < deadline {
        last = dave.get(&table).await.status();
        if last == StatusCode::FORBIDDEN {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        last,
        StatusCode::FORBIDDEN,
        "replica 2 still lets dave load the table 1.5 s after the revoke"
    );
}

// ---- 5. no auth only on loopback

/// Runs `floe serve ARGS --port 0 --data-dir DIR` until it exits (at most 30 s): (succeeded,
/// stderr). For flag combinations that must fail before serving.
fn serve_expecting_exit(data_dir: &Path, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(floe_testkit::floe_binary())
        .arg("serve")
        .args(args)
        .args(["--port", "0", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn floe serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for floe serve") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("floe serve {args:?} was expected to exit but kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut stderr).expect("read stderr");
    }
    (status.success(), stderr)
}

#[test]
fn serving_a_non_loopback_address_without_auth_is_refused_before_anything_opens() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    for host in ["0.0.0.0", "::"] {
        let (ok, stderr) = serve_expecting_exit(&data_dir, &["--host", host]);
        assert!(!ok, "--host {host} without auth must not start");
        assert!(
            stderr.contains("--insecure-no-auth"),
            "the refusal names the way out: {stderr}"
        );
    }
    assert!(
        !data_dir.join("catalog.db").exists(),
        "the refusal comes before the store is opened"
    );
}

#[test]
fn insecure_no_auth_lets_a_non_loopback_server_start() {
    // 198.51.100.1 (TEST-NET-2) is not on this machine: the flag gets floe past the refusal to
    // the bind, which fails, so nothing listens beyond loopback.
    let temp = tempfile::tempdir().expect("temp dir");
    let (ok, stderr) = serve_expecting_exit(
        &temp.path().join("data"),
        &["--host", "198.51.100.1", "--insecure-no-auth"],
    );
    assert!(!ok);
    assert!(
        stderr.contains("cannot listen on 198.51.100.1") && !stderr.contains("refusing"),
        "{stderr}"
    );

    // Where the machine has a non-loopback address of its own, really serve on it (briefly).
    let Some(address) = local_non_loopback_address() else {
        return;
    };
    let mut child = Command::new(floe_testkit::floe_binary())
        .args(["serve", "--insecure-no-auth", "--port", "0", "--host"])
        .arg(address.to_string())
        .arg("--data-dir")
        .arg(temp.path().join("served"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn floe serve");
    let stdout = child.stdout.take().expect("stdout");
    let listening = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .map_while(Result::ok)
        .find_map(|line| {
            line.strip_prefix("floe catalog listening on ")
                .map(str::to_string)
        });
    let _ = child.kill();
    let _ = child.wait();
    let listening = listening.expect("floe serve --insecure-no-auth starts");
    assert!(
        listening.starts_with(&address.to_string()),
        "{listening} is on {address}"
    );
}

/// The address this machine would send from to a public address, if it has one that is not
/// loopback (a UDP "connect" sends nothing).
fn local_non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("203.0.113.1:9").ok()?;
    let address = socket.local_addr().ok()?.ip();
    (!address.is_loopback() && !address.is_unspecified()).then_some(address)
}

// ---- 6. audit

/// `GET /management/v1/audit` until it holds a record of every one of `request_ids`.
async fn audit_records(admin: &Caller, request_ids: &[&str]) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let response = admin.get("/management/v1/audit?limit=1000").await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("audit records");
        let records = body["records"].as_array().expect("records").clone();
        let all_there = request_ids
            .iter()
            .all(|id| records.iter().any(|r| r["request-id"] == *id));
        if all_there {
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
    let matching: Vec<&Value> = records
        .iter()
        .filter(|r| r["request-id"] == request_id)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one record of {request_id}: {matching:?}"
    );
    matching[0]
}

fn assert_record(record: &Value, expected: [(&str, Value); 5]) {
    for (field, value) in expected {
        assert_eq!(record[field], value, "{field} of {record}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_rejections_and_commits_are_audited_with_the_clients_request_id() {
    let server = FloeServer::start_with_args(&["--auth", "oauth2"]);
    let dir = server.data_dir();
    let admin = admin_of(&server).await;
    for namespace in ["mine", "theirs"] {
        create_namespace_as(&admin, namespace).await;
        create_table_as(&admin, namespace, "t").await;
    }
    let credential = create_principal(dir, "erin");
    grant_role(dir, "writers", &[("write", "namespace:main:mine")], "erin");
    let erin = Caller::new(&server, &token_for(&server, &credential).await);
    erin.wait_for("/v1/main/namespaces/mine", StatusCode::OK)
        .await;

    let run = uuid::Uuid::new_v4();
    let denied_id = format!("denied-{run}");
    let rejected_id = format!("rejected-{run}");
    let commit_id = format!("commit-{run}");
    let denied = send(
        erin.request(Method::GET, &table_path("theirs", "t"))
            .header("x-request-id", &denied_id),
    )
    .await;
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(denied_id.as_str()),
        "the response carries the client's request id"
    );
    let rejected = send(
        floe_testkit::http()
            .get(format!("{}{}", server.uri(), table_path("mine", "t")))
            .bearer_auth("not-a-token")
            .header("x-request-id", &rejected_id),
    )
    .await;
    assert_eq!(rejected.status(), 401);
    let committed = send(
        erin.request(Method::POST, &table_path("mine", "t"))
            .json(&set_properties_body(json!({"audited": "yes"})))
            .header("x-request-id", &commit_id),
    )
    .await;
    assert_eq!(committed.status(), 200);

    let table_route = "/v1/{prefix}/namespaces/{namespace}/tables/{table}";
    let records = audit_records(&admin, &[&denied_id, &rejected_id, &commit_id]).await;
    assert_record(
        record_of(&records, &denied_id),
        [
            ("principal", json!("erin")),
            ("route", json!(format!("GET {table_route}"))),
            ("target", json!("table:main:theirs.t")),
            ("outcome", json!("denied")),
            ("status", json!(403)),
        ],
    );
    assert_record(
        record_of(&records, &rejected_id),
        [
            ("principal", json!("unauthenticated")),
            ("route", json!(format!("GET {table_route}"))),
            ("target", json!("")),
            ("outcome", json!("unauthenticated")),
            ("status", json!(401)),
        ],
    );
    assert_record(
        record_of(&records, &commit_id),
        [
            ("principal", json!("erin")),
            ("route", json!(format!("POST {table_route}"))),
            ("target", json!("table:main:mine.t")),
            ("outcome", json!("allowed")),
            ("status", json!(200)),
        ],
    );

    // The CLI reads the same log from the store, filtered by principal.
    let cli_records = |principal: &str| -> Vec<Value> {
        cli(dir, &["audit", "--json", "--principal", principal])
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    };
    let erins = cli_records("erin");
    assert!(erins.iter().all(|r| r["principal"] == "erin"), "{erins:?}");
    assert_eq!(
        record_of(&erins, &denied_id),
        &json!({
            "at": record_of(&erins, &denied_id)["at"],
            "principal": "erin",
            "route": format!("GET {table_route}"),
            "target": "table:main:theirs.t",
            "outcome": "denied",
            "status": 403,
            "request-id": denied_id,
        })
    );
    assert_record(
        record_of(&erins, &commit_id),
        [
            ("principal", json!("erin")),
            ("route", json!(format!("POST {table_route}"))),
            ("target", json!("table:main:mine.t")),
            ("outcome", json!("allowed")),
            ("status", json!(200)),
        ],
    );
    assert!(
        erins
            .iter()
            .all(|r| r["request-id"] != rejected_id.as_str())
    );
    let unauthenticated = cli_records("unauthenticated");
    assert_eq!(record_of(&unauthenticated, &rejected_id)["status"], 401);

    // The log is the administrators' alone.
    assert_error(
        erin.get("/management/v1/audit").await,
        403,
        "ForbiddenException",
        "erin reads the audit log",
    )
    .await;
}

/// A request refused before its handler runs leaves its body unread, and the server then drops
/// the connection: the refusal says `Connection: close`, so that clients (PyIceberg's requests
/// pool) do not send the next request on a connection that is going away. Requests that reached
/// their handler keep the connection.
#[tokio::test]
async fn a_refused_request_with_a_body_closes_its_connection_and_others_keep_theirs() {
    let server = FloeServer::start_with_args(&["--auth", "oauth2"]);
    let admin = admin_of(&server).await;
    create_namespace_as(&admin, "kept").await;
    let anonymous = Caller {
        token: None,
        ..admin.clone()
    };
    let body = json!({ "name": "t", "schema": id_name_schema() });
    let refused = anonymous
        .post("/v1/main/namespaces/kept/tables", &body)
        .await;
    assert_eq!(refused.status(), 401);
    let connection = |response: &Response| {
        response
            .headers()
            .get("connection")
            .and_then(|value| value.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    assert_eq!(connection(&refused).as_deref(), Some("close"));
    let allowed = admin.post("/v1/main/namespaces/kept/tables", &body).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        connection(&allowed),
        None,
        "a handled request keeps its connection"
    );
    let no_body = anonymous.get("/v1/main/namespaces").await;
    assert_eq!(no_body.status(), 401);
    assert_eq!(
        connection(&no_body),
        None,
        "nothing unread: the connection stays"
    );
}
