//! The live files of a snapshot and which delete files apply to which data files.
//!
//! Compaction of a merge-on-read table must know, for each data file it rewrites, exactly the
//! delete files whose rows it removes, and, after the rewrite, which delete files no longer
//! apply to any data file left. Both follow Iceberg's rules (spec, "Scan Planning"):
//!
//! - a **position delete** file applies to a data file of the same partition spec and partition
//!   whose data sequence number is *less than or equal to* the delete's, and only to the paths
//!   it names (its `referenced_data_file` when set, else the `file_path` column, which is read);
//! - an **equality delete** file applies to a data file whose data sequence number is *strictly
//!   less than* the delete's, in the same spec and partition, or to every data file when the
//!   delete was written with an unpartitioned spec (a global delete).
//!
//! The manifests are read directly (not through a scan) because these rules need each entry's
//! data sequence number, which scan tasks do not carry.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use iceberg::io::FileIO;
use iceberg::scan::FileScanTaskDeleteFile;
use iceberg::spec::{
    DataContentType, DataFile, ManifestContentType, ManifestList, Struct, TableMetadata,
};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{MaintenanceError, Result};

/// The name Iceberg gives a position delete file's path column.
const DELETE_FILE_PATH: &str = "file_path";

/// A live entry of a snapshot: the file, its data sequence number and its partition spec.
#[derive(Debug, Clone)]
pub(crate) struct LiveFile {
    pub file: DataFile,
    pub sequence_number: i64,
    pub spec_id: i32,
}

impl LiveFile {
    pub fn path(&self) -> &str {
        self.file.file_path()
    }
}

/// The live data and delete files of one snapshot, with the paths each position delete names.
#[derive(Debug, Default)]
pub(crate) struct TableFiles {
    pub data: Vec<LiveFile>,
    pub deletes: Vec<LiveFile>,
    /// Position delete file → the data-file paths it names.
    targets: HashMap<String, HashSet<String>>,
    /// Spec ids of unpartitioned specs (their equality deletes are global).
    unpartitioned_specs: HashSet<i32>,
    /// Where to look for the deletes of a data file, so no lookup scans every delete file.
    index: DeleteIndex,
}

/// Indices into [`TableFiles::deletes`] by what a delete can apply to.
#[derive(Debug, Default)]
struct DeleteIndex {
    /// Position deletes by the data-file paths they name.
    by_path: HashMap<String, Vec<usize>>,
    /// Partition-scoped equality deletes by spec and partition.
    by_partition: HashMap<(i32, Struct), Vec<usize>>,
    /// Equality deletes written with an unpartitioned spec.
    global: Vec<usize>,
}

