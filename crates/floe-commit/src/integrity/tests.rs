//! Integrity-checked reads: a metadata file changed after its commit is refused, not served and
//! not cached; rows written before checksums were get theirs on first read.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use floe_storage::Warehouse;
use floe_storage::testing::FaultyStore;
use floe_store::sqlite::SqliteStore;
use floe_store::{FileChecksum, MetadataStore, TableName};
use iceberg::TableUpdate;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type, ViewVersion};
use object_store::ObjectStoreExt;
use sqlx::Connection;

use super::integrity_failures_total;
use crate::{Catalog, CommitError, CreateTable, CreateView, TableChange};

struct Setup {
    dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    warehouse: Warehouse,
    table: TableName,
}

impl Setup {
    /// A table `ns.t` with one commit after its create, on a SQLite file and an in-memory
    /// warehouse.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("catalog.db"))
                .await
                .unwrap(),
        );
        let root = url::Url::parse("memory://integrity/warehouse").unwrap();
        let warehouse = Warehouse::new("main", root, Arc::new(FaultyStore::in_memory()));
        let setup = Self {
            dir,
            store,
            warehouse,
            table: TableName::new(vec!["ns".to_string()], "t"),
        };
        let catalog = setup.catalog();
        catalog
            .create_namespace(&["ns".to_string()], &Default::default())
            .await
            .unwrap();
        catalog
            .create_table(CreateTable {
                name: setup.table.clone(),
                location: None,
                schema: schema(),
                partition_spec: None,
                sort_order: None,
                properties: HashMap::new(),
                stage: false,
            })
            .await
            .unwrap();
        setup.set_property(&catalog, "1").await;
        setup
    }

    /// A catalog with a cold metadata cache.
    fn catalog(&self) -> Catalog {
        Catalog::new(self.store.clone(), self.warehouse.clone())
    }

    async fn set_property(&self, catalog: &Catalog, value: &str) {
        catalog
            .commit_table(TableChange {
                table: self.table.clone(),
                requirements: Vec::new(),
                updates: vec![TableUpdate::SetProperties {
                    updates: HashMap::from([("k".to_string(), value.to_string())]),
                }],
            })
            .await
            .unwrap();
    }

    async fn current_file(&self) -> String {
        self.store
            .load_table(&self.table)
            .await
            .unwrap()
            .metadata_location
    }

    /// Replaces the file's bytes, as a bad disk, a stray tool or a restore of another copy would.
    async fn overwrite(&self, location: &str, bytes: Bytes) {
        let path = self.warehouse.object_path(location).unwrap();
        self.warehouse
            .store()
            .put(&path, bytes.into())
            .await
            .unwrap();
    }

    /// Clears every row's checksum, as the migration left rows written before it.
    async fn forget_checksums(&self) {
        let url = format!("sqlite://{}", self.dir.path().join("catalog.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE tables SET metadata_size = NULL, metadata_sha256 = NULL")
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

fn schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
        ])
        .build()
        .unwrap()
}

