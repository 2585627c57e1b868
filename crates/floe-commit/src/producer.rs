//! Floe's snapshot producer: new table snapshots that add *and remove* data files.
//!
//! iceberg-rust 0.10 only produces fast-append snapshots. Every other write — SQL `DELETE` and
//! `UPDATE` (copy-on-write), compaction, `INSERT OVERWRITE` — needs a snapshot that drops some data
//! files of the current snapshot and adds others. This module is the one place that writes such
//! snapshots; every caller goes through [`produce`].
//!
//! # What it writes
//!
//! Given the table as the caller read it (metadata and a [`FileIO`]) and a [`SnapshotChange`]
//! (data files to add, data-file paths to remove):
//!
//! 1. it reads the current snapshot's manifest list; every manifest that holds none of the removed
//!    files is carried over unchanged (no rewrite);
//! 2. every data manifest that holds a removed file is rewritten: its live entries stay `EXISTING`
//!    (with their snapshot id and data/file sequence numbers), the removed ones become `DELETED`
//!    (keeping their sequence numbers, as the spec asks), and entries already `DELETED` by an
//!    earlier snapshot are dropped;
//! 3. the added files go into one new manifest as `ADDED` entries whose sequence numbers are
//!    inherited from the manifest list (v2), i.e. the new snapshot's sequence number;
//! 4. a manifest list names them all, written for sequence number
//!    `last-sequence-number + 1` and a fresh random snapshot id unused by the table.
//!
//! The result is a [`ProducedSnapshot`]: requirements `assert-table-uuid` and
//! `assert-ref-snapshot-id main = <the snapshot it read>`, and updates `add-snapshot` (with the
//! operation and a summary of added/deleted files, records and sizes, and the new totals) and
//! `set-snapshot-ref main`. Hand them to [`crate::Catalog::commit`] (via
//! [`ProducedSnapshot::into_table_change`]) or to any Iceberg REST catalog. Because the
//! requirement pins the snapshot the producer read, a concurrent commit in between makes this
//! commit fail with a conflict (409) instead of silently dropping the other writer's files: the
//! caller re-reads and produces again.
//!
//! Format versions 1 and 2 are supported; v3 (row lineage) is refused for now.

use std::collections::{HashMap, HashSet};

use iceberg::io::FileIO;
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, FormatVersion, MAIN_BRANCH, ManifestContentType,
    ManifestEntry, ManifestFile, ManifestList, ManifestListWriter, ManifestWriter,
    ManifestWriterBuilder, Operation, PartitionSpecRef, Snapshot, SnapshotRef, SnapshotReference,
    SnapshotRetention, SnapshotSummaryCollector, Summary, TableMetadata,
};
use iceberg::{Error, ErrorKind, Result, TableRequirement, TableUpdate};
use uuid::Uuid;

use crate::TableChange;
use floe_store::TableName;

/// What a new snapshot changes: files in, files out.
#[derive(Debug, Clone)]
pub struct SnapshotChange {
    /// Recorded in the snapshot summary: `append`, `overwrite`, `delete` or `replace`.
    pub operation: Operation,
    /// Data files to add (already written).
    pub added: Vec<DataFile>,
    /// Paths of data files of the current snapshot to remove.
    pub removed: Vec<String>,
    /// Delete files (position or equality deletes, already written) to add: a row delta.
    pub added_deletes: Vec<DataFile>,
    /// Paths of delete files of the current snapshot to remove (e.g. deletes a compaction has
    /// applied and that no remaining data file needs).
    pub removed_deletes: Vec<String>,
    /// Extra snapshot-summary properties; the computed counts win over these.
    pub properties: HashMap<String, String>,
}

impl SnapshotChange {
    pub fn new(operation: Operation) -> Self {
        Self {
            operation,
            added: Vec::new(),
            removed: Vec::new(),
            added_deletes: Vec::new(),
            removed_deletes: Vec::new(),
            properties: HashMap::new(),
        }
    }

    pub fn adding_deletes(mut self, files: impl IntoIterator<Item = DataFile>) -> Self {
        self.added_deletes.extend(files);
        self
    }

    pub fn removing_deletes(mut self, paths: impl IntoIterator<Item = String>) -> Self {
        self.removed_deletes.extend(paths);
        self
    }

    fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.added_deletes.is_empty()
            && self.removed_deletes.is_empty()
    }

    pub fn adding(mut self, files: impl IntoIterator<Item = DataFile>) -> Self {
        self.added.extend(files);
        self
    }

    pub fn removing(mut self, paths: impl IntoIterator<Item = String>) -> Self {
        self.removed.extend(paths);
        self
    }
}

/// A written, not yet committed snapshot: what to commit, and what was written for it.
#[derive(Debug, Clone)]
pub struct ProducedSnapshot {
    pub snapshot_id: i64,
    pub requirements: Vec<TableRequirement>,
    pub updates: Vec<TableUpdate>,
    /// The manifests and manifest list written; unreferenced if the commit fails.
    pub written_files: Vec<String>,
}

impl ProducedSnapshot {
    /// The change for [`crate::Catalog::commit`].
    pub fn into_table_change(self, table: TableName) -> TableChange {
        TableChange {
            table,
            requirements: self.requirements,
            updates: self.updates,
        }
    }

    /// The requirements and updates, e.g. for a REST `updateTable`.
    pub fn into_parts(self) -> (Vec<TableRequirement>, Vec<TableUpdate>) {
        (self.requirements, self.updates)
    }
}

/// Writes the manifests and manifest list of a snapshot applying `change` to the table's current
/// snapshot of `main`, and returns what to commit. See the module docs.
pub async fn produce(
    metadata: &TableMetadata,
    file_io: &FileIO,
    change: SnapshotChange,
) -> Result<ProducedSnapshot> {
    let format_version = metadata.format_version();
    if format_version == FormatVersion::V3 {
        return Err(Error::new(
            ErrorKind::FeatureUnsupported,
            "writing snapshots of format-version 3 tables is not supported yet",
        ));
    }
    if change.is_empty() {
        return Err(Error::new(
            ErrorKind::PreconditionFailed,
            "a snapshot must add or remove at least one file",
        ));
    }
    for file in &change.added {
        if file.content_type() != DataContentType::Data {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!(
                    "{} is a delete file: add it with `adding_deletes`",
                    file.file_path()
                ),
            ));
        }
    }
    for file in &change.added_deletes {
        if file.content_type() == DataContentType::Data {
            return Err(Error::new(
                ErrorKind::DataInvalid,
                format!("{} is a data file: add it with `adding`", file.file_path()),
            ));
        }
    }
    if format_version == FormatVersion::V1
        && !(change.added_deletes.is_empty() && change.removed_deletes.is_empty())
    {
        return Err(Error::new(
            ErrorKind::DataInvalid,
            "format-version 1 tables have no delete files",
        ));
    }
    let mut writer = Writer {
        metadata,
        file_io,
        snapshot_id: unused_snapshot_id(metadata),
        commit_uuid: Uuid::now_v7(),
        manifests_written: 0,
        written_files: Vec::new(),
    };
    let result = writer.write(change).await;
    if result.is_err() {
        forget_written(metadata, file_io, &writer.written_files).await;
    }
    result
}

/// Deletes files written for a snapshot that will not be committed (the producer's manifests, a
/// writer's data files) — only those inside the table's location, which is where writers put
/// them; anything else is left alone. Best effort: a file that cannot be deleted is logged and
/// left for unreferenced-file removal.
pub async fn forget_written<S: AsRef<str>>(
    metadata: &TableMetadata,
    file_io: &FileIO,
    written: impl IntoIterator<Item = S>,
) {
    let written: Vec<String> = written
        .into_iter()
        .map(|path| path.as_ref().to_string())
        .collect();
    for path in &written {
        if floe_storage::is_inside_location(metadata.location(), path) {
            if let Err(err) = file_io.delete(path).await {
                tracing::warn!(path, error = %err, "could not delete an unreferenced file");
            }
        } else {
            tracing::warn!(
                path,
                table_location = metadata.location(),
                "not deleting a file outside the table's location"
            );
        }
    }
}

struct Writer<'a> {
    metadata: &'a TableMetadata,
    file_io: &'a FileIO,
    snapshot_id: i64,
    commit_uuid: Uuid,
    manifests_written: u32,
    written_files: Vec<String>,
}

