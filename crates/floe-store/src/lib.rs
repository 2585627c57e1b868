//! Floe's metadata store: the strongly consistent record of which namespaces exist, which tables
//! exist, and where each table's *current* metadata file is (with the file's size and SHA-256, to
//! tell it from any other bytes); beside them, the service's own
//! records (warehouses, idempotency keys, leases, maintenance jobs, file marks, and the
//! access-control records: principals, roles, grants, signing keys, the audit log; the
//! scrubber's findings; the replicas' heartbeats). Secrets among those records (warehouses' storage
//! secrets, signing keys' private halves) are sealed before they are written and opened when read
//! ([`sealed`]), and brought under a new key when the key is rotated ([`secrets`]).
//!
//! # The model
//!
//! An Iceberg table is a chain of immutable metadata files in object storage. What makes one of them
//! the table's current state is a single *pointer* kept here: `(namespace, table) -> metadata
//! location`, plus a `version` counter that moves with it. Every table commit in Floe ends in exactly
//! one operation on this store, [`MetadataStore::swap_pointers`], which moves one or more pointers from
//! the value the committer read to a new value, all of them or none. Two commits that read the same
//! pointer can never both succeed: the loser gets [`StoreError::Conflict`] and re-reads.
//!
//! The store knows nothing about Iceberg metadata itself; the commit engine (`floe-commit`) writes
//! metadata files and asks this store to swap pointers. Keeping the store this small is what lets it
//! run on SQLite (the embedded default, [`sqlite::SqliteStore`]) and on PostgreSQL
//! ([`postgres::PostgresStore`], shared by several Floe replicas) without the rest of Floe noticing.
//!
//! # Views
//!
//! Iceberg views are pointers too: `(namespace, view) -> current view metadata location`, with the
//! same `version` counter, kept in the same rows as tables with a *kind* (`table` or `view`). One
//! primary key over `(namespace, name)` for both kinds is what makes a view and a table unable to
//! share a name in one namespace, whichever of two racing creates or renames comes first: the
//! database refuses the second row, not a check that could interleave. Table methods see tables
//! only, view methods views only; a name taken by the other kind is
//! [`StoreError::TableAlreadyExists`] or [`StoreError::ViewAlreadyExists`] (named after what holds
//! it), never a row of the wrong kind. A view's pointer moves with
//! [`MetadataStore::swap_view_pointer`], the single-view form of [`MetadataStore::swap_pointers`].
//!
//! # Locations
//!
//! Every table and view has a location, the directory its files live under, and no two may
//! overlap: no location equals, contains or lies inside another's, in any warehouse of the store
//! (warehouses may share a bucket). Otherwise purging one table would delete another's live files.
//! The store records each row's location, in the canonical form `floe_storage::canonical_location`
//! gives it (one string per directory, no trailing slash), and decides overlaps by comparing
//! strings, in the transaction that sets the location: a swap that creates a table or changes its
//! location ([`PointerSwap::location`]), [`MetadataStore::create_view`] and a view swap that moves
//! it. A location `L` is refused with [`StoreError::LocationOverlap`], naming the holder, if another
//! row's location is `L` or one of `L`'s ancestors at `/` boundaries (an `IN` over `L`'s prefixes),
//! or lies inside `L` (`L/ <= location < L0`, `0` being the byte after `/`). Both are lookups in
//! one index, so the check costs the same however many tables there are. `s3://b/t1` and
//! `s3://b/t10` do not overlap. Two transactions setting locations at once are serialized (SQLite
//! has one writer; PostgreSQL takes a lock row first, see `postgres`), so of two racing creates at
//! one location exactly one wins. Dropping a table or view frees its location; renaming keeps it.
//!
//! Rows written before locations were recorded have none (SQL NULL) and take part in no check
//! until `floe-commit` fills them in, once, from their metadata files
//! ([`MetadataStore::unlocated_pointers`], [`MetadataStore::record_location`]).
//!
//! # Integrity
//!
//! A pointer also records what the file it names *is*: its size in bytes and its SHA-256
//! ([`FileChecksum`], in [`TablePointer::checksum`]), set by the same statement that sets the
//! location, from what the committer wrote ([`PointerSwap::new_checksum`],
//! [`MetadataStore::create_view`], [`MetadataStore::swap_view_pointer`]). A reader that fetches
//! the file compares; bytes that differ (a truncated, overwritten or rotted file, another table's
//! file copied over it) are refused, never served as the table. Rows written before checksums
//! were recorded have none (SQL NULL) until the first read of their file records it
//! ([`MetadataStore::record_checksum`]), only while the row still names that file.
//!
//! # Names
//!
//! Namespaces are paths of non-empty levels (`["sales", "eu"]`); table (and view) names are one
//! level inside a namespace. The store treats them as opaque strings: they are never used to build file paths here.
//! Three rules only: a level or table name is never empty; a level never contains U+001F, the unit
//! separator the Iceberg REST API itself uses between levels (so no REST client can send one); and no
//! name contains U+0000, which PostgreSQL cannot store in text. Names breaking them are refused with
//! [`StoreError::InvalidInput`], by every backend alike.
//!
//! # Warehouses
//!
//! One store serves several warehouses, as one S3 Tables account holds several table buckets. Each
//! has its own namespaces and tables, with names that may repeat across warehouses; a handle from
//! [`MetadataStore::in_warehouse`] sees one warehouse's only. The server's default warehouse is the
//! one its configuration names (flags or TOML) and is not a row here; others are registered with
//! [`MetadataStore::create_warehouse`], which records where their files live and their storage
//! settings, so that every replica serves them. A foreign key from each namespace to its warehouse
//! makes dropping a warehouse that still has namespaces impossible, even racing a create.
//!
//! # Access control
//!
//! Principals, roles, grants, token-signing keys and the audit log are kept here for `floe-auth`,
//! behind their own trait, [`AccessStore`], reached with [`MetadataStore::access`]. They are global:
//! every warehouse handle sees the same ones. Every change that can alter an authorization
//! decision bumps one policy version in its own transaction, and the whole policy is read in one
//! snapshot; the [`access`] module says what that buys. Both backends run one implementation of
//! these operations, with only placeholders, the clock and constraint errors told apart per
//! dialect.
//!
//! # Scrub findings
//!
//! The scrubber (`floe-maintenance`) records the problems it finds with the files tables reference
//! (a missing file, a wrong size, an unreadable footer) behind their own trait, [`ScrubStore`],
//! reached with [`MetadataStore::scrub`]: one open finding per problem however often it is found
//! again, resolved when a later pass finds the file fine; the [`scrub`] module says how.
//!
//! # Replicas
//!
//! Every `floe serve` process writes a heartbeat to the store while it runs
//! ([`MetadataStore::replicas`], [`ReplicaStore`]): one upsert on its own row, so that whoever
//! reads the store sees which replicas are alive; the [`replicas`] module says how.
//!
//! # Idempotency keys
//!
//! Mutating REST requests may carry an `Idempotency-Key`. The store records each key as *claimed*
//! while its request runs and *completed* with the response once it finished, so that a retry
//! replays the first outcome instead of applying the change twice.
//!
//! A claim records its *owner* (the server instance running the request) and when the owner
//! last renewed it; the owner renews it while the request runs. A claim whose owner has not
//! renewed it for the caller's takeover timeout — the owner crashed, or lost the store — is taken
//! over by the next claim of the same request, so a crash leaves the key answering "in flight"
//! for that timeout, not until the key expires. Completing and releasing are conditional on the
//! owner, so an owner that was taken over cannot overwrite its successor's outcome. Like lease
//! expiry, the timeout is judged by the store's clock.
//!
//! # Leases
//!
//! Some background jobs (expiring idempotency keys, later compaction planning) must run on one
//! replica at a time. [`MetadataStore::try_acquire_lease`] hands a named lease to one holder for a
//! time to live; the holder renews it by calling again before it runs out, and others get `false`
//! until it is released or has expired.
//!
//! Expiry is judged by **the store's clock**, never the caller's: the PostgreSQL server's clock for
//! [`postgres::PostgresStore`], and for the embedded [`sqlite::SqliteStore`] the clock of the one
//! host its file lives on. With one clock deciding for every replica, the offset between replicas'
//! clocks cannot make two of them hold a lease at once; with callers passing their own `now`, it
//! would add straight to the overlap. What remains is on the holder: it must count its `ttl` on its
//! own monotonic clock from *before* the call that took or renewed the lease, and stop the job (or
//! renew) well before that runs out. A lease is not a fencing token: a holder paused past its `ttl`
//! (a long GC pause, a suspended VM) may resume still believing it holds the lease, so jobs whose
//! writes must not overlap make those writes conditional as well (as every pointer swap is).
//!
//! # Metrics
//!
//! How long operations wait for a pooled connection, and the pool's state
//! ([`MetadataStore::pool_status`], read when the server is scraped), are series of [`metrics`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use due::{CommitEvents, DueItem, DueKind, DueOutcome, DueRow, DueStore};
pub use integrity::FileChecksum;
pub use kind::Kind as PointerKind;

