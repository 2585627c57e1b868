//! The embedded metadata store: one SQLite file.
//!
//! # Durability
//!
//! The file runs in WAL mode with `synchronous=FULL`. WAL lets readers go on while a writer commits,
//! and never blocks a writer on readers, which is what a catalog serving many `loadTable`s beside a
//! few commits needs. `synchronous=FULL` makes every commit fsync the WAL before it returns: once
//! [`MetadataStore::swap_pointers`] has returned, the new pointer survives a crash or a power loss.
//! (WAL's cheaper `NORMAL` could lose the last commits on power loss, and a lost pointer swap means
//! a commit the client was told had succeeded is gone.)
//!
//! # The compare-and-swap
//!
//! SQLite has a single writer at a time. Every write runs in a transaction opened with
//! `BEGIN IMMEDIATE`, which takes the write lock up front: a transaction that starts as a reader and
//! later writes can find that another writer committed since its snapshot, and then fails with
//! `SQLITE_BUSY` instead of waiting. With the lock taken first, a swap is
//! `UPDATE tables SET metadata_location = new, version = version + 1 WHERE ... AND
//! metadata_location = expected`; no row updated means the table is gone or someone else's swap
//! came first, and the whole transaction — every swap of the batch — rolls back.
//!
//! The same lock makes the location check atomic (see *Locations* in the crate docs): a
//! transaction that sets a location checks for overlaps after writing its row, and no other
//! writer can come between the check and the commit.
//!
//! Writers of this process also queue on a fair in-process lock before `BEGIN IMMEDIATE`: SQLite's
//! busy handler polls with growing sleeps and serves no one in order, so many writers contending
//! inside SQLite see latency spikes, and each would hold a pooled connection the readers need. The
//! busy timeout is left for other processes holding the file (e.g. a backup). A wait that outlasts
//! its timeout becomes [`StoreError::Unavailable`], which callers may retry.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, Transaction};
use tokio::sync::Mutex;

use crate::due_sql;
use crate::input::{
    JobRow, Keyset, Scope, check_lease_names, check_warehouse_name, lease_ttl_millis,
    takeover_millis,
};
use crate::integrity;
use crate::kind::Kind;
use crate::location::{self, OverlapQuery, check_location};
use crate::sealed::{self, Sealer, SecretKey};
use crate::{
    FileChecksum, IdempotencyClaim, JobFilter, JobRecord, LocationHolder, MetadataStore,
    NamespacePath, Page, PageRequest, PointerKind, PointerSwap, Properties, PropertiesChange,
    Result, StoreError, StoredResponse, TableName, TablePointer, UnlocatedPointer, ViewName,
    WarehouseRecord,
};

mod access;
mod backup;
mod due;
mod replicas;
mod scrub;
mod secrets;

pub use backup::check_backup_file;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The newest schema version (migration) this release brings a store to.
pub fn latest_schema_version() -> i64 {
    MIGRATOR
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0)
}

/// Tuning of a [`SqliteStore`]. Durability settings are not here on purpose: they are not optional.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Pooled connections. Reads use them in parallel; writes use one at a time.
    pub max_connections: u32,
    /// How long a write waits for another process to release the file's write lock.
    pub busy_timeout: Duration,
    /// How long an operation waits for a pooled connection, or a write for its turn.
    pub acquire_timeout: Duration,
    /// Seals the secrets the store keeps (see [`crate::sealed`]); without a key, none can be stored.
    pub sealer: Sealer,
    /// Whether opening with a key brings every stored secret under it ([`crate::secrets`]).
    /// `floe secrets reseal` turns this off to run the pass itself and report it.
    pub seal_on_open: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            busy_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(10),
            sealer: Sealer::default(),
            seal_on_open: true,
        }
    }
}