impl Writer<'_> {
    async fn write(&mut self, change: SnapshotChange) -> Result<ProducedSnapshot> {
        let metadata = self.metadata;
        let parent = metadata.current_snapshot().cloned();
        let schema = metadata.current_schema().clone();
        let default_spec = metadata.default_partition_spec().clone();

        let mut summary = SnapshotSummaryCollector::default();
        for file in change.added.iter().chain(&change.added_deletes) {
            summary.add_file(file, schema.clone(), default_spec.clone());
        }

        // 1-2: carry manifests over, rewrite those holding removed files.
        let mut remove_data: HashSet<&str> = change.removed.iter().map(String::as_str).collect();
        let mut remove_deletes: HashSet<&str> =
            change.removed_deletes.iter().map(String::as_str).collect();
        let mut manifests: Vec<ManifestFile> = Vec::new();
        for manifest in self.parent_manifests(parent.as_ref()).await? {
            let to_remove = match manifest.content {
                ManifestContentType::Data => &mut remove_data,
                ManifestContentType::Deletes => &mut remove_deletes,
            };
            if to_remove.is_empty() {
                manifests.push(manifest);
                continue;
            }
            let loaded = manifest.load_manifest(self.file_io).await?;
            let touched = loaded
                .entries()
                .iter()
                .any(|e| e.is_alive() && to_remove.contains(e.file_path()));
            if !touched {
                manifests.push(manifest);
                continue;
            }
            let spec = self.spec(&manifest)?;
            let mut rewritten = self.manifest_writer(spec.clone(), manifest.content)?;
            for entry in loaded.entries() {
                if !entry.is_alive() {
                    continue; // deleted by an earlier snapshot: not carried further
                }
                let (sequence_number, snapshot_id) = sequence_and_snapshot(entry)?;
                let file = entry.data_file().clone();
                if to_remove.remove(entry.file_path()) {
                    summary.remove_file(&file, schema.clone(), spec.clone());
                    rewritten.add_delete_file(file, sequence_number, entry.file_sequence_number)?;
                } else {
                    rewritten.add_existing_file(
                        file,
                        snapshot_id,
                        sequence_number,
                        entry.file_sequence_number,
                    )?;
                }
            }
            manifests.push(rewritten.write_manifest_file().await?);
        }
        for (left, kind) in [(&remove_data, "data"), (&remove_deletes, "delete")] {
            if let Some(missing) = left.iter().next() {
                return Err(Error::new(
                    ErrorKind::PreconditionFailed,
                    format!(
                        "cannot remove {missing}: it is not a {kind} file of the table's current \
                         snapshot (it may have been removed by a concurrent commit)"
                    ),
                ));
            }
        }

        // 3: the added files, data and deletes in their own manifests. Added files are written
        // for the default spec (the writer checks their partition values against it).
        for (files, content) in [
            (change.added, ManifestContentType::Data),
            (change.added_deletes, ManifestContentType::Deletes),
        ] {
            if files.is_empty() {
                continue;
            }
            let mut added = self.manifest_writer(default_spec.clone(), content)?;
            for file in files {
                // v2: the sequence number is inherited from the manifest list; v1: none.
                added.add_file(file, -1)?;
            }
            manifests.push(added.write_manifest_file().await?);
        }

        let properties = {
            let mut properties = change.properties;
            properties.extend(summary.build());
            properties
        };
        self.finish(parent, change.operation, manifests, properties)
            .await
    }

    /// The manifests of `parent`'s manifest list (none without a parent).
    async fn parent_manifests(&self, parent: Option<&SnapshotRef>) -> Result<Vec<ManifestFile>> {
        let Some(parent) = parent else {
            return Ok(Vec::new());
        };
        let bytes = self
            .file_io
            .new_input(parent.manifest_list())?
            .read()
            .await?;
        let list = ManifestList::parse_with_version(&bytes, self.metadata.format_version())?;
        // Collected: the list's iterator is not `Send`, and the producer's future must be.
        Ok(list.consume_entries().into_iter().collect())
    }

    fn spec(&self, manifest: &ManifestFile) -> Result<PartitionSpecRef> {
        self.metadata
            .partition_spec_by_id(manifest.partition_spec_id)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::DataInvalid,
                    format!(
                        "manifest {} names unknown partition spec {}",
                        manifest.manifest_path, manifest.partition_spec_id
                    ),
                )
            })
    }

    /// Writes the manifest list naming `manifests` and returns the snapshot to commit on top of
    /// `parent`.
    async fn finish(
        &mut self,
        parent: Option<SnapshotRef>,
        operation: Operation,
        manifests: Vec<ManifestFile>,
        mut properties: HashMap<String, String>,
    ) -> Result<ProducedSnapshot> {
        let metadata = self.metadata;

        // 4: the manifest list and the snapshot.
        let sequence_number = metadata.next_sequence_number();
        let parent_id = parent.as_ref().map(|s| s.snapshot_id());
        let list_path = format!(
            "{}/metadata/snap-{}-0-{}.{}",
            metadata.location(),
            self.snapshot_id,
            self.commit_uuid,
            DataFileFormat::Avro
        );
        let output = self.file_io.new_output(&list_path)?;
        self.written_files.push(list_path.clone());
        let mut list = match metadata.format_version() {
            FormatVersion::V1 => {
                ManifestListWriter::v1(output.writer().await?, self.snapshot_id, parent_id)
            }
            _ => ManifestListWriter::v2(
                output.writer().await?,
                self.snapshot_id,
                parent_id,
                sequence_number,
            ),
        };
        list.add_manifests(manifests.into_iter())?;
        list.close().await?;

        let previous = parent.as_ref().map(|s| s.summary());
        set_totals(&mut properties, previous);
        let snapshot = Snapshot::builder()
            .with_manifest_list(list_path)
            .with_snapshot_id(self.snapshot_id)
            .with_parent_snapshot_id(parent_id)
            .with_sequence_number(sequence_number)
            .with_summary(Summary {
                operation,
                additional_properties: properties,
            })
            .with_schema_id(metadata.current_schema_id())
            .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
            .build();

        Ok(ProducedSnapshot {
            snapshot_id: self.snapshot_id,
            requirements: vec![
                TableRequirement::UuidMatch {
                    uuid: metadata.uuid(),
                },
                TableRequirement::RefSnapshotIdMatch {
                    r#ref: MAIN_BRANCH.to_string(),
                    snapshot_id: parent_id,
                },
            ],
            updates: vec![
                TableUpdate::AddSnapshot { snapshot },
                TableUpdate::SetSnapshotRef {
                    ref_name: MAIN_BRANCH.to_string(),
                    reference: SnapshotReference::new(
                        self.snapshot_id,
                        SnapshotRetention::branch(None, None, None),
                    ),
                },
            ],
            written_files: std::mem::take(&mut self.written_files),
        })
    }

    fn manifest_writer(
        &mut self,
        spec: PartitionSpecRef,
        content: ManifestContentType,
    ) -> Result<ManifestWriter> {
        let path = format!(
            "{}/metadata/{}-m{}.{}",
            self.metadata.location(),
            self.commit_uuid,
            self.manifests_written,
            DataFileFormat::Avro
        );
        self.manifests_written += 1;
        let output = self.file_io.new_output(&path)?;
        self.written_files.push(path);
        let builder = ManifestWriterBuilder::new(
            output,
            Some(self.snapshot_id),
            self.metadata.current_schema().clone(),
            spec.as_ref().clone(),
        );
        Ok(match (self.metadata.format_version(), content) {
            (FormatVersion::V1, _) => builder.build_v1(),
            (_, ManifestContentType::Data) => builder.build_v2_data(),
            (_, ManifestContentType::Deletes) => builder.build_v2_deletes(),
        })
    }
}