pub use access::{
    AccessStore, AuditFilter, AuditRecord, GrantRecord, Policy, PrincipalRecord, RoleAssignment,
    Securable, SigningKeyRecord,
};
pub use replicas::{ReplicaHeartbeat, ReplicaRecord, ReplicaStore};
pub use scrub::{
    FindingFilter, FindingKind, OpenFindings, Problem, ScrubFinding, ScrubPass, ScrubRecorded,
    ScrubStore,
};
pub use secrets::{SealReport, SecretStore};

pub mod access;
mod access_sql;
pub mod backup;
pub mod due;
mod due_sql;
mod input;
mod integrity;
mod kind;
mod location;
pub mod metrics;
pub mod postgres;
pub mod replicas;
mod replicas_sql;
pub mod scrub;
mod scrub_sql;
pub mod sealed;
pub mod secrets;
pub mod sqlite;

#[cfg(any(test, feature = "test-suite"))]
pub mod suite;

/// A namespace path: one string per level, outermost first. Never empty.
pub type NamespacePath = Vec<String>;

/// Namespace or table properties.
pub type Properties = BTreeMap<String, String>;

/// A table's full name: its namespace and its name within it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    pub namespace: NamespacePath,
    pub name: String,
}

impl TableName {
    pub fn new(namespace: impl Into<NamespacePath>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.namespace.join("."), self.name)
    }
}

