//! Repairs of a table whose files were lost or damaged in storage: the operator's tools once a
//! scrub (or a failing read) shows that a file the catalog relies on is gone.
//!
//! Both repairs give up something to make the table readable again, so both report first and
//! change nothing unless asked ([`RepairOptions::apply`]), and every applied repair leaves an
//! entry in the audit log under the operator's name.
//!
//! - **Rollback** ([`rollback`]): the current metadata file is missing, unreadable or not table
//!   metadata. Nothing can commit to such a table (every commit reads it first), so the pointer is
//!   moved back to the newest intact metadata file — found by listing the table's `metadata/`
//!   folder, since the damaged file's own metadata log is unreadable — with a conditional swap
//!   that expects the damaged location, so a concurrent repair or writer is never overwritten. The
//!   commits after the restored version are lost; the report names the metadata versions skipped
//!   and the snapshots whose manifest lists were written after it.
//! - **Forgetting missing files** ([`forget_missing_files`]): data or delete files of the current
//!   snapshot that are gone, or whose size differs from the manifest's `file_size_in_bytes`, make
//!   every scan that reaches them fail. One snapshot, written by the commit engine's producer and
//!   pinned to the snapshot it inspected, removes exactly those entries; the report lists the
//!   partitions and records lost. Forgetting a delete file brings back the rows it deleted: the
//!   report says so.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use floe_commit::{
    Catalog, CommitError, MetadataFile, SnapshotChange, metadata_file_version, produce, producer,
};
use floe_storage::StorageError;
use floe_store::{AuditRecord, PointerSwap, StoreError, TableName};
use futures::StreamExt;
use iceberg::spec::{DataContentType, Manifest, ManifestList, Operation, TableMetadata};
use object_store::ObjectStoreExt;

use crate::{MaintenanceError, Result};

/// HEAD requests in flight at once while checking a snapshot's files.
const CHECKS_IN_FLIGHT: usize = 16;

/// The snapshot-summary property that marks a repair's snapshot.
const REPAIR_PROPERTY: &str = "floe.repair";

/// What every repair needs to know besides the table.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    /// Make the change. Without it the repair only reports what it would do.
    pub apply: bool,
    /// Rollback only: roll back one version even though the current metadata file is intact.
    pub force: bool,
    /// Who asked, as the audit log names them.
    pub principal: String,
}

impl Default for RepairOptions {
    fn default() -> Self {
        Self {
            apply: false,
            force: false,
            principal: LOCAL_OPERATOR.to_string(),
        }
    }
}

/// The audit log's name for whoever runs the `floe` command on the data dir itself.
pub const LOCAL_OPERATOR: &str = "local-operator";

/// A metadata file passed over by a rollback, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedMetadata {
    pub location: String,
    pub problem: String,
}

/// A snapshot a rollback loses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostSnapshot {
    pub snapshot_id: i64,
    /// Known when the lost metadata is readable (a forced rollback) or, for format v2, from the
    /// snapshot's manifest list.
    pub sequence_number: Option<i64>,
}

/// What [`rollback`] found, and did or would do.
#[derive(Debug, Clone)]
pub struct RollbackReport {
    pub applied: bool,
    /// The metadata file the pointer named.
    pub damaged: String,
    /// What is wrong with it; `None` when it is intact and the rollback was forced.
    pub problem: Option<String>,
    /// The metadata file the pointer moves (or would move) to.
    pub restored: String,
    /// Its current snapshot.
    pub restored_snapshot_id: Option<i64>,
    pub restored_last_sequence_number: i64,
    /// Other metadata files passed over, newest first: unreadable ones, and ones numbered above
    /// the damaged one (never committed).
    pub skipped: Vec<SkippedMetadata>,
    /// Metadata versions (the number their file names start with) after the restored one, up to
    /// the damaged one: each is a commit that is lost.
    pub lost_versions: Vec<i64>,
    /// Snapshots the restored metadata does not know and that were written after it.
    pub lost_snapshots: Vec<LostSnapshot>,
}