/// A live entry's data sequence number and the snapshot that added its file, which an
/// `EXISTING` or `DELETED` entry must keep.
fn sequence_and_snapshot(entry: &ManifestEntry) -> Result<(i64, i64)> {
    let sequence_number = entry.sequence_number().ok_or_else(|| {
        Error::new(
            ErrorKind::DataInvalid,
            format!(
                "manifest entry for {} has no sequence number",
                entry.file_path()
            ),
        )
    })?;
    let snapshot_id = entry.snapshot_id().ok_or_else(|| {
        Error::new(
            ErrorKind::DataInvalid,
            format!(
                "manifest entry for {} has no snapshot id",
                entry.file_path()
            ),
        )
    })?;
    Ok((sequence_number, snapshot_id))
}

/// `total-*` = previous total + added − removed. With no previous snapshot the previous totals are
/// 0; a previous snapshot without a total leaves that total unknown (unset), as in Iceberg Java.
fn set_totals(properties: &mut HashMap<String, String>, previous: Option<&Summary>) {
    const TOTALS: [(&str, &str, &str); 6] = [
        ("total-data-files", "added-data-files", "deleted-data-files"),
        (
            "total-delete-files",
            "added-delete-files",
            "removed-delete-files",
        ),
        ("total-records", "added-records", "deleted-records"),
        ("total-files-size", "added-files-size", "removed-files-size"),
        (
            "total-position-deletes",
            "added-position-deletes",
            "removed-position-deletes",
        ),
        (
            "total-equality-deletes",
            "added-equality-deletes",
            "removed-equality-deletes",
        ),
    ];
    let number = |map: &HashMap<String, String>, key: &str| -> Option<u64> {
        map.get(key).and_then(|v| v.parse().ok())
    };
    for (total, added, removed) in TOTALS {
        let before = match previous {
            None => Some(0),
            Some(summary) => number(&summary.additional_properties, total),
        };
        let Some(before) = before else { continue };
        let added = number(properties, added).unwrap_or(0);
        let removed = number(properties, removed).unwrap_or(0);
        let after = (before + added).saturating_sub(removed);
        properties.insert(total.to_string(), after.to_string());
    }
}