/// The same size with one byte changed; and the file cut short.
fn damaged(original: &Bytes) -> [(&'static str, Bytes); 2] {
    let mut flipped = original.to_vec();
    let middle = flipped.len() / 2;
    flipped[middle] = if flipped[middle] == b' ' { b'\t' } else { b' ' };
    let truncated = original.slice(..original.len() - 1);
    [
        ("same size", Bytes::from(flipped)),
        ("truncated", truncated),
    ]
}

fn assert_corrupt(err: CommitError, table: &str, file: &str) {
    let CommitError::Corrupt(message) = &err else {
        panic!("expected an integrity error, got {err:?}");
    };
    for expected in [table, file, "does not match its checksum", "floe repair"] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
}

#[tokio::test]
async fn commits_record_the_checksum_of_what_they_wrote() {
    let setup = Setup::new().await;
    let pointer = setup.store.load_table(&setup.table).await.unwrap();
    let bytes = setup
        .warehouse
        .get(&pointer.metadata_location)
        .await
        .unwrap();
    assert_eq!(pointer.checksum, Some(FileChecksum::of(&bytes)));
}

#[tokio::test]
async fn a_changed_metadata_file_is_refused_and_not_cached() {
    let setup = Setup::new().await;
    let file = setup.current_file().await;
    let original = setup.warehouse.get(&file).await.unwrap();
    for (damage, bytes) in damaged(&original) {
        assert_eq!(
            bytes.len() == original.len(),
            damage == "same size",
            "{damage}"
        );
        setup.overwrite(&file, bytes).await;
        let catalog = setup.catalog();
        let before = integrity_failures_total();
        let err = catalog.load_table(&setup.table).await.unwrap_err();
        assert_corrupt(err, "ns.t", &file);
        assert_eq!(integrity_failures_total(), before + 1, "{damage}");
        assert_eq!(catalog.cache.len(), 0, "{damage}: nothing is cached");
        // A commit reads the same file first: it fails the same way and writes nothing.
        let err = catalog
            .commit_table(TableChange {
                table: setup.table.clone(),
                requirements: Vec::new(),
                updates: vec![TableUpdate::RemoveProperties {
                    removals: vec!["k".to_string()],
                }],
            })
            .await
            .unwrap_err();
        assert_corrupt(err, "ns.t", &file);
        assert_eq!(setup.current_file().await, file, "{damage}");
        assert_eq!(catalog.cache.len(), 0, "{damage}: nothing is cached");
    }
    // Restored, the table is served again.
    setup.overwrite(&file, original).await;
    let loaded = setup.catalog().load_table(&setup.table).await.unwrap();
    assert_eq!(loaded.metadata().properties().get("k").unwrap(), "1");
}

#[tokio::test]
async fn a_verified_file_is_served_from_the_cache() {
    let setup = Setup::new().await;
    let catalog = setup.catalog();
    catalog.load_table(&setup.table).await.unwrap();
    assert_eq!(catalog.cache.len(), 1);
    let file = setup.current_file().await;
    let original = setup.warehouse.get(&file).await.unwrap();
    let [(_, damaged), _] = damaged(&original);
    setup.overwrite(&file, damaged).await;
    // Read and verified before the damage: a hit neither reads nor hashes again.
    let before = integrity_failures_total();
    catalog.load_table(&setup.table).await.unwrap();
    assert_eq!(integrity_failures_total(), before);
    // A cold replica reads the file and refuses it.
    let err = setup.catalog().load_table(&setup.table).await.unwrap_err();
    assert_corrupt(err, "ns.t", &file);
}

#[tokio::test]
async fn a_table_committed_before_checksums_gets_one_on_first_read() {
    let setup = Setup::new().await;
    setup.forget_checksums().await;
    let before = setup.store.load_table(&setup.table).await.unwrap();
    assert_eq!(before.checksum, None);

    setup.catalog().load_table(&setup.table).await.unwrap();
    let after = setup.store.load_table(&setup.table).await.unwrap();
    let bytes = setup.warehouse.get(&after.metadata_location).await.unwrap();
    assert_eq!(after.checksum, Some(FileChecksum::of(&bytes)));
    assert_eq!(after.version, before.version, "a backfill is not a commit");

    // From now on the file is verified.
    let [(_, damaged), _] = damaged(&bytes);
    setup.overwrite(&after.metadata_location, damaged).await;
    let err = setup.catalog().load_table(&setup.table).await.unwrap_err();
    assert_corrupt(err, "ns.t", &after.metadata_location);
}

#[tokio::test]
async fn a_registered_file_is_recorded_as_read() {
    let setup = Setup::new().await;
    let file = setup.current_file().await;
    let copy = TableName::new(vec!["ns".to_string()], "copy");
    setup
        .catalog()
        .drop_table(&setup.table, false)
        .await
        .unwrap();
    setup
        .catalog()
        .register_table(&copy, &file, false)
        .await
        .unwrap();
    let bytes = setup.warehouse.get(&file).await.unwrap();
    assert_eq!(
        setup.store.load_table(&copy).await.unwrap().checksum,
        Some(FileChecksum::of(&bytes))
    );
}

#[tokio::test]
async fn views_are_verified_and_backfilled() {
    let setup = Setup::new().await;
    let catalog = setup.catalog();
    let view = TableName::new(vec!["ns".to_string()], "v");
    let version: ViewVersion = serde_json::from_value(serde_json::json!({
        "version-id": 1,
        "schema-id": 0,
        "timestamp-ms": 1,
        "summary": {"engine-name": "test"},
        "representations": [{"type": "sql", "sql": "SELECT 1", "dialect": "spark"}],
        "default-namespace": ["ns"],
    }))
    .unwrap();
    let created = catalog
        .create_view(CreateView {
            name: view.clone(),
            location: None,
            schema: schema(),
            view_version: version,
            properties: HashMap::new(),
        })
        .await
        .unwrap();
    let file = created.metadata_location.clone();
    assert_eq!(
        setup.store.load_view(&view).await.unwrap().checksum,
        Some(FileChecksum::of(&created.json))
    );

    let [(_, damaged), _] = damaged(&created.json);
    setup.overwrite(&file, damaged).await;
    let before = integrity_failures_total();
    assert_corrupt(catalog.load_view(&view).await.unwrap_err(), "ns.v", &file);
    assert_eq!(integrity_failures_total(), before + 1);

    setup.overwrite(&file, created.json.clone()).await;
    setup.forget_checksums().await;
    catalog.load_view(&view).await.unwrap();
    assert_eq!(
        setup.store.load_view(&view).await.unwrap().checksum,
        Some(FileChecksum::of(&created.json))
    );
}
