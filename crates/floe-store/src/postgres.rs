//! The shared metadata store: a PostgreSQL database that several Floe replicas use at once.
//!
//! The schema is the SQLite one (`migrations-postgres/`, applied by [`PostgresStore::connect`]),
//! with names compared in code point order (`COLLATE "C"`) whatever collation the database has, so
//! listings and page tokens agree across backends. The SQL sticks to what CockroachDB and YugabyteDB
//! accept as well: no PL/pgSQL, no advisory locks of our own, no `ON CONFLICT ... DO UPDATE`.
//!
//! # The compare-and-swap, and why READ COMMITTED is enough
//!
//! [`MetadataStore::swap_pointers`] runs every swap of a batch in one transaction at PostgreSQL's
//! default isolation, READ COMMITTED. A swap is
//! `UPDATE tables SET metadata_location = new, version = version + 1 WHERE namespace = .. AND
//! name = .. AND metadata_location = expected RETURNING version`. Two commits that read the same
//! pointer cannot both succeed: the first to reach the row locks it until its transaction ends; the
//! second waits for that lock, and once the first commits, PostgreSQL re-checks the second's `WHERE`
//! against the row's newest version (the EvalPlanQual re-check) — which now holds the first's
//! location, so the second updates nothing. Had the first rolled back, the second goes on with the
//! unchanged row. Either way no update is lost, and the batch's row locks, held until commit, keep
//! other swaps off its rows until all of its pointers move together. SERIALIZABLE would add nothing
//! to this single-row check but serialization failures to retry.
//!
//! An update of no row rolls the whole batch back; a fresh statement then tells a missing table
//! ([`StoreError::TableNotFound`]) from a moved pointer ([`StoreError::Conflict`]). A swap from
//! nothing is an `INSERT`: a unique violation is [`StoreError::TableAlreadyExists`], a foreign key
//! violation [`StoreError::NamespaceNotFound`]. Swaps take their rows in one global order (namespace,
//! then name), not the caller's, so that two batches never wait on each other in a cycle; when
//! several swaps of a batch would fail, the error names the first in that order.
//!
//! Views' pointers live in the same rows with `kind = 'view'` (see *Views* in the crate docs), and
//! [`MetadataStore::swap_view_pointer`] is the same `UPDATE` for one row of that kind. Creates and
//! renames look up the name first to say which kind holds it; a row committed between that look-up
//! and the `INSERT` (or `UPDATE`) is still refused by the primary key, reported as the caller's kind.
//!
//! # Locations
//!
//! A transaction that sets a table's or view's location (see *Locations* in the crate docs) first
//! locks the one row of `location_guard` (`SELECT ... FOR UPDATE`), then writes its pointer row and
//! looks for overlapping locations. The lock makes such transactions take turns: the second of two
//! racing creates at one location waits for the first to commit, and its look-up, a new statement
//! with a new READ COMMITTED snapshot, then sees the first's row. Transactions that keep their
//! tables' locations, ordinary commits, never take the lock, so they are not serialized. The lock is
//! taken before any pointer row, so it adds no cycle to the row locks' global order. A row lock,
//! not an advisory lock, so that the SQL stays what CockroachDB and YugabyteDB accept.
//!
//! Databases that do not run READ COMMITTED this way (CockroachDB runs SERIALIZABLE by default) fail
//! a transaction that lost a race with a serialization failure (`40001`) instead; deadlocks
//! (`40P01`) look the same. Such transactions are retried here a few times with growing pauses, then
//! reported [`StoreError::Unavailable`].
//!
//! # Errors
//!
//! A database that cannot be reached, a pool with no free connection within its acquire timeout, a
//! statement that ran past `statement_timeout`, a server shutting down or out of connections: all
//! [`StoreError::Unavailable`], which the server turns into a retryable 503. A connection lost during
//! `COMMIT` is Unavailable too, although the commit may have been applied: callers re-read before
//! they conclude anything. Everything else is [`StoreError::Internal`].
//!
//! # Clocks
//!
//! Lease expiry and idempotency key ages use the database server's clock (`statement_timestamp()`),
//! one clock for every replica (see *Leases* in the crate docs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::Row;
use sqlx::error::DatabaseError;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};

use crate::due_sql;
use crate::input::{
    JobRow, Keyset, Scope, check_lease_names, check_warehouse_name, lease_ttl_millis,
    takeover_millis,
};
use crate::integrity;
use crate::kind::Kind;
use crate::location::{self, OverlapQuery, check_location};
use crate::sealed::{self, Sealer};
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
mod tls;

pub use backup::{Export, ExportedRow, latest_schema_version};

/// The database server's clock in Unix milliseconds, fixed for the duration of one statement.
const NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)";

/// How to reach and use the database.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Pooled connections per replica. Every replica holds its own pool: mind the server's
    /// `max_connections` across all of them.
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection (including opening one) before it is
    /// [`StoreError::Unavailable`].
    pub acquire_timeout: Duration,
    /// The server cancels statements running longer (`statement_timeout`); `None` keeps the
    /// server's setting.
    pub statement_timeout: Option<Duration>,
    /// Attempts a transaction gets when it fails with a serialization failure or a deadlock.
    pub max_attempts: u32,
    /// Whether migrations take sqlx's advisory lock so that replicas starting together apply them
    /// once. CockroachDB has no advisory locks: turn this off there and start one replica first.
    pub lock_migrations: bool,
    /// Seals the secrets the store keeps (see [`crate::sealed`]); without a key, none can be stored.
    pub sealer: Sealer,
    /// Whether opening with a key brings every stored secret under it ([`crate::secrets`]).
    /// `floe secrets reseal` turns this off to run the pass itself and report it.
    pub seal_on_open: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Some(Duration::from_secs(30)),
            max_attempts: 5,
            lock_migrations: true,
            sealer: Sealer::default(),
            seal_on_open: true,
        }
    }
}

/// A [`MetadataStore`] in a PostgreSQL database (see the module docs).
pub struct PostgresStore {
    pool: PgPool,
    max_attempts: u32,
    scope: Scope,
    pub(crate) sealer: Sealer,
}

/// How an operation talks to the database.
#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Each statement commits on its own.
    Autocommit,
    /// One READ COMMITTED transaction.
    Write,
    /// One read-only transaction over one snapshot.
    Snapshot,
}

/// Why an attempt failed: an answer for the caller, or a database error that may be worth a retry.
pub(crate) enum Failure {
    Store(StoreError),
    Db(sqlx::Error),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        Self::Db(err)
    }
}