/// A random positive snapshot id the table does not use yet (as iceberg-rust picks them).
fn unused_snapshot_id(metadata: &TableMetadata) -> i64 {
    loop {
        let (high, low) = Uuid::new_v4().as_u64_pair();
        let id = ((high ^ low) as i64).checked_abs().unwrap_or(1);
        if id != 0 && metadata.snapshot_by_id(id).is_none() {
            return id;
        }
    }
}

/// Iceberg's `commit.manifest.target-size-bytes`: the size manifests are written at.
pub const MANIFEST_TARGET_SIZE: &str = "commit.manifest.target-size-bytes";
/// Its default, as in Iceberg Java: 8 MiB.
pub const DEFAULT_MANIFEST_TARGET_SIZE: u64 = 8 * 1024 * 1024;

/// What [`produce_manifest_rewrite`] rewrote: a `replace` snapshot with the same live files.
#[derive(Debug, Clone)]
pub struct RewrittenManifests {
    pub produced: ProducedSnapshot,
    /// Data manifests replaced (read and dropped from the new manifest list).
    pub manifests_replaced: usize,
    pub bytes_replaced: u64,
    /// Manifests written in their place.
    pub manifests_created: usize,
    pub bytes_created: u64,
    /// Manifests carried over unchanged (large data manifests, delete manifests).
    pub manifests_kept: usize,
    /// Live data-file entries moved into the new manifests.
    pub entries: usize,
    /// The manifests written (in `produced.written_files` too), kept across a rebase.
    pub created: Vec<ManifestFile>,
    /// Paths of the manifests replaced.
    pub replaced: Vec<String>,
}

impl RewrittenManifests {
    /// The manifest list of the snapshot produced last (all the rest of `written_files` are
    /// the created manifests, which a rebase reuses).
    pub fn manifest_list_written(&self) -> Vec<String> {
        let created: HashSet<&str> = self
            .created
            .iter()
            .map(|m| m.manifest_path.as_str())
            .collect();
        self.produced
            .written_files
            .iter()
            .filter(|f| !created.contains(f.as_str()))
            .cloned()
            .collect()
    }
}

/// Puts an uncommitted manifest rewrite on top of the table's current snapshot after a
/// concurrent commit, without rewriting anything: when every manifest it replaced is still in
/// the current manifest list (a concurrent append only adds manifests), a new manifest list of
/// its created manifests plus every other current manifest, under the same snapshot id (as
/// Iceberg Java keeps a snapshot's id across commit retries). Returns `false`, changing
/// nothing, when a replaced manifest is gone (the rewrite must be produced again).
pub async fn rebase_manifest_rewrite(
    metadata: &TableMetadata,
    file_io: &FileIO,
    rewritten: &mut RewrittenManifests,
) -> Result<bool> {
    let Some(parent) = metadata.current_snapshot().cloned() else {
        return Ok(false);
    };
    if metadata
        .snapshot_by_id(rewritten.produced.snapshot_id)
        .is_some()
    {
        return Ok(false);
    }
    let mut writer = Writer {
        metadata,
        file_io,
        snapshot_id: rewritten.produced.snapshot_id,
        commit_uuid: Uuid::now_v7(),
        manifests_written: 0,
        written_files: Vec::new(),
    };
    let current = writer.parent_manifests(Some(&parent)).await?;
    let replaced: HashSet<&str> = rewritten.replaced.iter().map(String::as_str).collect();
    let present = current
        .iter()
        .filter(|m| replaced.contains(m.manifest_path.as_str()))
        .count();
    if present != replaced.len() {
        return Ok(false);
    }
    let kept: Vec<ManifestFile> = current
        .into_iter()
        .filter(|m| !replaced.contains(m.manifest_path.as_str()))
        .collect();
    let manifests_kept = kept.len();
    let properties = rewrite_summary(
        rewritten.manifests_created,
        manifests_kept,
        rewritten.manifests_replaced,
        rewritten.entries,
    );
    let manifests = rewritten.created.iter().cloned().chain(kept).collect();
    let produced = match writer
        .finish(Some(parent), Operation::Replace, manifests, properties)
        .await
    {
        Ok(produced) => produced,
        Err(err) => {
            forget_written(metadata, file_io, &writer.written_files).await;
            return Err(err);
        }
    };
    let mut written_files: Vec<String> = rewritten
        .created
        .iter()
        .map(|m| m.manifest_path.clone())
        .collect();
    written_files.extend(produced.written_files.iter().cloned());
    rewritten.produced = ProducedSnapshot {
        written_files,
        ..produced
    };
    rewritten.manifests_kept = manifests_kept;
    Ok(true)
}

