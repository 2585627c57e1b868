//! The commit engine when the metadata store's swap fails without saying whether it happened.
//!
//! A wrapper around a real (SQLite) store injects the faults: a swap that is applied and then
//! reported as failed (an error from `COMMIT` itself, a connection lost after it), a swap that
//! fails without being applied, and a swap whose failure is followed by failed reads. The engine
//! must re-read the pointer before deleting anything: a commit that happened succeeds and keeps
//! its file; one that did not is cleaned up; one it cannot tell keeps its file.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use floe_commit::{Catalog, CommitError, CreateTable, TableChange};
use floe_storage::Warehouse;
use floe_store::sqlite::SqliteStore;
use floe_store::{
    IdempotencyClaim, JobFilter, JobRecord, MetadataStore, NamespacePath, Page, PageRequest,
    PointerSwap, Properties, PropertiesChange, Result, StoreError, StoredResponse, TableName,
    TablePointer, ViewName, WarehouseRecord,
};
use iceberg::TableUpdate;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

/// What the next `swap_pointers` does.
#[derive(Debug)]
enum Fault {
    /// Applies the swap, then reports an internal error (as a failed `COMMIT` acknowledgement).
    ApplyThenFail,
    /// Reports an internal error without applying anything.
    FailBeforeApplying,
    /// Applies the swap, reports the connection lost, and fails the next `load_table` too.
    ApplyThenGoDark,
    /// Applies the swap; another writer commits on top of it (its metadata log naming ours)
    /// before the error comes back.
    ApplyThenFailThenSupersede(Warehouse),
}

/// A metadata store that injects one [`Fault`] into the next swap.
struct FaultyMetadataStore {
    inner: Arc<dyn MetadataStore>,
    next_swap: Mutex<Option<Fault>>,
    failing_reads: Mutex<u32>,
}

impl FaultyMetadataStore {
    fn inject(&self, fault: Fault) {
        *self.next_swap.lock().unwrap() = Some(fault);
    }
}

