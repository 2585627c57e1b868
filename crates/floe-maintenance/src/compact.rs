//! Bin-pack compaction: rewrite a table's small data files into fewer files near the target size.
//!
//! # What is compacted
//!
//! Only data files of the table's current partition spec (files of older specs are left alone),
//! grouped by partition. A partition is compacted when it has at least
//! [`CompactOptions::min_input_files`] (default 5) files smaller than 75% of the target file size
//! (`write.target-file-size-bytes`, default 512 MiB, held to 64–512 MiB). Its small files are packed
//! in order into bins of at most the target size; a bin of one file is left as it is. Tables with
//! delete files (merge-on-read) are refused in this version.
//!
//! # How
//!
//! Each bin's rows are read with Iceberg's Arrow reader (whole files, current schema) and written
//! back with Iceberg's Parquet data-file writer into the same partition. Then one `replace`
//! snapshot — removed: the inputs, added: the outputs — is produced by
//! [`floe_commit::produce`] and committed through [`Catalog::commit`]. Its requirement pins
//! `main` at the snapshot read, so a concurrent commit makes it a conflict; compaction then
//! re-reads the table and, if every input is still live, produces the same replace on the new
//! state (keeping the written outputs) and commits again. If an input was removed meanwhile (an
//! overwrite or delete), it abandons: its outputs are deleted and the table keeps the other
//! writer's change, untouched by compaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use floe_commit::{Catalog, CommitError, LoadedTable, SnapshotChange, produce};
use floe_store::TableName;
use futures::TryStreamExt;
use iceberg::arrow::{ArrowReaderBuilder, FieldMatchMode};
use iceberg::io::{FileIO, FileIOBuilder, LocalFsStorageFactory};
use iceberg::scan::FileScanTask;
use iceberg::spec::{DataFile, DataFileFormat, Operation, PartitionKey, Struct};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{NamespaceIdent, TableIdent};
use tracing::{info, warn};

use crate::{MaintenanceError, Result};

pub const TARGET_FILE_SIZE: &str = "write.target-file-size-bytes";
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 512 * 1024 * 1024;
pub const MIN_TARGET_FILE_SIZE: u64 = 64 * 1024 * 1024;
pub const MAX_TARGET_FILE_SIZE: u64 = 512 * 1024 * 1024;
pub const DEFAULT_MIN_INPUT_FILES: usize = 5;
/// Commits refused because a writer moved the table are re-produced this many times.
const MAX_ATTEMPTS: u32 = 10;

/// How to compact.
#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// Target output size, instead of `write.target-file-size-bytes` (else 512 MiB). Must be
    /// within 64–512 MiB unless [`Self::unchecked_target`].
    pub target_file_size_bytes: Option<u64>,
    /// Accept any positive target (tests on small data).
    pub unchecked_target: bool,
    /// A partition is compacted when it has at least this many small files [default 5].
    pub min_input_files: Option<usize>,
    /// Plan and report; write and commit nothing.
    pub dry_run: bool,
}

/// What a run compacted (or, in a dry run, would have).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub dry_run: bool,
    pub target_file_size_bytes: u64,
    pub bins: usize,
    pub input_files: usize,
    pub input_bytes: u64,
    /// Zero in a dry run.
    pub output_files: usize,
    pub output_bytes: u64,
    /// The committed `replace` snapshot.
    pub snapshot_id: Option<i64>,
    /// Commits attempted (more than one when concurrent writers moved the table).
    pub attempts: u32,
}

/// Compacts `table`'s small data files; see the module docs.
pub async fn compact(
    catalog: &Catalog,
    table: &TableName,
    options: &CompactOptions,
) -> Result<CompactReport> {
    crate::with_lease(catalog, table, async {
        prepare(catalog, table, options)
            .await?
            .commit(catalog)
            .await
    })
    .await
}

/// A compaction whose outputs are written but not committed: the first half of [`compact`],
/// public so callers (and tests) can interleave; it does not take the maintenance lease.
pub struct PreparedCompaction {
    table: TableName,
    file_io: FileIO,
    loaded: LoadedTable,
    added: Vec<DataFile>,
    removed: Vec<String>,
    report: CompactReport,
}

impl PreparedCompaction {
    /// The plan (and, unless a dry run, the written outputs) so far.
    pub fn report(&self) -> &CompactReport {
        &self.report
    }

    /// Deletes the written outputs without committing.
    pub async fn abandon(self) {
        delete_files(
            &self.file_io,
            self.added.iter().map(|f| f.file_path().to_string()),
        )
        .await;
    }
}