type Attempt<T> = std::result::Result<T, Failure>;

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/database`; a password may
    /// also come from `PGPASSWORD`; TLS settings as `tls` describes) and brings its schema up to
    /// date.
    pub async fn connect(url: &str, options: &PostgresOptions) -> Result<Self> {
        let connect: PgConnectOptions = url
            .parse()
            .map_err(|err| StoreError::InvalidInput(format!("invalid PostgreSQL URL: {err}")))?;
        let tls = tls::TlsSettings::from_url(url, &connect)?;
        tls.log(&connect);
        let mut connect = tls.apply(connect).application_name("floe");
        if let Some(timeout) = options.statement_timeout {
            connect = connect.options([(
                "statement_timeout",
                format!("{}ms", timeout.as_millis().max(1)),
            )]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(|err| match tls.explain(&err, &connect) {
                Some(explained) => StoreError::Unavailable(explained),
                None => db_error(err),
            })?;
        let mut migrator = sqlx::migrate!("./migrations-postgres");
        migrator.set_locking(options.lock_migrations);
        migrator.run(&pool).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::Execute(err) => db_error(err),
            other => StoreError::Internal(format!("migrating the metadata store: {other}")),
        })?;
        let store = Self {
            pool,
            max_attempts: options.max_attempts.max(1),
            scope: Scope::default(),
            sealer: options.sealer.clone(),
        };
        if options.seal_on_open && store.sealer.has_key() {
            crate::SecretStore::reseal_secrets(&store).await?;
        }
        Ok(store)
    }

    /// Waits for open connections to finish and closes them. Dropping the store closes them too,
    /// but without waiting.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `body` as `mode` says, again after a serialization failure or a deadlock (up to
    /// `max_attempts` in all), committing a transaction when `body` succeeds.
    ///
    /// `body` is cloned for each attempt rather than called by reference: the futures of async
    /// closures called by reference trip the compiler's `Send` check (rust-lang/rust#110338). The
    /// closures here capture only references, so the clones are copies.
    async fn run<T>(
        &self,
        mode: Mode,
        body: impl AsyncFnOnce(&mut PgConnection) -> Attempt<T> + Clone,
    ) -> Result<T> {
        let mut attempt = 1;
        loop {
            match self.attempt(mode, body.clone()).await {
                Ok(value) => return Ok(value),
                Err(Failure::Store(err)) => return Err(err),
                Err(Failure::Db(err)) if is_retryable(&err) && attempt < self.max_attempts => {
                    tracing::debug!(attempt, error = %err, "retrying a metadata store transaction");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(Failure::Db(err)) => return Err(db_error(err)),
            }
        }
    }

    async fn attempt<T>(
        &self,
        mode: Mode,
        body: impl AsyncFnOnce(&mut PgConnection) -> Attempt<T>,
    ) -> Attempt<T> {
        let since = std::time::Instant::now();
        let mut tx = match mode {
            Mode::Autocommit => {
                let mut conn = self.pool.acquire().await?;
                crate::metrics::acquired(since);
                return body(&mut conn).await;
            }
            Mode::Write => self.pool.begin().await?,
            Mode::Snapshot => {
                self.pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?
            }
        };
        crate::metrics::acquired(since);
        match body(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(err) => {
                // Dropping the transaction would roll back too, but only once the connection is
                // next used; rolling back now releases its row locks at once.
                if let Err(rollback) = tx.rollback().await {
                    tracing::warn!(error = %rollback, "rolling back a metadata store transaction failed");
                }
                Err(err)
            }
        }
    }

    // Tables and views: one implementation per operation, for either kind of pointer row.

    async fn load_kind(&self, kind: Kind, name: &TableName) -> Result<TablePointer> {
        let key = self.scope.table_key(name)?;
        self.run(Mode::Autocommit, async |conn| {
            Ok(load_pointer(conn, kind, &key, &name.name)
                .await?
                .ok_or_else(|| kind.not_found(name))?)
        })
        .await
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
            .run(Mode::Snapshot, async |conn| {
                if !namespace_exists(conn, &key).await? {
                    return Err(StoreError::NamespaceNotFound(namespace.to_vec()).into());
                }
                Ok(sqlx::query_scalar(
                    "SELECT name FROM tables WHERE namespace = $1 AND kind = $2 AND name > $3 \
                     ORDER BY name LIMIT $4",
                )
                .bind(&key)
                .bind(kind.as_str())
                .bind(&keyset.after)
                .bind(keyset.limit)
                .fetch_all(&mut *conn)
                .await?)
            })
            .await?;
        Ok(keyset.page(names, String::as_str))
    }

    async fn drop_kind(&self, kind: Kind, name: &TableName) -> Result<TablePointer> {
        let key = self.scope.table_key(name)?;
        self.run(Mode::Autocommit, async |conn| {
            let row = sqlx::query(
                "DELETE FROM tables WHERE namespace = $1 AND name = $2 AND kind = $3 \
                 RETURNING metadata_location, version, metadata_size, metadata_sha256",
            )
            .bind(&key)
            .bind(&name.name)
            .bind(kind.as_str())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| kind.not_found(name))?;
            Ok(pointer_from_row(&row)?)
        })
        .await
    }

    async fn rename_kind(&self, kind: Kind, from: &TableName, to: &TableName) -> Result<()> {
        let from_key = self.scope.table_key(from)?;
        let to_key = self.scope.table_key(to)?;
        self.run(Mode::Write, async |conn| {
            if load_pointer(conn, kind, &from_key, &from.name)
                .await?
                .is_none()
            {
                return Err(kind.not_found(from).into());
            }
            if !namespace_exists(conn, &to_key).await? {
                return Err(StoreError::NamespaceNotFound(to.namespace.clone()).into());
            }
            // A table or a view: the name is taken either way.
            if let Some(holder) = kind_of(conn, &to_key, &to.name).await? {
                return Err(holder.already_exists(to).into());
            }
            // The checks above read committed rows; what changes between them and here shows up
            // as a constraint violation or no row moved.
            let moved = sqlx::query(
                "UPDATE tables SET namespace = $1, name = $2 \
                 WHERE namespace = $3 AND name = $4 AND kind = $5",
            )
            .bind(&to_key)
            .bind(&to.name)
            .bind(&from_key)
            .bind(&from.name)
            .bind(kind.as_str())
            .execute(&mut *conn)
            .await;
            match moved {
                Ok(done) if done.rows_affected() == 1 => Ok(()),
                Ok(_) => Err(kind.not_found(from).into()),
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    Err(kind.already_exists(to).into())
                }
                Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                    Err(StoreError::NamespaceNotFound(to.namespace.clone()).into())
                }
                Err(err) => Err(err.into()),
            }
        })
        .await
    }
}

#[async_trait]
impl MetadataStore for PostgresStore {
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
            max_attempts: self.max_attempts,
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
        self.run(Mode::Autocommit, async |conn| {
            let inserted = sqlx::query(&format!(
                "INSERT INTO warehouses (name, storage_url, properties, created_at) \
                 VALUES ($1, $2, $3, {NOW_MS})"
            ))
            .bind(&warehouse.name)
            .bind(&warehouse.storage_url)
            .bind(&properties)
            .execute(&mut *conn)
            .await;
            match inserted {
                Ok(_) => Ok(()),
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    Err(StoreError::WarehouseAlreadyExists(warehouse.name.clone()).into())
                }
                Err(err) => Err(err.into()),
            }
        })
        .await
    }

    async fn load_warehouse(&self, name: &str) -> Result<WarehouseRecord> {
        check_warehouse_name(name)?;
        let row = self
            .run(Mode::Autocommit, async |conn| {
                Ok(sqlx::query(
                    "SELECT name, storage_url, properties, created_at FROM warehouses \
                     WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| StoreError::WarehouseNotFound(name.to_string()))?)
            })
            .await?;
        sealed::open_record(&self.sealer, warehouse_from_row(&row)?)
    }

    async fn list_warehouses(&self) -> Result<Vec<WarehouseRecord>> {
        let rows = self
            .run(Mode::Autocommit, async |conn| {
                Ok(sqlx::query(
                    "SELECT name, storage_url, properties, created_at FROM warehouses \
                     ORDER BY name",
                )
                .fetch_all(&mut *conn)
                .await?)
            })
            .await?;
        rows.iter()
            .map(|row| sealed::open_record(&self.sealer, warehouse_from_row(row)?))
            .collect()
    }

    async fn drop_warehouse(&self, name: &str) -> Result<()> {
        check_warehouse_name(name)?;
        self.run(Mode::Autocommit, async |conn| {
            let dropped = sqlx::query("DELETE FROM warehouses WHERE name = $1")
                .bind(name)
                .execute(&mut *conn)
                .await;
            match dropped {
                Ok(done) if done.rows_affected() == 0 => {
                    Err(StoreError::WarehouseNotFound(name.to_string()).into())
                }
                Ok(_) => Ok(()),
                Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                    Err(StoreError::WarehouseNotEmpty(name.to_string()).into())
                }
                Err(err) => Err(err.into()),
            }
        })
        .await
    }

    async fn create_namespace(&self, namespace: &[String], properties: &Properties) -> Result<()> {
        let key = self.scope.namespace_key(namespace)?;
        let parent = self.scope.parent_key(namespace);
        let properties = properties_to_json(properties)?;
        self.run(Mode::Autocommit, async |conn| {
            let inserted = sqlx::query(
                "INSERT INTO namespaces (path, parent, name, properties, warehouse) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&key)
            .bind(&parent)
            .bind(&namespace[namespace.len() - 1])
            .bind(&properties)
            .bind(self.scope.column())
            .execute(&mut *conn)
            .await;
            match inserted {
                Ok(_) => Ok(()),
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    Err(StoreError::NamespaceAlreadyExists(namespace.to_vec()).into())
                }
                Err(sqlx::Error::Database(db))
                    if db.is_foreign_key_violation()
                        && db
                            .constraint()
                            .is_some_and(|name| name.contains("warehouse")) =>
                {
                    Err(StoreError::WarehouseNotFound(
                        self.scope.column().unwrap_or_default().to_string(),
                    )
                    .into())
                }
                Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => Err(
                    StoreError::NamespaceNotFound(namespace[..namespace.len() - 1].to_vec()).into(),
                ),
                Err(err) => Err(err.into()),
            }
        })
        .await
    }

    async fn load_namespace(&self, namespace: &[String]) -> Result<Properties> {
        let key = self.scope.namespace_key(namespace)?;
        let json: String = self
            .run(Mode::Autocommit, async |conn| {
                let json = sqlx::query_scalar("SELECT properties FROM namespaces WHERE path = $1")
                    .bind(&key)
                    .fetch_optional(&mut *conn)
                    .await?;
                Ok(json.ok_or_else(|| StoreError::NamespaceNotFound(namespace.to_vec()))?)
            })
            .await?;
        properties_from_json(&json)
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
            .run(Mode::Snapshot, async |conn| {
                let Some(parent_key) = &parent_key else {
                    let query = match self.scope.column() {
                        None => sqlx::query_scalar(
                            "SELECT name FROM namespaces WHERE parent IS NULL \
                             AND warehouse IS NULL AND name > $1 ORDER BY name LIMIT $2",
                        ),
                        Some(warehouse) => sqlx::query_scalar(
                            "SELECT name FROM namespaces WHERE parent IS NULL \
                             AND warehouse = $1 AND name > $2 ORDER BY name LIMIT $3",
                        )
                        .bind(warehouse),
                    };
                    return Ok(query
                        .bind(&keyset.after)
                        .bind(keyset.limit)
                        .fetch_all(&mut *conn)
                        .await?);
                };
                if !namespace_exists(conn, parent_key).await? {
                    return Err(
                        StoreError::NamespaceNotFound(parent.unwrap_or_default().to_vec()).into(),
                    );
                }
                Ok(sqlx::query_scalar(
                    "SELECT name FROM namespaces WHERE parent = $1 AND name > $2 \
                     ORDER BY name LIMIT $3",
                )
                .bind(parent_key)
                .bind(&keyset.after)
                .bind(keyset.limit)
                .fetch_all(&mut *conn)
                .await?)
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
        self.run(Mode::Write, async |conn| {
            // The row lock keeps concurrent updates from losing each other's changes.
            let current: String =
                sqlx::query_scalar("SELECT properties FROM namespaces WHERE path = $1 FOR UPDATE")
                    .bind(&key)
                    .fetch_optional(&mut *conn)
                    .await?
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
            sqlx::query("UPDATE namespaces SET properties = $1 WHERE path = $2")
                .bind(properties_to_json(&properties)?)
                .bind(&key)
                .execute(&mut *conn)
                .await?;
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
        self.run(Mode::Write, async |conn| {
            // Locked first: a table or child namespace created meanwhile waits on this lock for its
            // foreign key check, and then finds the namespace gone.
            let locked = sqlx::query("SELECT 1 FROM namespaces WHERE path = $1 FOR UPDATE")
                .bind(&key)
                .fetch_optional(&mut *conn)
                .await?;
            if locked.is_none() {
                return Err(StoreError::NamespaceNotFound(namespace.to_vec()).into());
            }
            // Tables and views alike: both are rows of `tables`.
            let kind: Option<String> =
                sqlx::query_scalar("SELECT kind FROM tables WHERE namespace = $1 LIMIT 1")
                    .bind(&key)
                    .fetch_optional(&mut *conn)
                    .await?;
            match kind.as_deref().map(Kind::parse).transpose()? {
                Some(Kind::Table) => return Err(not_empty("it contains tables").into()),
                Some(Kind::View) => return Err(not_empty("it contains views").into()),
                None => {}
            }
            let has_children = sqlx::query("SELECT 1 FROM namespaces WHERE parent = $1 LIMIT 1")
                .bind(&key)
                .fetch_optional(&mut *conn)
                .await?
                .is_some();
            if has_children {
                return Err(not_empty("it contains namespaces").into());
            }
            let deleted = sqlx::query("DELETE FROM namespaces WHERE path = $1")
                .bind(&key)
                .execute(&mut *conn)
                .await;
            match deleted {
                Ok(_) => Ok(()),
                // A child created in between: only where `FOR UPDATE` does not hold off foreign
                // key checks as PostgreSQL's does.
                Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                    Err(not_empty("it contains tables or namespaces").into())
                }
                Err(err) => Err(err.into()),
            }
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
        let sets_location = swaps.iter().any(|swap| swap.location.is_some());
        // One global order of row locks across all batches (see the module docs). The sort is
        // stable: two swaps of one table keep the caller's order.
        let mut order: Vec<usize> = (0..swaps.len()).collect();
        order.sort_by(|&a, &b| {
            (&keys[a], &swaps[a].table.name).cmp(&(&keys[b], &swaps[b].table.name))
        });
        self.run(Mode::Write, async |conn| {
            if sets_location {
                lock_locations(conn).await?;
            }
            let mut pointers = vec![None; swaps.len()];
            for &index in &order {
                let (swap, key) = (&swaps[index], &keys[index]);
                let target = Target {
                    kind: Kind::Table,
                    name: &swap.table,
                    key,
                };
                pointers[index] = Some(match (&swap.expected, &swap.location) {
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
                    (None, None) => return Err(location::missing(&swap.table).into()),
                });
                let created = swap.expected.is_none();
                due_sql::record_commit(conn, key, &swap.table.name, &swap.events, created).await?;
            }
            Ok(pointers.into_iter().flatten().collect())
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
        self.run(Mode::Write, async |conn| {
            lock_locations(conn).await?;
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
        self.run(Mode::Write, async |conn| {
            if location.is_some() {
                lock_locations(conn).await?;
            }
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
        self.run(Mode::Autocommit, async |conn| {
            integrity::record(conn, kind, &key, &name.name, metadata_location, checksum).await
        })
        .await
    }

    async fn unlocated_pointers(&self) -> Result<Vec<UnlocatedPointer>> {
        let rows = self
            .run(Mode::Autocommit, async |conn| {
                Ok(sqlx::query(
                    "SELECT namespace, name, kind, metadata_location FROM tables \
                     WHERE location IS NULL",
                )
                .fetch_all(&mut *conn)
                .await?)
            })
            .await?;
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
        self.run(Mode::Write, async |conn| {
            // Taken so that a location being created meanwhile sees this one, or this one it.
            lock_locations(conn).await?;
            sqlx::query(
                "UPDATE tables SET location = $1 \
                 WHERE namespace = $2 AND name = $3 AND kind = $4 AND location IS NULL",
            )
            .bind(location)
            .bind(&key)
            .bind(&pointer.name.name)
            .bind(pointer.kind.as_str())
            .execute(&mut *conn)
            .await?;
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
        let takeover = takeover_millis(takeover_after);
        self.run(Mode::Autocommit, async |conn| {
            // A key released between the insert and the read is tried again.
            for _ in 0..3 {
                let inserted = sqlx::query(&format!(
                    "INSERT INTO idempotency_keys \
                     (key, fingerprint, state, created_at, owner, renewed_at) \
                     VALUES ($1, $2, 'claimed', {NOW_MS}, $3, {NOW_MS}) \
                     ON CONFLICT (key) DO NOTHING"
                ))
                .bind(key)
                .bind(fingerprint)
                .bind(owner)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(IdempotencyClaim::Claimed);
                }
                // One statement: of two replicas taking over one abandoned claim, the second
                // re-checks the row after the first's update and finds it renewed.
                let taken_over = sqlx::query(&format!(
                    "UPDATE idempotency_keys SET owner = $1, renewed_at = {NOW_MS} \
                     WHERE key = $2 AND fingerprint = $3 AND state = 'claimed' \
                     AND owner <> $1 AND renewed_at <= {NOW_MS} - $4"
                ))
                .bind(owner)
                .bind(key)
                .bind(fingerprint)
                .bind(takeover)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                if taken_over == 1 {
                    return Ok(IdempotencyClaim::Claimed);
                }
                let row = sqlx::query(
                    "SELECT fingerprint, state, status, body, content_type \
                     FROM idempotency_keys WHERE key = $1",
                )
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(row) = row {
                    return Ok(claim_from_row(key, fingerprint, &row)?);
                }
            }
            Err(StoreError::Unavailable(format!(
                "idempotency key {key:?} keeps being claimed and released"
            ))
            .into())
        })
        .await
    }

    async fn renew_idempotency_claim(&self, key: &str, owner: &str) -> Result<bool> {
        self.run(Mode::Autocommit, async |conn| {
            let renewed = sqlx::query(&format!(
                "UPDATE idempotency_keys SET renewed_at = {NOW_MS} \
                 WHERE key = $1 AND owner = $2 AND state = 'claimed'"
            ))
            .bind(key)
            .bind(owner)
            .execute(&mut *conn)
            .await?
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
        self.run(Mode::Autocommit, async |conn| {
            let completed = sqlx::query(
                "UPDATE idempotency_keys SET state = 'completed', status = $1, body = $2, \
                 content_type = $3 WHERE key = $4 AND owner = $5 AND state = 'claimed'",
            )
            .bind(i32::from(response.status))
            .bind(&response.body)
            .bind(&response.content_type)
            .bind(key)
            .bind(owner)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if completed == 0 {
                return Err(StoreError::Internal(format!(
                    "idempotency key {key:?} is not claimed by this server (taken over, released, \
                     expired or completed)"
                ))
                .into());
            }
            Ok(())
        })
        .await
    }

    async fn release_idempotency_key(&self, key: &str, owner: &str) -> Result<()> {
        self.run(Mode::Autocommit, async |conn| {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE key = $1 AND owner = $2 AND state = 'claimed'",
            )
            .bind(key)
            .bind(owner)
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }

    async fn expire_idempotency_keys(&self, older_than: Duration) -> Result<u64> {
        // Capped far beyond any retention so that the subtraction cannot overflow.
        let older_than = i64::try_from(older_than.as_millis())
            .unwrap_or(i64::MAX)
            .min(1 << 50);
        self.run(Mode::Autocommit, async |conn| {
            Ok(sqlx::query(&format!(
                "DELETE FROM idempotency_keys WHERE created_at < {NOW_MS} - $1"
            ))
            .bind(older_than)
            .execute(&mut *conn)
            .await?
            .rows_affected())
        })
        .await
    }

    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let ttl = lease_ttl_millis(name, holder, ttl)?;
        // Two statements, each atomic on its own: the update takes over a lease that is ours or
        // expired (a concurrent taker waits for its row lock, then re-checks the condition against
        // the winner's row and updates nothing); the insert creates a missing one, and a
        // concurrent insert of the same name makes it do nothing.
        self.run(Mode::Autocommit, async |conn| {
            let taken = sqlx::query(&format!(
                "UPDATE leases SET holder = $1, expires_at_ms = {NOW_MS} + $2 \
                 WHERE name = $3 AND (holder = $1 OR expires_at_ms <= {NOW_MS})"
            ))
            .bind(holder)
            .bind(ttl)
            .bind(name)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if taken == 1 {
                return Ok(true);
            }
            let created = sqlx::query(&format!(
                "INSERT INTO leases (name, holder, expires_at_ms) VALUES ($1, $2, {NOW_MS} + $3) \
                 ON CONFLICT (name) DO NOTHING"
            ))
            .bind(name)
            .bind(holder)
            .bind(ttl)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(created == 1)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        check_lease_names(name, holder)?;
        self.run(Mode::Autocommit, async |conn| {
            sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn lease_is_held(&self, name: &str) -> Result<bool> {
        self.run(Mode::Autocommit, async |conn| {
            let held: Option<i32> = sqlx::query_scalar(&format!(
                "SELECT 1 FROM leases WHERE name = $1 AND expires_at_ms > {NOW_MS}"
            ))
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(held.is_some())
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.run(Mode::Autocommit, async |conn| {
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            Ok(())
        })
        .await
    }

    async fn record_job(&self, job: &JobRecord) -> Result<()> {
        let row = JobRow::of(job)?;
        self.run(Mode::Write, async |conn| {
            let updated = sqlx::query(
                "UPDATE maintenance_jobs SET finished_at = $1, outcome = $2, error = $3, \
                 stats = $4 WHERE id = $5",
            )
            .bind(job.finished_at_ms)
            .bind(&job.outcome)
            .bind(&job.error)
            .bind(&row.stats)
            .bind(&job.id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if updated == 0 {
                sqlx::query(
                    "INSERT INTO maintenance_jobs (id, warehouse, namespace, table_name, kind, \
                     trigger_source, started_at, finished_at, outcome, error, stats) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
                .await?;
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
        let rows = self
            .run(Mode::Autocommit, async |conn| {
                Ok(sqlx::query(
                    "SELECT * FROM maintenance_jobs \
                     WHERE ($1::TEXT IS NULL OR warehouse = $1) \
                     AND ($2::TEXT IS NULL OR (namespace = $2 AND table_name = $3)) \
                     AND ($4::TEXT IS NULL OR kind = $4) \
                     ORDER BY started_at DESC, id DESC LIMIT $5",
                )
                .bind(&filter.warehouse)
                .bind(&namespace)
                .bind(filter.table.as_ref().map(|table| &table.name))
                .bind(&filter.kind)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&mut *conn)
                .await?)
            })
            .await?;
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
        let older_than_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        self.run(Mode::Autocommit, async |conn| {
            Ok(sqlx::query(&format!(
                "DELETE FROM maintenance_jobs WHERE started_at < {NOW_MS} - $1"
            ))
            .bind(older_than_ms)
            .execute(&mut *conn)
            .await?
            .rows_affected())
        })
        .await
    }

    async fn mark_files(&self, scope: &str, paths: &[String]) -> Result<BTreeMap<String, i64>> {
        let rows = self
            .run(Mode::Write, async |conn| {
                for path in paths {
                    sqlx::query(&format!(
                        "INSERT INTO file_marks (scope, path, marked_at) VALUES ($1, $2, {NOW_MS}) \
                         ON CONFLICT (scope, path) DO NOTHING"
                    ))
                    .bind(scope)
                    .bind(path)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(sqlx::query(
                    "SELECT path, marked_at FROM file_marks WHERE scope = $1 AND path = ANY($2)",
                )
                .bind(scope)
                .bind(paths)
                .fetch_all(&mut *conn)
                .await?)
            })
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get("path"), row.get("marked_at")))
            .collect())
    }

    async fn marked_files(&self, scope: &str) -> Result<BTreeMap<String, i64>> {
        let rows = self
            .run(Mode::Autocommit, async |conn| {
                Ok(
                    sqlx::query("SELECT path, marked_at FROM file_marks WHERE scope = $1")
                        .bind(scope)
                        .fetch_all(&mut *conn)
                        .await?,
                )
            })
            .await?;
        Ok(rows
            .iter()
            .map(|row| (row.get("path"), row.get("marked_at")))
            .collect())
    }

    async fn unmark_files(&self, scope: &str, paths: &[String]) -> Result<()> {
        self.run(Mode::Autocommit, async |conn| {
            sqlx::query("DELETE FROM file_marks WHERE scope = $1 AND path = ANY($2)")
                .bind(scope)
                .bind(paths)
                .execute(&mut *conn)
                .await?;
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

/// Moves one pointer from `expected` to `new_location` (see the module docs), and to a new
/// `location` if given, which must overlap no other row's; the caller holds the location lock
/// then.
async fn move_pointer(
    conn: &mut PgConnection,
    target: &Target<'_>,
    expected: &str,
    new_location: &str,
    new_checksum: &FileChecksum,
    location: Option<&str>,
) -> Attempt<TablePointer> {
    let Target { kind, name, key } = *target;
    let (size, sha256) = new_checksum.columns()?;
    let version: Option<i64> = sqlx::query_scalar(
        "UPDATE tables SET metadata_location = $1, version = version + 1, \
         location = COALESCE($2, location), metadata_size = $7, metadata_sha256 = $8 \
         WHERE namespace = $3 AND name = $4 AND kind = $5 AND metadata_location = $6 \
         RETURNING version",
    )
    .bind(new_location)
    .bind(location)
    .bind(key)
    .bind(&name.name)
    .bind(kind.as_str())
    .bind(expected)
    .bind(size)
    .bind(&sha256)
    .fetch_optional(&mut *conn)
    .await?;
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
        // A new statement, so a new snapshot: it sees the commit that moved the pointer.
        None => match load_pointer(conn, kind, key, &name.name).await? {
            None => Err(kind.not_found(name).into()),
            Some(_) => Err(StoreError::Conflict {
                table: name.clone(),
            }
            .into()),
        },
    }
}

/// Creates a pointer: its namespace must exist, its name be free of both kinds, and its
/// `location` overlap no other row's (the caller holds the location lock).
async fn create_pointer(
    conn: &mut PgConnection,
    target: &Target<'_>,
    metadata_location: &str,
    checksum: &FileChecksum,
    location: &str,
) -> Attempt<TablePointer> {
    let Target { kind, name, key } = *target;
    let (size, sha256) = checksum.columns()?;
    // Says which kind holds the name; one committed after this read is refused by the primary key.
    if let Some(holder) = kind_of(conn, key, &name.name).await? {
        return Err(holder.already_exists(name).into());
    }
    let inserted = sqlx::query(
        "INSERT INTO tables (namespace, name, metadata_location, version, kind, location, \
         metadata_size, metadata_sha256) VALUES ($1, $2, $3, 1, $4, $5, $6, $7)",
    )
    .bind(key)
    .bind(&name.name)
    .bind(metadata_location)
    .bind(kind.as_str())
    .bind(location)
    .bind(size)
    .bind(&sha256)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => {
            check_free(conn, key, &name.name, location).await?;
            Ok(TablePointer {
                metadata_location: metadata_location.to_string(),
                version: 1,
                checksum: Some(checksum.clone()),
            })
        }
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            Err(kind.already_exists(name).into())
        }
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            Err(StoreError::NamespaceNotFound(name.namespace.clone()).into())
        }
        Err(err) => Err(err.into()),
    }
}

/// Takes the location lock (see *Locations* in the module docs) until the transaction ends.
async fn lock_locations(conn: &mut PgConnection) -> Attempt<()> {
    sqlx::query("SELECT id FROM location_guard WHERE id = 1 FOR UPDATE")
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

/// Fails with [`StoreError::LocationOverlap`] if a row other than `(key, name)` has a location
/// overlapping `location`.
async fn check_free(conn: &mut PgConnection, key: &str, name: &str, location: &str) -> Attempt<()> {
    match overlapping(conn, key, name, location).await? {
        Some(holder) => Err(location::overlap(location, holder).into()),
        None => Ok(()),
    }
}

/// A row other than `(key, name)` whose location overlaps `location`, if any. A new statement,
/// so under the location lock it sees every location committed before.
async fn overlapping(
    conn: &mut PgConnection,
    key: &str,
    name: &str,
    location: &str,
) -> Attempt<Option<LocationHolder>> {
    let query = OverlapQuery::new(location, key, name, |n| format!("${n}"));
    let row = query
        .binds
        .iter()
        .fold(sqlx::query(&query.sql), |sql, value| sql.bind(value))
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row
        .map(|row| {
            location::holder(
                row.get("namespace"),
                row.get("name"),
                row.get("kind"),
                row.get("location"),
            )
        })
        .transpose()?)
}

async fn namespace_exists(conn: &mut PgConnection, key: &str) -> Attempt<bool> {
    Ok(sqlx::query("SELECT 1 FROM namespaces WHERE path = $1")
        .bind(key)
        .fetch_optional(conn)
        .await?
        .is_some())
}

/// The pointer of the `kind` row with this name; `None` if there is none (or it is the other kind).
async fn load_pointer(
    conn: &mut PgConnection,
    kind: Kind,
    namespace_key: &str,
    name: &str,
) -> Attempt<Option<TablePointer>> {
    Ok(sqlx::query(
        "SELECT metadata_location, version, metadata_size, metadata_sha256 FROM tables \
         WHERE namespace = $1 AND name = $2 AND kind = $3",
    )
    .bind(namespace_key)
    .bind(name)
    .bind(kind.as_str())
    .fetch_optional(conn)
    .await?
    .map(|row| pointer_from_row(&row))
    .transpose()?)
}

/// Which kind of row holds this name, if any.
async fn kind_of(
    conn: &mut PgConnection,
    namespace_key: &str,
    name: &str,
) -> Attempt<Option<Kind>> {
    let kind: Option<String> =
        sqlx::query_scalar("SELECT kind FROM tables WHERE namespace = $1 AND name = $2")
            .bind(namespace_key)
            .bind(name)
            .fetch_optional(conn)
            .await?;
    Ok(kind.as_deref().map(Kind::parse).transpose()?)
}

fn pointer_from_row(row: &PgRow) -> Result<TablePointer> {
    Ok(TablePointer {
        metadata_location: row.get("metadata_location"),
        version: row.get("version"),
        checksum: FileChecksum::from_columns(row.get("metadata_size"), row.get("metadata_sha256"))?,
    })
}

fn claim_from_row(key: &str, fingerprint: &str, row: &PgRow) -> Result<IdempotencyClaim> {
    if row.get::<&str, _>("fingerprint") != fingerprint {
        return Ok(IdempotencyClaim::Mismatch);
    }
    match row.get::<&str, _>("state") {
        "claimed" => Ok(IdempotencyClaim::InFlight),
        "completed" => {
            let status: Option<i32> = row.get("status");
            let status = status
                .and_then(|status| u16::try_from(status).ok())
                .ok_or_else(|| {
                    StoreError::Internal(format!(
                        "idempotency key {key:?} has the invalid status {status:?}"
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
}

fn warehouse_from_row(row: &PgRow) -> Result<WarehouseRecord> {
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

/// Pauses before the `attempt`+1-th try: 10, 20, 40 ... ms, capped at 320, with up to half again
/// of jitter so that transactions that collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << attempt.saturating_sub(1).min(5);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    Duration::from_millis(base + u64::from(nanos) % (base / 2 + 1))
}

/// A serialization failure or a deadlock: the transaction was rolled back and may simply be run
/// again.
fn is_retryable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => matches!(sql_state(db.as_ref()).as_str(), "40001" | "40P01"),
        _ => false,
    }
}

fn sql_state(err: &dyn DatabaseError) -> String {
    err.code().map(|code| code.into_owned()).unwrap_or_default()
}

/// Sorts a database error into what a caller can act on (see *Errors* in the module docs).
fn db_error(err: sqlx::Error) -> StoreError {
    let unavailable = match &err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let state = sql_state(db.as_ref());
            matches!(
                state.as_str(),
                // Serialization failure and deadlock, retried until we gave up; statement
                // completion unknown (CockroachDB's ambiguous commit).
                "40001" | "40P01" | "40003"
                // Statement timeout (query canceled), lock timeout.
                | "57014" | "55P03"
                // Server shutting down, crashed, or starting up.
                | "57P01" | "57P02" | "57P03"
                // Connected to a read-only standby, e.g. during a failover.
                | "25006"
            ) || state.starts_with("08") // connection exceptions
                || state.starts_with("53") // insufficient resources: connections, memory, disk
        }
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Internal(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use floe_testkit::postgres::TestPostgres;
    use sqlx::Connection;

    use super::*;

    fn options() -> PostgresOptions {
        PostgresOptions {
            max_connections: 8,
            // Each test's own database: a key of its own is as good as a shared one.
            sealer: Sealer::new(Some(crate::sealed::SecretKey::generate())),
            ..PostgresOptions::default()
        }
    }

    /// A fresh database in the cluster every test of this binary shares.
    async fn fresh_database() -> String {
        tokio::task::spawn_blocking(|| TestPostgres::shared().create_database())
            .await
            .unwrap()
    }

    async fn fresh() -> (Arc<dyn MetadataStore>, ()) {
        let url = fresh_database().await;
        (
            Arc::new(PostgresStore::connect(&url, &options()).await.unwrap()),
            (),
        )
    }

    mod conformance {
        crate::metadata_store_suite!(super::fresh());
    }

    #[tokio::test]
    async fn checksums_are_backfilled_only_while_current() {
        let store = Arc::new(
            PostgresStore::connect(&fresh_database().await, &options())
                .await
                .unwrap(),
        );
        let pool = store.pool.clone();
        crate::suite::checksums_are_backfilled_only_while_current(store, async || {
            sqlx::query("UPDATE tables SET metadata_size = NULL, metadata_sha256 = NULL")
                .execute(&pool)
                .await
                .unwrap();
        })
        .await;
    }

    /// The suite again, in a database whose default collation sorts `B` before `a` and `é`
    /// before `f`: listings must still come in code point order.
    async fn fresh_with_icu_collation() -> (Arc<dyn MetadataStore>, ()) {
        let url = tokio::task::spawn_blocking(|| {
            TestPostgres::shared().create_database_with(
                "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
            )
        })
        .await
        .unwrap();
        (
            Arc::new(PostgresStore::connect(&url, &options()).await.unwrap()),
            (),
        )
    }

    mod icu_collation {
        use crate::suite;

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn names_are_opaque() {
            let (store, _guard) = super::fresh_with_icu_collation().await;
            suite::names_are_opaque(store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn pagination() {
            let (store, _guard) = super::fresh_with_icu_collation().await;
            suite::pagination(store).await;
        }
    }

    fn ns(level: &str) -> Vec<String> {
        vec![level.to_string()]
    }

    fn swap(table: &TableName, expected: Option<&str>, new_location: &str) -> PointerSwap {
        PointerSwap {
            table: table.clone(),
            expected: expected.map(str::to_string),
            new_location: new_location.into(),
            new_checksum: FileChecksum::of(new_location.as_bytes()),
            // A create needs a location; one per table keeps them apart.
            location: expected.is_none().then(|| format!("s3://b/{}", table.name)),
            events: Default::default(),
        }
    }

    /// Replicas starting together on an empty database apply each migration once, and a replica
    /// connecting later finds nothing to do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn replicas_migrate_once() {
        let url = fresh_database().await;
        let options = options();
        let (first, second) = tokio::join!(
            PostgresStore::connect(&url, &options),
            PostgresStore::connect(&url, &options),
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        first
            .create_namespace(&ns("sales"), &Properties::new())
            .await
            .unwrap();
        second.close().await;
        let third = PostgresStore::connect(&url, &options).await.unwrap();
        assert!(third.load_namespace(&ns("sales")).await.is_ok());
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&third.pool)
                .await
                .unwrap();
        let known: Vec<i64> = sqlx::migrate!("./migrations-postgres")
            .iter()
            .map(|migration| migration.version)
            .collect();
        assert_eq!(applied, known, "each migration applied once");
        let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&third.pool)
            .await
            .unwrap();
        assert_eq!(timeout, "30s", "connections carry the statement timeout");
    }

    /// Two replicas, each with its own pool, commit to four tables from 32 tasks. Every success
    /// must be in its table's history: one unbroken chain per table, no two successes from the
    /// same pointer, and the versions counting them exactly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_replicas_commit_one_chain_per_table() {
        const TASKS: usize = 32;
        const TABLES: usize = 4;
        const SUCCESSES: usize = 10;
        let url = fresh_database().await;
        let replicas = [
            Arc::new(PostgresStore::connect(&url, &options()).await.unwrap()),
            Arc::new(PostgresStore::connect(&url, &options()).await.unwrap()),
        ];
        replicas[0]
            .create_namespace(&ns("sales"), &Properties::new())
            .await
            .unwrap();
        let tables: Vec<TableName> = (0..TABLES)
            .map(|table| TableName::new(ns("sales"), format!("t{table}")))
            .collect();
        for table in &tables {
            let first = format!("s3://b/{}/0.json", table.name);
            replicas[1]
                .swap_pointers(&[swap(table, None, &first)])
                .await
                .unwrap();
        }

        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..TASKS {
            let store = replicas[task % 2].clone();
            let table = tables[task % TABLES].clone();
            tasks.spawn(async move {
                let mut moves = Vec::new();
                let mut conflicts = 0;
                while moves.len() < SUCCESSES {
                    let current = store.load_table(&table).await.unwrap();
                    let next = format!("s3://b/{}/{task}-{}.json", table.name, moves.len());
                    match store
                        .swap_pointers(&[swap(&table, Some(&current.metadata_location), &next)])
                        .await
                    {
                        Ok(moved) => {
                            assert_eq!(moved[0].metadata_location, next);
                            moves.push((
                                table.name.clone(),
                                current.metadata_location,
                                next,
                                moved[0].version,
                            ));
                        }
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(err) => panic!("task {task}: only conflicts may fail a swap: {err}"),
                    }
                    assert!(conflicts < 100_000, "task {task} starves");
                }
                moves
            });
        }
        let moves: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
        assert_eq!(moves.len(), TASKS * SUCCESSES);

        let per_table = TASKS / TABLES * SUCCESSES;
        let mut by_table: HashMap<&str, Vec<_>> = HashMap::new();
        for (table, from, to, version) in &moves {
            by_table.entry(table.as_str()).or_default().push((
                from.as_str(),
                to.as_str(),
                *version,
            ));
        }
        for table in &tables {
            let moves = &by_table[table.name.as_str()];
            assert_eq!(moves.len(), per_table, "{table}");
            let chain: BTreeMap<&str, &str> =
                moves.iter().map(|(from, to, _)| (*from, *to)).collect();
            assert_eq!(
                chain.len(),
                per_table,
                "{table}: two successful swaps moved from the same pointer"
            );
            let mut versions: Vec<i64> = moves.iter().map(|(_, _, version)| *version).collect();
            versions.sort();
            assert_eq!(
                versions,
                (2..=1 + per_table as i64).collect::<Vec<_>>(),
                "{table}: versions of the successes"
            );
            let first = format!("s3://b/{}/0.json", table.name);
            let mut at = first.as_str();
            for _ in 0..per_table {
                at = chain
                    .get(at)
                    .unwrap_or_else(|| panic!("{table}: the history breaks after {at}"));
            }
            // Either replica sees the end of the chain.
            for replica in &replicas {
                let last = replica.load_table(table).await.unwrap();
                assert_eq!(last.metadata_location, at, "{table}");
                assert_eq!(last.version, 1 + per_table as i64, "{table}");
            }
        }
    }

    /// A batch caught in a deadlock with another transaction is the one PostgreSQL rolls back
    /// (it waited first); the store runs it again and it succeeds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_deadlocked_batch_is_retried() {
        let url = fresh_database().await;
        let store = Arc::new(PostgresStore::connect(&url, &options()).await.unwrap());
        store
            .create_namespace(&ns("sales"), &Properties::new())
            .await
            .unwrap();
        let [a, b] = ["a", "b"].map(|name| TableName::new(ns("sales"), name));
        for table in [&a, &b] {
            store
                .swap_pointers(&[swap(table, None, &format!("s3://b/{}/1.json", table.name))])
                .await
                .unwrap();
        }

        // Another client locks b, ...
        let mut other = PgConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut other).await.unwrap();
        sqlx::query("UPDATE tables SET version = version WHERE name = 'b'")
            .execute(&mut other)
            .await
            .unwrap();
        // ... the batch locks a and waits for b, ...
        let batch = tokio::spawn({
            let store = store.clone();
            let swaps = [
                swap(&a, Some("s3://b/a/1.json"), "s3://b/a/2.json"),
                swap(&b, Some("s3://b/b/1.json"), "s3://b/b/2.json"),
            ];
            async move { store.swap_pointers(&swaps).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // ... and the other client then waits for a: a cycle. PostgreSQL breaks it after
        // `deadlock_timeout` (1 s) by failing the batch, which waited first.
        sqlx::query("UPDATE tables SET version = version WHERE name = 'a'")
            .execute(&mut other)
            .await
            .expect("the batch, not this client, is the deadlock's victim");
        sqlx::query("COMMIT").execute(&mut other).await.unwrap();

        let moved = batch.await.unwrap().expect("the batch is retried");
        assert_eq!(moved.iter().map(|p| p.version).collect::<Vec<_>>(), [2, 2]);
        assert_eq!(
            store.load_table(&b).await.unwrap().metadata_location,
            "s3://b/b/2.json"
        );
    }

    /// With the server gone, operations fail as Unavailable within the acquire timeout; once it is
    /// back, the same store carries on, and every commit it acknowledged is still there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_outage_is_unavailable_and_recovers() {
        let cluster = tokio::task::spawn_blocking(TestPostgres::start)
            .await
            .unwrap();
        let url = cluster.create_database();
        let options = PostgresOptions {
            acquire_timeout: Duration::from_secs(2),
            ..options()
        };
        let store = PostgresStore::connect(&url, &options).await.unwrap();
        store
            .create_namespace(&ns("sales"), &Properties::new())
            .await
            .unwrap();
        let orders = TableName::new(ns("sales"), "orders");
        store
            .swap_pointers(&[swap(&orders, None, "s3://b/orders/1.json")])
            .await
            .unwrap();
        store
            .swap_pointers(&[swap(
                &orders,
                Some("s3://b/orders/1.json"),
                "s3://b/orders/2.json",
            )])
            .await
            .unwrap();

        let cluster = tokio::task::spawn_blocking(move || {
            cluster.kill();
            cluster
        })
        .await
        .unwrap();
        for _ in 0..3 {
            let err = store.load_table(&orders).await.unwrap_err();
            assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        }
        let started = std::time::Instant::now();
        let err = store.ping().await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "a ping outlived the acquire timeout: {:?}",
            started.elapsed()
        );
        let err = store
            .swap_pointers(&[swap(
                &orders,
                Some("s3://b/orders/2.json"),
                "s3://b/orders/3.json",
            )])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");

        let _cluster = tokio::task::spawn_blocking(move || {
            cluster.restart();
            cluster
        })
        .await
        .unwrap();
        store.ping().await.expect("the store answers again");
        assert_eq!(
            store.load_table(&orders).await.unwrap(),
            TablePointer {
                metadata_location: "s3://b/orders/2.json".into(),
                version: 2,
                checksum: Some(FileChecksum::of("s3://b/orders/2.json".as_bytes())),
            },
            "an acknowledged commit was lost"
        );
        store
            .swap_pointers(&[swap(
                &orders,
                Some("s3://b/orders/2.json"),
                "s3://b/orders/3.json",
            )])
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_bad_url_is_invalid_input_and_no_server_is_unavailable() {
        let err = PostgresStore::connect("postgres://[::1", &options())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
        let port = floe_testkit::free_port();
        let options = PostgresOptions {
            acquire_timeout: Duration::from_secs(1),
            ..options()
        };
        let err =
            PostgresStore::connect(&format!("postgres://floe@127.0.0.1:{port}/floe"), &options)
                .await
                .err()
                .unwrap();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
}
