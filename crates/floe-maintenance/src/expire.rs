//! Snapshot expiry: which snapshots go (Iceberg's retention rules), the commit that removes them,
//! and the deletion of the files only they reached.
//!
//! # Which snapshots go
//!
//! Each branch keeps its head, then walks back through its ancestors keeping each one while it
//! has kept fewer than its `min-snapshots-to-keep` or the ancestor is younger than its
//! `max-snapshot-age-ms` (per-ref settings first, then the table properties
//! `history.expire.min-snapshots-to-keep`, default 1, and `history.expire.max-snapshot-age-ms`,
//! default 5 days; [`ExpireOptions`] can override the table defaults). Each tag keeps its
//! snapshot. A branch or tag other than `main` whose snapshot is older than its `max-ref-age-ms`
//! (default `history.expire.max-ref-age-ms`, else never) is removed and keeps nothing. A snapshot
//! on no ref's ancestry is kept while younger than the table's age limit. Everything else goes.
//!
//! # The commit, then the files
//!
//! The removal is one commit of `remove-snapshot-ref` and `remove-snapshots` (and the expired
//! snapshots' statistics) through [`Catalog::commit`], requiring the table's UUID and every ref at
//! the snapshot this run read: if a writer moved `main` (or any ref) meanwhile, the commit is
//! refused, and the run reads the table again and recomputes, a bounded number of times. So a
//! concurrent append is never lost, and a ref created meanwhile never loses its snapshot.
//!
//! Only after the commit are files deleted: those reachable from the expired snapshots (their
//! manifest lists, manifests, data and delete files, statistics) minus those reachable from every
//! snapshot the committed metadata still has. Old metadata files are not this job's: the commit
//! engine's metadata-log rules (`write.metadata.delete-after-commit.enabled`) handle them. A table
//! whose `gc.enabled` is false keeps every file (its files may be shared with other tables): the
//! snapshots leave its metadata, and the report says why nothing was deleted.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use floe_commit::{Catalog, CommitError, LoadedTable, TableChange, gc_enabled};
use floe_storage::{Deletion, TableScope};
use floe_store::TableName;
use iceberg::spec::{SnapshotReference, SnapshotRetention, TableMetadata};
use iceberg::{TableRequirement, TableUpdate};
use tracing::{info, warn};

use crate::reachable::{Entries, FileSet, Reader, statistics_files};
use crate::{MaintenanceError, Result};

pub const MIN_SNAPSHOTS_TO_KEEP: &str = "history.expire.min-snapshots-to-keep";
pub const MAX_SNAPSHOT_AGE_MS: &str = "history.expire.max-snapshot-age-ms";
pub const MAX_REF_AGE_MS: &str = "history.expire.max-ref-age-ms";
/// Iceberg's default for `history.expire.max-snapshot-age-ms`: 5 days.
pub const DEFAULT_MAX_SNAPSHOT_AGE_MS: i64 = 5 * 24 * 60 * 60 * 1000;

const MAIN: &str = "main";
/// Commits refused because a writer moved the table are recomputed and retried this many times.
const MAX_ATTEMPTS: u32 = 10;

/// What to expire, over the table's own retention settings.
#[derive(Debug, Clone, Default)]
pub struct ExpireOptions {
    /// Expire snapshots older than this, instead of `history.expire.max-snapshot-age-ms`. A
    /// branch's own `max-snapshot-age-ms` still wins on that branch.
    pub older_than: Option<Duration>,
    /// Keep at least this many snapshots per branch, instead of
    /// `history.expire.min-snapshots-to-keep`. A branch's own setting still wins on that branch.
    pub retain_last: Option<u32>,
    /// Decide and report, but commit and delete nothing.
    pub dry_run: bool,
    /// Told how many files and bytes are deleted so far.
    pub progress: crate::ProgressSink,
}

/// What a run expired and deleted (or, in a dry run, would have).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpireReport {
    pub dry_run: bool,
    /// Ids of the expired snapshots, ascending.
    pub expired_snapshots: Vec<i64>,
    /// Branches and tags removed because they outlived their `max-ref-age-ms`, sorted.
    pub removed_refs: Vec<String>,
    /// Files deleted (would be deleted), sorted by path.
    pub deleted_files: Vec<String>,
    /// Their total size, as the metadata records it (manifest lists: as read).
    pub deleted_bytes: u64,
    /// Files that could not be deleted (logged); they are left as unreferenced files.
    pub failed_deletes: Vec<String>,
    /// The table's `gc.enabled` is false: snapshots were expired, no file was deleted.
    pub gc_disabled: bool,
    /// A metadata-store backup was running: snapshots were expired, no file was deleted.
    pub held_for_backup: bool,
}

