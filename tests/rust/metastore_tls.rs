//! Replicas on a PostgreSQL metastore over TLS, end to end: `floe serve` with
//! `sslmode=verify-full` against a cluster that takes TLS connections only, with a certificate
//! for `localhost` from a CA the test made; what a server that cannot verify the database says
//! when it stops at start-up; and what `floe config show` prints for such a URL.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use floe_testkit::FloeServer;
use floe_testkit::postgres::TestPostgres;
use floe_testkit::tls::TestCa;
use serde_json::json;

use crate::support::*;

const PASSWORD: &str = "hunter2-password";

/// A TLS-only cluster whose certificate names `localhost`, and a fresh database in it.
async fn tls_cluster() -> (TestPostgres, String) {
    tokio::task::spawn_blocking(|| {
        let cluster = TestPostgres::start_with_tls(&["localhost"]);
        let url = cluster.create_database();
        let database = url.rsplit('/').next().unwrap().to_string();
        (cluster, database)
    })
    .await
    .unwrap()
}

/// The database's URL naming the server `host`, with a password (never checked: the cluster
/// trusts its connections; it is there to be kept out of messages) and `query`.
fn metastore(cluster: &TestPostgres, host: &str, database: &str, query: &str) -> String {
    let url = cluster.url_with_host(host, database).replacen(
        "postgres@",
        &format!("postgres:{PASSWORD}@"),
        1,
    );
    format!("{url}?{query}")
}

/// Runs `floe serve` on `metastore`, expecting it to stop at start-up; returns its stderr.
fn serve_fails(metastore: &str, data_dir: &Path) -> String {
    let mut child = Command::new(floe_testkit::floe_binary())
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .args(["--metastore", metastore])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn floe serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "floe serve exited successfully");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("floe serve started on {metastore}: it should have refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_a_metastore_over_verified_tls() {
    let (cluster, database) = tls_cluster().await;
    let url = metastore(
        &cluster,
        "localhost",
        &database,
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            cluster.ca_cert().display()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let first = FloeServer::start_replica(&url, dir.path(), &[]);
    let api = Api::new(&first);
    api.create_namespace(&["tls"]).await;
    api.create_table(&["tls"], "t", json!({})).await;
    let committed = api
        .set_properties(&["tls"], "t", json!({ "written": "over-tls" }))
        .await;

    let second = FloeServer::start_replica(&url, dir.path(), &[]);
    let loaded = Api::new(&second).load_table(&["tls"], "t").await;
    assert_eq!(
        metadata_location_of(&loaded),
        metadata_location_of(&committed)
    );
    assert_eq!(loaded["metadata"]["properties"]["written"], "over-tls");

    let encrypted = tokio::task::spawn_blocking(move || {
        cluster.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = 'floe' AND NOT ssl",
        )
    })
    .await
    .unwrap();
    assert_eq!(encrypted.trim(), "0", "a replica connected without TLS");
    assert!(!first.log().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_verify_its_metastore_stops_and_says_why() {
    let (cluster, database) = tls_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    TestCa::new("another CA").write_cert(&other_ca);
    let data_dir = dir.path().join("data");

    // Another CA: the file is named.
    let err = serve_fails(
        &metastore(
            &cluster,
            "localhost",
            &database,
            &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
        ),
        &data_dir,
    );
    assert!(
        err.contains("not signed by the CA in sslrootcert") && err.contains("other-ca.pem"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");

    // The right CA, but a host name the certificate does not give: the name is named.
    let ca = cluster.ca_cert();
    let err = serve_fails(
        &metastore(
            &cluster,
            "127.0.0.1",
            &database,
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
        &data_dir,
    );
    assert!(
        err.contains("not valid for the host name 127.0.0.1") && err.contains("localhost"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");

    // No TLS at all: the server refuses it.
    let err = serve_fails(
        &metastore(&cluster, "127.0.0.1", &database, "sslmode=disable"),
        &data_dir,
    );
    assert!(err.contains("refused a connection without TLS"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
}

#[test]
fn config_show_prints_the_tls_settings_but_no_password() {
    let url = format!(
        "postgres://floe:{PASSWORD}@db.internal:5432/floe?sslmode=verify-full&sslrootcert=/etc/floe/pg-ca.pem"
    );
    let (ok, shown, err) = floe(&["config", "show", "--metastore", &url]);
    assert!(ok, "{err}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    assert!(
        shown.contains(
            "metastore = \"postgres://floe:***@db.internal:5432/floe?sslmode=verify-full&sslrootcert=/etc/floe/pg-ca.pem\""
        ),
        "{shown}"
    );
}
