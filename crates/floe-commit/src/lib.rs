//! Floe's commit engine: the one path by which a table's metadata changes.
//!
//! # The commit protocol
//!
//! Every writer — the REST API now, SQL writes and maintenance jobs later — changes a table by
//! handing [`Catalog::commit`] a list of [`TableChange`]s (Iceberg requirements plus updates).
//! Commits to the same table from one server first queue for their turn (see `locks`: this is for
//! throughput and fairness; correctness comes from step 5). For each attempt the engine:
//!
//! 1. reads each table's current pointer from the [`MetadataStore`] and its metadata file (cached
//!    by location: metadata files are immutable, so a cache hit is never stale once the pointer
//!    was read fresh; a file read from storage is verified against the size and SHA-256 the
//!    pointer records first, see `integrity`);
//! 2. checks every requirement against that state; a failed requirement is a real conflict (409);
//! 3. applies every update with Iceberg's `TableMetadataBuilder` (partition specs that it binds
//!    more strictly than Iceberg's Java reference implementation: see `partition_specs`);
//! 4. writes each new metadata file under its table's location with put-if-absent;
//! 5. moves all pointers from the values read in step 1 to the new files in one
//!    [`MetadataStore::swap_pointers`] call: all tables or none. Each new pointer records its
//!    file's size and SHA-256, taken of the bytes serialized in step 4 (no read back).
//!
//! If step 5 loses a race, the files written in step 4 are deleted and the attempt starts over from
//! step 1, so that commits which do not really conflict (their requirements still hold on the new
//! state) both succeed. After a bounded number of attempts the commit fails with
//! [`CommitError::Conflict`]. A failed commit never leaves a file that any pointer names.
//!
//! If step 5 fails in a way that does not say whether the swap happened (a lost connection, an
//! error from `COMMIT` itself), the pointers are read again: if they name the new files, the commit
//! happened and succeeds; if they name others, the files are deleted; if they cannot be read
//! either, the files stay (at worst unreferenced, for orphan removal). Every delete goes through
//! the table's [`floe_storage::TableScope`], so only files inside the table's own location go.
//!
//! Table and view locations never overlap (see *Locations* in `floe_store`): every location the
//! engine sets (a created table's, a registered one's, a `set-location` update's) is made
//! canonical and checked to lie inside the warehouse here, and the swap that records it is refused
//! by the store if another table or view holds it, or a directory above or below it.
//!
//! `docs/commit-protocol.md` lists the invariants and the tests that check them. Commits by
//! outcome, retries, swap latency and the metadata cache are series of [`metrics`].

mod cache;
mod create;
pub mod due;
mod error;
pub mod file_io;
mod integrity;
pub mod locations;
mod locks;
pub mod metrics;
pub mod open;
mod partition_specs;
pub mod private_files;
pub mod producer;
mod requirements;
pub mod views;
pub mod warehouses;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use floe_storage::{StorageError, TableScope, Warehouse};
use floe_store::{
    MetadataStore, NamespacePath, Page, PageRequest, PointerSwap, Properties, PropertiesChange,
    TableName, TablePointer,
};
use iceberg::spec::{FormatVersion, Schema, SortOrder, TableMetadata, UnboundPartitionSpec};
use iceberg::{TableRequirement, TableUpdate};
use tracing::{debug, info, warn};

pub use cache::{MetadataCache, MetadataFile};
pub use error::{CommitError, Result};
pub use integrity::integrity_failures_total;
pub use producer::{ProducedSnapshot, SnapshotChange, produce};
pub use views::{CreateView, LoadedView, ViewChange, ViewRequirement};
pub use warehouses::{NewWarehouse, WarehouseInfo, Warehouses};

/// A reserved create-time property: it picks the table format version and is not stored.
const FORMAT_VERSION: &str = "format-version";

/// The Iceberg property that turns on deleting metadata files dropped from the metadata log.
const DELETE_AFTER_COMMIT: &str = "write.metadata.delete-after-commit.enabled";

/// Iceberg's `gc.enabled`: `false` says the table's files may be shared with other tables, so
/// nothing may delete them for it (purge, expiry's deletes, unreferenced-file removal).
pub const GC_ENABLED: &str = "gc.enabled";