/// Moves the table's pointer back to the newest intact metadata file when the current one is
/// missing, unreadable or not valid table metadata. See the module docs.
///
/// Refuses ([`MaintenanceError::InvalidRequest`]) when the current file is intact, unless
/// [`RepairOptions::force`]: then it rolls back to the newest intact file of the current
/// metadata's log. A storage error other than "not found" is returned as it is: a store that is
/// down is no reason to roll back.
pub async fn rollback(
    catalog: &Catalog,
    table: &TableName,
    options: &RepairOptions,
) -> Result<RollbackReport> {
    let pointer = catalog.store().load_table(table).await?;
    let damaged = pointer.metadata_location.clone();
    let (current, problem) = match read_metadata(catalog, &damaged).await? {
        Ok(file) => (Some(file), None),
        Err(problem) => {
            tracing::warn!(%table, location = %damaged, %problem, "the current metadata file is damaged");
            (None, Some(problem))
        }
    };
    if current.is_some() && !options.force {
        return Err(MaintenanceError::InvalidRequest(format!(
            "the current metadata file of {table} ({damaged}) is intact: nothing to roll back \
             (force a rollback by one version with --force)"
        )));
    }

    let damaged_version = metadata_file_version(&damaged);
    let mut skipped = Vec::new();
    let candidates = match &current {
        Some(file) => log_candidates(file.metadata()),
        None => listed_candidates(catalog, &damaged, damaged_version, &mut skipped).await?,
    };
    let mut restored = None;
    for location in candidates {
        match read_metadata(catalog, &location).await? {
            Ok(file) => {
                restored = Some((location, file));
                break;
            }
            Err(problem) => skipped.push(SkippedMetadata { location, problem }),
        }
    }
    let Some((restored, file)) = restored else {
        let passed_over: Vec<String> = skipped
            .iter()
            .map(|s| format!("{} ({})", s.location, s.problem))
            .collect();
        return Err(MaintenanceError::InvalidRequest(format!(
            "no intact metadata file of {table} to roll back to; passed over: {}",
            if passed_over.is_empty() {
                "none".to_string()
            } else {
                passed_over.join(", ")
            }
        )));
    };
    let metadata = file.metadata();
    if let Some(current) = &current
        && current.metadata().uuid() != metadata.uuid()
    {
        return Err(MaintenanceError::InvalidRequest(format!(
            "{restored} belongs to another table (uuid {}) than {table} (uuid {})",
            metadata.uuid(),
            current.metadata().uuid()
        )));
    }

    let restored_version = metadata_file_version(&restored);
    let lost_versions = if restored_version >= 0 && damaged_version > restored_version {
        (restored_version + 1..=damaged_version).collect()
    } else {
        Vec::new()
    };
    let lost_snapshots = match &current {
        Some(current) => current
            .metadata()
            .snapshots()
            .filter(|s| metadata.snapshot_by_id(s.snapshot_id()).is_none())
            .map(|s| LostSnapshot {
                snapshot_id: s.snapshot_id(),
                sequence_number: Some(s.sequence_number()),
            })
            .collect(),
        None => unknown_snapshots(catalog, metadata).await?,
    };
    let mut report = RollbackReport {
        applied: false,
        damaged: damaged.clone(),
        problem,
        restored: restored.clone(),
        restored_snapshot_id: metadata.current_snapshot_id(),
        restored_last_sequence_number: metadata.last_sequence_number(),
        skipped,
        lost_versions,
        lost_snapshots,
    };
    if !options.apply {
        return Ok(report);
    }

    let location = catalog.warehouse().table_location(metadata.location())?;
    let swap = PointerSwap {
        table: table.clone(),
        // Only from the state inspected: a writer or another repair in between wins.
        expected: Some(damaged),
        new_location: restored,
        // The lost commits may have moved the table; the restored file says where it is.
        location: Some(location),
        new_checksum: file.checksum().clone(),
        // The table's state went back: every job judges it afresh.
        events: floe_store::CommitEvents::reevaluate_all(),
    };
    match catalog.store().swap_pointers(&[swap]).await {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(MaintenanceError::Conflict(format!(
                "the pointer of {table} moved while it was inspected; nothing was changed: run the repair again"
            )));
        }
        Err(err) => return Err(err.into()),
    }
    report.applied = true;
    tracing::warn!(%table, restored = %report.restored, lost = ?report.lost_versions, "rolled the table back to an intact metadata file");
    audit(catalog, table, options, "floe repair --rollback").await?;
    Ok(report)
}

