//! Rotating the key that seals the store's secrets, on both backends: a store opened with a new
//! key and the old one as previous re-seals everything under the new key (once: again changes
//! nothing), after which the old key can go; a value sealed with a key the store does not have is
//! reported by its place and key id, never its value.

use std::path::PathBuf;

use floe_store::postgres::{PostgresOptions, PostgresStore};
use floe_store::sealed::{Sealer, SecretKey};
use floe_store::sqlite::{SqliteOptions, SqliteStore};
use floe_store::{MetadataStore, StoreError};
use floe_testkit::postgres::TestPostgres;

mod common;

use common::{PRIVATE_KEY, SECRET, signing_key, warehouse};

enum Backend {
    Sqlite(PathBuf),
    Postgres { url: String, database: String },
}

impl Backend {
    async fn open(&self, sealer: Sealer, seal_on_open: bool) -> Box<dyn MetadataStore> {
        match self {
            Backend::Sqlite(db) => Box::new(
                SqliteStore::open_with(
                    db,
                    &SqliteOptions {
                        sealer,
                        seal_on_open,
                        ..SqliteOptions::default()
                    },
                )
                .await
                .unwrap(),
            ),
            Backend::Postgres { url, .. } => Box::new(
                PostgresStore::connect(
                    url,
                    &PostgresOptions {
                        sealer,
                        seal_on_open,
                        ..PostgresOptions::default()
                    },
                )
                .await
                .unwrap(),
            ),
        }
    }

    /// The stored secret values as the database holds them: the warehouses' properties and the
    /// signing keys' private halves, as text.
    async fn raw(&self) -> String {
        const SQL: &str = "SELECT properties FROM warehouses UNION ALL \
                           SELECT CAST(private_key AS TEXT) FROM signing_keys";
        match self {
            Backend::Sqlite(db) => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
                    .await
                    .unwrap();
                let rows: Vec<String> = sqlx::query_scalar(SQL).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.join("\n")
            }
            Backend::Postgres { database, .. } => {
                let database = database.clone();
                tokio::task::spawn_blocking(move || {
                    TestPostgres::shared().psql(
                        &database,
                        "SELECT properties FROM warehouses UNION ALL \
                         SELECT convert_from(private_key, 'UTF8') FROM signing_keys",
                    )
                })
                .await
                .unwrap()
            }
        }
    }
}

fn sealer(key: &SecretKey, previous: &[&SecretKey]) -> Sealer {
    Sealer::new(Some(key.clone())).with_previous(previous.iter().map(|k| (*k).clone()).collect())
}

fn sealed_with(key: &SecretKey) -> String {
    format!("floe-sealed:v1:{}:", key.id())
}

async fn check_rotation(backend: Backend) {
    let old = SecretKey::generate();
    let new = SecretKey::generate();
    let store = backend.open(sealer(&old, &[]), true).await;
    store.create_warehouse(&warehouse("w")).await.unwrap();
    store
        .access()
        .add_signing_key(&signing_key("k1"))
        .await
        .unwrap();
    drop(store);
    let raw = backend.raw().await;
    assert_eq!(raw.matches(&sealed_with(&old)).count(), 2, "{raw}");

    // `floe secrets reseal` opens without the pass and runs it itself.
    let store = backend.open(sealer(&new, &[&old]), false).await;
    assert_eq!(backend.raw().await.matches(&sealed_with(&old)).count(), 2);
    let report = store.secrets().reseal_secrets().await.unwrap();
    assert_eq!(
        (report.key_id.as_str(), report.sealed, report.resealed),
        (new.id(), 0, 2),
        "{report:?}"
    );
    assert!(report.left.is_empty(), "{report:?}");
    let raw = backend.raw().await;
    assert_eq!(raw.matches(&sealed_with(&new)).count(), 2, "{raw}");
    assert!(
        !raw.contains(&sealed_with(&old)) && !raw.contains(SECRET),
        "{raw}"
    );
    // Again: nothing to do.
    let again = store.secrets().reseal_secrets().await.unwrap();
    assert_eq!((again.sealed, again.resealed, again.left.len()), (0, 0, 0));
    assert_eq!(backend.raw().await, raw, "a second pass rewrote values");
    drop(store);

    // The old key can go: the new one alone opens everything.
    let store = backend.open(sealer(&new, &[]), true).await;
    assert_eq!(
        store.load_warehouse("w").await.unwrap().properties["s3.secret-access-key"],
        SECRET
    );
    assert_eq!(
        store.access().signing_keys().await.unwrap()[0].private_key,
        PRIVATE_KEY
    );
    // A server still on the old key alone cannot open them, and says which key it lacks.
    let stale = backend.open(sealer(&old, &[]), true).await;
    let err = stale.load_warehouse("w").await.unwrap_err().to_string();
    assert!(
        err.contains("warehouse/w/s3.secret-access-key") && err.contains(new.id()),
        "{err}"
    );
    assert!(!err.contains(SECRET), "{err}");
    drop(stale);

    // A value sealed with a key this server does not have (a third one): left, and named.
    let stranger = SecretKey::generate();
    let elsewhere = backend.open(sealer(&stranger, &[]), false).await;
    elsewhere
        .create_warehouse(&warehouse("elsewhere"))
        .await
        .unwrap();
    drop(elsewhere);
    let report = store.secrets().reseal_secrets().await.unwrap();
    assert_eq!((report.sealed, report.resealed), (0, 0), "{report:?}");
    assert_eq!(
        report.left,
        vec![format!(
            "warehouse/elsewhere/s3.secret-access-key: sealed with secret key {}, which this \
             server does not have",
            stranger.id()
        )]
    );
    // Opening with it as a previous key re-seals it under the current one.
    drop(store);
    let store = backend.open(sealer(&new, &[&stranger]), true).await;
    let report = store.secrets().reseal_secrets().await.unwrap();
    assert!(
        report.left.is_empty(),
        "the opening pass took it: {report:?}"
    );
    assert_eq!(backend.raw().await.matches(&sealed_with(&new)).count(), 3);
}

#[tokio::test]
async fn sqlite_reseals_under_a_new_key_and_names_what_it_cannot_open() {
    let dir = tempfile::tempdir().unwrap();
    check_rotation(Backend::Sqlite(dir.path().join("catalog.db"))).await;
}

#[tokio::test]
async fn postgres_reseals_under_a_new_key_and_names_what_it_cannot_open() {
    let url = tokio::task::spawn_blocking(|| TestPostgres::shared().create_database())
        .await
        .unwrap();
    let database = url.rsplit('/').next().unwrap().to_string();
    check_rotation(Backend::Postgres { url, database }).await;
}

#[tokio::test]
async fn resealing_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with(&dir.path().join("catalog.db"), &SqliteOptions::default())
        .await
        .unwrap();
    let err = store.secrets().reseal_secrets().await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("FLOE_SECRET_KEY"), "{err}");
}