struct Input {
    path: String,
    size: u64,
    task: FileScanTask,
}

struct Bin {
    partition: Option<Struct>,
    inputs: Vec<Input>,
}

/// Plans the bins and writes their outputs; see [`PreparedCompaction::commit`].
pub async fn prepare(
    catalog: &Catalog,
    table: &TableName,
    options: &CompactOptions,
) -> Result<PreparedCompaction> {
    let file_io = FileIOBuilder::new(Arc::new(LocalFsStorageFactory)).build();
    let loaded = catalog.load_table(table).await?;
    let target = target_size(&loaded, options)?;
    let min_inputs = options
        .min_input_files
        .unwrap_or(DEFAULT_MIN_INPUT_FILES)
        .max(2);
    let mut report = CompactReport {
        dry_run: options.dry_run,
        target_file_size_bytes: target,
        ..CompactReport::default()
    };
    let location = loaded.metadata().location();
    if !location.starts_with("file:") && !location.starts_with('/') {
        return Err(MaintenanceError::InvalidRequest(format!(
            "compaction supports local warehouses only for now; {table} is at {location}"
        )));
    }
    let mut prepared = PreparedCompaction {
        table: table.clone(),
        file_io: file_io.clone(),
        loaded: loaded.clone(),
        added: Vec::new(),
        removed: Vec::new(),
        report: report.clone(),
    };
    if loaded.metadata().current_snapshot().is_none() {
        return Ok(prepared);
    }
    let iceberg_table = to_table(table, &loaded, &file_io)?;
    let tasks = live_tasks(&iceberg_table, table).await?;
    let bins = plan(&loaded, tasks, target, min_inputs);
    report.bins = bins.len();
    for bin in &bins {
        report.input_files += bin.inputs.len();
        report.input_bytes += bin.inputs.iter().map(|i| i.size).sum::<u64>();
    }
    prepared.report = report.clone();
    if bins.is_empty() || options.dry_run {
        return Ok(prepared);
    }

    // Write the outputs.
    let mut added: Vec<DataFile> = Vec::new();
    let written = write_bins(&iceberg_table, &bins, target, &mut added).await;
    if let Err(err) = written {
        delete_files(&file_io, added.iter().map(|f| f.file_path().to_string())).await;
        return Err(err);
    }
    report.output_files = added.len();
    report.output_bytes = added.iter().map(DataFile::file_size_in_bytes).sum();
    prepared.removed = bins
        .iter()
        .flat_map(|b| b.inputs.iter().map(|i| i.path.clone()))
        .collect();
    prepared.added = added;
    prepared.report = report;
    Ok(prepared)
}

impl PreparedCompaction {
    /// Commits one `replace` snapshot, rebasing over concurrent commits while every input is
    /// still live; abandons (deleting the outputs) when one is gone.
    pub async fn commit(self, catalog: &Catalog) -> Result<CompactReport> {
        let Self {
            table,
            file_io,
            loaded,
            added,
            removed,
            mut report,
        } = self;
        let table = &table;
        if added.is_empty() && removed.is_empty() {
            return Ok(report);
        }
        let mut current = loaded;
        loop {
            report.attempts += 1;
            let change = SnapshotChange::new(Operation::Replace)
                .adding(added.clone())
                .removing(removed.clone());
            let produced = match produce(current.metadata(), &file_io, change).await {
                Ok(produced) => produced,
                Err(err) => {
                    delete_files(&file_io, added.iter().map(|f| f.file_path().to_string())).await;
                    return Err(MaintenanceError::Iceberg(format!(
                        "cannot write the compaction snapshot of {table}: {err}"
                    )));
                }
            };
            let snapshot_id = produced.snapshot_id;
            let manifests = produced.written_files.clone();
            match catalog
                .commit(vec![produced.into_table_change(table.clone())])
                .await
            {
                Ok(_) => {
                    report.snapshot_id = Some(snapshot_id);
                    info!(%table, snapshot_id, inputs = report.input_files, outputs = report.output_files, "compacted");
                    return Ok(report);
                }
                Err(CommitError::Conflict(message)) if report.attempts < MAX_ATTEMPTS => {
                    delete_files(&file_io, manifests.into_iter()).await;
                    info!(%table, attempt = report.attempts, %message, "the table moved during compaction; rebasing");
                    tokio::time::sleep(Duration::from_millis(u64::from(report.attempts))).await;
                    let reread = async {
                        let loaded = catalog.load_table(table).await?;
                        let now = to_table(table, &loaded, &file_io)?;
                        let live: HashSet<String> = live_tasks(&now, table)
                            .await?
                            .into_iter()
                            .map(|t| t.data_file_path)
                            .collect();
                        Ok::<_, MaintenanceError>((loaded, live))
                    };
                    let live = match reread.await {
                        Ok((loaded, live)) => {
                            current = loaded;
                            live
                        }
                        Err(err) => {
                            delete_files(&file_io, added.iter().map(|f| f.file_path().to_string()))
                                .await;
                            return Err(err);
                        }
                    };
                    if let Some(gone) = removed.iter().find(|p| !live.contains(*p)) {
                        delete_files(&file_io, added.iter().map(|f| f.file_path().to_string()))
                            .await;
                        return Err(MaintenanceError::Conflict(format!(
                            "compaction of {table} abandoned: input file {gone} was removed by a concurrent commit; nothing was changed"
                        )));
                    }
                }
                Err(CommitError::Conflict(message)) => {
                    // Refused, so not applied: nothing references the files.
                    delete_files(&file_io, manifests.into_iter()).await;
                    delete_files(&file_io, added.iter().map(|f| f.file_path().to_string())).await;
                    return Err(MaintenanceError::Conflict(format!(
                        "compaction of {table} gave up after {} conflicting commits ({message}); nothing was changed",
                        report.attempts
                    )));
                }
                Err(err) => {
                    // The outcome may be unknown (the store failed mid-commit): keep the files;
                    // if nothing references them, orphan removal collects them.
                    warn!(%table, error = %err, "compaction commit failed; its files are left for orphan removal");
                    return Err(err.into());
                }
            }
        }
    }
}