#[async_trait]
impl MetadataStore for FaultyMetadataStore {
    fn access(&self) -> &dyn floe_store::AccessStore {
        self.inner.access()
    }
    fn scrub(&self) -> &dyn floe_store::ScrubStore {
        self.inner.scrub()
    }
    fn replicas(&self) -> &dyn floe_store::ReplicaStore {
        self.inner.replicas()
    }
    fn due(&self) -> &dyn floe_store::DueStore {
        self.inner.due()
    }
    fn secrets(&self) -> &dyn floe_store::SecretStore {
        self.inner.secrets()
    }
    fn in_warehouse(&self, name: &str) -> Result<Arc<dyn MetadataStore>> {
        self.inner.in_warehouse(name)
    }
    async fn create_warehouse(&self, warehouse: &WarehouseRecord) -> Result<()> {
        self.inner.create_warehouse(warehouse).await
    }
    async fn load_warehouse(&self, name: &str) -> Result<WarehouseRecord> {
        self.inner.load_warehouse(name).await
    }
    async fn list_warehouses(&self) -> Result<Vec<WarehouseRecord>> {
        self.inner.list_warehouses().await
    }
    async fn drop_warehouse(&self, name: &str) -> Result<()> {
        self.inner.drop_warehouse(name).await
    }
    async fn create_namespace(&self, namespace: &[String], properties: &Properties) -> Result<()> {
        self.inner.create_namespace(namespace, properties).await
    }
    async fn load_namespace(&self, namespace: &[String]) -> Result<Properties> {
        self.inner.load_namespace(namespace).await
    }
    async fn list_namespaces(
        &self,
        parent: Option<&[String]>,
        page: &PageRequest,
    ) -> Result<Page<NamespacePath>> {
        self.inner.list_namespaces(parent, page).await
    }
    async fn update_namespace_properties(
        &self,
        namespace: &[String],
        removals: &[String],
        updates: &Properties,
    ) -> Result<PropertiesChange> {
        self.inner
            .update_namespace_properties(namespace, removals, updates)
            .await
    }
    async fn drop_namespace(&self, namespace: &[String]) -> Result<()> {
        self.inner.drop_namespace(namespace).await
    }
    async fn load_table(&self, table: &TableName) -> Result<TablePointer> {
        {
            let mut failing = self.failing_reads.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(StoreError::Unavailable("connection lost".into()));
            }
        }
        self.inner.load_table(table).await
    }
    async fn list_tables(&self, namespace: &[String], page: &PageRequest) -> Result<Page<String>> {
        self.inner.list_tables(namespace, page).await
    }
    async fn swap_pointers(&self, swaps: &[PointerSwap]) -> Result<Vec<TablePointer>> {
        let fault = self.next_swap.lock().unwrap().take();
        match fault {
            None => self.inner.swap_pointers(swaps).await,
            Some(Fault::FailBeforeApplying) => Err(StoreError::Internal(
                "could not serialize access due to a failed statement".into(),
            )),
            Some(Fault::ApplyThenFail) => {
                self.inner.swap_pointers(swaps).await?;
                Err(StoreError::Internal("error returned from COMMIT".into()))
            }
            Some(Fault::ApplyThenFailThenSupersede(warehouse)) => {
                let ours = self.inner.swap_pointers(swaps).await?;
                let ours = &ours[0].metadata_location;
                let mut later: serde_json::Value =
                    serde_json::from_slice(&warehouse.get(ours).await.unwrap()).unwrap();
                let updated = later["last-updated-ms"].clone();
                later["metadata-log"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({"timestamp-ms": updated, "metadata-file": ours}));
                let next = ours.replace(".metadata.json", "-later.metadata.json");
                let bytes = serde_json::to_vec(&later).unwrap();
                let new_checksum = floe_store::FileChecksum::of(&bytes);
                warehouse.put_new(&next, bytes.into()).await.unwrap();
                self.inner
                    .swap_pointers(&[PointerSwap {
                        table: swaps[0].table.clone(),
                        expected: Some(ours.clone()),
                        new_location: next,
                        location: None,
                        new_checksum,
                        events: Default::default(),
                    }])
                    .await?;
                Err(StoreError::Internal("error returned from COMMIT".into()))
            }
            Some(Fault::ApplyThenGoDark) => {
                self.inner.swap_pointers(swaps).await?;
                *self.failing_reads.lock().unwrap() = 1;
                Err(StoreError::Unavailable(
                    "connection lost while committing".into(),
                ))
            }
        }
    }
    async fn drop_table(&self, table: &TableName) -> Result<TablePointer> {
        self.inner.drop_table(table).await
    }
    async fn rename_table(&self, from: &TableName, to: &TableName) -> Result<()> {
        self.inner.rename_table(from, to).await
    }
    async fn create_view(
        &self,
        view: &ViewName,
        metadata_location: &str,
        checksum: &floe_store::FileChecksum,
        location: &str,
    ) -> Result<TablePointer> {
        self.inner
            .create_view(view, metadata_location, checksum, location)
            .await
    }
    async fn load_view(&self, view: &ViewName) -> Result<TablePointer> {
        self.inner.load_view(view).await
    }
    async fn list_views(&self, namespace: &[String], page: &PageRequest) -> Result<Page<String>> {
        self.inner.list_views(namespace, page).await
    }
    async fn swap_view_pointer(
        &self,
        view: &ViewName,
        expected: &str,
        new_location: &str,
        new_checksum: &floe_store::FileChecksum,
        location: Option<&str>,
    ) -> Result<TablePointer> {
        self.inner
            .swap_view_pointer(view, expected, new_location, new_checksum, location)
            .await
    }
    async fn record_checksum(
        &self,
        kind: floe_store::PointerKind,
        name: &TableName,
        metadata_location: &str,
        checksum: &floe_store::FileChecksum,
    ) -> Result<bool> {
        self.inner
            .record_checksum(kind, name, metadata_location, checksum)
            .await
    }
    async fn unlocated_pointers(&self) -> Result<Vec<floe_store::UnlocatedPointer>> {
        self.inner.unlocated_pointers().await
    }
    async fn record_location(
        &self,
        pointer: &floe_store::UnlocatedPointer,
        location: &str,
    ) -> Result<Option<floe_store::LocationHolder>> {
        self.inner.record_location(pointer, location).await
    }
    async fn drop_view(&self, view: &ViewName) -> Result<TablePointer> {
        self.inner.drop_view(view).await
    }
    async fn rename_view(&self, from: &ViewName, to: &ViewName) -> Result<()> {
        self.inner.rename_view(from, to).await
    }
    async fn claim_idempotency_key(
        &self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        takeover_after: Duration,
    ) -> Result<IdempotencyClaim> {
        self.inner
            .claim_idempotency_key(key, fingerprint, owner, takeover_after)
            .await
    }
    async fn renew_idempotency_claim(&self, key: &str, owner: &str) -> Result<bool> {
        self.inner.renew_idempotency_claim(key, owner).await
    }
    async fn complete_idempotency_key(
        &self,
        key: &str,
        owner: &str,
        response: &StoredResponse,
    ) -> Result<()> {
        self.inner
            .complete_idempotency_key(key, owner, response)
            .await
    }
    async fn release_idempotency_key(&self, key: &str, owner: &str) -> Result<()> {
        self.inner.release_idempotency_key(key, owner).await
    }
    async fn expire_idempotency_keys(&self, older_than: Duration) -> Result<u64> {
        self.inner.expire_idempotency_keys(older_than).await
    }
    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        self.inner.try_acquire_lease(name, holder, ttl).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.inner.release_lease(name, holder).await
    }

    async fn lease_is_held(&self, name: &str) -> Result<bool> {
        self.inner.lease_is_held(name).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn record_job(&self, job: &JobRecord) -> Result<()> {
        self.inner.record_job(job).await
    }
    async fn list_jobs(&self, filter: &JobFilter, limit: usize) -> Result<Vec<JobRecord>> {
        self.inner.list_jobs(filter, limit).await
    }
    async fn expire_jobs(&self, older_than: Duration) -> Result<u64> {
        self.inner.expire_jobs(older_than).await
    }
    async fn mark_files(&self, scope: &str, paths: &[String]) -> Result<BTreeMap<String, i64>> {
        self.inner.mark_files(scope, paths).await
    }
    async fn marked_files(&self, scope: &str) -> Result<BTreeMap<String, i64>> {
        self.inner.marked_files(scope).await
    }
    async fn unmark_files(&self, scope: &str, paths: &[String]) -> Result<()> {
        self.inner.unmark_files(scope, paths).await
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<FaultyMetadataStore>,
    warehouse: Warehouse,
    table: TableName,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("catalog.db"))
                .await
                .unwrap(),
        );
        let store = Arc::new(FaultyMetadataStore {
            inner,
            next_swap: Mutex::new(None),
            failing_reads: Mutex::new(0),
        });
        let root = url::Url::parse("memory://unknown/warehouse").unwrap();
        let warehouse = Warehouse::new(
            "main",
            root,
            Arc::new(object_store::memory::InMemory::new()),
        );
        let setup = Self {
            _dir: dir,
            store,
            warehouse,
            table: TableName::new(vec!["ns".to_string()], "t"),
        };
        let catalog = setup.catalog();
        catalog
            .create_namespace(&["ns".to_string()], &Default::default())
            .await
            .unwrap();
        let schema = Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            ])
            .build()
            .unwrap();
        catalog
            .create_table(CreateTable {
                name: setup.table.clone(),
                location: None,
                schema,
                partition_spec: None,
                sort_order: None,
                properties: HashMap::new(),
                stage: false,
            })
            .await
            .unwrap();
        setup
    }

    /// A catalog with a cold cache, so that every metadata file is read from the warehouse.
    fn catalog(&self) -> Catalog {
        Catalog::new(self.store.clone(), self.warehouse.clone())
    }

    async fn metadata_files(&self) -> BTreeSet<String> {
        let table = self.catalog().load_table(&self.table).await.unwrap();
        self.warehouse
            .list_under(&format!("{}/metadata", table.metadata().location()))
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    fn set_property(&self, key: &str) -> TableChange {
        TableChange {
            table: self.table.clone(),
            requirements: Vec::new(),
            updates: vec![TableUpdate::SetProperties {
                updates: HashMap::from([(key.to_string(), "v".to_string())]),
            }],
        }
    }
}

