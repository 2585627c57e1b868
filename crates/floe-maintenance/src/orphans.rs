//! Unreferenced-file removal: files under a table's location that nothing in its live metadata
//! reaches — left by crashed or failed writers, failed clean-ups, or other engines.
//!
//! The run lists the table's location first and reads the table's metadata after, so a file
//! committed between the two is seen as referenced. It then keeps everything reachable from the
//! live metadata: the current metadata file and those in its metadata log, every snapshot's
//! manifest list, manifests and data and delete files (entries recording a removal count too: a
//! cautious choice), and statistics files. Of the rest it deletes only files last modified before
//! the safety floor ([`OrphanOptions::older_than`], default [`DEFAULT_ORPHAN_AGE`], never less
//! than [`MIN_ORPHAN_AGE`]): a writer may have written a file it has not committed yet, and that
//! file must outlive the writer's commit. A writer slower than the floor loses its files, so the
//! floor must exceed the longest write job.
//!
//! The listing and every delete go through the table's [`TableScope`]: nothing outside its
//! location, nothing reached through a symbolic link. A table whose `gc.enabled` is false is
//! refused ([`MaintenanceError::GcDisabled`]): its files may be shared with other tables, and an
//! unreferenced file of this table may be a referenced file of another.
//!
//! # Two phases
//!
//! With [`OrphanOptions::delete_after_marked`] (what the scheduler uses, as S3 Tables does) a file
//! past the floor is first only *marked* in the metadata store; it is deleted by a later run once
//! its mark is older than that delay, and only if it is still unreferenced and still there. A
//! file referenced again meanwhile (a rollback, a `register`) loses its mark. Deleting thus needs
//! the file to have stayed unreferenced for the whole delay, seen by two runs, not just to be old.
//! Without it (`floe maintain --remove-orphans`, an operator's explicit act) old unreferenced
//! files are deleted at once.

use std::time::{Duration, SystemTime};

use floe_commit::{Catalog, gc_enabled};
use floe_storage::{Deletion, TableScope};
use floe_store::TableName;
use tracing::{info, warn};

use crate::reachable::{Entries, FileSet, Reader, statistics_files};
use crate::{MaintenanceError, Result};

/// The default safety floor: files younger than this are never removed.
pub const DEFAULT_ORPHAN_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The shortest floor a run accepts.
pub const MIN_ORPHAN_AGE: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone)]
pub struct OrphanOptions {
    /// Only files last modified longer ago than this are removed.
    pub older_than: Duration,
    /// Two-phase removal: mark unreferenced files past the floor, delete them only once marked
    /// this long ago (see the module docs). `None`: delete at once.
    pub delete_after_marked: Option<Duration>,
    /// Report, delete nothing.
    pub dry_run: bool,
    /// Told how many files and bytes are deleted so far.
    pub progress: crate::ProgressSink,
}

impl Default for OrphanOptions {
    fn default() -> Self {
        Self {
            older_than: DEFAULT_ORPHAN_AGE,
            delete_after_marked: None,
            dry_run: false,
            progress: crate::ProgressSink::default(),
        }
    }
}

/// What a run found and deleted (or, in a dry run, would have).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    pub dry_run: bool,
    /// Files listed under the table's location.
    pub listed: usize,
    /// Unreferenced files deleted (would be deleted), sorted.
    pub deleted_files: Vec<String>,
    pub deleted_bytes: u64,
    /// Unreferenced files kept because they are younger than the floor.
    pub too_young: usize,
    /// Two-phase runs: unreferenced files marked and waiting for their delay (in a dry run, also
    /// those a real run would mark now).
    pub marked_pending: usize,
    /// Files that could not be deleted (logged).
    pub failed_deletes: Vec<String>,
    /// A metadata-store backup was running: nothing was deleted.
    pub held_for_backup: bool,
}

/// Deletes the files under `table`'s location that its live metadata does not reach and that are
/// older than `options.older_than`. See the module docs.
pub async fn remove_orphan_files(
    catalog: &Catalog,
    table: &TableName,
    options: &OrphanOptions,
) -> Result<OrphanReport> {
    if options.older_than < MIN_ORPHAN_AGE {
        return Err(MaintenanceError::InvalidRequest(format!(
            "refusing to remove unreferenced files younger than {} minutes: a writer may not have committed them yet",
            MIN_ORPHAN_AGE.as_secs() / 60
        )));
    }
    crate::with_lease(catalog, table, run(catalog, table, options)).await
}