/// Whether `gc.enabled` lets jobs delete the table's files: unset means yes; as in Iceberg Java
/// (`Boolean.parseBoolean`), any value but `true` (in any case) means no.
pub fn gc_enabled(metadata: &TableMetadata) -> bool {
    metadata
        .properties()
        .get(GC_ENABLED)
        .is_none_or(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// A table as it is now: its pointer and parsed metadata.
#[derive(Debug, Clone)]
pub struct LoadedTable {
    pub name: TableName,
    /// `None` only for a staged create, which has no metadata file yet.
    pub metadata_location: Option<String>,
    /// The store's pointer version; 0 for a staged create.
    pub version: i64,
    pub file: Arc<MetadataFile>,
}

impl LoadedTable {
    pub fn metadata(&self) -> &TableMetadata {
        self.file.metadata()
    }
}

/// One table's part of a commit: what must hold, and what to change.
#[derive(Debug, Clone)]
pub struct TableChange {
    pub table: TableName,
    pub requirements: Vec<TableRequirement>,
    pub updates: Vec<TableUpdate>,
}

/// A request to create a table, as the REST API carries it.
#[derive(Debug, Clone)]
pub struct CreateTable {
    pub name: TableName,
    pub location: Option<String>,
    pub schema: Schema,
    pub partition_spec: Option<UnboundPartitionSpec>,
    pub sort_order: Option<SortOrder>,
    pub properties: HashMap<String, String>,
    /// Build the metadata but create nothing: the client will commit it with `assert-create`.
    pub stage: bool,
}

/// Tuning of the commit loop.
#[derive(Debug, Clone)]
pub struct CommitSettings {
    /// How many times a commit that lost the pointer race is re-checked and re-tried.
    pub max_attempts: u32,
    /// Base of the jittered exponential back-off between attempts.
    pub retry_backoff: Duration,
    /// Budget of the in-memory metadata cache, in bytes of metadata JSON (roughly).
    pub metadata_cache_bytes: usize,
}

impl Default for CommitSettings {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            retry_backoff: Duration::from_millis(2),
            metadata_cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Namespaces and tables over one metadata store and one warehouse.
pub struct Catalog {
    store: Arc<dyn MetadataStore>,
    warehouse: Warehouse,
    cache: MetadataCache,
    table_locks: locks::TableLocks,
    settings: CommitSettings,
}

impl Catalog {
    pub fn new(store: Arc<dyn MetadataStore>, warehouse: Warehouse) -> Self {
        Self::with_settings(store, warehouse, CommitSettings::default())
    }

    pub fn with_settings(
        store: Arc<dyn MetadataStore>,
        warehouse: Warehouse,
        settings: CommitSettings,
    ) -> Self {
        Self {
            store,
            warehouse,
            cache: MetadataCache::new(settings.metadata_cache_bytes),
            table_locks: locks::TableLocks::default(),
            settings,
        }
    }

    pub fn warehouse(&self) -> &Warehouse {
        &self.warehouse
    }

    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// An iceberg `FileIO` over this warehouse's object store (local, S3, ...), for reading and
    /// writing table files server-side; it refuses paths outside the warehouse.
    pub fn file_io(&self) -> iceberg::io::FileIO {
        file_io::warehouse_file_io(&self.warehouse)
    }

    // ---- namespaces: the store does all the work; they have no files.

    pub async fn create_namespace(
        &self,
        namespace: &[String],
        properties: &Properties,
    ) -> Result<()> {
        validate_namespace(namespace)?;
        Ok(self.store.create_namespace(namespace, properties).await?)
    }

    pub async fn load_namespace(&self, namespace: &[String]) -> Result<Properties> {
        Ok(self.store.load_namespace(namespace).await?)
    }

    pub async fn list_namespaces(
        &self,
        parent: Option<&[String]>,
        page: &PageRequest,
    ) -> Result<Page<NamespacePath>> {
        Ok(self.store.list_namespaces(parent, page).await?)
    }

    pub async fn update_namespace_properties(
        &self,
        namespace: &[String],
        removals: &[String],
        updates: &Properties,
    ) -> Result<PropertiesChange> {
        if let Some(key) = removals.iter().find(|key| updates.contains_key(*key)) {
            return Err(CommitError::InvalidRequest(format!(
                "property {key:?} is both updated and removed"
            )));
        }
        Ok(self
            .store
            .update_namespace_properties(namespace, removals, updates)
            .await?)
    }

    pub async fn drop_namespace(&self, namespace: &[String]) -> Result<()> {
        Ok(self.store.drop_namespace(namespace).await?)
    }

    // ---- tables

    pub async fn list_tables(
        &self,
        namespace: &[String],
        page: &PageRequest,
    ) -> Result<Page<String>> {
        Ok(self.store.list_tables(namespace, page).await?)
    }

    /// The table's current state. Always reads the pointer from the store, so it never returns a
    /// state older than an acknowledged commit; the metadata file itself comes from the cache when
    /// it can.
    pub async fn load_table(&self, table: &TableName) -> Result<LoadedTable> {
        let pointer = self.store.load_table(table).await?;
        let file = self.read_current(table, &pointer).await?;
        Ok(LoadedTable {
            name: table.clone(),
            metadata_location: Some(pointer.metadata_location),
            version: pointer.version,
            file,
        })
    }

    /// Whether the metadata store answers (a trivial query); for readiness checks.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    /// The store's pointer alone: one indexed read, for existence checks and ETags.
    pub async fn table_pointer(&self, table: &TableName) -> Result<TablePointer> {
        Ok(self.store.load_table(table).await?)
    }

    pub async fn create_table(&self, request: CreateTable) -> Result<LoadedTable> {
        validate_name(&request.name.name, "table")?;
        self.store.load_namespace(&request.name.namespace).await?;
        // Checked at staging too, although a staged create reserves nothing: its location is
        // checked against the others' when the create transaction commits.
        let location = self.warehouse.table_location(&match &request.location {
            Some(location) => location.clone(),
            None => self
                .warehouse
                .new_table_location(&request.name.namespace, &request.name.name),
        })?;
        let format_version = format_version_of(&request.properties)?;
        let properties = request
            .properties
            .into_iter()
            .filter(|(key, _)| key != FORMAT_VERSION)
            .collect();
        let fresh = create::new_table_metadata(
            &request.schema,
            request.partition_spec.as_ref(),
            request.sort_order.as_ref(),
            location,
            format_version,
            properties,
        )?;
        // Building binds the spec and sort order to the schema: a spec naming a column that does
        // not exist, or a transform that does not fit its type, is refused here.
        let metadata = partition_specs::apply(fresh, None, Vec::new())?.metadata;
        let file = Arc::new(MetadataFile::from_metadata(metadata)?);

        if request.stage {
            if self.store.load_table(&request.name).await.is_ok() {
                return Err(CommitError::AlreadyExists(format!(
                    "table {} already exists",
                    request.name
                )));
            }
            // Nothing exists until the create transaction commits, except an empty metadata
            // directory on local warehouses: DuckDB writes its first manifest there without
            // creating it. An empty directory is invisible to every reader.
            self.warehouse.ensure_directory(&format!(
                "{}/metadata",
                file.metadata().location().trim_end_matches('/')
            ))?;
            return Ok(LoadedTable {
                name: request.name,
                metadata_location: None,
                version: 0,
                file,
            });
        }

        let new_location = metadata_file_location(file.metadata().location(), 0);
        self.write_metadata(&new_location, &file).await?;
        let swap = PointerSwap {
            table: request.name.clone(),
            expected: None,
            new_location: new_location.clone(),
            new_checksum: file.checksum().clone(),
            location: Some(file.metadata().location().to_string()),
            events: Default::default(),
        };
        match self.swap_pointers(&[swap]).await {
            Ok(pointers) => {
                info!(table = %request.name, location = %new_location, "table created");
                self.cache.insert(&new_location, file.clone());
                Ok(LoadedTable {
                    name: request.name,
                    metadata_location: Some(new_location),
                    version: pointers[0].version,
                    file,
                })
            }
            Err(err) => {
                self.forget_files_of_failed_swap(&err, std::slice::from_ref(&new_location))
                    .await;
                Err(err.into())
            }
        }
    }

    /// Commits one table change.
    pub async fn commit_table(&self, change: TableChange) -> Result<LoadedTable> {
        let mut tables = self.commit(vec![change]).await?;
        Ok(tables.remove(0))
    }

    /// Commits changes to several tables atomically: all of them or none. See the crate docs for
    /// the protocol.
    pub async fn commit(&self, changes: Vec<TableChange>) -> Result<Vec<LoadedTable>> {
        let result = self.commit_with_retries(changes).await;
        metrics::commit_finished(match &result {
            Ok(_) => metrics::Outcome::Committed,
            Err(CommitError::Conflict(_)) => metrics::Outcome::Conflict,
            Err(_) => metrics::Outcome::Failed,
        });
        result
    }

    async fn commit_with_retries(&self, changes: Vec<TableChange>) -> Result<Vec<LoadedTable>> {
        if changes.is_empty() {
            return Err(CommitError::InvalidRequest(
                "no table changes to commit".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for change in &changes {
            if !seen.insert(&change.table) {
                return Err(CommitError::InvalidRequest(format!(
                    "table {} appears twice in one commit",
                    change.table
                )));
            }
        }

        let tables: Vec<&TableName> = changes.iter().map(|change| &change.table).collect();
        let _turn = self.table_locks.acquire(&tables).await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let prepared = self.prepare(&changes).await?;
            let written = prepared
                .iter()
                .map(|p| p.new_location.clone())
                .collect::<Vec<_>>();
            if let Err(err) = self.write_all(&prepared).await {
                self.delete_written(&prepared).await;
                return Err(err);
            }
            let swaps = prepared
                .iter()
                .map(|p| PointerSwap {
                    table: p.table.clone(),
                    expected: p.expected.clone(),
                    new_location: p.new_location.clone(),
                    new_checksum: p.file.checksum().clone(),
                    location: p.location.clone(),
                    events: p.events.clone(),
                })
                .collect::<Vec<_>>();
            let outcome = match self.swap_pointers(&swaps).await {
                Ok(pointers) => Ok(pointers),
                Err(err) => match self.settle_failed_swap(&err, &swaps).await {
                    SwapOutcome::Applied(pointers) => {
                        warn!(error = %err, "the metadata store reported a failed swap that had in fact happened; the commit stands");
                        Ok(pointers)
                    }
                    outcome => Err((err, outcome)),
                },
            };
            match outcome {
                Ok(pointers) => {
                    let mut loaded = Vec::with_capacity(prepared.len());
                    for (p, pointer) in prepared.into_iter().zip(pointers) {
                        self.cache.insert(&p.new_location, p.file.clone());
                        self.expire_metadata_files(&p).await;
                        debug!(table = %p.table, location = %p.new_location, attempt, "committed");
                        loaded.push(LoadedTable {
                            name: p.table,
                            metadata_location: Some(p.new_location),
                            version: pointer.version,
                            file: p.file,
                        });
                    }
                    return Ok(loaded);
                }
                Err((floe_store::StoreError::Conflict { table }, _)) => {
                    self.delete_written(&prepared).await;
                    if attempt >= self.settings.max_attempts {
                        warn!(%table, attempt, "commit gave up after repeated conflicts");
                        return Err(CommitError::Conflict(format!(
                            "table {table} was changed by concurrent commits; gave up after {attempt} attempts"
                        )));
                    }
                    debug!(%table, attempt, "lost the pointer race, re-checking");
                    ::metrics::counter!(metrics::RETRIES).increment(1);
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err((err, SwapOutcome::NotApplied)) => {
                    self.delete_written(&prepared).await;
                    return Err(err.into());
                }
                Err((err, _)) => {
                    warn!(
                        files = ?written,
                        error = %err,
                        "the metadata store failed during a swap whose outcome is unknown; keeping its metadata files"
                    );
                    return Err(err.into());
                }
            }
        }
    }

    /// Drops a table; with `purge`, also deletes every file under its location. A purge of a table
    /// whose `gc.enabled` is false is refused before anything is dropped, as Iceberg Java does.
    ///
    /// A purge while a backup runs ([`Catalog::backup_in_progress`]) is refused as unavailable
    /// before the drop; a backup that starts between that check and the drop keeps the files.
    pub async fn drop_table(&self, table: &TableName, purge: bool) -> Result<()> {
        if purge && !gc_enabled(self.load_table(table).await?.metadata()) {
            return Err(gc_disabled(table));
        }
        if purge && self.backup_in_progress().await? {
            return Err(CommitError::Unavailable(format!(
                "cannot purge table {table} now: a metadata-store backup is running, and its \
                 copy may name the table's files; retry when it is done"
            )));
        }
        let pointer = self.store.drop_table(table).await?;
        info!(%table, purge, "table dropped");
        if purge {
            let file = self.read_current(table, &pointer).await?;
            // A commit between the check above and the drop may have turned GC off.
            if !gc_enabled(file.metadata()) {
                warn!(%table, "gc.enabled turned false while the table was dropped; its files are kept");
                return Ok(());
            }
            // Checked again after the drop: a backup that began before it may hold the table.
            if self.backup_in_progress().await? {
                warn!(%table, "a backup began while the table was dropped; its files are kept");
                return Ok(());
            }
            let location = file.metadata().location();
            match TableScope::new(&self.warehouse, location) {
                Ok(scope) => {
                    let deleted = scope.delete_all().await?;
                    info!(%table, deleted, "table files purged");
                }
                Err(err) => {
                    warn!(%table, location, error = %err, "not purging files outside the warehouse")
                }
            }
        }
        Ok(())
    }

    pub async fn rename_table(&self, from: &TableName, to: &TableName) -> Result<()> {
        validate_name(&to.name, "table")?;
        Ok(self.store.rename_table(from, to).await?)
    }

    /// Registers an existing metadata file as a new table (or, with `overwrite`, as the new state
    /// of an existing one).
    pub async fn register_table(
        &self,
        table: &TableName,
        metadata_location: &str,
        overwrite: bool,
    ) -> Result<LoadedTable> {
        validate_name(&table.name, "table")?;
        self.store.load_namespace(&table.namespace).await?;
        let file = match self.read_to_register(metadata_location).await {
            Err(CommitError::NotFound(message)) => {
                return Err(CommitError::InvalidRequest(format!(
                    "cannot register {table}: {message}"
                )));
            }
            other => other?,
        };
        // Canonical for the store's overlap check; the file itself is registered as it is.
        let location = self.warehouse.table_location(file.metadata().location())?;
        let expected = if overwrite {
            match self.store.load_table(table).await {
                Ok(pointer) => Some(pointer.metadata_location),
                Err(floe_store::StoreError::TableNotFound(_)) => None,
                Err(err) => return Err(err.into()),
            }
        } else {
            None
        };
        let swap = PointerSwap {
            table: table.clone(),
            expected,
            new_location: metadata_location.to_string(),
            // Of the bytes just read: from now on, reads verify against what was registered.
            new_checksum: file.checksum().clone(),
            // Also when it replaces a table's state: the new file may name another location.
            location: Some(location),
            // A whole new state: every job judges it afresh.
            events: floe_store::CommitEvents::reevaluate_all(),
        };
        let pointers = self.swap_pointers(&[swap]).await?;
        Ok(LoadedTable {
            name: table.clone(),
            metadata_location: Some(metadata_location.to_string()),
            version: pointers[0].version,
            file,
        })
    }

    /// Whether a metadata-store backup is running (it holds [`floe_store::backup::BACKUP_LEASE`]).
    /// Whatever deletes files that a committed state named — expiry, unreferenced-file removal,
    /// purge — asks this *after* its commit and deletes nothing while it is true: a backup
    /// that began before that commit may still name those files, and one that begins after the
    /// question no longer does.
    pub async fn backup_in_progress(&self) -> Result<bool> {
        Ok(self
            .store
            .lease_is_held(floe_store::backup::BACKUP_LEASE)
            .await?)
    }

    // ---- internals

    async fn prepare(&self, changes: &[TableChange]) -> Result<Vec<PreparedCommit>> {
        let mut prepared = Vec::with_capacity(changes.len());
        for change in changes {
            prepared.push(self.prepare_one(change).await?);
        }
        Ok(prepared)
    }

    /// Steps 1–3 of the protocol for one table: read, check, apply.
    async fn prepare_one(&self, change: &TableChange) -> Result<PreparedCommit> {
        let current = match self.store.load_table(&change.table).await {
            Ok(pointer) => {
                let file = self.read_current(&change.table, &pointer).await?;
                Some((pointer, file))
            }
            Err(floe_store::StoreError::TableNotFound(_)) => None,
            Err(err) => return Err(err.into()),
        };
        for requirement in &change.requirements {
            requirements::check(
                &change.table,
                requirement,
                current.as_ref().map(|(_, file)| file.metadata()),
            )?;
        }
        let updates = locations::canonical_updates(&self.warehouse, &change.updates)?;
        let table_location = current
            .as_ref()
            .map(|(_, file)| file.metadata().location().to_string());
        let (base, previous_location, expected, previous_version) = match current {
            Some((pointer, file)) => {
                let version = metadata_file_version(&pointer.metadata_location);
                (
                    file.metadata().clone(),
                    Some(pointer.metadata_location.clone()),
                    Some(pointer.metadata_location),
                    version,
                )
            }
            None => {
                // Only a create transaction (one that asserts the table does not exist) may
                // commit to a missing table; the requirement check above let it through.
                if !change
                    .requirements
                    .iter()
                    .any(|r| matches!(r, TableRequirement::NotExist))
                {
                    return Err(CommitError::TableNotFound(format!(
                        "table {} does not exist",
                        change.table
                    )));
                }
                self.store.load_namespace(&change.table.namespace).await?;
                let default_location = self
                    .warehouse
                    .new_table_location(&change.table.namespace, &change.table.name);
                let base = create::base_metadata(&updates, &default_location)?;
                (base, None, None, -1)
            }
        };
        // Iceberg's builder applies the updates; partition specs it binds more strictly than
        // Iceberg's reference implementation are bound by `partition_specs` instead.
        let events = due::commit_events(expected.is_none(), &updates);
        let built = partition_specs::apply(base, previous_location, updates)?;
        let metadata = built.metadata;
        let events = due::with_oldest_snapshot(events, &metadata);
        // Every file of the table must stay inside the warehouse, whatever location a client set;
        // a new or moved table's location is recorded, and checked against the others', by the
        // swap.
        self.warehouse.object_path(metadata.location())?;
        let location = match table_location {
            Some(current) if current == metadata.location() => None,
            _ => Some(self.warehouse.table_location(metadata.location())?),
        };
        let new_location = metadata_file_location(metadata.location(), previous_version + 1);
        let file = Arc::new(MetadataFile::from_metadata(metadata)?);
        Ok(PreparedCommit {
            table: change.table.clone(),
            expected,
            new_location,
            location,
            file,
            expired_metadata_files: built
                .expired_metadata_logs
                .into_iter()
                .map(|log| log.metadata_file)
                .collect(),
            events,
        })
    }

    async fn write_all(&self, prepared: &[PreparedCommit]) -> Result<()> {
        for p in prepared {
            self.write_metadata(&p.new_location, &p.file).await?;
        }
        Ok(())
    }

    async fn write_metadata(&self, location: &str, file: &MetadataFile) -> Result<()> {
        match self.warehouse.put_new(location, file.json().clone()).await {
            Ok(()) => Ok(()),
            // A fresh UUID is in every name, so nobody else writes this file. It can still be
            // there: the store retried our put after a 5xx whose request had in fact landed, and
            // the retry's `If-None-Match: *` failed. Then the file holds exactly our bytes.
            Err(StorageError::AlreadyExists { location }) => {
                match self.warehouse.get(&location).await {
                    Ok(bytes) if bytes == *file.json() => Ok(()),
                    Ok(_) => Err(CommitError::Internal(format!(
                        "metadata file {location} already exists with other content"
                    ))),
                    Err(err) => Err(err.into()),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    /// A metadata file that no pointer names yet, to register: nothing to verify it against,
    /// so its checksum is taken of what is read here (or was read, if cached).
    async fn read_to_register(&self, location: &str) -> Result<Arc<MetadataFile>> {
        if let Some(metadata) = self.cache.get(location) {
            return Ok(metadata);
        }
        let bytes = self.warehouse.get(location).await?;
        let metadata = Arc::new(MetadataFile::parse(location, bytes)?);
        self.cache.insert(location, metadata.clone());
        Ok(metadata)
    }

    /// Honors `write.metadata.delete-after-commit.enabled`: files that fell off the metadata log
    /// (kept to `write.metadata.previous-versions-max` entries) are deleted after the commit,
    /// those inside the table's location only (a registered table's older files stay).
    async fn expire_metadata_files(&self, commit: &PreparedCommit) {
        let enabled = commit
            .file
            .metadata()
            .properties()
            .get(DELETE_AFTER_COMMIT)
            .is_some_and(|value| value.eq_ignore_ascii_case("true"));
        if enabled {
            self.delete_all_quietly(
                commit.file.metadata().location(),
                &commit.expired_metadata_files,
            )
            .await;
        }
    }

    /// Reads the pointers again after `swaps` failed with `err`, to learn whether they happened.
    /// A definite refusal (conflict, missing or existing table, bad input) did not apply; any
    /// other error (a lost connection, a failed `COMMIT`) may have.
    async fn settle_failed_swap(
        &self,
        err: &floe_store::StoreError,
        swaps: &[PointerSwap],
    ) -> SwapOutcome {
        if is_definite_refusal(err) {
            return SwapOutcome::NotApplied;
        }
        let mut applied = Vec::with_capacity(swaps.len());
        let mut others = 0;
        for swap in swaps {
            match self.store.load_table(&swap.table).await {
                Ok(pointer) if pointer.metadata_location == swap.new_location => {
                    applied.push(pointer)
                }
                Ok(pointer) => {
                    // Applied and then superseded by a later commit (whose metadata log names
                    // ours) is as much a success as applied; answering otherwise makes the
                    // client retry a commit that landed (found by floe-model's checker).
                    match self.read_current(&swap.table, &pointer).await {
                        Ok(file)
                            if file
                                .metadata()
                                .metadata_log()
                                .iter()
                                .any(|log| log.metadata_file == swap.new_location) =>
                        {
                            applied.push(TablePointer {
                                metadata_location: swap.new_location.clone(),
                                // Ours was some version before this one; nothing reads it back.
                                version: pointer.version,
                                checksum: Some(swap.new_checksum.clone()),
                            })
                        }
                        Ok(_) => others += 1,
                        Err(_) => return SwapOutcome::Unknown,
                    }
                }
                Err(floe_store::StoreError::TableNotFound(_)) if swap.expected.is_none() => {
                    others += 1
                }
                Err(_) => return SwapOutcome::Unknown,
            }
        }
        // All or none, since swaps are atomic; a mix means the store is not what it claims.
        match (applied.len(), others) {
            (n, 0) if n == swaps.len() => SwapOutcome::Applied(applied),
            (0, _) => SwapOutcome::NotApplied,
            _ => SwapOutcome::Unknown,
        }
    }

    /// After a swap failed with `err`: deletes the files written for it when the store refused
    /// it outright, and keeps them otherwise — the store may have applied the swap, and then a
    /// pointer names them; at worst they are unreferenced files like those a crash leaves.
    async fn forget_files_of_failed_swap(&self, err: &floe_store::StoreError, written: &[String]) {
        if is_definite_refusal(err) {
            for location in written {
                if let Some(table_location) = table_location_of_metadata_file(location) {
                    self.delete_quietly(table_location, location).await;
                }
            }
        } else {
            warn!(
                files = ?written,
                error = %err,
                "the metadata store failed during a swap whose outcome is unknown; keeping its metadata files"
            );
        }
    }

    /// The store's compare-and-swap of pointers, timed.
    async fn swap_pointers(
        &self,
        swaps: &[PointerSwap],
    ) -> std::result::Result<Vec<TablePointer>, floe_store::StoreError> {
        let started = std::time::Instant::now();
        let result = self.store.swap_pointers(swaps).await;
        ::metrics::histogram!(metrics::SWAP_DURATION).record(started.elapsed().as_secs_f64());
        result
    }

    /// Deletes the metadata files an attempt wrote and will not commit.
    async fn delete_written(&self, prepared: &[PreparedCommit]) {
        for p in prepared {
            self.delete_quietly(p.file.metadata().location(), &p.new_location)
                .await;
        }
    }

    /// Deletes `location` if it is inside the table at `table_location`.
    async fn delete_quietly(&self, table_location: &str, location: &str) {
        let deleted = match TableScope::new(&self.warehouse, table_location) {
            Ok(scope) => scope.delete(location).await.map(|_| ()),
            Err(err) => Err(err),
        };
        if let Err(err) = deleted {
            warn!(location, error = %err, "could not delete an unreferenced metadata file");
        }
    }

    async fn delete_all_quietly(&self, table_location: &str, locations: &[String]) {
        for location in locations {
            self.delete_quietly(table_location, location).await;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = self.settings.retry_backoff.as_micros() as u64;
        let ceiling = base.saturating_mul(1 << attempt.min(10));
        // Jitter keeps concurrent losers from retrying in lock-step.
        let jitter = uuid::Uuid::new_v4().as_u128() as u64 % ceiling.max(1);
        Duration::from_micros(ceiling / 2 + jitter / 2)
    }
}

/// What a swap that failed did, once the pointers were read again.
enum SwapOutcome {
    /// It happened: the pointers name the new files.
    Applied(Vec<TablePointer>),
    /// It did not: the new files are referenced by nothing.
    NotApplied,
    /// No way to tell: the new files must stay.
    Unknown,
}

/// Whether a failed swap certainly changed nothing.
fn is_definite_refusal(err: &floe_store::StoreError) -> bool {
    use floe_store::StoreError as E;
    matches!(
        err,
        E::Conflict { .. }
            | E::TableNotFound(_)
            | E::NamespaceNotFound(_)
            | E::WarehouseNotFound(_)
            | E::NotFound(_)
            | E::TableAlreadyExists(_)
            | E::ViewAlreadyExists(_)
            | E::NamespaceAlreadyExists(_)
            | E::AlreadyExists(_)
            | E::InvalidInput(_)
            | E::LocationOverlap { .. }
    )
}

/// The table location of a metadata file this engine named (`<table>/metadata/<file>`).
fn table_location_of_metadata_file(location: &str) -> Option<&str> {
    location
        .rsplit_once('/')
        .and_then(|(dir, _)| dir.strip_suffix("/metadata"))
}

fn gc_disabled(table: &TableName) -> CommitError {
    CommitError::InvalidRequest(format!(
        "cannot purge table {table}: GC is disabled (gc.enabled=false), so its files may be \
         shared with other tables; set gc.enabled=true first, or drop it without purging"
    ))
}

/// A table's commit, ready to write and swap.
struct PreparedCommit {
    table: TableName,
    expected: Option<String>,
    new_location: String,
    /// The table's location when this commit creates or moves the table.
    location: Option<String>,
    file: Arc<MetadataFile>,
    expired_metadata_files: Vec<String>,
    /// What the commit means for maintenance, recorded with the swap.
    events: floe_store::CommitEvents,
}

/// `<table>/metadata/<version>-<uuid>.metadata.json`, the layout every Iceberg engine writes.
fn metadata_file_location(table_location: &str, version: i64) -> String {
    format!(
        "{}/metadata/{:05}-{}.metadata.json",
        table_location.trim_end_matches('/'),
        version.max(0),
        uuid::Uuid::new_v4()
    )
}

/// The version number in a metadata file name, or -1 when the name does not follow the layout
/// (e.g. a registered table written by another tool).
pub fn metadata_file_version(location: &str) -> i64 {
    location
        .rsplit('/')
        .next()
        .and_then(|name| name.split('-').next())
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(-1)
}

fn format_version_of(properties: &HashMap<String, String>) -> Result<FormatVersion> {
    match properties.get(FORMAT_VERSION).map(String::as_str) {
        None | Some("2") => Ok(FormatVersion::V2),
        Some("1") => Ok(FormatVersion::V1),
        Some("3") => Ok(FormatVersion::V3),
        Some(other) => Err(CommitError::InvalidRequest(format!(
            "unsupported format-version {other:?}"
        ))),
    }
}

fn validate_name(name: &str, what: &str) -> Result<()> {
    if name.is_empty() {
        return Err(CommitError::InvalidRequest(format!(
            "{what} name must not be empty"
        )));
    }
    // A URL path segment that is `.` or `..` is resolved away by every URL parser (also when
    // percent-encoded), so no REST client could ever load, rename or drop such a table again.
    if name == "." || name == ".." {
        return Err(CommitError::InvalidRequest(format!(
            "{what} name {name:?} cannot be addressed in a URL"
        )));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(CommitError::InvalidRequest(format!(
            "{what} name {name:?} contains control characters"
        )));
    }
    if name.len() > 1024 {
        return Err(CommitError::InvalidRequest(format!(
            "{what} name is longer than 1024 bytes"
        )));
    }
    Ok(())
}

fn validate_namespace(namespace: &[String]) -> Result<()> {
    if namespace.is_empty() {
        return Err(CommitError::InvalidRequest(
            "namespace must not be empty".into(),
        ));
    }
    namespace
        .iter()
        .try_for_each(|level| validate_name(level, "namespace"))
}