fn rewrite_summary(
    created: usize,
    kept: usize,
    replaced: usize,
    entries: usize,
) -> HashMap<String, String> {
    HashMap::from([
        ("manifests-created".to_string(), created.to_string()),
        ("manifests-kept".to_string(), kept.to_string()),
        ("manifests-replaced".to_string(), replaced.to_string()),
        ("entries-processed".to_string(), entries.to_string()),
    ])
}

/// Rewrites the small data manifests of the table's current snapshot, clustered by partition,
/// into manifests of about `target_size_bytes`, as a `replace` snapshot that changes no data.
///
/// Per partition spec, the data manifests smaller than the target are *small*; when a spec has
/// at least two, all its small manifests are rewritten: their live entries (added or existing)
/// become `EXISTING` entries that keep their snapshot ids and sequence numbers, sorted by
/// partition and cut into manifests of at most the target size (estimated from the entries'
/// average size in the manifests read). Entries recording removals are dropped. Large data
/// manifests and delete manifests are kept as they are. Returns `None` when no spec has two
/// small manifests (nothing to gain).
pub async fn produce_manifest_rewrite(
    metadata: &TableMetadata,
    file_io: &FileIO,
    target_size_bytes: u64,
) -> Result<Option<RewrittenManifests>> {
    if metadata.format_version() == FormatVersion::V3 {
        return Err(Error::new(
            ErrorKind::FeatureUnsupported,
            "writing snapshots of format-version 3 tables is not supported yet",
        ));
    }
    let Some(parent) = metadata.current_snapshot().cloned() else {
        return Ok(None);
    };
    let mut writer = Writer {
        metadata,
        file_io,
        snapshot_id: unused_snapshot_id(metadata),
        commit_uuid: Uuid::now_v7(),
        manifests_written: 0,
        written_files: Vec::new(),
    };
    let result = writer
        .rewrite_manifests(parent, target_size_bytes.max(1))
        .await;
    if result.is_err() {
        forget_written(metadata, file_io, &writer.written_files).await;
    }
    result
}

/// The manifests [`produce_manifest_rewrite`] rewrites, by path: per partition spec, its data
/// manifests smaller than `target_size_bytes`, when there are at least two.
pub fn manifests_to_rewrite(manifests: &[ManifestFile], target_size_bytes: u64) -> HashSet<String> {
    let small = |m: &&ManifestFile| {
        m.content == ManifestContentType::Data
            && u64::try_from(m.manifest_length).is_ok_and(|len| len < target_size_bytes)
    };
    let mut small_per_spec: HashMap<i32, usize> = HashMap::new();
    for manifest in manifests.iter().filter(small) {
        *small_per_spec
            .entry(manifest.partition_spec_id)
            .or_default() += 1;
    }
    manifests
        .iter()
        .filter(small)
        .filter(|m| {
            small_per_spec
                .get(&m.partition_spec_id)
                .is_some_and(|n| *n >= 2)
        })
        .map(|m| m.manifest_path.clone())
        .collect()
}