impl TableFiles {
    /// Reads the live entries of `metadata`'s current snapshot; position delete files are read
    /// only when `known` does not already hold their targets (files never change).
    pub async fn read(
        metadata: &TableMetadata,
        file_io: &FileIO,
        known: Option<&TableFiles>,
    ) -> Result<Self> {
        let mut files = TableFiles {
            unpartitioned_specs: metadata
                .partition_specs_iter()
                .filter(|s| s.is_unpartitioned())
                .map(|s| s.spec_id())
                .collect(),
            ..TableFiles::default()
        };
        let Some(snapshot) = metadata.current_snapshot() else {
            return Ok(files);
        };
        let unreadable = |location: &str, err: iceberg::Error| MaintenanceError::Unreadable {
            location: location.to_string(),
            message: err.to_string(),
        };
        let list_path = snapshot.manifest_list();
        let bytes = file_io
            .new_input(list_path)
            .map_err(|e| unreadable(list_path, e))?
            .read()
            .await
            .map_err(|e| unreadable(list_path, e))?;
        let list = ManifestList::parse_with_version(&bytes, metadata.format_version())
            .map_err(|e| unreadable(list_path, e))?;
        let manifests: Vec<_> = list.consume_entries().into_iter().collect();
        for manifest in manifests {
            let loaded = manifest
                .load_manifest(file_io)
                .await
                .map_err(|e| unreadable(&manifest.manifest_path, e))?;
            for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
                let sequence_number =
                    entry
                        .sequence_number()
                        .ok_or_else(|| MaintenanceError::Unreadable {
                            location: manifest.manifest_path.clone(),
                            message: format!("entry {} has no sequence number", entry.file_path()),
                        })?;
                let live = LiveFile {
                    file: entry.data_file().clone(),
                    sequence_number,
                    spec_id: manifest.partition_spec_id,
                };
                match manifest.content {
                    ManifestContentType::Data => files.data.push(live),
                    ManifestContentType::Deletes => files.deletes.push(live),
                }
            }
        }
        for delete in &files.deletes {
            if delete.file.content_type() != DataContentType::PositionDeletes {
                continue;
            }
            let path = delete.path().to_string();
            let targets = match (
                delete.file.referenced_data_file(),
                known.and_then(|k| k.targets.get(&path)),
            ) {
                (Some(referenced), _) => HashSet::from([referenced]),
                (None, Some(targets)) => targets.clone(),
                (None, None) => position_delete_targets(file_io, &path).await?,
            };
            files.targets.insert(path, targets);
        }
        files.build_index();
        Ok(files)
    }

    /// Indexes the deletes by the paths they name and the partitions they cover.
    fn build_index(&mut self) {
        self.index = DeleteIndex::default();
        for (i, delete) in self.deletes.iter().enumerate() {
            match delete.file.content_type() {
                DataContentType::PositionDeletes => {
                    for target in self.targets.get(delete.path()).into_iter().flatten() {
                        self.index
                            .by_path
                            .entry(target.clone())
                            .or_default()
                            .push(i);
                    }
                }
                DataContentType::EqualityDeletes
                    if self.unpartitioned_specs.contains(&delete.spec_id) =>
                {
                    self.index.global.push(i)
                }
                DataContentType::EqualityDeletes => self
                    .index
                    .by_partition
                    .entry((delete.spec_id, delete.file.partition().clone()))
                    .or_default()
                    .push(i),
                DataContentType::Data => {}
            }
        }
    }

    /// Whether delete file `delete` applies to data file `data` (see the module docs).
    pub fn applies(&self, delete: &LiveFile, data: &LiveFile) -> bool {
        match delete.file.content_type() {
            DataContentType::PositionDeletes => {
                delete.sequence_number >= data.sequence_number
                    && delete.spec_id == data.spec_id
                    && delete.file.partition() == data.file.partition()
                    && self
                        .targets
                        .get(delete.path())
                        .is_some_and(|t| t.contains(data.path()))
            }
            DataContentType::EqualityDeletes => {
                delete.sequence_number > data.sequence_number
                    && (self.unpartitioned_specs.contains(&delete.spec_id)
                        || (delete.spec_id == data.spec_id
                            && delete.file.partition() == data.file.partition()))
            }
            DataContentType::Data => false,
        }
    }

    /// The live delete files that apply to `data`.
    pub fn deletes_for<'a>(&'a self, data: &'a LiveFile) -> impl Iterator<Item = &'a LiveFile> {
        let index = &self.index;
        index
            .by_path
            .get(data.path())
            .into_iter()
            .flatten()
            .chain(
                index
                    .by_partition
                    .get(&(data.spec_id, data.file.partition().clone()))
                    .into_iter()
                    .flatten(),
            )
            .chain(&index.global)
            .map(|i| &self.deletes[*i])
            .filter(move |d| self.applies(d, data))
    }

    /// The live delete files that apply to no data file once the data files at `gone` are
    /// removed: what a rewrite of those files may drop.
    pub fn unneeded_without(&self, gone: &HashSet<&str>) -> Vec<&LiveFile> {
        let remaining: Vec<&LiveFile> = self
            .data
            .iter()
            .filter(|d| !gone.contains(d.path()))
            .collect();
        let by_path: HashMap<&str, &LiveFile> = remaining.iter().map(|d| (d.path(), *d)).collect();
        // An equality delete applies to a remaining file of its scope iff the oldest one (lowest
        // data sequence number) is older than the delete.
        let mut oldest: HashMap<(i32, &Struct), i64> = HashMap::new();
        let mut oldest_anywhere = i64::MAX;
        for data in &remaining {
            let seq = oldest
                .entry((data.spec_id, data.file.partition()))
                .or_insert(i64::MAX);
            *seq = (*seq).min(data.sequence_number);
            oldest_anywhere = oldest_anywhere.min(data.sequence_number);
        }
        self.deletes
            .iter()
            .filter(|delete| {
                let needed = match delete.file.content_type() {
                    DataContentType::PositionDeletes => self
                        .targets
                        .get(delete.path())
                        .into_iter()
                        .flatten()
                        .filter_map(|target| by_path.get(target.as_str()))
                        .any(|data| self.applies(delete, data)),
                    DataContentType::EqualityDeletes
                        if self.unpartitioned_specs.contains(&delete.spec_id) =>
                    {
                        oldest_anywhere < delete.sequence_number
                    }
                    DataContentType::EqualityDeletes => oldest
                        .get(&(delete.spec_id, delete.file.partition()))
                        .is_some_and(|seq| *seq < delete.sequence_number),
                    DataContentType::Data => true,
                };
                !needed
            })
            .collect()
    }
}