/// A [`MetadataStore`] in a SQLite file (see the module docs).
pub struct SqliteStore {
    pool: SqlitePool,
    /// This process's writers take turns here, in arrival order, before `BEGIN IMMEDIATE`; shared
    /// by the handles of every warehouse, since they write to one file.
    write_turn: Arc<Mutex<()>>,
    acquire_timeout: Duration,
    scope: Scope,
    pub(crate) sealer: Sealer,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file if missing, and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, &SqliteOptions::default()).await
    }

    pub async fn open_with(path: &Path, options: &SqliteOptions) -> Result<Self> {
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // A caller dropped between sqlx's `BEGIN IMMEDIATE` and its transaction guard (a
            // request whose client went away) leaves the connection inside a transaction that
            // nobody will end, holding the write lock: close such a connection, which rolls it
            // back, rather than pool it.
            .after_release(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            .connect_with(connect)
            .await
            .map_err(db_error)?;
        let store = Self::migrate(pool, options.acquire_timeout, options.sealer.clone()).await?;
        if options.seal_on_open && store.sealer.has_key() {
            crate::SecretStore::reseal_secrets(&store).await?;
        }
        Ok(store)
    }

    /// A store that lives in memory, for tests. Everything is lost when it is dropped.
    pub async fn in_memory() -> Result<Self> {
        let options = SqliteOptions::default();
        let connect = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        // Each connection to `:memory:` is a database of its own, so the pool holds exactly one and
        // never lets it go.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(db_error)?;
        // Nothing outlives it, so a key of its own is as good as any.
        let sealer = Sealer::new(Some(SecretKey::generate()));
        Self::migrate(pool, options.acquire_timeout, sealer).await
    }

    async fn migrate(pool: SqlitePool, acquire_timeout: Duration, sealer: Sealer) -> Result<Self> {
        MIGRATOR.run(&pool).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::Execute(err) => db_error(err),
            other => StoreError::Internal(format!("migrating the metadata store: {other}")),
        })?;
        Ok(Self {
            pool,
            write_turn: Arc::new(Mutex::new(())),
            acquire_timeout,
            scope: Scope::default(),
            sealer,
        })
    }

    /// Waits for open connections to finish and closes them. Dropping the store closes them too,
    /// but without waiting.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `body` in a write transaction and commits it if `body` succeeds; rolls back otherwise.
    async fn write<T>(
        &self,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T>,
    ) -> Result<T> {
        let _turn = tokio::time::timeout(self.acquire_timeout, self.write_turn.lock())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "no turn to write to the metadata store within {:?}",
                    self.acquire_timeout
                ))
            })?;
        let since = Instant::now();
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)?;
        crate::metrics::acquired(since);
        finish(tx, body).await
    }

    /// Runs `body` in a read transaction, so that its queries see one snapshot.
    async fn read<T>(
        &self,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T>,
    ) -> Result<T> {
        let since = Instant::now();
        let tx = self.pool.begin().await.map_err(db_error)?;
        crate::metrics::acquired(since);
        finish(tx, body).await
    }

    // Tables and views: one implementation per operation, for either kind of pointer row.

    async fn load_kind(&self, kind: Kind, name: &TableName) -> Result<TablePointer> {
        let key = self.scope.table_key(name)?;
        let since = Instant::now();
        let mut connection = self.pool.acquire().await.map_err(db_error)?;
        crate::metrics::acquired(since);
        load_pointer(&mut connection, kind, &key, &name.name)
            .await?
            .ok_or_else(|| kind.not_found(name))
    }

    async fn list_kind(
        &self,
        kind: Kind,
        namespace: &[String],
        page: &PageRequest,
    ) -> Result<Page<String>> {
        let key = self.scope.namespace_key(namespace)?;
        let keyset = Keyset::new(page)?;
        let names = self
            .read(async |conn| {
                if !namespace_exists(conn, &key).await? {
                    return Err(StoreError::NamespaceNotFound(namespace.to_vec()));
                }
                sqlx::query_scalar(
                    "SELECT name FROM tables WHERE namespace = ? AND kind = ? AND name > ? \
                     ORDER BY name LIMIT ?",
                )
                .bind(&key)
                .bind(kind.as_str())
                .bind(&keyset.after)
                .bind(keyset.limit)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error)
            })
            .await?;
        Ok(keyset.page(names, String::as_str))
    }

    async fn drop_kind(&self, kind: Kind, name: &TableName) -> Result<TablePointer> {
        let key = self.scope.table_key(name)?;
        self.write(async |conn| {
            let row = sqlx::query(
                "DELETE FROM tables WHERE namespace = ? AND name = ? AND kind = ? \
                 RETURNING metadata_location, version, metadata_size, metadata_sha256",
            )
            .bind(&key)
            .bind(&name.name)
            .bind(kind.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?
            .ok_or_else(|| kind.not_found(name))?;
            pointer_from_row(&row)
        })
        .await
    }

    async fn rename_kind(&self, kind: Kind, from: &TableName, to: &TableName) -> Result<()> {
        let from_key = self.scope.table_key(from)?;
        let to_key = self.scope.table_key(to)?;
        self.write(async |conn| {
            if load_pointer(conn, kind, &from_key, &from.name)
                .await?
                .is_none()
            {
                return Err(kind.not_found(from));
            }
            if !namespace_exists(conn, &to_key).await? {
                return Err(StoreError::NamespaceNotFound(to.namespace.clone()));
            }
            // A table or a view: the name is taken either way.
            if let Some(holder) = kind_of(conn, &to_key, &to.name).await? {
                return Err(holder.already_exists(to));
            }
            sqlx::query(
                "UPDATE tables SET namespace = ?, name = ? \
                 WHERE namespace = ? AND name = ? AND kind = ?",
            )
            .bind(&to_key)
            .bind(&to.name)
            .bind(&from_key)
            .bind(&from.name)
            .bind(kind.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }
}

async fn finish<T>(
    mut tx: Transaction<'static, Sqlite>,
    body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T>,
) -> Result<T> {
    match body(&mut tx).await {
        Ok(value) => {
            tx.commit().await.map_err(db_error)?;
            Ok(value)
        }
        Err(err) => {
            // Dropping the transaction would roll back too, but only once the connection is next
            // used; rolling back now releases the write lock at once.
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rolling back a metadata store transaction failed");
            }
            Err(err)
        }
    }
}

#[async_trait]
impl MetadataStore for SqliteStore {
    fn access(&self) -> &dyn crate::AccessStore {
        self
    }

    fn scrub(&self) -> &dyn crate::ScrubStore {
        self
    }

    fn pool_status(&self) -> Option<crate::metrics::PoolStatus> {
        Some(crate::metrics::PoolStatus::of(&self.pool))
    }

    fn replicas(&self) -> &dyn crate::ReplicaStore {
        self
    }

    fn due(&self) -> &dyn crate::DueStore {
        self
    }

    fn secrets(&self) -> &dyn crate::SecretStore {
        self
    }

    fn in_warehouse(&self, name: &str) -> Result<Arc<dyn MetadataStore>> {
        Ok(Arc::new(Self {
            pool: self.pool.clone(),
            write_turn: self.write_turn.clone(),
            acquire_timeout: self.acquire_timeout,
            scope: Scope::warehouse(name)?,
            sealer: self.sealer.clone(),
        }))
    }

    async fn create_warehouse(&self, warehouse: &WarehouseRecord) -> Result<()> {
        check_warehouse_name(&warehouse.name)?;
        let properties = properties_to_json(&sealed::seal_properties(
            &self.sealer,
            &warehouse.name,
            &warehouse.properties,
        )?)?;
        self.write(async |conn| {
            sqlx::query(
                "INSERT INTO warehouses (name, storage_url, properties, created_at) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(&warehouse.name)
            .bind(&warehouse.storage_url)
            .bind(&properties)
            .bind(unix_millis(SystemTime::now()))
            .execute(&mut *conn)
            .await
            .map_err(|err| match &err {
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::WarehouseAlreadyExists(warehouse.name.clone())
                }
                _ => db_error(err),
            })?;
            Ok(())
        })
        .await
    }

    async fn load_warehouse(&self, name: &str) -> Result<WarehouseRecord> {
        check_warehouse_name(name)?;
        let row = sqlx::query(
            "SELECT name, storage_url, properties, created_at FROM warehouses WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?
        .ok_or_else(|| StoreError::WarehouseNotFound(name.to_string()))?;
        sealed::open_record(&self.sealer, warehouse_from_row(&row)?)
    }

    async fn list_warehouses(&self) -> Result<Vec<WarehouseRecord>> {
        sqlx::query(
            "SELECT name, storage_url, properties, created_at FROM warehouses ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?
        .iter()
        .map(|row| sealed::open_record(&self.sealer, warehouse_from_row(row)?))
        .collect()
    }

    async fn drop_warehouse(&self, name: &str) -> Result<()> {
        check_warehouse_name(name)?;
        self.write(async |conn| {
            let dropped = sqlx::query("DELETE FROM warehouses WHERE name = ?")
                .bind(name)
                .execute(&mut *conn)
                .await
                .map_err(|err| match &err {
                    sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                        StoreError::WarehouseNotEmpty(name.to_string())
                    }
                    _ => db_error(err),
                })?
                .rows_affected();
            if dropped == 0 {
                return Err(StoreError::WarehouseNotFound(name.to_string()));
            }
            Ok(())
        })
        .await
    }

    async fn create_namespace(&self, namespace: &[String], properties: &Properties) -> Result<()> {
        let key = self.scope.namespace_key(namespace)?;
        let parent = self.scope.parent_key(namespace);
        let properties = properties_to_json(properties)?;
        self.write(async |conn| {
            if namespace_exists(conn, &key).await? {
                return Err(StoreError::NamespaceAlreadyExists(namespace.to_vec()));
            }
            if let Some(parent) = &parent
                && !namespace_exists(conn, parent).await?
            {
                return Err(StoreError::NamespaceNotFound(
                    namespace[..namespace.len() - 1].to_vec(),
                ));
            }
            sqlx::query(
                "INSERT INTO namespaces (path, parent, name, properties, warehouse) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&key)
            .bind(&parent)
            .bind(&namespace[namespace.len() - 1])
            .bind(&properties)
            .bind(self.scope.column())
            .execute(&mut *conn)
            .await
            .map_err(|err| match (&err, self.scope.column()) {
                // The parent was checked above, so the missing row is the warehouse.
                (sqlx::Error::Database(db), Some(warehouse)) if db.is_foreign_key_violation() => {
                    StoreError::WarehouseNotFound(warehouse.to_string())
                }
                _ => db_error(err),
            })?;
            Ok(())
        })
        .await
    }

    async fn load_namespace(&self, namespace: &[String]) -> Result<Properties> {
        let key = self.scope.namespace_key(namespace)?;
        let row = sqlx::query("SELECT properties FROM namespaces WHERE path = ?")
            .bind(&key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::NamespaceNotFound(namespace.to_vec()))?;
        properties_from_json(row.get("properties"))
    }

    async fn list_namespaces(
        &self,
        parent: Option<&[String]>,
        page: &PageRequest,
    ) -> Result<Page<NamespacePath>> {
        let parent_key = parent
            .map(|parent| self.scope.namespace_key(parent))
            .transpose()?;
        let keyset = Keyset::new(page)?;
        let names: Vec<String> = self
            .read(async |conn| {
                let Some(parent_key) = &parent_key else {
                    // `IS` matches a NULL warehouse (the default one) as well as a name.
                    return sqlx::query_scalar(
                        "SELECT name FROM namespaces WHERE parent IS NULL AND warehouse IS ? \
                         AND name > ? ORDER BY name LIMIT ?",
                    )
                    .bind(self.scope.column())
                    .bind(&keyset.after)
                    .bind(keyset.limit)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_error);
                };
                if !namespace_exists(conn, parent_key).await? {
                    return Err(StoreError::NamespaceNotFound(
                        parent.unwrap_or_default().to_vec(),
                    ));
                }
                sqlx::query_scalar(
                    "SELECT name FROM namespaces WHERE parent = ? AND name > ? \
                     ORDER BY name LIMIT ?",
                )
                .bind(parent_key)
                .bind(&keyset.after)
                .bind(keyset.limit)
                .fetch_all(&mut *conn)
                .await
                .map_err(db_error)
            })
            .await?;
        let page = keyset.page(names, String::as_str);
        let prefix = parent.unwrap_or_default();
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|name| [prefix, &[name]].concat())
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    async fn update_namespace_properties(
        &self,
        namespace: &[String],
        removals: &[String],
        updates: &Properties,
    ) -> Result<PropertiesChange> {
        let key = self.scope.namespace_key(namespace)?;
        self.write(async |conn| {
            let current: String =
                sqlx::query_scalar("SELECT properties FROM namespaces WHERE path = ?")
                    .bind(&key)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| StoreError::NamespaceNotFound(namespace.to_vec()))?;
            let mut properties = properties_from_json(&current)?;
            let mut change = PropertiesChange::default();
            for removal in removals {
                if change.removed.contains(removal) || change.missing.contains(removal) {
                    continue;
                }
                match properties.remove(removal) {
                    Some(_) => change.removed.push(removal.clone()),
                    None => change.missing.push(removal.clone()),
                }
            }
            for (name, value) in updates {
                properties.insert(name.clone(), value.clone());
                change.updated.push(name.clone());
            }
            sqlx::query("UPDATE namespaces SET properties = ? WHERE path = ?")
                .bind(properties_to_json(&properties)?)
                .bind(&key)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            if change.touches_maintenance() {
                due_sql::mark_due(conn, &key, None).await?;
            }
            Ok(change)
        })
        .await
    }

    async fn drop_namespace(&self, namespace: &[String]) -> Result<()> {
        let key = self.scope.namespace_key(namespace)?;
        let not_empty = |reason: &str| StoreError::NamespaceNotEmpty {
            namespace: namespace.to_vec(),
            reason: reason.into(),
        };
        self.write(async |conn| {
            if !namespace_exists(conn, &key).await? {
                return Err(StoreError::NamespaceNotFound(namespace.to_vec()));
            }
            // Tables and views alike: both are rows of `tables`.
            let kind: Option<String> =
                sqlx::query_scalar("SELECT kind FROM tables WHERE namespace = ? LIMIT 1")
                    .bind(&key)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_error)?;
            match kind.as_deref().map(Kind::parse).transpose()? {
                Some(Kind::Table) => return Err(not_empty("it contains tables")),
                Some(Kind::View) => return Err(not_empty("it contains views")),
                None => {}
            }
            let has_children = sqlx::query("SELECT 1 FROM namespaces WHERE parent = ? LIMIT 1")
                .bind(&key)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_error)?
                .is_some();
            if has_children {
                return Err(not_empty("it contains namespaces"));
            }
            sqlx::query("DELETE FROM namespaces WHERE path = ?")
                .bind(&key)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn load_table(&self, table: &TableName) -> Result<TablePointer> {
        self.load_kind(Kind::Table, table).await
    }

    async fn list_tables(&self, namespace: &[String], page: &PageRequest) -> Result<Page<String>> {
        self.list_kind(Kind::Table, namespace, page).await
    }

    async fn swap_pointers(&self, swaps: &[PointerSwap]) -> Result<Vec<TablePointer>> {
        if swaps.is_empty() {
            return Ok(Vec::new());
        }
        let keys = swaps
            .iter()
            .map(|swap| self.scope.table_key(&swap.table))
            .collect::<Result<Vec<_>>>()?;
        for swap in swaps {
            match (&swap.expected, &swap.location) {
                (_, Some(location)) => check_location(location)?,
                (None, None) => return Err(location::missing(&swap.table)),
                (Some(_), None) => {}
            }
        }
        self.write(async |conn| {
            let mut pointers = Vec::with_capacity(swaps.len());
            for (swap, key) in swaps.iter().zip(&keys) {
                let target = Target {
                    kind: Kind::Table,
                    name: &swap.table,
                    key,
                };
                let pointer = match (&swap.expected, &swap.location) {
                    (Some(expected), location) => {
                        move_pointer(
                            conn,
                            &target,
                            expected,
                            &swap.new_location,
                            &swap.new_checksum,
                            location.as_deref(),
                        )
                        .await?
                    }
                    (None, Some(location)) => {
                        create_pointer(
                            conn,
                            &target,
                            &swap.new_location,
                            &swap.new_checksum,
                            location,
                        )
                        .await?
                    }
                    (None, None) => return Err(location::missing(&swap.table)),
                };
                let created = swap.expected.is_none();
                due_sql::record_commit(conn, key, &swap.table.name, &swap.events, created).await?;
                pointers.push(pointer);
            }
            Ok(pointers)
        })
        .await
    }

    async fn drop_table(&self, table: &TableName) -> Result<TablePointer> {
        self.drop_kind(Kind::Table, table).await
    }

    async fn rename_table(&self, from: &TableName, to: &TableName) -> Result<()> {
        self.rename_kind(Kind::Table, from, to).await
    }

    async fn create_view(
        &self,
        view: &ViewName,
        metadata_location: &str,
        checksum: &FileChecksum,
        location: &str,
    ) -> Result<TablePointer> {
        let key = self.scope.table_key(view)?;
        check_location(location)?;
        let target = Target {
            kind: Kind::View,
            name: view,
            key: &key,
        };
        self.write(async |conn| {
            create_pointer(conn, &target, metadata_location, checksum, location).await
        })
        .await
    }

    async fn load_view(&self, view: &ViewName) -> Result<TablePointer> {
        self.load_kind(Kind::View, view).await
    }

    async fn list_views(&self, namespace: &[String], page: &PageRequest) -> Result<Page<String>> {
        self.list_kind(Kind::View, namespace, page).await
    }

    async fn swap_view_pointer(
        &self,
        view: &ViewName,
        expected: &str,
        new_location: &str,
        new_checksum: &FileChecksum,
        location: Option<&str>,
    ) -> Result<TablePointer> {
        let key = self.scope.table_key(view)?;
        location.map(check_location).transpose()?;
        let target = Target {
            kind: Kind::View,
            name: view,
            key: &key,
        };
        self.write(async |conn| {
            move_pointer(
                conn,
                &target,
                expected,
                new_location,
                new_checksum,
                location,
            )
            .await
        })
        .await
    }

    async fn record_checksum(
        &self,
        kind: PointerKind,
        name: &TableName,
        metadata_location: &str,
        checksum: &FileChecksum,
    ) -> Result<bool> {
        let key = self.scope.table_key(name)?;
        self.write(async |conn| {
            integrity::record(conn, kind, &key, &name.name, metadata_location, checksum).await
        })
        .await
    }

    async fn unlocated_pointers(&self) -> Result<Vec<UnlocatedPointer>> {
        let rows = sqlx::query(
            "SELECT namespace, name, kind, metadata_location FROM tables WHERE location IS NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                location::unlocated(
                    row.get("namespace"),
                    row.get("name"),
                    row.get("kind"),
                    row.get("metadata_location"),
                )
            })
            .collect()
    }

    async fn record_location(
        &self,
        pointer: &UnlocatedPointer,
        location: &str,
    ) -> Result<Option<LocationHolder>> {
        check_location(location)?;
        let scope = match &pointer.warehouse {
            Some(warehouse) => Scope::warehouse(warehouse)?,
            None => Scope::default(),
        };
        let key = scope.table_key(&pointer.name)?;
        self.write(async |conn| {
            sqlx::query(
                "UPDATE tables SET location = ? \
                 WHERE namespace = ? AND name = ? AND kind = ? AND location IS NULL",
            )
            .bind(location)
            .bind(&key)
            .bind(&pointer.name.name)
            .bind(pointer.kind.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            overlapping(conn, &key, &pointer.name.name, location).await
        })
        .await
    }

    async fn drop_view(&self, view: &ViewName) -> Result<TablePointer> {
        self.drop_kind(Kind::View, view).await
    }

    async fn rename_view(&self, from: &ViewName, to: &ViewName) -> Result<()> {
        self.rename_kind(Kind::View, from, to).await
    }

    async fn claim_idempotency_key(
        &self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        takeover_after: Duration,
    ) -> Result<IdempotencyClaim> {
        self.write(async |conn| {
            let now = unix_millis(SystemTime::now());
            let row = sqlx::query(
                "SELECT fingerprint, state, status, body, content_type, owner, renewed_at \
                 FROM idempotency_keys WHERE key = ?",
            )
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?;
            let Some(row) = row else {
                sqlx::query(
                    "INSERT INTO idempotency_keys \
                     (key, fingerprint, state, created_at, owner, renewed_at) \
                     VALUES (?, ?, 'claimed', ?, ?, ?)",
                )
                .bind(key)
                .bind(fingerprint)
                .bind(now)
                .bind(owner)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
                return Ok(IdempotencyClaim::Claimed);
            };
            if row.get::<&str, _>("fingerprint") != fingerprint {
                return Ok(IdempotencyClaim::Mismatch);
            }
            match row.get::<&str, _>("state") {
                "claimed" => {
                    let abandoned = row.get::<&str, _>("owner") != owner
                        && row.get::<i64, _>("renewed_at")
                            <= now.saturating_sub(takeover_millis(takeover_after));
                    if !abandoned {
                        return Ok(IdempotencyClaim::InFlight);
                    }
                    // The one writer's transaction: nobody renewed it since the read.
                    sqlx::query(
                        "UPDATE idempotency_keys SET owner = ?, renewed_at = ? \
                         WHERE key = ? AND state = 'claimed'",
                    )
                    .bind(owner)
                    .bind(now)
                    .bind(key)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
                    Ok(IdempotencyClaim::Claimed)
                }
                "completed" => {
                    let status: i64 = row.get("status");
                    let status = u16::try_from(status).map_err(|_| {
                        StoreError::Internal(format!(
                            "idempotency key {key:?} has the invalid status {status}"
                        ))
                    })?;
                    Ok(IdempotencyClaim::Completed(StoredResponse {
                        status,
                        body: row.get::<Option<Vec<u8>>, _>("body").unwrap_or_default(),
                        content_type: row.get("content_type"),
                    }))
                }
                state => Err(StoreError::Internal(format!(
                    "idempotency key {key:?} is in the unknown state {state:?}"
                ))),
            }
        })
        .await
    }

    async fn renew_idempotency_claim(&self, key: &str, owner: &str) -> Result<bool> {
        self.write(async |conn| {
            let renewed = sqlx::query(
                "UPDATE idempotency_keys SET renewed_at = ? \
                 WHERE key = ? AND owner = ? AND state = 'claimed'",
            )
            .bind(unix_millis(SystemTime::now()))
            .bind(key)
            .bind(owner)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?
            .rows_affected();
            Ok(renewed == 1)
        })
        .await
    }

    async fn complete_idempotency_key(
        &self,
        key: &str,
        owner: &str,
        response: &StoredResponse,
    ) -> Result<()> {
        self.write(async |conn| {
            let completed = sqlx::query(
                "UPDATE idempotency_keys SET state = 'completed', status = ?, body = ?, \
                 content_type = ? WHERE key = ? AND owner = ? AND state = 'claimed'",
            )
            .bind(i64::from(response.status))
            .bind(&response.body)
            .bind(&response.content_type)
            .bind(key)
            .bind(owner)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?
            .rows_affected();
            if completed == 0 {
                return Err(StoreError::Internal(format!(
                    "idempotency key {key:?} is not claimed by this server (taken over, released, \
                     expired or completed)"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn release_idempotency_key(&self, key: &str, owner: &str) -> Result<()> {
        self.write(async |conn| {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE key = ? AND owner = ? AND state = 'claimed'",
            )
            .bind(key)
            .bind(owner)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn expire_idempotency_keys(&self, older_than: Duration) -> Result<u64> {
        let cutoff = unix_millis(
            SystemTime::now()
                .checked_sub(older_than)
                .unwrap_or(UNIX_EPOCH),
        );
        self.write(async |conn| {
            Ok(
                sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
                    .bind(cutoff)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?
                    .rows_affected(),
            )
        })
        .await
    }

    /// The embedded store serves one process, so this host's clock is the store's clock.
    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let ttl = lease_ttl_millis(name, holder, ttl)?;
        self.write(async |conn| {
            let now = unix_millis(SystemTime::now());
            let expires_at = now.saturating_add(ttl);
            let taken = sqlx::query(
                "UPDATE leases SET holder = ?, expires_at_ms = ? \
                 WHERE name = ? AND (holder = ? OR expires_at_ms <= ?)",
            )
            .bind(holder)
            .bind(expires_at)
            .bind(name)
            .bind(holder)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?
            .rows_affected();
            if taken == 1 {
                return Ok(true);
            }
            let created = sqlx::query(
                "INSERT INTO leases (name, holder, expires_at_ms) VALUES (?, ?, ?) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(holder)
            .bind(expires_at)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?
            .rows_affected();
            Ok(created == 1)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        check_lease_names(name, holder)?;
        self.write(async |conn| {
            sqlx::query("DELETE FROM leases WHERE name = ? AND holder = ?")
                .bind(name)
                .bind(holder)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            Ok(())
        })
        .await
    }

    async fn lease_is_held(&self, name: &str) -> Result<bool> {
        let now = unix_millis(SystemTime::now());
        let held: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM leases WHERE name = ? AND expires_at_ms > ?")
                .bind(name)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_error)?;
        Ok(held.is_some())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn record_job(&self, job: &JobRecord) -> Result<()> {
        let row = JobRow::of(job)?;
        self.write(async |conn| {
            let updated = sqlx::query(
                "UPDATE maintenance_jobs SET finished_at = ?, outcome = ?, error = ?, stats = ? \
                 WHERE id = ?",
            )
            .bind(job.finished_at_ms)
            .bind(&job.outcome)
            .bind(&job.error)
            .bind(&row.stats)
            .bind(&job.id)
            .execute(&mut *conn)
            .await
            .map_err(db_error)?
            .rows_affected();
            if updated == 0 {
                sqlx::query(
                    "INSERT INTO maintenance_jobs (id, warehouse, namespace, table_name, kind, \
                     trigger_source, started_at, finished_at, outcome, error, stats) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&job.id)
                .bind(&job.warehouse)
                .bind(&row.namespace)
                .bind(&job.table.name)
                .bind(&job.kind)
                .bind(&job.trigger)
                .bind(job.started_at_ms)
                .bind(job.finished_at_ms)
                .bind(&job.outcome)
                .bind(&job.error)
                .bind(&row.stats)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_jobs(&self, filter: &JobFilter, limit: usize) -> Result<Vec<JobRecord>> {
        let namespace = filter
            .table
            .as_ref()
            .map(|table| JobRow::namespace_json(&table.namespace))
            .transpose()?;
        let rows = sqlx::query(
            "SELECT * FROM maintenance_jobs WHERE (?1 IS NULL OR warehouse = ?1) \
             AND (?2 IS NULL OR (namespace = ?2 AND table_name = ?3)) \
             AND (?4 IS NULL OR kind = ?4) ORDER BY started_at DESC, id DESC LIMIT ?5",
        )
        .bind(&filter.warehouse)
        .bind(&namespace)
        .bind(filter.table.as_ref().map(|table| &table.name))
        .bind(&filter.kind)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                JobRow {
                    namespace: row.get("namespace"),
                    stats: row.get("stats"),
                }
                .record(JobRecord {
                    id: row.get("id"),
                    warehouse: row.get("warehouse"),
                    table: TableName::new(Vec::new(), row.get::<String, _>("table_name")),
                    kind: row.get("kind"),
                    trigger: row.get("trigger_source"),
                    started_at_ms: row.get("started_at"),
                    finished_at_ms: row.get("finished_at"),
                    outcome: row.get("outcome"),
                    error: row.get("error"),
                    stats: Properties::new(),
                })
            })
            .collect()
    }

    async fn expire_jobs(&self, older_than: Duration) -> Result<u64> {
        let cutoff = unix_millis(
            SystemTime::now()
                .checked_sub(older_than)
                .unwrap_or(UNIX_EPOCH),
        );
        self.write(async |conn| {
            Ok(
                sqlx::query("DELETE FROM maintenance_jobs WHERE started_at < ?")
                    .bind(cutoff)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?
                    .rows_affected(),
            )
        })
        .await
    }

    async fn mark_files(&self, scope: &str, paths: &[String]) -> Result<BTreeMap<String, i64>> {
        self.write(async |conn| {
            let now = unix_millis(SystemTime::now());
            let mut marks = BTreeMap::new();
            for path in paths {
                sqlx::query(
                    "INSERT INTO file_marks (scope, path, marked_at) VALUES (?, ?, ?) \
                     ON CONFLICT (scope, path) DO NOTHING",
                )
                .bind(scope)
                .bind(path)
                .bind(now)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
                let marked_at: i64 = sqlx::query_scalar(
                    "SELECT marked_at FROM file_marks WHERE scope = ? AND path = ?",
                )
                .bind(scope)
                .bind(path)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_error)?;
                marks.insert(path.clone(), marked_at);
            }
            Ok(marks)
        })
        .await
    }

    async fn marked_files(&self, scope: &str) -> Result<BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT path, marked_at FROM file_marks WHERE scope = ?")
            .bind(scope)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|row| (row.get("path"), row.get("marked_at")))
            .collect())
    }

    async fn unmark_files(&self, scope: &str, paths: &[String]) -> Result<()> {
        self.write(async |conn| {
            for path in paths {
                sqlx::query("DELETE FROM file_marks WHERE scope = ? AND path = ?")
                    .bind(scope)
                    .bind(path)
                    .execute(&mut *conn)
                    .await
                    .map_err(db_error)?;
            }
            Ok(())
        })
        .await
    }
}

/// The pointer row an operation works on.
struct Target<'a> {
    kind: Kind,
    name: &'a TableName,
    /// Its namespace's key.
    key: &'a str,
}

/// Moves one pointer from `expected` to `new_location`, inside a write transaction, and to a new
/// `location` if given (which must overlap no other row's).
async fn move_pointer(
    conn: &mut SqliteConnection,
    target: &Target<'_>,
    expected: &str,
    new_location: &str,
    new_checksum: &FileChecksum,
    location: Option<&str>,
) -> Result<TablePointer> {
    let Target { kind, name, key } = *target;
    let (size, sha256) = new_checksum.columns()?;
    let version: Option<i64> = sqlx::query_scalar(
        "UPDATE tables SET metadata_location = ?, version = version + 1, \
         metadata_size = ?, metadata_sha256 = ?, location = COALESCE(?, location) \
         WHERE namespace = ? AND name = ? AND kind = ? AND metadata_location = ? RETURNING version",
    )
    .bind(new_location)
    .bind(size)
    .bind(&sha256)
    .bind(location)
    .bind(key)
    .bind(&name.name)
    .bind(kind.as_str())
    .bind(expected)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_error)?;
    match version {
        Some(version) => {
            if let Some(location) = location {
                check_free(conn, key, &name.name, location).await?;
            }
            Ok(TablePointer {
                metadata_location: new_location.to_string(),
                version,
                checksum: Some(new_checksum.clone()),
            })
        }
        None => match load_pointer(conn, kind, key, &name.name).await? {
            None => Err(kind.not_found(name)),
            Some(_) => Err(StoreError::Conflict {
                table: name.clone(),
            }),
        },
    }
}

/// Creates a pointer, inside a write transaction: its namespace must exist, its name be free of
/// both kinds, and its `location` overlap no other row's.
async fn create_pointer(
    conn: &mut SqliteConnection,
    target: &Target<'_>,
    metadata_location: &str,
    checksum: &FileChecksum,
    location: &str,
) -> Result<TablePointer> {
    let Target { kind, name, key } = *target;
    let (size, sha256) = checksum.columns()?;
    if !namespace_exists(conn, key).await? {
        return Err(StoreError::NamespaceNotFound(name.namespace.clone()));
    }
    // The write lock is held, so this answer stands until the insert; the primary key would
    // refuse a second row anyway.
    if let Some(holder) = kind_of(conn, key, &name.name).await? {
        return Err(holder.already_exists(name));
    }
    sqlx::query(
        "INSERT INTO tables (namespace, name, metadata_location, version, kind, location, \
         metadata_size, metadata_sha256) VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
    )
    .bind(key)
    .bind(&name.name)
    .bind(metadata_location)
    .bind(kind.as_str())
    .bind(location)
    .bind(size)
    .bind(&sha256)
    .execute(&mut *conn)
    .await
    .map_err(|err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => kind.already_exists(name),
        _ => db_error(err),
    })?;
    check_free(conn, key, &name.name, location).await?;
    Ok(TablePointer {
        metadata_location: metadata_location.to_string(),
        version: 1,
        checksum: Some(checksum.clone()),
    })
}

/// Fails with [`StoreError::LocationOverlap`] if a row other than `(key, name)` has a location
/// overlapping `location`. Inside a write transaction, whose lock keeps the answer true until it
/// commits.
async fn check_free(
    conn: &mut SqliteConnection,
    key: &str,
    name: &str,
    location: &str,
) -> Result<()> {
    match overlapping(conn, key, name, location).await? {
        Some(holder) => Err(location::overlap(location, holder)),
        None => Ok(()),
    }
}

/// A row other than `(key, name)` whose location overlaps `location`, if any.
async fn overlapping(
    conn: &mut SqliteConnection,
    key: &str,
    name: &str,
    location: &str,
) -> Result<Option<LocationHolder>> {
    let query = OverlapQuery::new(location, key, name, |_| "?".to_string());
    let row = query
        .binds
        .iter()
        .fold(sqlx::query(&query.sql), |sql, value| sql.bind(value))
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_error)?;
    row.map(|row| {
        location::holder(
            row.get("namespace"),
            row.get("name"),
            row.get("kind"),
            row.get("location"),
        )
    })
    .transpose()
}

async fn namespace_exists(conn: &mut SqliteConnection, key: &str) -> Result<bool> {
    Ok(sqlx::query("SELECT 1 FROM namespaces WHERE path = ?")
        .bind(key)
        .fetch_optional(conn)
        .await
        .map_err(db_error)?
        .is_some())
}

/// The pointer of the `kind` row with this name; `None` if there is none (or it is the other kind).
async fn load_pointer(
    conn: &mut SqliteConnection,
    kind: Kind,
    namespace_key: &str,
    name: &str,
) -> Result<Option<TablePointer>> {
    sqlx::query(
        "SELECT metadata_location, version, metadata_size, metadata_sha256 FROM tables \
         WHERE namespace = ? AND name = ? AND kind = ?",
    )
    .bind(namespace_key)
    .bind(name)
    .bind(kind.as_str())
    .fetch_optional(conn)
    .await
    .map_err(db_error)?
    .map(|row| pointer_from_row(&row))
    .transpose()
}

/// Which kind of row holds this name, if any.
async fn kind_of(
    conn: &mut SqliteConnection,
    namespace_key: &str,
    name: &str,
) -> Result<Option<Kind>> {
    let kind: Option<String> =
        sqlx::query_scalar("SELECT kind FROM tables WHERE namespace = ? AND name = ?")
            .bind(namespace_key)
            .bind(name)
            .fetch_optional(conn)
            .await
            .map_err(db_error)?;
    kind.as_deref().map(Kind::parse).transpose()
}

fn pointer_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<TablePointer> {
    Ok(TablePointer {
        metadata_location: row.get("metadata_location"),
        version: row.get("version"),
        checksum: FileChecksum::from_columns(row.get("metadata_size"), row.get("metadata_sha256"))?,
    })
}

fn warehouse_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<WarehouseRecord> {
    Ok(WarehouseRecord {
        name: row.get("name"),
        storage_url: row.get("storage_url"),
        properties: properties_from_json(row.get("properties"))?,
        created_at_ms: row.get("created_at"),
    })
}

fn properties_to_json(properties: &Properties) -> Result<String> {
    serde_json::to_string(properties)
        .map_err(|err| StoreError::Internal(format!("encoding namespace properties: {err}")))
}

fn properties_from_json(json: &str) -> Result<Properties> {
    serde_json::from_str(json)
        .map_err(|err| StoreError::Internal(format!("corrupt namespace properties: {err}")))
}

fn unix_millis(time: SystemTime) -> i64 {
    let millis = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(millis).unwrap_or(i64::MAX)
}

/// Sorts a database error into what a caller can act on: waiting too long for the database is
/// [`StoreError::Unavailable`] (a retry may succeed), anything else is [`StoreError::Internal`].
fn db_error(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        sqlx::Error::Database(db) if is_busy(db.as_ref()) => {
            StoreError::Unavailable(err.to_string())
        }
        _ => StoreError::Internal(err.to_string()),
    }
}

/// Whether SQLite gave up waiting for a lock another connection holds.
fn is_busy(err: &dyn DatabaseError) -> bool {
    // Primary result codes; the extended codes SQLite reports carry them in their low byte.
    const SQLITE_BUSY: i32 = 5;
    const SQLITE_LOCKED: i32 = 6;
    err.code()
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sqlx::Connection;

    use super::*;
    use crate::PointerSwap;

    async fn fresh_file() -> (Arc<dyn MetadataStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions {
            sealer: Sealer::new(Some(SecretKey::generate())),
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(&dir.path().join("floe.db"), &options)
            .await
            .unwrap();
        (Arc::new(store), dir)
    }

    async fn fresh_in_memory() -> (Arc<dyn MetadataStore>, ()) {
        (Arc::new(SqliteStore::in_memory().await.unwrap()), ())
    }

    mod file {
        crate::metadata_store_suite!(super::fresh_file());
    }

    mod in_memory {
        crate::metadata_store_suite!(super::fresh_in_memory());
    }

    #[tokio::test]
    async fn checksums_are_backfilled_only_while_current() {
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let pool = store.pool.clone();
        crate::suite::checksums_are_backfilled_only_while_current(store, async || {
            sqlx::query("UPDATE tables SET metadata_size = NULL, metadata_sha256 = NULL")
                .execute(&pool)
                .await
                .unwrap();
        })
        .await;
    }

    fn ns(level: &str) -> Vec<String> {
        vec![level.to_string()]
    }

    #[tokio::test]
    async fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floe.db");
        let orders = TableName::new(ns("sales"), "orders");
        let response = StoredResponse {
            status: 200,
            body: b"done".to_vec(),
            content_type: None,
        };
        let properties = Properties::from([("owner".to_string(), "ana".to_string())]);

        let store = SqliteStore::open(&path).await.unwrap();
        store
            .create_namespace(&ns("sales"), &properties)
            .await
            .unwrap();
        let create = PointerSwap {
            table: orders.clone(),
            expected: None,
            new_location: "s3://b/1.json".into(),
            new_checksum: FileChecksum::of("s3://b/1.json".as_bytes()),
            location: Some("s3://b/orders".into()),
            events: Default::default(),
        };
        store.swap_pointers(&[create]).await.unwrap();
        let moved = PointerSwap {
            table: orders.clone(),
            expected: Some("s3://b/1.json".into()),
            new_location: "s3://b/2.json".into(),
            new_checksum: FileChecksum::of("s3://b/2.json".as_bytes()),
            location: None,
            events: Default::default(),
        };
        store.swap_pointers(&[moved]).await.unwrap();
        store
            .claim_idempotency_key("k", "f", "o", Duration::from_secs(60))
            .await
            .unwrap();
        store
            .complete_idempotency_key("k", "o", &response)
            .await
            .unwrap();
        store.close().await;
        drop(store);

        for _ in 0..2 {
            let store = SqliteStore::open(&path).await.unwrap();
            assert_eq!(
                store.load_namespace(&ns("sales")).await.unwrap(),
                properties
            );
            assert_eq!(
                store.load_table(&orders).await.unwrap(),
                TablePointer {
                    metadata_location: "s3://b/2.json".into(),
                    version: 2,
                    checksum: Some(FileChecksum::of("s3://b/2.json".as_bytes())),
                }
            );
            assert_eq!(
                store
                    .claim_idempotency_key("k", "f", "o", Duration::from_secs(60))
                    .await
                    .unwrap(),
                IdempotencyClaim::Completed(response.clone())
            );
            let applied: Vec<i64> =
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                    .fetch_all(&store.pool)
                    .await
                    .unwrap();
            let known: Vec<i64> = MIGRATOR.iter().map(|migration| migration.version).collect();
            assert_eq!(applied, known, "each migration applied once");
            // Dropped without `close` this time: opening must not rely on a clean shutdown.
        }
    }

    /// Rows from before migration 0007 have no location: they are listed, take part in no check
    /// until recorded, and are recorded once (an overlap found then is reported, not refused).
    #[tokio::test]
    async fn rows_without_a_location_are_listed_and_recorded_once() {
        let store = SqliteStore::in_memory().await.unwrap();
        store
            .create_namespace(&ns("sales"), &Properties::new())
            .await
            .unwrap();
        for (name, kind) in [("old", "table"), ("old_view", "view")] {
            sqlx::query(
                "INSERT INTO tables (namespace, name, metadata_location, version, kind) \
                 VALUES ('sales', ?, ?, 1, ?)",
            )
            .bind(name)
            .bind(format!("s3://b/{name}/metadata/1.json"))
            .bind(kind)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        let create = |name: &str, location: &str| PointerSwap {
            table: TableName::new(ns("sales"), name),
            expected: None,
            new_location: format!("{location}/metadata/0.json"),
            new_checksum: FileChecksum::of(format!("{location}/metadata/0.json").as_bytes()),
            location: Some(location.to_string()),
            events: Default::default(),
        };
        store
            .swap_pointers(&[create("late", "s3://b/old/late")])
            .await
            .unwrap();

        let mut unlocated = store.unlocated_pointers().await.unwrap();
        unlocated.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            unlocated,
            [
                UnlocatedPointer {
                    warehouse: None,
                    kind: crate::PointerKind::Table,
                    name: TableName::new(ns("sales"), "old"),
                    metadata_location: "s3://b/old/metadata/1.json".into(),
                },
                UnlocatedPointer {
                    warehouse: None,
                    kind: crate::PointerKind::View,
                    name: TableName::new(ns("sales"), "old_view"),
                    metadata_location: "s3://b/old_view/metadata/1.json".into(),
                },
            ]
        );
        let reported = store
            .record_location(&unlocated[0], "s3://b/old")
            .await
            .unwrap()
            .expect("the overlap with the later table is reported");
        assert_eq!(reported.name, TableName::new(ns("sales"), "late"));
        assert_eq!(
            store
                .record_location(&unlocated[1], "s3://b/old_view")
                .await
                .unwrap(),
            None
        );
        assert!(store.unlocated_pointers().await.unwrap().is_empty());

        let err = store
            .swap_pointers(&[create("new", "s3://b/old_view/new")])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::LocationOverlap { holder, .. }
                if holder.name.name == "old_view"),
            "{err:?}"
        );
        // Recorded once: a second record does not move it.
        store
            .record_location(&unlocated[0], "s3://b/elsewhere")
            .await
            .unwrap();
        store
            .swap_pointers(&[create("new", "s3://b/elsewhere")])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn connections_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("floe.db"))
            .await
            .unwrap();
        // Every pooled connection, not just the first, must carry the settings.
        let mut connections = Vec::new();
        for _ in 0..3 {
            connections.push(store.pool.acquire().await.unwrap());
        }
        for conn in &mut connections {
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(journal, "wal");
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(synchronous, 2, "FULL");
            let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(foreign_keys, 1);
            let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(busy_timeout, 10_000);
        }
    }

    /// Another process holding the write lock past the busy timeout makes writes unavailable, not
    /// failed; reads go on meanwhile, and writes resume once the lock is gone.
    #[tokio::test]
    async fn a_locked_file_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("floe.db");
        let options = SqliteOptions {
            busy_timeout: Duration::from_millis(200),
            ..SqliteOptions::default()
        };
        let store = SqliteStore::open_with(&path, &options).await.unwrap();
        store
            .create_namespace(&ns("sales"), &Properties::new())
            .await
            .unwrap();

        let mut other =
            SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
                .await
                .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();

        let err = store
            .create_namespace(&ns("hr"), &Properties::new())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(store.load_namespace(&ns("sales")).await.is_ok());

        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        store
            .create_namespace(&ns("hr"), &Properties::new())
            .await
            .unwrap();
    }
}