#[tokio::test]
async fn a_swap_that_happened_but_reported_an_error_is_a_success_and_keeps_its_file() {
    let setup = Setup::new().await;
    let before = setup.metadata_files().await;
    setup.store.inject(Fault::ApplyThenFail);
    let committed = setup
        .catalog()
        .commit_table(setup.set_property("applied"))
        .await
        .expect("the swap happened, so the commit succeeded");
    let location = committed.metadata_location.unwrap();

    let loaded = setup.catalog().load_table(&setup.table).await.unwrap();
    assert_eq!(loaded.metadata_location.as_deref(), Some(location.as_str()));
    assert_eq!(loaded.metadata().properties()["applied"], "v");
    let after = setup.metadata_files().await;
    assert!(after.contains(&location), "{location} was deleted");
    assert!(before.is_subset(&after));
    assert_eq!(after.len(), before.len() + 1);
}

#[tokio::test]
async fn a_swap_that_happened_and_was_superseded_before_the_error_is_a_success() {
    let setup = Setup::new().await;
    setup
        .store
        .inject(Fault::ApplyThenFailThenSupersede(setup.warehouse.clone()));
    let committed = setup
        .catalog()
        .commit_table(setup.set_property("applied"))
        .await
        .expect("the swap happened (a later commit names it), so the commit succeeded");
    let location = committed.metadata_location.unwrap();

    let loaded = setup.catalog().load_table(&setup.table).await.unwrap();
    assert_ne!(loaded.metadata_location.as_deref(), Some(location.as_str()));
    assert!(
        loaded
            .metadata()
            .metadata_log()
            .iter()
            .any(|entry| entry.metadata_file == location)
    );
    assert_eq!(loaded.metadata().properties()["applied"], "v");
    assert!(
        setup.metadata_files().await.contains(&location),
        "{location} was deleted"
    );
}

