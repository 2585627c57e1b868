//! Secrets at rest on both backends: what a copy of the database shows, what a server with the
//! wrong key or none gets, and how values stored before sealing are sealed on start.

use std::path::Path;

use floe_store::postgres::{PostgresOptions, PostgresStore};
use floe_store::sealed::{Sealer, SecretKey};
use floe_store::sqlite::{SqliteOptions, SqliteStore};
use floe_store::{MetadataStore, StoreError};
use floe_testkit::postgres::TestPostgres;

mod common;

use common::{PRIVATE_KEY, SECRET, signing_key, warehouse};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Every byte SQLite keeps for the database, the write-ahead log included.
fn sqlite_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal"] {
        let path = format!("{}{suffix}", db.display());
        if let Ok(mut more) = std::fs::read(&path) {
            bytes.append(&mut more);
        }
    }
    bytes
}

async fn sqlite(db: &Path, key: Option<&SecretKey>) -> Result<SqliteStore, StoreError> {
    SqliteStore::open_with(
        db,
        &SqliteOptions {
            sealer: Sealer::new(key.cloned()),
            ..SqliteOptions::default()
        },
    )
    .await
}

async fn postgres(url: &str, key: Option<&SecretKey>) -> Result<PostgresStore, StoreError> {
    PostgresStore::connect(
        url,
        &PostgresOptions {
            sealer: Sealer::new(key.cloned()),
            ..PostgresOptions::default()
        },
    )
    .await
}