/// One data or delete file of the current snapshot that is gone or damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingFile {
    pub location: String,
    /// `data`, `position-deletes` or `equality-deletes`.
    pub content: &'static str,
    /// As `field=value/...`; empty for an unpartitioned table.
    pub partition: String,
    pub record_count: u64,
    /// The size the manifest records.
    pub expected_size: u64,
    /// The size found; `None` when the file is gone.
    pub found_size: Option<u64>,
}

/// What [`forget_missing_files`] found, and did or would do.
#[derive(Debug, Clone, Default)]
pub struct ForgetReport {
    pub applied: bool,
    /// The snapshot inspected; `None` for a table without one.
    pub inspected_snapshot_id: Option<i64>,
    /// Data and delete files checked.
    pub files_checked: usize,
    pub missing: Vec<MissingFile>,
    /// The snapshot committed to forget them.
    pub snapshot_id: Option<i64>,
}

impl ForgetReport {
    /// Rows lost with the missing data files.
    pub fn records_lost(&self) -> u64 {
        self.missing
            .iter()
            .filter(|f| f.content == "data")
            .map(|f| f.record_count)
            .sum()
    }

    /// The partitions that lose a file, with the rows they lose (0 where only delete files go).
    pub fn partitions_affected(&self) -> BTreeMap<String, u64> {
        let mut partitions = BTreeMap::new();
        for file in &self.missing {
            let rows = partitions.entry(file.partition.clone()).or_insert(0);
            if file.content == "data" {
                *rows += file.record_count;
            }
        }
        partitions
    }
}

/// Checks every data and delete file of the table's current snapshot (HEAD: exists, and its size
/// equals the manifest's `file_size_in_bytes`) and, with [`RepairOptions::apply`], commits one
/// snapshot that removes exactly the entries of the missing or damaged ones. See the module docs.
pub async fn forget_missing_files(
    catalog: &Catalog,
    table: &TableName,
    options: &RepairOptions,
) -> Result<ForgetReport> {
    if !options.apply {
        return inspect(catalog, table).await.map(|(report, _)| report);
    }
    crate::with_lease(catalog, table, async {
        let (mut report, metadata) = inspect(catalog, table).await?;
        if report.missing.is_empty() {
            return Ok(report);
        }
        let mut change = SnapshotChange::new(
            if report.missing.iter().all(|f| f.content == "data") {
                Operation::Delete
            } else {
                // Rows that a forgotten delete file deleted come back: not a pure delete.
                Operation::Overwrite
            },
        );
        for file in &report.missing {
            if file.content == "data" {
                change.removed.push(file.location.clone());
            } else {
                change.removed_deletes.push(file.location.clone());
            }
        }
        change.properties = HashMap::from([(
            REPAIR_PROPERTY.to_string(),
            "forget-missing-files".to_string(),
        )]);
        let file_io = catalog.file_io();
        let produced = produce(&metadata, &file_io, change)
            .await
            .map_err(|err| MaintenanceError::Iceberg(err.to_string()))?;
        let written = produced.written_files.clone();
        let snapshot_id = produced.snapshot_id;
        match catalog
            .commit_table(produced.into_table_change(table.clone()))
            .await
        {
            Ok(_) => {}
            Err(err) => {
                // Refused or failed before the swap: nothing names the new manifests.
                producer::forget_written(&metadata, &file_io, &written).await;
                return Err(match err {
                    CommitError::Conflict(message) => MaintenanceError::Conflict(format!(
                        "{table} changed while its files were checked ({message}); nothing was changed: run the repair again"
                    )),
                    err => err.into(),
                });
            }
        }
        report.applied = true;
        report.snapshot_id = Some(snapshot_id);
        tracing::warn!(%table, snapshot_id, files = report.missing.len(), records = report.records_lost(), "forgot missing files");
        audit(catalog, table, options, "floe repair --forget-missing-files").await?;
        Ok(report)
    })
    .await
}