/// Expires `table`'s snapshots by its retention settings and `options`, then deletes the files
/// nothing else reaches. See the module docs for the rules.
pub async fn expire_snapshots(
    catalog: &Catalog,
    table: &TableName,
    options: &ExpireOptions,
) -> Result<ExpireReport> {
    crate::with_lease(catalog, table, run(catalog, table, options)).await
}

async fn run(
    catalog: &Catalog,
    table: &TableName,
    options: &ExpireOptions,
) -> Result<ExpireReport> {
    let mut attempt = 0;
    let (before, plan, after) = loop {
        attempt += 1;
        let loaded = catalog.load_table(table).await?;
        let refs = refs_of(&loaded)?;
        let settings = Settings::of(loaded.metadata(), options)?;
        let plan = plan(loaded.metadata(), &refs, &settings, now_ms());
        if plan.expire.is_empty() && plan.expired_refs.is_empty() {
            return Ok(ExpireReport {
                dry_run: options.dry_run,
                ..ExpireReport::default()
            });
        }
        if options.dry_run {
            break (loaded.clone(), plan, None);
        }
        let change = change_for(table, loaded.metadata(), &refs, &plan);
        match catalog.commit(vec![change]).await {
            Ok(mut committed) => break (loaded, plan, Some(committed.remove(0))),
            Err(CommitError::Conflict(message)) if attempt < MAX_ATTEMPTS => {
                info!(%table, attempt, %message, "the table moved during expiry; recomputing");
                tokio::time::sleep(Duration::from_millis(u64::from(attempt))).await;
            }
            Err(err) => return Err(err.into()),
        }
    };
    if let Some(after) = &after {
        info!(
            %table,
            expired = plan.expire.len(),
            refs = plan.expired_refs.len(),
            metadata = after.metadata_location.as_deref().unwrap_or(""),
            "snapshots expired"
        );
    }

    let metadata = before.metadata();
    let warehouse = catalog.warehouse();
    // Judged on the committed metadata: a writer may have turned GC off since `before`.
    let gc_allowed = gc_enabled(metadata)
        && after
            .as_ref()
            .is_none_or(|after| gc_enabled(after.metadata()));
    if !gc_allowed {
        info!(%table, "gc.enabled is false: expired snapshots' files are kept");
        return Ok(ExpireReport {
            dry_run: options.dry_run,
            expired_snapshots: plan.expire.iter().copied().collect(),
            removed_refs: plan.expired_refs.clone(),
            gc_disabled: true,
            ..ExpireReport::default()
        });
    }
    if !options.dry_run && catalog.backup_in_progress().await? {
        // Asked after the commit: see `Catalog::backup_in_progress`. The files stay behind as
        // unreferenced files, for unreferenced-file removal once the backup is done.
        info!(%table, "a metadata-store backup is running: expired snapshots' files are kept");
        return Ok(ExpireReport {
            dry_run: options.dry_run,
            expired_snapshots: plan.expire.iter().copied().collect(),
            removed_refs: plan.expired_refs.clone(),
            held_for_backup: true,
            ..ExpireReport::default()
        });
    }
    let scope = TableScope::new(warehouse, metadata.location())?;
    let mut reader = Reader::new(warehouse, metadata);
    let mut expired = FileSet::default();
    // Collected first: an iterator whose filter closure lives across the await below keeps the
    // future from being provably `Send`, which the server's scheduler needs to spawn it.
    let expired_snapshots: Vec<_> = metadata
        .snapshots()
        .filter(|snapshot| plan.expire.contains(&snapshot.snapshot_id()))
        .collect();
    reader
        .collect(expired_snapshots, Entries::All, true, &mut expired)
        .await?;
    statistics_files(
        warehouse,
        metadata,
        |id| plan.expire.contains(&id),
        &mut expired,
    );

    // What stays: everything the committed metadata has (or, in a dry run, would have).
    let mut remaining = FileSet::default();
    match &after {
        Some(after) => {
            reader
                .collect(
                    after.metadata().snapshots(),
                    Entries::Live,
                    false,
                    &mut remaining,
                )
                .await?;
            statistics_files(warehouse, after.metadata(), |_| true, &mut remaining);
        }
        None => {
            let kept: Vec<_> = metadata
                .snapshots()
                .filter(|snapshot| !plan.expire.contains(&snapshot.snapshot_id()))
                .collect();
            reader
                .collect(kept, Entries::Live, false, &mut remaining)
                .await?;
            statistics_files(
                warehouse,
                metadata,
                |id| !plan.expire.contains(&id),
                &mut remaining,
            );
        }
    }

    let mut report = ExpireReport {
        dry_run: options.dry_run,
        expired_snapshots: plan.expire.iter().copied().collect(),
        removed_refs: plan.expired_refs.clone(),
        ..ExpireReport::default()
    };
    let doomed = expired.minus(&remaining);
    if !options.dry_run {
        options.progress.start(
            "deleting expired files",
            doomed.len() as u64,
            doomed.iter().map(|(_, size)| *size).sum(),
        );
    }
    for (file, size) in doomed {
        if !scope.contains(&file) {
            warn!(%table, file, "not deleting a file outside the table's location");
            options.progress.advance(1, size);
            continue;
        }
        let deleted = options.dry_run
            || match scope.delete(&file).await {
                Ok(Deletion::Deleted) => true,
                Ok(Deletion::OutsideTable) => {
                    options.progress.advance(1, size);
                    continue;
                }
                Err(err) => {
                    warn!(%table, file, error = %err, "could not delete an expired file");
                    false
                }
            };
        options.progress.advance(1, size);
        if deleted {
            report.deleted_bytes += size;
            report.deleted_files.push(file);
        } else {
            report.failed_deletes.push(file);
        }
    }
    options.progress.finish();
    Ok(report)
}