impl Writer<'_> {
    async fn rewrite_manifests(
        &mut self,
        parent: SnapshotRef,
        target: u64,
    ) -> Result<Option<RewrittenManifests>> {
        let all = self.parent_manifests(Some(&parent)).await?;
        let chosen = manifests_to_rewrite(&all, target);
        if chosen.is_empty() {
            return Ok(None);
        }
        let rewrite = |m: &ManifestFile| chosen.contains(&m.manifest_path);
        let mut kept = Vec::new();
        let mut replaced: HashMap<i32, Vec<ManifestFile>> = HashMap::new();
        for manifest in all {
            if rewrite(&manifest) {
                replaced
                    .entry(manifest.partition_spec_id)
                    .or_default()
                    .push(manifest);
            } else {
                kept.push(manifest);
            }
        }
        let mut report = RewrittenManifests {
            produced: ProducedSnapshot {
                snapshot_id: self.snapshot_id,
                requirements: Vec::new(),
                updates: Vec::new(),
                written_files: Vec::new(),
            },
            manifests_replaced: 0,
            bytes_replaced: 0,
            manifests_created: 0,
            bytes_created: 0,
            manifests_kept: kept.len(),
            entries: 0,
            created: Vec::new(),
            replaced: Vec::new(),
        };
        let mut created = Vec::new();
        let mut spec_ids: Vec<i32> = replaced.keys().copied().collect();
        spec_ids.sort_unstable();
        for spec_id in spec_ids {
            let manifests = replaced.remove(&spec_id).unwrap_or_default();
            let spec = self.spec(&manifests[0])?;
            let mut entries: Vec<ManifestEntry> = Vec::new();
            let mut bytes = 0u64;
            let mut read_entries = 0usize;
            for manifest in &manifests {
                report.manifests_replaced += 1;
                report.replaced.push(manifest.manifest_path.clone());
                bytes += u64::try_from(manifest.manifest_length).unwrap_or(0);
                let loaded = manifest.load_manifest(self.file_io).await?;
                read_entries += loaded.entries().len();
                entries.extend(
                    loaded
                        .entries()
                        .iter()
                        .filter(|e| e.is_alive())
                        .map(|e| e.as_ref().clone()),
                );
            }
            report.bytes_replaced += bytes;
            report.entries += entries.len();
            // Cluster by partition: entries of one partition end up next to each other, so a
            // scan filtering on the partition reads few manifests. The order between
            // partitions only needs to be stable.
            let mut by_partition: HashMap<String, Vec<ManifestEntry>> = HashMap::new();
            for entry in entries {
                let key = format!("{:?}", entry.data_file().partition());
                by_partition.entry(key).or_default().push(entry);
            }
            let mut keys: Vec<String> = by_partition.keys().cloned().collect();
            keys.sort();
            let per_entry = (bytes / read_entries.max(1) as u64).max(1);
            let per_manifest = usize::try_from(target / per_entry)
                .unwrap_or(usize::MAX)
                .max(1);
            let mut open: Option<(ManifestWriter, usize)> = None;
            for key in keys {
                let mut group = by_partition.remove(&key).unwrap_or_default();
                group.sort_by(|a, b| a.file_path().cmp(b.file_path()));
                for entry in group {
                    if open.as_ref().is_some_and(|(_, n)| *n >= per_manifest)
                        && let Some((full, _)) = open.take()
                    {
                        created.push(full.write_manifest_file().await?);
                    }
                    let (writer, count) = match open.as_mut() {
                        Some(open) => open,
                        None => open.insert((
                            self.manifest_writer(spec.clone(), ManifestContentType::Data)?,
                            0,
                        )),
                    };
                    let (sequence_number, snapshot_id) = sequence_and_snapshot(&entry)?;
                    writer.add_existing_file(
                        entry.data_file().clone(),
                        snapshot_id,
                        sequence_number,
                        entry.file_sequence_number,
                    )?;
                    *count += 1;
                }
            }
            if let Some((last, _)) = open.take() {
                created.push(last.write_manifest_file().await?);
            }
        }
        report.manifests_created = created.len();
        report.bytes_created = created
            .iter()
            .map(|m| u64::try_from(m.manifest_length).unwrap_or(0))
            .sum();
        let properties = rewrite_summary(
            report.manifests_created,
            report.manifests_kept,
            report.manifests_replaced,
            report.entries,
        );
        report.created = created.clone();
        let manifests = created.into_iter().chain(kept).collect();
        report.produced = self
            .finish(Some(parent), Operation::Replace, manifests, properties)
            .await?;
        Ok(Some(report))
    }
}
