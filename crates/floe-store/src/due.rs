//! What maintenance is due, and when: the rows the event-driven scheduler claims its work from.
//!
//! A table has one row per job kind ([`DueKind`]). A row says when the job is next due
//! (`due_at`, Unix ms; none: not until something happens to the table), and keeps what the commits
//! since the last run added up to, so that the scheduler looks at a table only when there may be
//! work. Nothing here walks the tables: what a pass costs follows the commits and the due times,
//! never the number of tables.
//!
//! - **Commits** record their [`CommitEvents`] with the pointer swap, in the same transaction
//!   (see [`crate::PointerSwap::events`]): the files they added count towards compaction's
//!   threshold, the manifests towards the manifest rewrite's, and the table's oldest snapshot sets
//!   when expiry is next due. A new table gets a row of every kind, due at once, so that the
//!   scheduler evaluates it and writes the thresholds its settings call for. A commit that changes
//!   the table's maintenance settings, or replaces its whole state, makes every kind due at once.
//! - **Namespace settings**: changing a namespace's `floe.maintenance.*` properties makes every
//!   kind of its tables due at once ([`DueStore::mark_namespace_due`], called by the store itself
//!   when it updates them).
//! - **The scheduler** claims due rows with one indexed query per batch
//!   ([`DueStore::claim_due`]): a claim moves the row's due time forward by the claim's hold, so
//!   that no other replica claims it meanwhile, and a claim whose replica dies comes due again
//!   once the hold is over. When it has run (or judged there was nothing to do), it writes back
//!   when the job is next due and the threshold it now takes ([`DueStore::finish_due`]); commits
//!   that came in while it ran still count.
//!
//! Rows follow their table: renaming a table moves them, dropping it deletes them (a foreign key
//! with `ON UPDATE CASCADE ON DELETE CASCADE`). Rows are global, like job records: every
//! warehouse handle claims from all warehouses, and each item names its warehouse.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Result, TableName};

/// The prefix of the maintenance settings (`floe.maintenance.*` properties): changing one on a
/// namespace makes its tables' maintenance due.
pub const SETTINGS_PREFIX: &str = "floe.maintenance.";

/// A kind of maintenance job, as due rows and job records name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DueKind {
    Compaction,
    SnapshotExpiry,
    ManifestRewrite,
    OrphanRemoval,
    Scrub,
}

impl DueKind {
    /// Every kind, in the order the scheduler runs them on one table.
    pub const ALL: [DueKind; 5] = [
        DueKind::Compaction,
        DueKind::SnapshotExpiry,
        DueKind::ManifestRewrite,
        DueKind::OrphanRemoval,
        DueKind::Scrub,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DueKind::Compaction => "compaction",
            DueKind::SnapshotExpiry => "snapshot-expiry",
            DueKind::ManifestRewrite => "manifest-rewrite",
            DueKind::OrphanRemoval => "orphan-removal",
            DueKind::Scrub => "scrub",
        }
    }
}

impl fmt::Display for DueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DueKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        DueKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| format!("unknown maintenance job kind {name:?}"))
    }
}

/// What one table commit means for maintenance; recorded with its pointer swap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitEvents {
    /// Data files the commit's new snapshots added (not counting compaction's and manifest
    /// rewrites' own `replace` snapshots): compaction's counter.
    pub added_data_files: u64,
    /// Delete files they added: any makes compaction due at once (it applies them).
    pub added_delete_files: u64,
    /// Manifests they added (one per snapshot that added files): the manifest rewrite's counter.
    pub added_manifests: u64,
    /// The table's oldest snapshot after the commit (Unix ms): snapshot expiry is due once it is
    /// older than the table's age limit.
    pub oldest_snapshot_ms: Option<i64>,
    /// Every kind is due at once: the table's maintenance settings changed, or its whole state was
    /// replaced (registered over, rolled back).
    pub reevaluate: bool,
}

impl CommitEvents {
    /// Events that make every kind due at once.
    pub fn reevaluate_all() -> Self {
        Self {
            reevaluate: true,
            ..Self::default()
        }
    }
}