/// A view's full name: its namespace and its name within it (the same shape as a table's).
pub type ViewName = TableName;

/// Where a table's current metadata is, and how many times that has changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePointer {
    /// Full URL of the current metadata JSON file.
    pub metadata_location: String,
    /// Starts at 1 when the table is created and grows by one on every successful swap. Cheap to
    /// read, so caches can check freshness against it.
    pub version: i64,
    /// The size and SHA-256 of the metadata file, as written (see *Integrity* in the crate docs);
    /// `None` only for a row written before checksums were recorded and not read since.
    pub checksum: Option<FileChecksum>,
}

/// One pointer move inside [`MetadataStore::swap_pointers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerSwap {
    pub table: TableName,
    /// The metadata location the committer read. `None` means the table must not exist yet: the
    /// swap creates it (its namespace must exist).
    pub expected: Option<String>,
    /// The new metadata location.
    pub new_location: String,
    /// The size and SHA-256 of the file at `new_location`, of the bytes the committer wrote (or,
    /// registering a file, read).
    pub new_checksum: FileChecksum,
    /// The table's location (canonical: see *Locations* in the crate docs), when the swap sets
    /// it: required when it creates the table, `Some` when it moves the table elsewhere, `None`
    /// when the table stays where it is (so that ordinary commits are not serialized).
    pub location: Option<String>,
    /// What the commit means for maintenance, recorded in the same transaction ([`due`]). A swap
    /// that creates the table makes all of its maintenance due whatever this says.
    pub events: CommitEvents,
}

/// A table or view that holds a location, as [`StoreError::LocationOverlap`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationHolder {
    /// The registered warehouse it is in; `None` for the server's default warehouse.
    pub warehouse: Option<String>,
    pub kind: PointerKind,
    pub name: TableName,
    pub location: String,
}

impl fmt::Display for LocationHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} in ", self.kind, self.name)?;
        match &self.warehouse {
            Some(warehouse) => write!(f, "warehouse {warehouse}")?,
            None => write!(f, "the default warehouse")?,
        }
        write!(f, " at {}", self.location)
    }
}