/// The table's branches and tags. `TableMetadata` keeps them private, so they are read from the
/// metadata file's JSON, which is what the spec defines anyway.
fn refs_of(loaded: &LoadedTable) -> Result<HashMap<String, SnapshotReference>> {
    #[derive(serde::Deserialize)]
    struct Refs {
        #[serde(default)]
        refs: Option<HashMap<String, SnapshotReference>>,
    }
    let parsed: Refs =
        serde_json::from_slice(loaded.file.json()).map_err(|err| MaintenanceError::Unreadable {
            location: loaded.metadata_location.clone().unwrap_or_default(),
            message: err.to_string(),
        })?;
    let mut refs = parsed.refs.unwrap_or_default();
    // Format v1 tables may have no refs: their current snapshot is `main`'s.
    if let (false, Some(current)) = (
        refs.contains_key(MAIN),
        loaded.metadata().current_snapshot_id(),
    ) {
        refs.insert(
            MAIN.to_string(),
            SnapshotReference::new(
                current,
                SnapshotRetention::Branch {
                    min_snapshots_to_keep: None,
                    max_snapshot_age_ms: None,
                    max_ref_age_ms: None,
                },
            ),
        );
    }
    Ok(refs)
}

/// The table-wide retention defaults, after `options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) min_snapshots_to_keep: i64,
    pub(crate) max_snapshot_age_ms: i64,
    pub(crate) max_ref_age_ms: i64,
}

impl Settings {
    fn of(metadata: &TableMetadata, options: &ExpireOptions) -> Result<Self> {
        let properties = metadata.properties();
        let number = |key: &str, default: i64| -> Result<i64> {
            match properties.get(key) {
                None => Ok(default),
                Some(value) => value
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        MaintenanceError::InvalidRequest(format!(
                            "table property {key} = {value:?} is not a positive integer"
                        ))
                    }),
            }
        };
        let mut settings = Settings {
            min_snapshots_to_keep: number(MIN_SNAPSHOTS_TO_KEEP, 1)?,
            max_snapshot_age_ms: number(MAX_SNAPSHOT_AGE_MS, DEFAULT_MAX_SNAPSHOT_AGE_MS)?,
            max_ref_age_ms: number(MAX_REF_AGE_MS, i64::MAX)?,
        };
        if let Some(older_than) = options.older_than {
            settings.max_snapshot_age_ms =
                i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        }
        if let Some(retain_last) = options.retain_last {
            settings.min_snapshots_to_keep = i64::from(retain_last.max(1));
        }
        Ok(settings)
    }
}

/// What one run removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) expire: BTreeSet<i64>,
    /// Sorted.
    pub(crate) expired_refs: Vec<String>,
}