#[tokio::test]
async fn a_swap_that_failed_without_applying_is_cleaned_up() {
    let setup = Setup::new().await;
    let before = setup.metadata_files().await;
    let pointer_before = setup.store.load_table(&setup.table).await.unwrap();
    setup.store.inject(Fault::FailBeforeApplying);
    let err = setup
        .catalog()
        .commit_table(setup.set_property("lost"))
        .await
        .unwrap_err();
    assert!(matches!(err, CommitError::Internal(_)), "{err:?}");

    let pointer = setup.store.load_table(&setup.table).await.unwrap();
    assert_eq!(pointer, pointer_before);
    assert_eq!(
        setup.metadata_files().await,
        before,
        "the unused file is deleted"
    );
}

#[tokio::test]
async fn when_the_pointer_cannot_be_read_again_the_files_stay() {
    let setup = Setup::new().await;
    let before = setup.metadata_files().await;
    setup.store.inject(Fault::ApplyThenGoDark);
    let err = setup
        .catalog()
        .commit_table(setup.set_property("unknown"))
        .await
        .unwrap_err();
    assert!(matches!(err, CommitError::Unavailable(_)), "{err:?}");

    // The swap did happen: the file the pointer names must be there, and the table loads.
    let loaded = setup.catalog().load_table(&setup.table).await.unwrap();
    assert_eq!(loaded.metadata().properties()["unknown"], "v");
    let location = loaded.metadata_location.unwrap();
    let after = setup.metadata_files().await;
    assert!(after.contains(&location), "{location} was deleted");
    assert_eq!(after.len(), before.len() + 1);
}