/// The current snapshot's files checked, and the metadata they were read from.
async fn inspect(catalog: &Catalog, table: &TableName) -> Result<(ForgetReport, TableMetadata)> {
    let loaded = catalog.load_table(table).await?;
    let metadata = loaded.metadata().clone();
    let mut report = ForgetReport::default();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok((report, metadata));
    };
    report.inspected_snapshot_id = Some(snapshot.snapshot_id());
    let warehouse = catalog.warehouse();
    let list_bytes = warehouse.get(snapshot.manifest_list()).await?;
    let list = ManifestList::parse_with_version(&list_bytes, metadata.format_version())
        .map_err(|err| unreadable(snapshot.manifest_list(), err))?;
    let mut files: BTreeMap<String, MissingFile> = BTreeMap::new();
    for manifest_file in list.entries() {
        let path = &manifest_file.manifest_path;
        let bytes = warehouse.get(path).await?;
        let manifest = Manifest::parse_avro(&bytes).map_err(|err| unreadable(path, err))?;
        let spec = metadata.partition_spec_by_id(manifest_file.partition_spec_id);
        for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
            let data = entry.data_file();
            let partition = match spec {
                Some(spec) => partition_text(spec, &metadata, data.partition()),
                None => format!("{:?}", data.partition()),
            };
            files
                .entry(data.file_path().to_string())
                .or_insert(MissingFile {
                    location: data.file_path().to_string(),
                    content: match data.content_type() {
                        DataContentType::Data => "data",
                        DataContentType::PositionDeletes => "position-deletes",
                        DataContentType::EqualityDeletes => "equality-deletes",
                    },
                    partition,
                    record_count: data.record_count(),
                    expected_size: data.file_size_in_bytes(),
                    found_size: None,
                });
        }
    }
    report.files_checked = files.len();
    let checks = futures::stream::iter(files.into_values())
        .map(|file| async move {
            let found = found_size(catalog, &file.location).await;
            (file, found)
        })
        .buffer_unordered(CHECKS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    for (mut file, found) in checks {
        let found = found?;
        if found != Some(file.expected_size) {
            file.found_size = found;
            report.missing.push(file);
        }
    }
    report.missing.sort_by(|a, b| a.location.cmp(&b.location));
    Ok((report, metadata))
}

