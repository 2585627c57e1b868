//! The PostgreSQL store over TLS, against a cluster that takes TCP connections over TLS only, with
//! a certificate for `localhost` signed by a CA the test made: which `sslmode`s connect, and what
//! the operator reads when one does not.

use floe_store::postgres::{PostgresOptions, PostgresStore};
use floe_store::{MetadataStore, PageRequest, StoreError};
use floe_testkit::postgres::TestPostgres;
use floe_testkit::tls::TestCa;

const PASSWORD: &str = "hunter2-password";

/// A cluster whose certificate names `localhost` only, and a fresh database in it.
async fn cluster() -> (TestPostgres, String) {
    tokio::task::spawn_blocking(|| {
        let cluster = TestPostgres::start_with_tls(&["localhost"]);
        let url = cluster.create_database();
        let database = url.rsplit('/').next().unwrap().to_string();
        (cluster, database)
    })
    .await
    .unwrap()
}

/// The database's URL naming the server `host`, with a password (the cluster trusts every
/// connection, so it is never checked: it is there to be kept out of messages) and `query`.
fn url(cluster: &TestPostgres, host: &str, database: &str, query: &str) -> String {
    let url = cluster.url_with_host(host, database);
    let url = url.replacen("postgres@", &format!("postgres:{PASSWORD}@"), 1);
    format!("{url}?{query}")
}

async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
    PostgresStore::connect(url, &PostgresOptions::default()).await
}

/// The error of a connection that must be refused (`why` says what was accepted otherwise).
async fn refused(url: &str, why: &str) -> String {
    match connect(url).await {
        Ok(_) => panic!("{why}"),
        Err(err) => err.to_string(),
    }
}

/// Whether the store's connections are over TLS, as the server sees them.
fn server_sees_tls(cluster: &TestPostgres) -> bool {
    let rows = cluster.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE application_name = 'floe' AND ssl",
    );
    rows.trim().parse::<u32>().unwrap() > 0
}

#[tokio::test]
async fn verify_full_connects_when_the_ca_and_the_host_name_match() {
    let (cluster, database) = cluster().await;
    let ca = cluster.ca_cert();
    let store = connect(&url(
        &cluster,
        "localhost",
        &database,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ))
    .await
    .unwrap();
    store
        .create_namespace(&["over_tls".to_string()], &Default::default())
        .await
        .unwrap();
    let listed = store
        .list_namespaces(None, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.items, vec![vec!["over_tls".to_string()]]);
    assert!(server_sees_tls(&cluster));
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_from_another_ca() {
    let (cluster, database) = cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    TestCa::new("another CA").write_cert(&other_ca);
    let err = refused(
        &url(
            &cluster,
            "localhost",
            &database,
            &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
        ),
        "a certificate from another CA was accepted",
    )
    .await;
    assert!(
        err.contains("not signed by the CA in sslrootcert") && err.contains("other-ca.pem"),
        "names the CA file: {err}"
    );
    assert!(
        err.contains(&format!("localhost:{}", cluster.port())),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_require_with_a_ca_checks_the_chain() {
    let (cluster, database) = cluster().await;
    let ca = format!("sslrootcert={}", cluster.ca_cert().display());
    // The certificate names localhost; the server is reached at 127.0.0.1 all the same.
    let err = refused(
        &url(
            &cluster,
            "127.0.0.1",
            &database,
            &format!("sslmode=verify-full&{ca}"),
        ),
        "a certificate for another name was accepted",
    )
    .await;
    assert!(
        err.contains("not valid for the host name 127.0.0.1") && err.contains("localhost"),
        "names the host and the certificate's names: {err}"
    );
    assert!(err.contains("sslmode=verify-full"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");

    // verify-ca should pass here, but sqlx 0.8 checks the name in that mode too
    // (launchbadge/sqlx#3793): the message says so. When sqlx is upgraded, this connects.
    let err = refused(
        &url(
            &cluster,
            "127.0.0.1",
            &database,
            &format!("sslmode=verify-ca&{ca}"),
        ),
        "sqlx 0.8's verify-ca checks the name: has sqlx been upgraded?",
    )
    .await;
    assert!(
        err.contains("not valid for the host name 127.0.0.1") && err.contains("sqlx#3793"),
        "{err}"
    );
    let store = connect(&url(
        &cluster,
        "localhost",
        &database,
        &format!("sslmode=verify-ca&{ca}"),
    ))
    .await
    .unwrap();
    store.ping().await.unwrap();
    // `require` with a CA file checks the chain, as libpq's does: another CA fails.
    let dir = tempfile::tempdir().unwrap();
    let other_ca = dir.path().join("other-ca.pem");
    TestCa::new("another CA").write_cert(&other_ca);
    let err = refused(
        &url(
            &cluster,
            "localhost",
            &database,
            &format!("sslmode=require&sslrootcert={}", other_ca.display()),
        ),
        "require with a CA file did not check the chain",
    )
    .await;
    assert!(
        err.contains("sslmode=verify-ca") && err.contains("not signed by the CA"),
        "{err}"
    );
}

#[tokio::test]
async fn a_tls_only_server_refuses_sslmode_disable_and_takes_the_unchecked_modes() {
    let (cluster, database) = cluster().await;
    let err = refused(
        &url(&cluster, "127.0.0.1", &database, "sslmode=disable"),
        "a plain connection was accepted",
    )
    .await;
    assert!(
        err.contains("refused a connection without TLS") && err.contains("sslmode=disable"),
        "{err}"
    );
    assert!(!err.contains(PASSWORD), "{err}");
    // Encrypted, but who answers is not checked.
    for mode in ["require", "prefer"] {
        let store = connect(&url(
            &cluster,
            "127.0.0.1",
            &database,
            &format!("sslmode={mode}"),
        ))
        .await
        .unwrap_or_else(|err| panic!("sslmode={mode}: {err}"));
        store.ping().await.unwrap();
    }
}

#[tokio::test]
async fn a_server_without_tls_is_refused_when_tls_is_required() {
    let url = tokio::task::spawn_blocking(|| TestPostgres::shared().create_database())
        .await
        .unwrap();
    let err = connect(&format!("{url}?sslmode=require"))
        .await
        .err()
        .expect("a server without TLS was accepted with sslmode=require")
        .to_string();
    assert!(
        err.contains("does not support TLS") && err.contains("sslmode=require"),
        "{err}"
    );
    // Without a requirement, the same server is fine.
    connect(&format!("{url}?sslmode=prefer"))
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_server_wants_one() {
    let (cluster, database) = tokio::task::spawn_blocking(|| {
        let cluster = TestPostgres::start_with_client_certs(&["localhost"]);
        let url = cluster.create_database();
        let database = url.rsplit('/').next().unwrap().to_string();
        (cluster, database)
    })
    .await
    .unwrap();
    let verified = format!(
        "sslmode=verify-full&sslrootcert={}",
        cluster.ca_cert().display()
    );
    let err = refused(
        &url(&cluster, "localhost", &database, &verified),
        "a connection without a client certificate was accepted",
    )
    .await;
    assert!(err.contains("requires a valid client certificate"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    let (cert, key) = cluster.client_cert();
    let store = connect(&url(
        &cluster,
        "localhost",
        &database,
        &format!(
            "{verified}&sslcert={}&sslkey={}",
            cert.display(),
            key.display()
        ),
    ))
    .await
    .unwrap();
    store.ping().await.unwrap();
    assert!(server_sees_tls(&cluster));
}