/// What a store with the right key, the wrong key and no key does with sealed values.
async fn check_keys(
    right: &dyn MetadataStore,
    wrong: &dyn MetadataStore,
    none: &dyn MetadataStore,
) {
    let loaded = right.load_warehouse("w").await.unwrap();
    assert_eq!(loaded.properties["s3.secret-access-key"], SECRET);
    assert_eq!(loaded.properties["s3.access-key-id"], "AKIDEXAMPLE");
    let keys = right.access().signing_keys().await.unwrap();
    assert_eq!(keys[0].private_key, PRIVATE_KEY);

    for (store, expected) in [
        (wrong, "was sealed with secret key"),
        (none, "no secret key"),
    ] {
        let err = store.load_warehouse("w").await.unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
        assert!(
            err.contains("warehouse/w/s3.secret-access-key"),
            "names the value: {err}"
        );
        assert!(!err.contains(SECRET), "{err}");
        let err = store.access().signing_keys().await.unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
    // Without a key nothing new can be sealed, so no secret is stored in the clear either.
    let err = none
        .create_warehouse(&warehouse("other"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("FLOE_SECRET_KEY"), "{err}");
    // A warehouse without secrets needs no key.
    let mut plain = warehouse("plain");
    plain.properties.remove("s3.secret-access-key");
    none.create_warehouse(&plain).await.unwrap();
}

#[tokio::test]
async fn sqlite_seals_secrets_and_needs_the_key_that_sealed_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.db");
    let key = SecretKey::generate();
    let store = sqlite(&db, Some(&key)).await.unwrap();
    store.create_warehouse(&warehouse("w")).await.unwrap();
    store
        .access()
        .add_signing_key(&signing_key("k1"))
        .await
        .unwrap();
    let bytes = sqlite_bytes(&db);
    assert!(
        contains(&bytes, b"AKIDEXAMPLE"),
        "the test reads the right file"
    );
    assert!(
        !contains(&bytes, SECRET.as_bytes()),
        "the secret is in catalog.db"
    );
    assert!(
        !contains(&bytes, PRIVATE_KEY),
        "the signing key is in catalog.db"
    );
    assert!(contains(&bytes, b"floe-sealed:v1:"));

    let wrong = sqlite(&db, Some(&SecretKey::generate())).await.unwrap();
    let none = sqlite(&db, None).await.unwrap();
    check_keys(&store, &wrong, &none).await;
}

#[tokio::test]
async fn sqlite_seals_values_stored_before_sealing_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("catalog.db");
    // A store as an older Floe left it: secrets in the clear.
    let old = sqlite(&db, None).await.unwrap();
    old.close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let properties = serde_json::to_string(&warehouse("w").properties).unwrap();
    sqlx::query("INSERT INTO warehouses (name, storage_url, properties, created_at) VALUES ('w', 's3://bucket/w', ?, 0)")
        .bind(&properties)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at) VALUES ('k1', 'EdDSA', ?, x'00', 0)")
        .bind(PRIVATE_KEY)
        .execute(&pool)
        .await
        .unwrap();
    // Readable as they are by a server without a key.
    let none = sqlite(&db, None).await.unwrap();
    assert_eq!(
        none.load_warehouse("w").await.unwrap().properties["s3.secret-access-key"],
        SECRET
    );

    let key = SecretKey::generate();
    let store = sqlite(&db, Some(&key)).await.unwrap();
    let raw: String = sqlx::query_scalar("SELECT properties FROM warehouses WHERE name = 'w'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        !raw.contains(SECRET) && raw.contains("floe-sealed:v1:"),
        "{raw}"
    );
    let raw_key: Vec<u8> =
        sqlx::query_scalar("SELECT private_key FROM signing_keys WHERE kid = 'k1'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!contains(&raw_key, PRIVATE_KEY));
    // Sealing again on the next start changes nothing.
    drop(sqlite(&db, Some(&key)).await.unwrap());
    let again: String = sqlx::query_scalar("SELECT properties FROM warehouses WHERE name = 'w'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(raw, again);
    let wrong = sqlite(&db, Some(&SecretKey::generate())).await.unwrap();
    check_keys(&store, &wrong, &none).await;
}

#[tokio::test]
async fn postgres_seals_secrets_and_values_stored_before_sealing() {
    let cluster = tokio::task::spawn_blocking(TestPostgres::shared)
        .await
        .unwrap();
    let url = tokio::task::spawn_blocking(|| TestPostgres::shared().create_database())
        .await
        .unwrap();
    let database = url.rsplit('/').next().unwrap().to_string();
    let key = SecretKey::generate();
    let store = postgres(&url, Some(&key)).await.unwrap();
    store.create_warehouse(&warehouse("w")).await.unwrap();
    store
        .access()
        .add_signing_key(&signing_key("k1"))
        .await
        .unwrap();
    let raw = cluster.psql(
        &database,
        "SELECT properties FROM warehouses WHERE name = 'w'",
    );
    assert!(
        raw.contains("AKIDEXAMPLE") && !raw.contains(SECRET),
        "{raw}"
    );
    let raw_key = cluster.psql(
        &database,
        "SELECT encode(private_key, 'escape') FROM signing_keys",
    );
    assert!(raw_key.contains("floe-sealed:v1:"), "{raw_key}");

    // Rows from before sealing: put in the clear, sealed by the next start with a key.
    let properties = serde_json::to_string(&warehouse("old").properties).unwrap();
    cluster.psql(
        &database,
        &format!(
            "INSERT INTO warehouses (name, storage_url, properties, created_at) \
             VALUES ('old', 's3://bucket/old', '{properties}', 0)"
        ),
    );
    assert!(
        cluster
            .psql(
                &database,
                "SELECT properties FROM warehouses WHERE name = 'old'"
            )
            .contains(SECRET)
    );
    let restarted = postgres(&url, Some(&key)).await.unwrap();
    let raw = cluster.psql(
        &database,
        "SELECT properties FROM warehouses WHERE name = 'old'",
    );
    assert!(
        !raw.contains(SECRET) && raw.contains("floe-sealed:v1:"),
        "{raw}"
    );
    assert_eq!(
        restarted.load_warehouse("old").await.unwrap().properties["s3.secret-access-key"],
        SECRET
    );

    let wrong = postgres(&url, Some(&SecretKey::generate())).await.unwrap();
    let none = postgres(&url, None).await.unwrap();
    check_keys(&restarted, &wrong, &none).await;
}