/// Applies the retention rules (module docs) to `metadata` as of `now_ms`.
pub(crate) fn plan(
    metadata: &TableMetadata,
    refs: &HashMap<String, SnapshotReference>,
    settings: &Settings,
    now_ms: i64,
) -> Plan {
    let timestamp = |id: i64| metadata.snapshot_by_id(id).map(|s| s.timestamp_ms());
    let cutoff = |age_ms: i64| now_ms.saturating_sub(age_ms);
    let mut retained = HashSet::new();
    let mut on_branches = HashSet::new();
    let mut expired_refs = Vec::new();

    for (name, reference) in refs {
        let max_ref_age = match &reference.retention {
            SnapshotRetention::Branch { max_ref_age_ms, .. }
            | SnapshotRetention::Tag { max_ref_age_ms } => {
                max_ref_age_ms.unwrap_or(settings.max_ref_age_ms)
            }
        };
        let Some(head_time) = timestamp(reference.snapshot_id) else {
            continue;
        };
        if name != MAIN && head_time < cutoff(max_ref_age) {
            expired_refs.push(name.clone());
            continue;
        }
        match &reference.retention {
            SnapshotRetention::Tag { .. } => {
                retained.insert(reference.snapshot_id);
            }
            SnapshotRetention::Branch {
                min_snapshots_to_keep,
                max_snapshot_age_ms,
                ..
            } => {
                let min_keep = min_snapshots_to_keep
                    .map(i64::from)
                    .unwrap_or(settings.min_snapshots_to_keep)
                    .max(1);
                let oldest_kept =
                    cutoff(max_snapshot_age_ms.unwrap_or(settings.max_snapshot_age_ms));
                let mut kept = 0;
                let mut next = Some(reference.snapshot_id);
                let mut keeping = true;
                while let Some(id) = next {
                    let Some(snapshot) = metadata.snapshot_by_id(id) else {
                        break;
                    };
                    if !on_branches.insert(id) && !keeping {
                        break;
                    }
                    if keeping && (kept < min_keep || snapshot.timestamp_ms() >= oldest_kept) {
                        retained.insert(id);
                        kept += 1;
                    } else {
                        keeping = false;
                    }
                    next = snapshot.parent_snapshot_id();
                }
            }
        }
    }
    // The current snapshot stays whatever the refs say.
    if let Some(current) = metadata.current_snapshot_id() {
        retained.insert(current);
    }
    let oldest_unreferenced = cutoff(settings.max_snapshot_age_ms);
    let expire = metadata
        .snapshots()
        .filter(|snapshot| {
            let id = snapshot.snapshot_id();
            !retained.contains(&id)
                && (on_branches.contains(&id) || snapshot.timestamp_ms() < oldest_unreferenced)
        })
        .map(|snapshot| snapshot.snapshot_id())
        .collect();
    expired_refs.sort();
    Plan {
        expire,
        expired_refs,
    }
}