/// The delete as a scan task names it, for iceberg's Arrow reader to apply.
pub(crate) fn task_delete(delete: &LiveFile) -> FileScanTaskDeleteFile {
    FileScanTaskDeleteFile {
        file_path: delete.path().to_string(),
        file_size_in_bytes: delete.file.file_size_in_bytes(),
        file_type: delete.file.content_type(),
        partition_spec_id: delete.spec_id,
        equality_ids: delete.file.equality_ids(),
    }
}

/// The distinct data-file paths a Parquet position delete file names.
async fn position_delete_targets(file_io: &FileIO, path: &str) -> Result<HashSet<String>> {
    let unreadable = |message: String| MaintenanceError::Unreadable {
        location: path.to_string(),
        message,
    };
    let bytes: Bytes = file_io
        .new_input(path)
        .map_err(|e| unreadable(e.to_string()))?
        .read()
        .await
        .map_err(|e| unreadable(e.to_string()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| unreadable(format!("not a Parquet position delete file: {e}")))?;
    let column = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.name() == DELETE_FILE_PATH)
        .ok_or_else(|| unreadable(format!("no {DELETE_FILE_PATH} column")))?;
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [column]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| unreadable(e.to_string()))?;
    let mut targets = HashSet::new();
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(e.to_string()))?;
        let column = batch.column(0);
        let paths = arrow_array::cast::AsArray::as_string_opt::<i32>(column.as_ref())
            .ok_or_else(|| unreadable(format!("{DELETE_FILE_PATH} is not a string column")))?;
        targets.extend(paths.iter().flatten().map(str::to_string));
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use iceberg::spec::{DataFileBuilder, DataFileFormat, Literal};

    use super::*;

    fn file(content: DataContentType, path: &str, spec_id: i32, part: Option<i64>) -> DataFile {
        let mut builder = DataFileBuilder::default();
        builder
            .content(content)
            .file_path(path.to_string())
            .file_format(DataFileFormat::Parquet)
            .partition(match part {
                Some(p) => Struct::from_iter([Some(Literal::long(p))]),
                None => Struct::empty(),
            })
            .partition_spec_id(spec_id)
            .record_count(1)
            .file_size_in_bytes(1);
        if content == DataContentType::EqualityDeletes {
            builder.equality_ids(Some(vec![1]));
        }
        builder.build().unwrap()
    }

    fn live(
        content: DataContentType,
        path: &str,
        sequence_number: i64,
        spec_id: i32,
        part: Option<i64>,
    ) -> LiveFile {
        LiveFile {
            file: file(content, path, spec_id, part),
            sequence_number,
            spec_id,
        }
    }

    /// Spec 0 unpartitioned, spec 1 partitioned; data `a` (seq 2) and `b` (seq 4) in partition 7
    /// of spec 1, `c` (seq 2) in partition 8, `u` (seq 2) of spec 0.
    fn table(deletes: Vec<LiveFile>, targets: &[(&str, &[&str])]) -> TableFiles {
        let data = vec![
            live(DataContentType::Data, "a", 2, 1, Some(7)),
            live(DataContentType::Data, "b", 4, 1, Some(7)),
            live(DataContentType::Data, "c", 2, 1, Some(8)),
            live(DataContentType::Data, "u", 2, 0, None),
        ];
        let mut files = TableFiles {
            data,
            deletes,
            targets: targets
                .iter()
                .map(|(d, t)| (d.to_string(), t.iter().map(|p| p.to_string()).collect()))
                .collect(),
            unpartitioned_specs: HashSet::from([0]),
            index: DeleteIndex::default(),
        };
        files.build_index();
        files
    }

    fn applying<'a>(files: &'a TableFiles, data: &str) -> Vec<&'a str> {
        let data = files.data.iter().find(|d| d.path() == data).unwrap();
        let mut paths: Vec<&str> = files.deletes_for(data).map(LiveFile::path).collect();
        paths.sort();
        paths
    }

    #[test]
    fn position_deletes_apply_by_path_partition_and_sequence_number_inclusive() {
        let files = table(
            vec![
                // Same sequence number as `a` (committed with it): applies.
                live(DataContentType::PositionDeletes, "p2", 2, 1, Some(7)),
                // Older than `b`: does not apply to it though it names it.
                live(DataContentType::PositionDeletes, "p3", 3, 1, Some(7)),
                // Names `c` but is filed under partition 7: a partition mismatch never applies.
                live(DataContentType::PositionDeletes, "p9", 9, 1, Some(7)),
            ],
            &[("p2", &["a"]), ("p3", &["a", "b"]), ("p9", &["c"])],
        );
        assert_eq!(applying(&files, "a"), vec!["p2", "p3"]);
        assert!(applying(&files, "b").is_empty());
        assert!(applying(&files, "c").is_empty());
        // Without `a`, p2 and p3 have nothing left; p9 never had anything.
        let gone = HashSet::from(["a"]);
        let mut unneeded: Vec<&str> = files
            .unneeded_without(&gone)
            .into_iter()
            .map(LiveFile::path)
            .collect();
        unneeded.sort();
        assert_eq!(unneeded, vec!["p2", "p3", "p9"]);
        assert!(
            files
                .unneeded_without(&HashSet::new())
                .iter()
                .all(|d| d.path() == "p9")
        );
    }

    #[test]
    fn equality_deletes_apply_to_older_data_of_their_partition_or_globally() {
        let files = table(
            vec![
                // Same sequence number as `a`: does not apply (strictly older data only).
                live(DataContentType::EqualityDeletes, "e2", 2, 1, Some(7)),
                // Applies to `a` (seq 2), not to `b` (seq 4) nor to partition 8.
                live(DataContentType::EqualityDeletes, "e3", 3, 1, Some(7)),
                // Unpartitioned spec: global, to every older data file of every spec.
                live(DataContentType::EqualityDeletes, "g3", 3, 0, None),
            ],
            &[],
        );
        assert_eq!(applying(&files, "a"), vec!["e3", "g3"]);
        assert!(applying(&files, "b").is_empty());
        assert_eq!(applying(&files, "c"), vec!["g3"]);
        assert_eq!(applying(&files, "u"), vec!["g3"]);
        // Without `a` nothing older is left in partition 7: e2 and e3 can go; g3 still has `c`.
        let unneeded: BTreeSet<&str> = files
            .unneeded_without(&HashSet::from(["a"]))
            .into_iter()
            .map(LiveFile::path)
            .collect();
        assert_eq!(unneeded, BTreeSet::from(["e2", "e3"]));
        let unneeded: BTreeSet<&str> = files
            .unneeded_without(&HashSet::from(["a", "c", "u"]))
            .into_iter()
            .map(LiveFile::path)
            .collect();
        assert_eq!(unneeded, BTreeSet::from(["e2", "e3", "g3"]));
    }
}