async fn run(
    catalog: &Catalog,
    table: &TableName,
    options: &OrphanOptions,
) -> Result<OrphanReport> {
    let warehouse = catalog.warehouse();
    // Where to look, from the table as it is now; then list; then read the metadata again, so
    // that anything committed before the listing ended counts as referenced.
    let first = catalog.load_table(table).await?;
    refuse_without_gc(table, first.metadata())?;
    let location = first
        .metadata()
        .location()
        .trim_end_matches('/')
        .to_string();
    let scope = TableScope::new(warehouse, &location).map_err(|_| {
        MaintenanceError::InvalidRequest(format!(
            "table {table} lives outside the warehouse ({location}); not touching it"
        ))
    })?;
    let listed = scope.list().await?;
    let loaded = catalog.load_table(table).await?;
    let metadata = loaded.metadata();
    // A commit since the first read may have turned GC off.
    refuse_without_gc(table, metadata)?;

    let mut referenced = FileSet::default();
    if let Some(current) = &loaded.metadata_location {
        referenced.insert(warehouse, current, 0);
    }
    for log in metadata.metadata_log() {
        referenced.insert(warehouse, &log.metadata_file, 0);
    }
    statistics_files(warehouse, metadata, |_| true, &mut referenced);
    Reader::new(warehouse, metadata)
        .collect(metadata.snapshots(), Entries::All, false, &mut referenced)
        .await?;

    let floor = SystemTime::now()
        .checked_sub(options.older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut report = OrphanReport {
        dry_run: options.dry_run,
        listed: listed.len(),
        ..OrphanReport::default()
    };
    let mut candidates: Vec<_> = listed
        .into_iter()
        .filter(|object| !referenced.contains(warehouse, &object.location))
        .collect();
    candidates.sort_by(|a, b| a.location.cmp(&b.location));
    // Files younger than the floor may belong to a commit in progress: counted, never touched.
    let (young, old): (Vec<_>, Vec<_>) = candidates
        .into_iter()
        .partition(|object| object.last_modified >= floor);
    report.too_young = young.len();
    let old = match options.delete_after_marked {
        None => old,
        Some(delay) => {
            let (due, pending) = two_phase(catalog, &location, old, delay, options.dry_run).await?;
            report.marked_pending = pending;
            due
        }
    };
    if !options.dry_run && catalog.backup_in_progress().await? {
        // A backup that began before the commits which unreferenced these files may name them.
        info!(%table, "a metadata-store backup is running: no unreferenced file is deleted");
        report.held_for_backup = true;
        return Ok(report);
    }
    if !options.dry_run {
        options.progress.start(
            "deleting unreferenced files",
            old.len() as u64,
            old.iter().map(|o| o.size).sum(),
        );
    }
    for object in old {
        if !scope.contains(&object.location) {
            options.progress.advance(1, object.size);
            continue;
        }
        let deleted = options.dry_run
            || match scope.delete(&object.location).await {
                Ok(Deletion::Deleted) => true,
                Ok(Deletion::OutsideTable) => {
                    options.progress.advance(1, object.size);
                    continue;
                }
                Err(err) => {
                    warn!(%table, file = object.location, error = %err, "could not delete an unreferenced file");
                    false
                }
            };
        options.progress.advance(1, object.size);
        if deleted {
            report.deleted_bytes += object.size;
            report.deleted_files.push(object.location);
        } else {
            report.failed_deletes.push(object.location);
        }
    }
    options.progress.finish();
    if options.delete_after_marked.is_some() && !options.dry_run {
        catalog
            .store()
            .unmark_files(&location, &report.deleted_files)
            .await?;
    }
    if !options.dry_run {
        info!(
            %table,
            deleted = report.deleted_files.len(),
            bytes = report.deleted_bytes,
            "unreferenced files removed"
        );
    }
    Ok(report)
}

/// Unreferenced-file removal deletes files no job wrote, which on a table with `gc.enabled=false`
/// may be another table's: refused, as Iceberg Java's `DeleteOrphanFiles` does.
fn refuse_without_gc(table: &TableName, metadata: &iceberg::spec::TableMetadata) -> Result<()> {
    if gc_enabled(metadata) {
        return Ok(());
    }
    Err(MaintenanceError::GcDisabled(format!(
        "cannot remove unreferenced files of table {table}: GC is disabled (gc.enabled=false), \
         so its files may be shared with other tables; set gc.enabled=true to allow it"
    )))
}

/// The first phase: marks `old` (unreferenced files past the floor), forgets the marks of files
/// that are no longer among them, and returns the files whose mark is at least `delay` old — the
/// ones to delete now — and how many wait. A dry run changes no mark.
async fn two_phase(
    catalog: &Catalog,
    location: &str,
    old: Vec<floe_storage::ListedObject>,
    delay: Duration,
    dry_run: bool,
) -> Result<(Vec<floe_storage::ListedObject>, usize)> {
    let store = catalog.store();
    let paths: Vec<String> = old.iter().map(|object| object.location.clone()).collect();
    let wanted: std::collections::HashSet<&str> = paths.iter().map(String::as_str).collect();
    let before = store.marked_files(location).await?;
    let stale: Vec<String> = before
        .keys()
        .filter(|path| !wanted.contains(path.as_str()))
        .cloned()
        .collect();
    let marks = if dry_run {
        before
    } else {
        store.unmark_files(location, &stale).await?;
        store.mark_files(location, &paths).await?
    };
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX);
    let due_before = now_ms.saturating_sub(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    let (due, pending): (Vec<_>, Vec<_>) = old.into_iter().partition(|object| {
        marks
            .get(&object.location)
            .is_some_and(|marked_at| *marked_at <= due_before)
    });
    Ok((due, pending.len()))
}