/// The commit that carries out `plan`: it holds only if the table and every ref are still what
/// this run read.
fn change_for(
    table: &TableName,
    metadata: &TableMetadata,
    refs: &HashMap<String, SnapshotReference>,
    plan: &Plan,
) -> TableChange {
    let mut requirements = vec![TableRequirement::UuidMatch {
        uuid: metadata.uuid(),
    }];
    let mut names: Vec<&String> = refs.keys().collect();
    names.sort();
    if !refs.contains_key(MAIN) {
        requirements.push(TableRequirement::RefSnapshotIdMatch {
            r#ref: MAIN.to_string(),
            snapshot_id: None,
        });
    }
    for name in names {
        requirements.push(TableRequirement::RefSnapshotIdMatch {
            r#ref: name.clone(),
            snapshot_id: Some(refs[name].snapshot_id),
        });
    }
    let mut updates: Vec<TableUpdate> = plan
        .expired_refs
        .iter()
        .map(|name| TableUpdate::RemoveSnapshotRef {
            ref_name: name.clone(),
        })
        .collect();
    if !plan.expire.is_empty() {
        updates.push(TableUpdate::RemoveSnapshots {
            snapshot_ids: plan.expire.iter().copied().collect(),
        });
    }
    for stats in metadata.statistics_iter() {
        if plan.expire.contains(&stats.snapshot_id) {
            updates.push(TableUpdate::RemoveStatistics {
                snapshot_id: stats.snapshot_id,
            });
        }
    }
    for stats in metadata.partition_statistics_iter() {
        if plan.expire.contains(&stats.snapshot_id) {
            updates.push(TableUpdate::RemovePartitionStatistics {
                snapshot_id: stats.snapshot_id,
            });
        }
    }
    TableChange {
        table: table.clone(),
        requirements,
        updates,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_000_000_000;
    const HOUR: i64 = 3_600_000;

    /// A table whose snapshots are `(id, parent, age in hours)`, with `refs` as JSON.
    fn table(snapshots: &[(i64, Option<i64>, i64)], refs: serde_json::Value) -> TableMetadata {
        let current = snapshots.last().unwrap().0;
        let snapshots: Vec<_> = snapshots
            .iter()
            .enumerate()
            .map(|(i, (id, parent, age))| {
                json!({
                    "snapshot-id": id, "parent-snapshot-id": parent, "sequence-number": i + 1,
                    "timestamp-ms": NOW - age * HOUR, "manifest-list": format!("file:///t/m{id}.avro"),
                    "summary": {"operation": "append"}, "schema-id": 0
                })
            })
            .collect();
        serde_json::from_value(json!({
            "format-version": 2, "table-uuid": "9c12d441-03fe-4693-9a96-a0705ddf69c1",
            "location": "file:///t", "last-sequence-number": snapshots.len(),
            "last-updated-ms": NOW, "last-column-id": 1,
            "schemas": [{"type": "struct", "schema-id": 0, "fields": [
                {"id": 1, "name": "id", "required": true, "type": "long"}]}],
            "current-schema-id": 0,
            "partition-specs": [{"spec-id": 0, "fields": []}], "default-spec-id": 0,
            "last-partition-id": 999, "properties": {},
            "current-snapshot-id": current, "snapshots": snapshots,
            "snapshot-log": [], "metadata-log": [],
            "sort-orders": [{"order-id": 0, "fields": []}], "default-sort-order-id": 0,
            "refs": refs
        }))
        .unwrap()
    }

    fn refs(value: serde_json::Value) -> HashMap<String, SnapshotReference> {
        serde_json::from_value(value).unwrap()
    }

    fn settings(max_age_hours: i64) -> Settings {
        Settings {
            min_snapshots_to_keep: 1,
            max_snapshot_age_ms: max_age_hours * HOUR,
            max_ref_age_ms: i64::MAX,
        }
    }

    fn expired(plan: &Plan) -> Vec<i64> {
        plan.expire.iter().copied().collect()
    }

    #[test]
    fn a_branch_keeps_by_its_own_age_and_count() {
        // main: 1 <- 2 <- 3 <- 4 (ages 40, 30, 20, 10 h); branch b at 2 keeps two, by its count.
        let refs_json = json!({
            "main": {"snapshot-id": 4, "type": "branch"},
            "b": {"snapshot-id": 2, "type": "branch", "min-snapshots-to-keep": 2}
        });
        let metadata = table(
            &[
                (1, None, 40),
                (2, Some(1), 30),
                (3, Some(2), 20),
                (4, Some(3), 10),
            ],
            refs_json.clone(),
        );
        let plan = plan(&metadata, &refs(refs_json), &settings(15), NOW);
        assert_eq!(expired(&plan), vec![3], "b keeps 2 and 1; main keeps 4");
        assert!(plan.expired_refs.is_empty());
    }

    #[test]
    fn a_ref_past_its_age_goes_and_keeps_nothing_but_main_never_does() {
        let refs_json = json!({
            "main": {"snapshot-id": 3, "type": "branch", "max-ref-age-ms": 1},
            "old-tag": {"snapshot-id": 1, "type": "tag", "max-ref-age-ms": HOUR},
            "young-tag": {"snapshot-id": 2, "type": "tag", "max-ref-age-ms": 100 * HOUR}
        });
        let metadata = table(
            &[(1, None, 40), (2, Some(1), 30), (3, Some(2), 20)],
            refs_json.clone(),
        );
        let plan = plan(&metadata, &refs(refs_json), &settings(1), NOW);
        assert_eq!(expired(&plan), vec![1]);
        assert_eq!(plan.expired_refs, vec!["old-tag".to_string()]);
    }

    #[test]
    fn snapshots_on_no_ref_go_only_when_old_and_the_current_one_always_stays() {
        // 2 and 3 were rolled back (main at 1 then 4 on top); 3 is young, 2 old.
        let refs_json = json!({"main": {"snapshot-id": 4, "type": "branch"}});
        let metadata = table(
            &[
                (1, None, 50),
                (2, Some(1), 40),
                (3, Some(2), 1),
                (4, Some(1), 30),
            ],
            refs_json.clone(),
        );
        let plan = plan(&metadata, &refs(refs_json), &settings(10), NOW);
        assert_eq!(expired(&plan), vec![1, 2]);
        // Even with no refs at all (and a 0 age limit), the current snapshot stays.
        let plan = super::plan(&metadata, &HashMap::new(), &settings(0), NOW);
        assert_eq!(expired(&plan), vec![1, 2, 3]);
    }
}
