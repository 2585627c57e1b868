//! Table maintenance: the jobs that keep a table's history and its files from growing without end.
//!
//! This crate owns three on-demand jobs over one table, all built only on the commit engine
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
//! - **Bin-pack compaction** ([`compact`]) rewrites each partition's small data files into files
//!   near the target size and commits one `replace` snapshot through [`floe_commit::produce`],
//!   rebasing over concurrent appends and giving up cleanly when an input was removed meanwhile.
//!
//! All have a dry run that reports what would go and changes nothing. Deleting is always
//! confined to the table's own location inside the warehouse. A per-table lease in the metadata
//! store ([`floe_store::MetadataStore::try_acquire_lease`]) keeps two maintenance runs on one
//! table from overlapping, across replicas too; correctness against writers does not depend on it
//! (the commit's requirements and the age floor do that).

mod compact;
mod error;
mod expire;
mod orphans;
mod reachable;

use std::time::Duration;

use floe_commit::Catalog;
pub use floe_store::TableName;

pub use compact::{
    CompactOptions, CompactReport, DEFAULT_MIN_INPUT_FILES, PreparedCompaction, compact,
    prepare as prepare_compaction,
};
pub use error::{MaintenanceError, Result};
pub use expire::{ExpireOptions, ExpireReport, expire_snapshots};
pub use orphans::{
    DEFAULT_ORPHAN_AGE, MIN_ORPHAN_AGE, OrphanOptions, OrphanReport, remove_orphan_files,
};

/// How long one maintenance run may hold a table's lease before another run may take over.
const LEASE_TTL: Duration = Duration::from_secs(60 * 60);

/// Holds the table's maintenance lease while `job` runs, then gives it up.
async fn with_lease<T, F>(catalog: &Catalog, table: &TableName, job: F) -> Result<T>
where
    F: std::future::Future<Output = Result<T>>,
{
    let name = format!("maintenance:{table}");
    let holder = uuid::Uuid::new_v4().to_string();
    let store = catalog.store();
    if !store.try_acquire_lease(&name, &holder, LEASE_TTL).await? {
        return Err(MaintenanceError::Busy(format!(
            "another maintenance run holds table {table}"
        )));
    }
    let result = job.await;
    if let Err(err) = store.release_lease(&name, &holder).await {
        tracing::warn!(%table, error = %err, "could not release the maintenance lease; it expires on its own");
    }
    result
}

/// Whether `location` is strictly under the table location `table_location`, both inside the
/// warehouse, compared as object-store paths: the last check before any delete.
fn inside_table(warehouse: &floe_storage::Warehouse, table_location: &str, location: &str) -> bool {
    match (
        warehouse.object_path(table_location),
        warehouse.object_path(location),
    ) {
        (Ok(table), Ok(file)) => file
            .as_ref()
            .strip_prefix(table.as_ref())
            .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1),
        _ => false,
    }
}