/// A pointer row written before locations were recorded (see *Locations* in the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlocatedPointer {
    /// The registered warehouse it is in; `None` for the server's default warehouse.
    pub warehouse: Option<String>,
    pub kind: PointerKind,
    pub name: TableName,
    /// Its current metadata file, which names its location.
    pub metadata_location: String,
}

/// A page request for list operations. `token` is the opaque `next_page_token` of a previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub token: Option<String>,
    /// At most this many items; `None` means all.
    pub size: Option<usize>,
}

/// One page of a listing; `next_page_token` is `Some` only when more items follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
}

/// What a namespace properties update did, as the REST API reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropertiesChange {
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// Keys asked to be removed that were not there.
    pub missing: Vec<String>,
}

impl PropertiesChange {
    /// Whether it changed a maintenance setting ([`due::SETTINGS_PREFIX`]), which makes the
    /// namespace's tables' maintenance due at once.
    pub fn touches_maintenance(&self) -> bool {
        self.updated
            .iter()
            .chain(&self.removed)
            .any(|key| key.starts_with(due::SETTINGS_PREFIX))
    }
}

/// A warehouse registered in the store (see *Warehouses* in the crate docs).
#[derive(Clone, PartialEq, Eq)]
pub struct WarehouseRecord {
    /// The REST prefix clients use: lowercase letters, digits, `-`, `_`; at most 63 characters.
    pub name: String,
    /// Where the warehouse's files live: `s3://bucket/prefix`, `file:///dir`, `memory://name`.
    pub storage_url: String,
    /// Storage settings (`s3.endpoint`, `s3.region`, ...), which may include credentials: show
    /// them through `floe_storage`'s redaction only.
    pub properties: Properties,
    /// When it was registered, in Unix milliseconds (set by the store).
    pub created_at_ms: i64,
}

impl fmt::Debug for WarehouseRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Properties may carry secret keys; their names are enough to debug with.
        f.debug_struct("WarehouseRecord")
            .field("name", &self.name)
            .field("storage_url", &self.storage_url)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .field("created_at_ms", &self.created_at_ms)
            .finish()
    }
}

/// A finished request's response, kept for replay under its idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// The response's content type, if any.
    pub content_type: Option<String>,
}

/// The outcome of [`MetadataStore::claim_idempotency_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key was unknown and is now claimed by the caller, who must later complete or release it.
    Claimed,
    /// Another request with this key is still running.
    InFlight,
    /// A request with this key finished; replay its response.
    Completed(StoredResponse),
    /// The key was used before for a different request (another fingerprint).
    Mismatch,
}

