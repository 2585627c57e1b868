//! Table maintenance: the jobs that keep a table's history and its files from growing without end,
//! and the scrubber that checks they are all still there.
//!
//! This crate owns the on-demand jobs over one table, all built only on the commit engine
//! ([`floe_commit::Catalog`]), the warehouse ([`floe_storage::Warehouse`]) and Iceberg's own file
//! readers — never on the server:
//!
//! - **Snapshot expiry** ([`expire_snapshots`]) decides which snapshots the table's retention
//!   settings let go (by age and count, per branch, never the current snapshot nor one a branch
//!   or tag keeps), removes them — and the branches and tags that have themselves expired — with
//!   one ordinary commit through [`floe_commit::Catalog::commit`], guarded by requirements so a
//!   concurrent writer is never lost, and only then deletes the files that no remaining snapshot
//!   reaches.
//! - **Unreferenced-file removal** ([`remove_orphan_files`]) lists the table's location and deletes
//!   the files that nothing in the table's live metadata reaches and that are older than a safety
//!   floor, so that files a writer has written but not yet committed are left alone.
//! - **Bin-pack compaction** ([`compact`]) rewrites each partition's small data files — and every
//!   data file that delete files apply to — into files near the target size, applying the
//!   position and equality deletes (merge-on-read), and commits one `replace` snapshot through
//!   [`floe_commit::produce`] that also drops the delete files no remaining data file needs. It
//!   rebases over concurrent appends and gives up cleanly when an input was removed, or a delete
//!   applying to an input was added, meanwhile.
//! - **Manifest rewrite** ([`rewrite_manifests`]) clusters the entries of many small data
//!   manifests by partition into manifests near `commit.manifest.target-size-bytes`, as a
//!   `replace` snapshot that changes no data.
//! - **Repair** ([`repair`]) of a table whose files were lost: rolling the pointer back from a
//!   missing or corrupt current metadata file to the newest intact one
//!   ([`repair::rollback`]), and committing a snapshot that forgets data and delete files that are
//!   gone ([`repair::forget_missing_files`]). Dry runs by default; applied repairs are audited.
//! - **Scrubbing** ([`scrub_table`]) changes nothing: it checks that every file the table's
//!   snapshots reference is still there with the size its metadata records (and, deep, that each
//!   Parquet footer parses), rate-limited, and records what is wrong as findings in the metadata
//!   store ([`floe_store::ScrubStore`]), resolving those it no longer finds.
//!
//! What the scheduler's jobs did and what the scrubber found are series of [`metrics`].
//!
//! All that change the table have a dry run that reports what would go and changes nothing.
//! Deleting is always
//! confined to the table's own location inside the warehouse: every delete goes through a
//! [`floe_storage::TableScope`], so a file the metadata names elsewhere (another table's, a
//! registered table's) or one reached through a symbolic link is never deleted. A table whose
//! `gc.enabled` is false ([`floe_commit::gc_enabled`]) loses no file to these jobs: expiry still
//! removes snapshots from its metadata but deletes nothing, and unreferenced-file removal refuses;
//! only files a job wrote itself and never committed are cleaned up. A per-table lease in the metadata
//! store ([`floe_store::MetadataStore::try_acquire_lease`]), renewed while the job runs, keeps two
//! maintenance runs on one table from overlapping, across replicas too; a job whose lease is lost
//! stops, and a killed job's lease runs out within a minute ([`lease`]). The read-only scrub
//! holds a lease of its own instead, so it runs beside those jobs. Correctness against writers does not depend on it (the commit's
//! requirements and the age floor do that).

mod compact;
mod deletes;
mod error;
mod expire;
pub mod lease;
pub mod metrics;
mod orphans;
pub mod policy;
mod reachable;
pub mod recover;
pub mod repair;
mod rewrite_manifests;
pub mod scheduler;
pub mod scrub;
mod zorder;

use std::sync::Arc;

pub use floe_store::TableName;

pub use compact::{
    CompactOptions, CompactReport, DEFAULT_DELETE_FILE_THRESHOLD, DEFAULT_MIN_INPUT_FILES,
    PreparedCompaction, Strategy, compact, prepare as prepare_compaction,
};
pub use error::{MaintenanceError, Result};
pub use expire::{ExpireOptions, ExpireReport, expire_snapshots};
pub use lease::LeaseSettings;
use lease::{with_lease, with_scrub_lease};
pub use orphans::{
    DEFAULT_ORPHAN_AGE, MIN_ORPHAN_AGE, OrphanOptions, OrphanReport, remove_orphan_files,
};
pub use rewrite_manifests::{ManifestRewriteOptions, ManifestRewriteReport, rewrite_manifests};
pub use scrub::{RateLimits, ScrubOptions, ScrubReport, scrub_table};

/// Where a long job reports how far it got, e.g. to draw a progress bar. Jobs call
/// [`Progress::start`] once per phase with its totals, then [`Progress::advance`] as files are
/// done; every call is cheap and must not block.
pub trait Progress: Send + Sync {
    /// A phase (`"compacting"`, `"rewriting manifests"`) begins: `files` files, `bytes` bytes.
    fn start(&self, phase: &str, files: u64, bytes: u64);
    /// `files` more files of `bytes` bytes are done.
    fn advance(&self, files: u64, bytes: u64);
    /// The phase is over (done or given up).
    fn finish(&self);
}

/// An optional [`Progress`] in an options struct (which stays `Clone`, `Debug` and `Default`).
#[derive(Clone, Default)]
pub struct ProgressSink(Option<Arc<dyn Progress>>);

impl ProgressSink {
    pub fn new(progress: Arc<dyn Progress>) -> Self {
        Self(Some(progress))
    }

    fn start(&self, phase: &str, files: u64, bytes: u64) {
        if let Some(p) = &self.0 {
            p.start(phase, files, bytes);
        }
    }

    fn advance(&self, files: u64, bytes: u64) {
        if let Some(p) = &self.0 {
            p.advance(files, bytes);
        }
    }

    fn finish(&self) {
        if let Some(p) = &self.0 {
            p.finish();
        }
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressSink(set)"
        } else {
            "ProgressSink(none)"
        })
    }
}