/// A claimed due row: one job kind of one table, for the claimant to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueItem {
    /// The registered warehouse the table is in; `None` for the server's default warehouse.
    pub warehouse: Option<String>,
    pub table: TableName,
    pub kind: DueKind,
    /// The counter at the claim (files or manifests added since the last run); what
    /// [`DueOutcome::consumed`] should take off it.
    pub pending: i64,
    /// Identifies this claim: [`DueStore::finish_due`] writes only while the row is still held by
    /// it.
    pub claim: String,
}

/// What a claimed job found: when it is due next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueOutcome {
    /// When the job is next due by time (Unix ms); `None`: only when commits make it so.
    pub next_due_ms: Option<i64>,
    /// How much the counter must reach (from zero after `consumed` is taken off) to make the job
    /// due at once; at least 1.
    pub threshold: i64,
    /// Snapshot expiry: the table's snapshot age limit, so that a commit can set the due time
    /// from the table's oldest snapshot. 0 for the other kinds.
    pub period_ms: i64,
    /// The counter value the job accounted for: usually [`DueItem::pending`].
    pub consumed: i64,
}

/// One due row as it stands, for people and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRow {
    pub kind: DueKind,
    pub due_at_ms: Option<i64>,
    pub pending: i64,
    pub threshold: i64,
    pub period_ms: i64,
    pub claimed: bool,
}

/// The due rows (see the module docs). Every method is one atomic operation.
#[async_trait]
pub trait DueStore: Send + Sync + 'static {
    /// Claims the rows due now (by the store's clock) of the tables of the earliest `limit` due
    /// rows, for `hold`: their due time moves to now + `hold`, so that nobody else claims them
    /// before then. A table's due jobs are claimed together (unless two claimants pick the same
    /// table at the same moment: then each gets some of its rows, never the same one).
    async fn claim_due(&self, limit: usize, hold: Duration) -> Result<Vec<DueItem>>;

    /// Writes what a claimed job found, if the row is still held by `item`'s claim; returns
    /// whether it was (a claim held past its hold may have been taken over, and the new
    /// claimant's outcome counts instead). The job is due at `outcome.next_due_ms`, or at once
    /// when the commits since the claim already reach the new threshold.
    async fn finish_due(&self, item: &DueItem, outcome: &DueOutcome) -> Result<bool>;

    /// Makes the claimed row due again at `at_ms` without changing its counters: the job could
    /// not run now (another process holds the table's lease, or it failed and backs off).
    async fn postpone_due(&self, item: &DueItem, at_ms: i64) -> Result<bool>;

    /// Makes every kind of every table of the namespace (of this handle's warehouse) due at once;
    /// returns how many rows changed.
    async fn mark_namespace_due(&self, namespace: &[String]) -> Result<u64>;

    /// Makes every kind of the table due at once.
    async fn mark_table_due(&self, table: &TableName) -> Result<u64>;

    /// Gives every table of every warehouse that has no due row of some kind that row, due at
    /// once: for tables made before the rows existed (a store restored from an old backup, a
    /// table created by an older release during a rolling upgrade). One statement; the scheduler
    /// runs it when it starts. Returns how many rows it added.
    async fn adopt_unscheduled_tables(&self) -> Result<u64>;

    /// Records the default warehouse's maintenance defaults (`fingerprint`: the server's
    /// configured `floe.maintenance.*` settings, which live in no row): if they differ from those
    /// recorded at the last start, every job of every default-warehouse table is due at once.
    /// Returns how many rows that made due (0 the first time: new rows are due anyway).
    async fn sync_default_settings(&self, fingerprint: &str) -> Result<u64>;

    /// The table's due rows, in [`DueKind::ALL`] order.
    async fn due_rows(&self, table: &TableName) -> Result<Vec<DueRow>>;

    /// How many rows are due now, and how many in all.
    async fn count_due(&self) -> Result<(u64, u64)>;
}