/// Errors a caller can act on. Each maps to one REST error in exactly one place in the server.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("namespace {} does not exist", .0.join("."))]
    NamespaceNotFound(NamespacePath),
    #[error("namespace {} already exists", .0.join("."))]
    NamespaceAlreadyExists(NamespacePath),
    #[error("namespace {} is not empty: {reason}", .namespace.join("."))]
    NamespaceNotEmpty {
        namespace: NamespacePath,
        reason: String,
    },
    #[error("table {0} does not exist")]
    TableNotFound(TableName),
    #[error("table {0} already exists")]
    TableAlreadyExists(TableName),
    #[error("view {0} does not exist")]
    ViewNotFound(ViewName),
    /// The name is taken by a view (whatever the caller meant to create or rename there).
    #[error("view {0} already exists")]
    ViewAlreadyExists(ViewName),
    #[error("warehouse {0} does not exist")]
    WarehouseNotFound(String),
    #[error("warehouse {0} already exists")]
    WarehouseAlreadyExists(String),
    #[error("warehouse {0} is not empty: drop its namespaces first")]
    WarehouseNotEmpty(String),
    /// An access-control record (principal, role, signing key) that does not exist; the message
    /// names it.
    #[error("{0} does not exist")]
    NotFound(String),
    /// An access-control record whose name (or client id, kid) is taken; the message names it.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A swap found a pointer other than the one the committer read: someone else committed first.
    /// `table` names the table, or the view for [`MetadataStore::swap_view_pointer`].
    #[error("{table} was changed by a concurrent commit")]
    Conflict { table: TableName },
    /// A table's or view's location equals, contains or lies inside `holder`'s (see *Locations*
    /// in the crate docs).
    #[error(
        "location {location} overlaps {holder}: a table's or view's location may not equal, \
         contain or lie inside another's"
    )]
    LocationOverlap {
        location: String,
        holder: Box<LocationHolder>,
    },
    /// A name or page token from the caller is malformed (see *Names* in the crate docs).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store cannot be reached or is overloaded; the request may be retried.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a corrupt store.
    #[error("metadata store error: {0}")]
    Internal(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The metadata store. Every method is one atomic operation on the backing database.
///
/// A store handle works in one warehouse: the server's default one, unless it came from
/// [`MetadataStore::in_warehouse`]. Namespace and table methods see that warehouse's only; the
/// warehouse, idempotency-key and lease methods are global.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// The access-control records (see *Access control* in the crate docs): global, so a handle
    /// from [`MetadataStore::in_warehouse`] sees the same ones.
    fn access(&self) -> &dyn AccessStore;

    /// The scrubber's findings (see *Scrub findings* in the crate docs): global, like the
    /// access-control records.
    fn scrub(&self) -> &dyn ScrubStore;

    /// The replicas' heartbeats (see *Replicas* in the crate docs): global.
    fn replicas(&self) -> &dyn ReplicaStore;

    /// What maintenance is due ([`due`]): global, like job records; table methods work in this
    /// handle's warehouse.
    fn due(&self) -> &dyn DueStore;

    /// The stored secrets as a whole: re-sealing them under the current key ([`secrets`]).
    fn secrets(&self) -> &dyn SecretStore;

    /// A handle on the same database (same pool) working in the registered warehouse `name`. It
    /// does not check that the warehouse exists: creating a namespace in a warehouse that does not
    /// is [`StoreError::WarehouseNotFound`], and everything else finds nothing.
    fn in_warehouse(&self, name: &str) -> Result<Arc<dyn MetadataStore>>;

    /// The connection pool's state now, for the server's metrics; `None` for a store without
    /// one.
    fn pool_status(&self) -> Option<metrics::PoolStatus> {
        None
    }

    /// Registers a warehouse; [`StoreError::WarehouseAlreadyExists`] if the name is taken.
    /// `created_at_ms` is ignored: the store sets it.
    async fn create_warehouse(&self, warehouse: &WarehouseRecord) -> Result<()>;

    /// The registered warehouse `name`, or [`StoreError::WarehouseNotFound`].
    async fn load_warehouse(&self, name: &str) -> Result<WarehouseRecord>;

    /// Every registered warehouse, in name order (the server's default one is not registered).
    async fn list_warehouses(&self) -> Result<Vec<WarehouseRecord>>;

    /// Unregisters an empty warehouse; [`StoreError::WarehouseNotEmpty`] while it has namespaces.
    async fn drop_warehouse(&self, name: &str) -> Result<()>;

    /// Creates a namespace. Its parent (if nested) must exist.
    async fn create_namespace(&self, namespace: &[String], properties: &Properties) -> Result<()>;

    /// The namespace's properties, or [`StoreError::NamespaceNotFound`].
    async fn load_namespace(&self, namespace: &[String]) -> Result<Properties>;

    /// The direct children of `parent` (top-level namespaces when `None`), in name order.
    async fn list_namespaces(
        &self,
        parent: Option<&[String]>,
        page: &PageRequest,
    ) -> Result<Page<NamespacePath>>;

    /// Removes then sets properties, atomically.
    async fn update_namespace_properties(
        &self,
        namespace: &[String],
        removals: &[String],
        updates: &Properties,
    ) -> Result<PropertiesChange>;

    /// Drops an empty namespace (no tables, no child namespaces).
    async fn drop_namespace(&self, namespace: &[String]) -> Result<()>;

    /// The table's current pointer, or [`StoreError::TableNotFound`].
    async fn load_table(&self, table: &TableName) -> Result<TablePointer>;

    /// Table names in `namespace`, in name order.
    async fn list_tables(&self, namespace: &[String], page: &PageRequest) -> Result<Page<String>>;

    /// Moves every pointer in `swaps` from its expected value to its new value, or none of them.
    /// A swap whose `expected` is `None` creates the table, at its `location` (required). A
    /// location that overlaps another table's or view's is [`StoreError::LocationOverlap`].
    /// Returns the new pointers, in order.
    async fn swap_pointers(&self, swaps: &[PointerSwap]) -> Result<Vec<TablePointer>>;

    /// Removes the table's pointer and returns what it was.
    async fn drop_table(&self, table: &TableName) -> Result<TablePointer>;

    /// Renames a table, possibly into another (existing) namespace; its pointer moves with it.
    async fn rename_table(&self, from: &TableName, to: &TableName) -> Result<()>;

    // Views (see *Views* in the crate docs): the table operations for the other kind of pointer.

    /// Creates the view's pointer at `metadata_location` (whose file has `checksum`), version 1,
    /// with the view's (canonical) `location`. Its namespace must exist
    /// ([`StoreError::NamespaceNotFound`]), no table or view may have its name there, and none a
    /// location overlapping it ([`StoreError::LocationOverlap`]).
    async fn create_view(
        &self,
        view: &ViewName,
        metadata_location: &str,
        checksum: &FileChecksum,
        location: &str,
    ) -> Result<TablePointer>;

    /// The view's current pointer, or [`StoreError::ViewNotFound`] (also when a table has the name).
    async fn load_view(&self, view: &ViewName) -> Result<TablePointer>;

    /// View names in `namespace`, in name order; tables are not listed.
    async fn list_views(&self, namespace: &[String], page: &PageRequest) -> Result<Page<String>>;

    /// Moves the view's pointer from `expected` to `new_location` (whose file has
    /// `new_checksum`): [`StoreError::Conflict`] if it holds something else,
    /// [`StoreError::ViewNotFound`] if the view is gone. `location` is the view's new location
    /// when the change moves it, checked as [`MetadataStore::create_view`] checks it.
    async fn swap_view_pointer(
        &self,
        view: &ViewName,
        expected: &str,
        new_location: &str,
        new_checksum: &FileChecksum,
        location: Option<&str>,
    ) -> Result<TablePointer>;

    /// Removes the view's pointer and returns what it was.
    async fn drop_view(&self, view: &ViewName) -> Result<TablePointer>;

    /// Renames a view, possibly into another (existing) namespace; its pointer moves with it.
    async fn rename_view(&self, from: &ViewName, to: &ViewName) -> Result<()>;

    /// Every table and view row, in any warehouse, whose location is not recorded yet (written
    /// before locations were; see *Locations* in the crate docs). Global, like leases.
    async fn unlocated_pointers(&self) -> Result<Vec<UnlocatedPointer>>;

    /// Records the (canonical) location of a row that has none, read from its metadata file, and
    /// returns a row whose location overlaps it, if any, for the caller to report. Recorded even
    /// then: these tables exist already, and leaving one without a location would only hide it
    /// from the checks of new locations. Does nothing if the row is gone or has a location by now.
    async fn record_location(
        &self,
        pointer: &UnlocatedPointer,
        location: &str,
    ) -> Result<Option<LocationHolder>>;

    /// Records the checksum of the metadata file of a `kind` row written before checksums were
    /// (see *Integrity* in the crate docs), taken by a reader that fetched it: only if the row
    /// still names `metadata_location` and has no checksum, and without moving its version, so
    /// that it never races a commit. Returns whether it recorded; `false` (the row is gone, moved
    /// on, or has a checksum by now) is not an error.
    async fn record_checksum(
        &self,
        kind: PointerKind,
        name: &TableName,
        metadata_location: &str,
        checksum: &FileChecksum,
    ) -> Result<bool>;

    /// Claims an idempotency key for a request identified by `fingerprint`, for `owner` (the
    /// server instance that runs it). A key another owner claimed is [`IdempotencyClaim::InFlight`]
    /// until that owner has not renewed its claim for `takeover_after` (by the store's clock):
    /// then it is taken over and [`IdempotencyClaim::Claimed`] by `owner` (see *Idempotency keys*
    /// in the crate docs).
    async fn claim_idempotency_key(
        &self,
        key: &str,
        fingerprint: &str,
        owner: &str,
        takeover_after: Duration,
    ) -> Result<IdempotencyClaim>;

    /// Tells that `owner` is still running the request of its claimed key. `false` when the key
    /// is no longer `owner`'s claim (taken over, released, completed or expired).
    async fn renew_idempotency_claim(&self, key: &str, owner: &str) -> Result<bool>;

    /// Records the final response of a key `owner` claimed; [`StoreError::Internal`] if it is no
    /// longer `owner`'s claim.
    async fn complete_idempotency_key(
        &self,
        key: &str,
        owner: &str,
        response: &StoredResponse,
    ) -> Result<()>;

    /// Forgets a key `owner` claimed whose request did not finish (e.g. a 5xx), so a retry runs
    /// again; does nothing if it is no longer `owner`'s claim.
    async fn release_idempotency_key(&self, key: &str, owner: &str) -> Result<()>;

    /// Deletes keys created more than `older_than` ago; returns how many.
    async fn expire_idempotency_keys(&self, older_than: Duration) -> Result<u64>;

    /// Takes the lease `name` for `holder` until `ttl` from now, by the store's clock (see *Leases*
    /// in the crate docs), if it is free, expired, or already `holder`'s — then it is renewed, even
    /// if it had expired. Returns whether `holder` holds it now; `false` means another holder's
    /// lease has not expired. Names and holders are non-empty without U+0000; `ttl` is at least
    /// 1 ms and at most 7 days.
    async fn try_acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool>;

    /// Gives the lease up if `holder` holds it (expired or not); does nothing otherwise.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    /// Whether someone holds the lease `name` now (it exists and has not expired, by the store's
    /// clock). For work that must pause while another holds a lease without taking it itself:
    /// maintenance deletes no file while a backup holds [`backup::BACKUP_LEASE`].
    async fn lease_is_held(&self, name: &str) -> Result<bool>;

    /// Runs a trivial query (`SELECT 1`) on a pooled connection: `Ok` if the store answers,
    /// [`StoreError::Unavailable`] if it cannot be reached within the pool's acquire timeout. For
    /// readiness checks; it touches no data.
    async fn ping(&self) -> Result<()>;

    /// Records a maintenance job run: inserts it, or updates the record with the same `id` (a
    /// run is recorded when it starts and again when it ends). Global, like leases.
    async fn record_job(&self, job: &JobRecord) -> Result<()>;

    /// The most recent job records matching `filter`, newest first, at most `limit`.
    async fn list_jobs(&self, filter: &JobFilter, limit: usize) -> Result<Vec<JobRecord>>;

    /// Deletes job records that started more than `older_than` ago; returns how many.
    async fn expire_jobs(&self, older_than: Duration) -> Result<u64>;

    /// Marks `paths`, files found unreferenced under `scope` (a table's location), as of now by
    /// the store's clock; a path already marked keeps its first mark. Returns the mark time
    /// (Unix ms) of every given path. The first phase of two-phase unreferenced-file removal.
    async fn mark_files(&self, scope: &str, paths: &[String]) -> Result<BTreeMap<String, i64>>;

    /// Every marked file under `scope`, with its mark time.
    async fn marked_files(&self, scope: &str) -> Result<BTreeMap<String, i64>>;

    /// Forgets the marks of `paths` under `scope` (deleted, or referenced again).
    async fn unmark_files(&self, scope: &str, paths: &[String]) -> Result<()>;
}

/// One run of a maintenance job on one table (see `floe-maintenance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Unique per run; time-ordered ids (UUIDv7) keep listings stable.
    pub id: String,
    /// The warehouse's name (its REST prefix).
    pub warehouse: String,
    pub table: TableName,
    /// `compaction`, `snapshot-expiry`, `orphan-removal`, `manifest-rewrite`.
    pub kind: String,
    /// `schedule` (the server's scheduler) or `manual` (`floe maintain`).
    pub trigger: String,
    /// Unix milliseconds, by the recorder's clock.
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// `running`, `succeeded` or `failed`.
    pub outcome: String,
    pub error: Option<String>,
    /// What the run did: `files-in`, `bytes-in`, `files-out`, `bytes-out`,
    /// `snapshots-expired`, ... (as strings, so new kinds need no schema change).
    pub stats: Properties,
}

/// Which job records [`MetadataStore::list_jobs`] returns; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub warehouse: Option<String>,
    pub table: Option<TableName>,
    pub kind: Option<String>,
}