/// The file's size, `None` when it does not exist.
async fn found_size(catalog: &Catalog, location: &str) -> Result<Option<u64>> {
    let warehouse = catalog.warehouse();
    let path = warehouse.object_path(location)?;
    match warehouse.store().head(&path).await {
        Ok(meta) => Ok(Some(meta.size)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(err) => Err(MaintenanceError::Unreadable {
            location: location.to_string(),
            message: err.to_string(),
        }),
    }
}

/// `field=value/...` as Iceberg spells partition paths; the raw values when the spec does not
/// fit the values (a damaged manifest).
fn partition_text(
    spec: &iceberg::spec::PartitionSpec,
    metadata: &TableMetadata,
    values: &iceberg::spec::Struct,
) -> String {
    let schema = metadata.current_schema();
    if spec.is_unpartitioned() {
        return String::new();
    }
    match spec.partition_type(schema) {
        Ok(partition_type)
            if partition_type.fields().len() == spec.fields().len()
                && values.fields().len() == spec.fields().len() =>
        {
            spec.partition_to_path(values, schema.clone())
        }
        _ => format!("{values:?}"),
    }
}

/// The metadata file at `location`, or why it is not usable (missing, unreadable, not table
/// metadata). Errors that say nothing about the file (a store that is down) are errors. Always
/// read from storage, never from the engine's cache, which may hold a file that is gone since.
async fn read_metadata(
    catalog: &Catalog,
    location: &str,
) -> Result<std::result::Result<MetadataFile, String>> {
    let bytes = match catalog.warehouse().get(location).await {
        Ok(bytes) => bytes,
        Err(StorageError::NotFound { .. }) => return Ok(Err("missing".to_string())),
        Err(err) if err.is_transient() => return Err(err.into()),
        Err(err) => return Ok(Err(format!("unreadable: {err}"))),
    };
    Ok(MetadataFile::parse(location, bytes).map_err(|err| format!("not table metadata: {err}")))
}

/// A forced rollback's candidates: the current metadata's log, newest first.
fn log_candidates(metadata: &TableMetadata) -> Vec<String> {
    let mut log: Vec<_> = metadata.metadata_log().to_vec();
    log.sort_by_key(|entry| std::cmp::Reverse(entry.timestamp_ms));
    log.into_iter().map(|entry| entry.metadata_file).collect()
}

/// The metadata files in the damaged file's folder, newest first by the version in their names
/// (then by the time they were written). Files numbered above the damaged one were never
/// committed (a writer that lost its race, or crashed): they go to `skipped`.
async fn listed_candidates(
    catalog: &Catalog,
    damaged: &str,
    damaged_version: i64,
    skipped: &mut Vec<SkippedMetadata>,
) -> Result<Vec<String>> {
    let Some((folder, _)) = damaged.rsplit_once('/') else {
        return Ok(Vec::new());
    };
    let listed = catalog.warehouse().list_under_with_meta(folder).await?;
    let damaged_key = catalog.warehouse().object_path(damaged)?;
    let mut candidates = Vec::new();
    for object in listed {
        if !object.location.ends_with(".metadata.json")
            || catalog.warehouse().object_path(&object.location)? == damaged_key
        {
            continue;
        }
        let version = metadata_file_version(&object.location);
        if damaged_version >= 0 && version > damaged_version {
            skipped.push(SkippedMetadata {
                location: object.location,
                problem: format!(
                    "version {version} is newer than the current pointer's: it was never committed"
                ),
            });
            continue;
        }
        candidates.push((version, object.last_modified, object.location));
    }
    candidates.sort_by_key(|(version, written, _)| std::cmp::Reverse((*version, *written)));
    Ok(candidates
        .into_iter()
        .map(|(_, _, location)| location)
        .collect())
}

/// Snapshots whose manifest lists lie in the table's `metadata/` folder, written after `restored`
/// was, that `restored` does not know: the commits the rollback loses (or, rarely, commits that
/// failed and left their manifest list behind).
async fn unknown_snapshots(
    catalog: &Catalog,
    restored: &TableMetadata,
) -> Result<Vec<LostSnapshot>> {
    let folder = format!("{}/metadata", restored.location().trim_end_matches('/'));
    let since = UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(restored.last_updated_ms()).unwrap_or(0));
    let mut lost = BTreeSet::new();
    for object in catalog.warehouse().list_under_with_meta(&folder).await? {
        let Some(name) = object.location.rsplit('/').next() else {
            continue;
        };
        let Some(id) = name
            .strip_prefix("snap-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|id| id.parse::<i64>().ok())
        else {
            continue;
        };
        if object.last_modified >= since && restored.snapshot_by_id(id).is_none() {
            lost.insert((id, object.location));
        }
    }
    let mut snapshots = Vec::new();
    for (snapshot_id, location) in lost {
        snapshots.push(LostSnapshot {
            snapshot_id,
            sequence_number: manifest_list_sequence_number(catalog, restored, &location).await,
        });
    }
    snapshots.sort_by_key(|s| (s.sequence_number, s.snapshot_id));
    Ok(snapshots)
}

/// A v2 snapshot's sequence number, read from its manifest list: the highest its manifests carry
/// (the manifests it added carry its own). `None` when unreadable or v1.
async fn manifest_list_sequence_number(
    catalog: &Catalog,
    metadata: &TableMetadata,
    location: &str,
) -> Option<i64> {
    let bytes = catalog.warehouse().get(location).await.ok()?;
    let list = ManifestList::parse_with_version(&bytes, metadata.format_version()).ok()?;
    list.entries().iter().map(|m| m.sequence_number).max()
}

/// Records an applied repair in the audit log. The repair is done by then: a failure to record
/// it is reported, not undone.
async fn audit(
    catalog: &Catalog,
    table: &TableName,
    options: &RepairOptions,
    route: &str,
) -> Result<()> {
    let record = AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default(),
        principal: options.principal.clone(),
        route: route.to_string(),
        target: format!("{}/{table}", catalog.warehouse().name()),
        outcome: "allowed".to_string(),
        status: 200,
        request_id: uuid::Uuid::new_v4().to_string(),
    };
    catalog
        .store()
        .access()
        .record_audit(&[record])
        .await
        .map_err(|err| {
            MaintenanceError::Commit(CommitError::Internal(format!(
                "the repair of {table} was applied, but its audit record could not be written: {err}"
            )))
        })
}

fn unreadable(location: &str, err: iceberg::Error) -> MaintenanceError {
    MaintenanceError::Unreadable {
        location: location.to_string(),
        message: err.to_string(),
    }
}