fn target_size(loaded: &LoadedTable, options: &CompactOptions) -> Result<u64> {
    if let Some(target) = options.target_file_size_bytes {
        let ok = if options.unchecked_target {
            target > 0
        } else {
            (MIN_TARGET_FILE_SIZE..=MAX_TARGET_FILE_SIZE).contains(&target)
        };
        if !ok {
            return Err(MaintenanceError::InvalidRequest(format!(
                "target file size {target} must be within {MIN_TARGET_FILE_SIZE}..={MAX_TARGET_FILE_SIZE} bytes (64-512 MiB)"
            )));
        }
        return Ok(target);
    }
    Ok(loaded
        .metadata()
        .properties()
        .get(TARGET_FILE_SIZE)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_TARGET_FILE_SIZE)
        .clamp(MIN_TARGET_FILE_SIZE, MAX_TARGET_FILE_SIZE))
}

fn to_table(name: &TableName, loaded: &LoadedTable, file_io: &FileIO) -> Result<Table> {
    let ident = TableIdent::new(
        NamespaceIdent::from_vec(name.namespace.clone()).map_err(iceberg_error)?,
        name.name.clone(),
    );
    let mut builder = Table::builder()
        .identifier(ident)
        .file_io(file_io.clone())
        .metadata(Arc::new(loaded.metadata().clone()))
        .runtime(iceberg::Runtime::try_current().map_err(iceberg_error)?);
    if let Some(location) = &loaded.metadata_location {
        builder = builder.metadata_location(location.clone());
    }
    builder.build().map_err(iceberg_error)
}

/// One whole-file task per live data file of the current snapshot; refuses delete files.
async fn live_tasks(table: &Table, name: &TableName) -> Result<Vec<FileScanTask>> {
    let deletes = table
        .metadata()
        .current_snapshot()
        .and_then(|s| {
            s.summary()
                .additional_properties
                .get("total-delete-files")
                .cloned()
        })
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let refuse = || {
        MaintenanceError::InvalidRequest(format!(
            "{name} has delete files (merge-on-read): compaction does not handle such tables yet"
        ))
    };
    if deletes > 0 {
        return Err(refuse());
    }
    let tasks: Vec<FileScanTask> = table
        .scan()
        .build()
        .map_err(iceberg_error)?
        .plan_files()
        .await
        .map_err(iceberg_error)?
        .try_collect()
        .await
        .map_err(iceberg_error)?;
    if tasks.iter().any(|t| !t.deletes.is_empty()) {
        return Err(refuse());
    }
    let mut seen = HashSet::new();
    Ok(tasks
        .into_iter()
        .filter(|t| seen.insert(t.data_file_path.clone()))
        .map(|t| FileScanTask {
            start: 0,
            length: t.file_size_in_bytes,
            predicate: None,
            ..t
        })
        .collect())
}

