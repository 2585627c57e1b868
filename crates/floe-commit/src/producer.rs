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
    ManifestFile, ManifestList, ManifestListWriter, ManifestWriter, ManifestWriterBuilder,
    Operation, PartitionSpecRef, Snapshot, SnapshotReference, SnapshotRetention,
    SnapshotSummaryCollector, Summary, TableMetadata,
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
    /// Extra snapshot-summary properties; the computed counts win over these.
    pub properties: HashMap<String, String>,
}

impl SnapshotChange {
    pub fn new(operation: Operation) -> Self {
        Self {
            operation,
            added: Vec::new(),
            removed: Vec::new(),
            properties: HashMap::new(),
        }
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
    if change.added.is_empty() && change.removed.is_empty() {
        return Err(Error::new(
            ErrorKind::PreconditionFailed,
            "a snapshot must add or remove at least one file",
        ));
    }
    for file in &change.added {
        if file.content_type() != DataContentType::Data {
            return Err(Error::new(
                ErrorKind::FeatureUnsupported,
                format!(
                    "{} is a delete file: only data files can be added",
                    file.file_path()
                ),
            ));
        }
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
        for path in &writer.written_files {
            let _ = file_io.delete(path).await;
        }
    }
    result
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
        for file in &change.added {
            summary.add_file(file, schema.clone(), default_spec.clone());
        }

        // 1-2: carry manifests over, rewrite those holding removed files.
        let mut to_remove: HashSet<&str> = change.removed.iter().map(String::as_str).collect();
        let mut manifests: Vec<ManifestFile> = Vec::new();
        if let Some(parent) = &parent {
            let bytes = self
                .file_io
                .new_input(parent.manifest_list())?
                .read()
                .await?;
            let list = ManifestList::parse_with_version(&bytes, metadata.format_version())?;
            // Collected first: the list's iterator is not `Send`, and this future must be.
            let entries: Vec<ManifestFile> = list.consume_entries().into_iter().collect();
            for manifest in entries {
                if to_remove.is_empty() || manifest.content != ManifestContentType::Data {
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
                let spec = metadata
                    .partition_spec_by_id(manifest.partition_spec_id)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::DataInvalid,
                            format!(
                                "manifest {} names unknown partition spec {}",
                                manifest.manifest_path, manifest.partition_spec_id
                            ),
                        )
                    })?
                    .clone();
                let mut rewritten = self.manifest_writer(spec.clone())?;
                for entry in loaded.entries() {
                    if !entry.is_alive() {
                        continue; // deleted by an earlier snapshot: not carried further
                    }
                    let sequence_number = entry.sequence_number().ok_or_else(|| {
                        Error::new(
                            ErrorKind::DataInvalid,
                            "manifest entry without sequence number",
                        )
                    })?;
                    let file = entry.data_file().clone();
                    if to_remove.remove(entry.file_path()) {
                        summary.remove_file(&file, schema.clone(), spec.clone());
                        rewritten.add_delete_file(
                            file,
                            sequence_number,
                            entry.file_sequence_number,
                        )?;
                    } else {
                        let snapshot_id = entry.snapshot_id().ok_or_else(|| {
                            Error::new(ErrorKind::DataInvalid, "manifest entry without snapshot id")
                        })?;
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
        }
        if let Some(missing) = to_remove.iter().next() {
            return Err(Error::new(
                ErrorKind::PreconditionFailed,
                format!(
                    "cannot remove {missing}: it is not a data file of the table's current snapshot \
                     (it may have been removed by a concurrent commit)"
                ),
            ));
        }

        // 3: the added files.
        if !change.added.is_empty() {
            let mut added = self.manifest_writer(default_spec.clone())?;
            // Added files are written for the default spec (the writer checks their partition
            // values against it).
            for file in change.added {
                // v2: the sequence number is inherited from the manifest list; v1: none.
                added.add_file(file, -1)?;
            }
            manifests.push(added.write_manifest_file().await?);
        }

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

        let mut properties = change.properties;
        properties.extend(summary.build());
        let previous = parent.as_ref().map(|s| s.summary());
        set_totals(&mut properties, previous);
        let snapshot = Snapshot::builder()
            .with_manifest_list(list_path)
            .with_snapshot_id(self.snapshot_id)
            .with_parent_snapshot_id(parent_id)
            .with_sequence_number(sequence_number)
            .with_summary(Summary {
                operation: change.operation,
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

    fn manifest_writer(&mut self, spec: PartitionSpecRef) -> Result<ManifestWriter> {
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
        Ok(match self.metadata.format_version() {
            FormatVersion::V1 => builder.build_v1(),
            _ => builder.build_v2_data(),
        })
    }
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