/// Groups the small files of the current spec by partition and packs them into bins.
fn plan(
    loaded: &LoadedTable,
    tasks: Vec<FileScanTask>,
    target: u64,
    min_inputs: usize,
) -> Vec<Bin> {
    let spec = loaded.metadata().default_partition_spec();
    let small = target / 4 * 3;
    let mut partitions: HashMap<Option<Struct>, Vec<Input>> = HashMap::new();
    for task in tasks {
        let spec_id = task.partition_spec.as_ref().map(|s| s.spec_id());
        let current_spec = match spec_id {
            Some(id) => id == spec.spec_id(),
            // The scan may not say: with one spec in the table's history it is the current one.
            None => {
                spec.is_unpartitioned() || loaded.metadata().partition_specs_iter().count() == 1
            }
        };
        if !current_spec || task.data_file_format != DataFileFormat::Parquet {
            continue;
        }
        if task.file_size_in_bytes >= small {
            continue;
        }
        let partition = if spec.is_unpartitioned() {
            None
        } else if let Some(partition) = &task.partition {
            Some(partition.clone())
        } else {
            continue; // cannot place its rows: leave it
        };
        partitions.entry(partition).or_default().push(Input {
            path: task.data_file_path.clone(),
            size: task.file_size_in_bytes,
            task,
        });
    }
    let mut bins = Vec::new();
    for (partition, mut inputs) in partitions {
        if inputs.len() < min_inputs {
            continue;
        }
        inputs.sort_by(|a, b| a.path.cmp(&b.path));
        let mut open: Vec<Input> = Vec::new();
        let mut open_size = 0;
        let close = |open: &mut Vec<Input>, bins: &mut Vec<Bin>| {
            if open.len() > 1 {
                bins.push(Bin {
                    partition: partition.clone(),
                    inputs: std::mem::take(open),
                });
            } else {
                open.clear();
            }
        };
        for input in inputs {
            if !open.is_empty() && open_size + input.size > target {
                close(&mut open, &mut bins);
                open_size = 0;
            }
            open_size += input.size;
            open.push(input);
        }
        close(&mut open, &mut bins);
    }
    bins.sort_by(|a, b| a.inputs[0].path.cmp(&b.inputs[0].path));
    bins
}

async fn write_bins(
    table: &Table,
    bins: &[Bin],
    target: u64,
    added: &mut Vec<DataFile>,
) -> Result<()> {
    let metadata = table.metadata();
    let schema = metadata.current_schema().clone();
    let spec = metadata.default_partition_spec().clone();
    let properties = metadata.table_properties().map_err(iceberg_error)?;
    let runtime = iceberg::Runtime::try_current().map_err(iceberg_error)?;
    for bin in bins {
        let tasks: Vec<_> = bin.inputs.iter().map(|i| Ok(i.task.clone())).collect();
        let batches: Vec<_> = ArrowReaderBuilder::new(table.file_io().clone(), runtime.clone())
            .build()
            .read(Box::pin(futures::stream::iter(tasks)))
            .map_err(iceberg_error)?
            .stream()
            .try_collect()
            .await
            .map_err(iceberg_error)?;
        let partition_key = bin
            .partition
            .clone()
            .map(|data| PartitionKey::new(spec.as_ref().clone(), schema.clone(), data));
        let parquet = ParquetWriterBuilder::from_table_properties(&properties, schema.clone())
            .with_match_mode(FieldMatchMode::Name);
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            usize::try_from(target).unwrap_or(usize::MAX),
            table.file_io().clone(),
            DefaultLocationGenerator::new(metadata).map_err(iceberg_error)?,
            DefaultFileNameGenerator::new(prefix(), None, DataFileFormat::Parquet),
        );
        let mut writer = DataFileWriterBuilder::new(rolling)
            .build(partition_key)
            .await
            .map_err(iceberg_error)?;
        for batch in batches {
            writer.write(batch).await.map_err(iceberg_error)?;
        }
        added.extend(writer.close().await.map_err(iceberg_error)?);
    }
    Ok(())
}

fn prefix() -> String {
    format!("compact-{}", uuid::Uuid::now_v7().simple())
}

async fn delete_files(file_io: &FileIO, paths: impl Iterator<Item = String>) {
    for path in paths {
        if let Err(err) = file_io.delete(&path).await {
            warn!(path, error = %err, "could not delete an unreferenced file");
        }
    }
}

fn iceberg_error(err: iceberg::Error) -> MaintenanceError {
    MaintenanceError::Iceberg(err.to_string())
}
