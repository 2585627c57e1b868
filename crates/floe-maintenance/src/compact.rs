//! Bin-pack compaction: rewrite a table's small data files into fewer files near the target size,
//! applying the delete files of merge-on-read tables on the way.
//!
//! # What is compacted
//!
//! Only Parquet data files of the table's current partition spec (files of older specs are left
//! alone), grouped by partition. A data file is an *input candidate* when it is smaller than 75%
//! of the target file size (`write.target-file-size-bytes`, default 512 MiB, held to 64–512 MiB)
//! or when at least [`CompactOptions::delete_file_threshold`] (default 1) delete files apply to
//! it. A partition is compacted when it has at least [`CompactOptions::min_input_files`]
//! (default 5) candidates, or any candidate with deletes. Its candidates are packed in order into
//! bins of at most the target size; a bin of one file is left as it is unless deletes apply to
//! that file (rewriting it applies them).
//!
//! # Merge-on-read
//!
//! Which delete files apply to which data file follows Iceberg's rules ([`crate::deletes`]):
//! position deletes by partition, path and sequence number (`>=`), equality deletes by partition
//! (or globally, when written with an unpartitioned spec) and sequence number (`>`). Each input is
//! read with exactly its deletes applied, so the outputs hold exactly the live rows. The delete
//! files that then apply to no data file left in the table are removed by the same snapshot.
//!
//! # How
//!
//! Each bin's rows are read with Iceberg's Arrow reader (whole files, current schema, deletes
//! applied) and written back with Iceberg's Parquet data-file writer into the same partition.
//! Then one `replace` snapshot — removed: the inputs and the delete files no longer needed,
//! added: the outputs (with the new snapshot's sequence number, so no older equality delete
//! applies to them) — is produced by [`floe_commit::produce`] and committed through
//! [`Catalog::commit`]. Its requirement pins `main` at the snapshot read, so a concurrent commit
//! makes it a conflict; compaction then re-reads the table and, if every input and every delete
//! it applied is still live and no delete added meanwhile applies to an input, produces the same
//! replace on the new state (keeping the written outputs) and commits again. Otherwise (an
//! overwrite or delete removed an input, a row-delta added deletes for one) it abandons: its
//! outputs are deleted and the table keeps the other writer's change, untouched by compaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::compute::{
    SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch,
};
use floe_commit::{Catalog, CommitError, LoadedTable, SnapshotChange, produce};
use floe_storage::TableScope;
use floe_store::TableName;
use futures::TryStreamExt;
use iceberg::arrow::{ArrowReaderBuilder, FieldMatchMode};
use iceberg::io::FileIO;
use iceberg::scan::{FileScanTask, FileScanTaskDeleteFile};
use iceberg::spec::{
    DEFAULT_SCHEMA_NAME_MAPPING, DataContentType, DataFile, DataFileFormat, NameMapping, NullOrder,
    Operation, PartitionKey, SortDirection, Struct, TableMetadata, Transform,
};
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use tracing::{info, warn};

use crate::deletes::{LiveFile, TableFiles, task_delete};
use crate::zorder::{ZOrderPlan, zordered};
use crate::{MaintenanceError, ProgressSink, Result};

pub const TARGET_FILE_SIZE: &str = "write.target-file-size-bytes";
pub const DEFAULT_TARGET_FILE_SIZE: u64 = 512 * 1024 * 1024;
pub const MIN_TARGET_FILE_SIZE: u64 = 64 * 1024 * 1024;
pub const MAX_TARGET_FILE_SIZE: u64 = 512 * 1024 * 1024;
pub const DEFAULT_MIN_INPUT_FILES: usize = 5;
/// A data file with at least this many delete files applying to it is rewritten.
pub const DEFAULT_DELETE_FILE_THRESHOLD: usize = 1;
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
    /// A partition is compacted when it has at least this many small files [default 5] (or a
    /// file with deletes).
    pub min_input_files: Option<usize>,
    /// A data file with at least this many delete files applying to it is rewritten whatever
    /// its size [default 1].
    pub delete_file_threshold: Option<usize>,
    /// How rows are laid out in the outputs [default bin-pack].
    pub strategy: Strategy,
    /// With [`Strategy::ZOrder`]: the top-level columns to interleave (two or more).
    pub zorder_columns: Vec<String>,
    /// Partial progress: commit after at most this many input bytes (whole bins; at least one
    /// bin per commit), then plan the rest again, so that a big table's compaction keeps what it
    /// did when a later chunk fails or a writer wins. `None`: one commit for everything.
    pub max_commit_bytes: Option<u64>,
    /// Plan and report; write and commit nothing.
    pub dry_run: bool,
    /// Told how many files and bytes are rewritten so far.
    pub progress: ProgressSink,
}

/// Rounds of partial progress one run makes at most (each commits at least one bin).
const MAX_CHUNKS: usize = 1000;

/// What a run compacted (or, in a dry run, would have).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    pub dry_run: bool,
    pub target_file_size_bytes: u64,
    pub bins: usize,
    pub input_files: usize,
    pub input_bytes: u64,
    /// Rows in the inputs before deletes.
    pub input_records: u64,
    /// Distinct delete files applied to the inputs.
    pub applied_delete_files: usize,
    /// Zero in a dry run.
    pub output_files: usize,
    pub output_bytes: u64,
    /// Rows written: the inputs' live rows.
    pub output_records: u64,
    /// Delete files the snapshot removes (no remaining data file needs them); in a dry run,
    /// those it would remove.
    pub removed_delete_files: usize,
    pub removed_delete_bytes: u64,
    /// The committed `replace` snapshot.
    pub snapshot_id: Option<i64>,
    /// Commits attempted (more than one when concurrent writers moved the table).
    pub attempts: u32,
    /// Snapshots committed: more than one with [`CompactOptions::max_commit_bytes`].
    pub commits: usize,
    /// The most candidates in one partition that was left alone for having too few (fewer than
    /// [`CompactOptions::min_input_files`], no deletes): how close the table is to its next
    /// compaction, which the scheduler waits for.
    pub most_candidates_left: usize,
}

impl CompactReport {
    /// Adds one chunk's report to a run's.
    fn absorb(&mut self, chunk: &CompactReport) {
        self.target_file_size_bytes = chunk.target_file_size_bytes;
        self.bins += chunk.bins;
        self.input_files += chunk.input_files;
        self.input_bytes += chunk.input_bytes;
        self.input_records += chunk.input_records;
        self.applied_delete_files += chunk.applied_delete_files;
        self.output_files += chunk.output_files;
        self.output_bytes += chunk.output_bytes;
        self.output_records += chunk.output_records;
        self.removed_delete_files += chunk.removed_delete_files;
        self.removed_delete_bytes += chunk.removed_delete_bytes;
        self.attempts += chunk.attempts;
        self.most_candidates_left = self.most_candidates_left.max(chunk.most_candidates_left);
        if chunk.snapshot_id.is_some() {
            self.snapshot_id = chunk.snapshot_id;
            self.commits += 1;
        }
    }
}

/// Compacts `table`'s small data files; see the module docs.
pub async fn compact(
    catalog: &Catalog,
    table: &TableName,
    options: &CompactOptions,
) -> Result<CompactReport> {
    crate::with_lease(catalog, table, async {
        let mut run = CompactReport {
            dry_run: options.dry_run,
            ..CompactReport::default()
        };
        for _ in 0..MAX_CHUNKS {
            let prepared = prepare(catalog, table, options).await?;
            let remaining = prepared.remaining_bins;
            let chunk = prepared.commit(catalog).await?;
            run.absorb(&chunk);
            if chunk.snapshot_id.is_none() || remaining == 0 {
                break;
            }
            info!(%table, committed = run.commits, remaining, "compaction chunk committed; planning the rest");
        }
        Ok(run)
    })
    .await
}

/// A compaction whose outputs are written but not committed: the first half of [`compact`],
/// public so callers (and tests) can interleave; it does not take the maintenance lease.
pub struct PreparedCompaction {
    table: TableName,
    file_io: FileIO,
    /// Where the job may delete: its own outputs, inside the table's location.
    scope: TableScope,
    loaded: LoadedTable,
    /// The table's live files as planned from.
    files: TableFiles,
    inputs: Vec<LiveFile>,
    /// Paths of the delete files applied to the inputs.
    applied: HashSet<String>,
    added: Vec<DataFile>,
    removed_deletes: Vec<String>,
    report: CompactReport,
    /// Bins planned but left for a later chunk ([`CompactOptions::max_commit_bytes`]).
    remaining_bins: usize,
}

impl PreparedCompaction {
    /// The plan (and, unless a dry run, the written outputs) so far.
    pub fn report(&self) -> &CompactReport {
        &self.report
    }

    /// Deletes the written outputs without committing.
    pub async fn abandon(self) {
        delete_files(
            &self.scope,
            self.added.iter().map(|f| f.file_path().to_string()),
        )
        .await;
    }
}

struct Input {
    live: LiveFile,
    deletes: Vec<FileScanTaskDeleteFile>,
}

impl Input {
    fn size(&self) -> u64 {
        self.live.file.file_size_in_bytes()
    }
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
    // The warehouse's own object store: local directories and S3 alike.
    let file_io = catalog.file_io();
    let loaded = catalog.load_table(table).await?;
    let target = target_size(&loaded, options)?;
    let sort = match options.strategy {
        Strategy::BinPack => None,
        Strategy::Sort => Some(Layout::Sort(sort_plan(table, loaded.metadata())?)),
        Strategy::ZOrder => Some(Layout::ZOrder(zorder_plan(
            table,
            loaded.metadata(),
            &options.zorder_columns,
        )?)),
    };
    let mut report = CompactReport {
        dry_run: options.dry_run,
        target_file_size_bytes: target,
        ..CompactReport::default()
    };
    let files = TableFiles::read(loaded.metadata(), &file_io, None).await?;
    let scope = TableScope::new(catalog.warehouse(), loaded.metadata().location())?;
    let mut prepared = PreparedCompaction {
        table: table.clone(),
        file_io: file_io.clone(),
        scope: scope.clone(),
        loaded: loaded.clone(),
        files,
        inputs: Vec::new(),
        applied: HashSet::new(),
        added: Vec::new(),
        removed_deletes: Vec::new(),
        report: report.clone(),
        remaining_bins: 0,
    };
    if loaded.metadata().current_snapshot().is_none() {
        return Ok(prepared);
    }
    let (mut bins, most_candidates_left) =
        plan(loaded.metadata(), &prepared.files, target, options);
    report.most_candidates_left = most_candidates_left;
    if let Some(limit) = options.max_commit_bytes.filter(|_| !options.dry_run) {
        let chunk = chunk_len(&bins, limit);
        prepared.remaining_bins = bins.len() - chunk;
        bins.truncate(chunk);
    }
    report.bins = bins.len();
    for input in bins.iter().flat_map(|b| &b.inputs) {
        report.input_files += 1;
        report.input_bytes += input.size();
        report.input_records += input.live.file.record_count();
        prepared
            .applied
            .extend(input.deletes.iter().map(|d| d.file_path.clone()));
    }
    report.applied_delete_files = prepared.applied.len();
    prepared.inputs = bins
        .iter()
        .flat_map(|b| b.inputs.iter().map(|i| i.live.clone()))
        .collect();
    // Without a bin nothing is committed, so no delete file goes either.
    if !bins.is_empty() {
        let removable = removable_deletes(&prepared.files, &prepared.inputs);
        report.removed_delete_files = removable.len();
        report.removed_delete_bytes = removable.iter().map(|d| d.file.file_size_in_bytes()).sum();
        prepared.removed_deletes = removable.iter().map(|d| d.path().to_string()).collect();
    }
    prepared.report = report.clone();
    if bins.is_empty() || options.dry_run {
        prepared.removed_deletes.clear();
        prepared.inputs.clear();
        return Ok(prepared);
    }

    // Write the outputs.
    options
        .progress
        .start("compacting", report.input_files as u64, report.input_bytes);
    let mut added: Vec<DataFile> = Vec::new();
    let written = write_bins(
        table,
        &loaded,
        &file_io,
        &bins,
        target,
        sort.as_ref(),
        &options.progress,
        &mut added,
    )
    .await;
    options.progress.finish();
    if let Err(err) = written {
        delete_files(&scope, added.iter().map(|f| f.file_path().to_string())).await;
        return Err(err);
    }
    report.output_files = added.len();
    report.output_bytes = added.iter().map(DataFile::file_size_in_bytes).sum();
    report.output_records = added.iter().map(DataFile::record_count).sum();
    prepared.added = added;
    prepared.report = report;
    Ok(prepared)
}

/// How many of `bins`, in order, fit in `limit` input bytes; at least one, so every chunk
/// makes progress.
fn chunk_len(bins: &[Bin], limit: u64) -> usize {
    let mut bytes = 0;
    let mut count = 0;
    for bin in bins {
        let size: u64 = bin.inputs.iter().map(Input::size).sum();
        if count > 0 && bytes + size > limit {
            break;
        }
        bytes += size;
        count += 1;
    }
    count
}

/// The live delete files that apply to no data file left once `inputs` are gone.
fn removable_deletes<'a>(files: &'a TableFiles, inputs: &[LiveFile]) -> Vec<&'a LiveFile> {
    files.unneeded_without(&inputs.iter().map(LiveFile::path).collect())
}

impl PreparedCompaction {
    /// Commits one `replace` snapshot, rebasing over concurrent commits while every input (and
    /// every delete applied to them) is still live and no new delete applies to an input;
    /// abandons (deleting the outputs) otherwise.
    pub async fn commit(self, catalog: &Catalog) -> Result<CompactReport> {
        let Self {
            table,
            file_io,
            scope,
            loaded,
            mut files,
            inputs,
            applied,
            added,
            mut removed_deletes,
            mut report,
            remaining_bins: _,
        } = self;
        let table = &table;
        if added.is_empty() && inputs.is_empty() {
            return Ok(report);
        }
        let removed: Vec<String> = inputs.iter().map(|i| i.path().to_string()).collect();
        let abandon = |message: String| async {
            delete_files(&scope, added.iter().map(|f| f.file_path().to_string())).await;
            MaintenanceError::Conflict(message)
        };
        let mut current = loaded;
        loop {
            report.attempts += 1;
            let change = SnapshotChange::new(Operation::Replace)
                .adding(added.clone())
                .removing(removed.clone())
                .removing_deletes(removed_deletes.clone());
            let produced = match produce(current.metadata(), &file_io, change).await {
                Ok(produced) => produced,
                Err(err) => {
                    delete_files(&scope, added.iter().map(|f| f.file_path().to_string())).await;
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
                    report.removed_delete_files = removed_deletes.len();
                    report.removed_delete_bytes = files
                        .deletes
                        .iter()
                        .filter(|d| removed_deletes.iter().any(|r| r == d.path()))
                        .map(|d| d.file.file_size_in_bytes())
                        .sum();
                    info!(%table, snapshot_id, inputs = report.input_files, outputs = report.output_files,
                        removed_deletes = report.removed_delete_files, "compacted");
                    return Ok(report);
                }
                Err(CommitError::Conflict(message)) if report.attempts < MAX_ATTEMPTS => {
                    delete_files(&scope, manifests.into_iter()).await;
                    info!(%table, attempt = report.attempts, %message, "the table moved during compaction; rebasing");
                    tokio::time::sleep(Duration::from_millis(u64::from(report.attempts))).await;
                    let reread = async {
                        let loaded = catalog.load_table(table).await?;
                        let now =
                            TableFiles::read(loaded.metadata(), &file_io, Some(&files)).await?;
                        Ok::<_, MaintenanceError>((loaded, now))
                    };
                    let now = match reread.await {
                        Ok((loaded, now)) => {
                            current = loaded;
                            now
                        }
                        Err(err) => {
                            delete_files(&scope, added.iter().map(|f| f.file_path().to_string()))
                                .await;
                            return Err(err);
                        }
                    };
                    if let Some(reason) = still_valid(&files, &now, &inputs, &applied) {
                        return Err(abandon(format!(
                            "compaction of {table} abandoned: {reason}; nothing was changed"
                        ))
                        .await);
                    }
                    // Only deletes still live and still needed by nothing are removed.
                    let removable: HashSet<&str> = removable_deletes(&now, &inputs)
                        .into_iter()
                        .map(LiveFile::path)
                        .collect();
                    removed_deletes.retain(|d| removable.contains(d.as_str()));
                    files = now;
                }
                Err(CommitError::Conflict(message)) => {
                    // Refused, so not applied: nothing references the files.
                    delete_files(&scope, manifests.into_iter()).await;
                    return Err(abandon(format!(
                        "compaction of {table} gave up after {} conflicting commits ({message}); nothing was changed",
                        report.attempts
                    ))
                    .await);
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

/// Why the rewrite planned on `then` is no longer right on `now`, if it is not: an input was
/// removed, a delete it applied was removed, or a delete added since applies to an input.
fn still_valid(
    then: &TableFiles,
    now: &TableFiles,
    inputs: &[LiveFile],
    applied: &HashSet<String>,
) -> Option<String> {
    let live: HashSet<&str> = now.data.iter().map(LiveFile::path).collect();
    if let Some(gone) = inputs.iter().find(|i| !live.contains(i.path())) {
        return Some(format!(
            "input file {} was removed by a concurrent commit",
            gone.path()
        ));
    }
    let live_deletes: HashSet<&str> = now.deletes.iter().map(LiveFile::path).collect();
    if let Some(gone) = applied.iter().find(|d| !live_deletes.contains(d.as_str())) {
        return Some(format!(
            "delete file {gone}, applied to the inputs, was removed by a concurrent commit"
        ));
    }
    let known: HashSet<&str> = then.deletes.iter().map(LiveFile::path).collect();
    for delete in now.deletes.iter().filter(|d| !known.contains(d.path())) {
        if let Some(input) = inputs.iter().find(|i| now.applies(delete, i)) {
            return Some(format!(
                "a concurrent commit added delete file {}, which applies to input file {}",
                delete.path(),
                input.path()
            ));
        }
    }
    None
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

/// Groups the candidates of the current spec by partition and packs them into bins; also returns
/// the most candidates of a partition left alone for having too few.
fn plan(
    metadata: &TableMetadata,
    files: &TableFiles,
    target: u64,
    options: &CompactOptions,
) -> (Vec<Bin>, usize) {
    let min_inputs = options
        .min_input_files
        .unwrap_or(DEFAULT_MIN_INPUT_FILES)
        .max(2);
    let threshold = options
        .delete_file_threshold
        .unwrap_or(DEFAULT_DELETE_FILE_THRESHOLD)
        .max(1);
    let spec = metadata.default_partition_spec();
    let small = target / 4 * 3;
    let mut partitions: HashMap<Option<Struct>, Vec<Input>> = HashMap::new();
    for data in &files.data {
        if data.spec_id != spec.spec_id() || data.file.file_format() != DataFileFormat::Parquet {
            continue;
        }
        let deletes: Vec<&LiveFile> = files.deletes_for(data).collect();
        if data.file.file_size_in_bytes() >= small && deletes.len() < threshold {
            continue;
        }
        let partition = (!spec.is_unpartitioned()).then(|| data.file.partition().clone());
        partitions.entry(partition).or_default().push(Input {
            live: data.clone(),
            deletes: deletes.into_iter().map(task_delete).collect(),
        });
    }
    let has_deletes = |inputs: &[Input]| inputs.iter().any(|i| i.deletes.len() >= threshold);
    let mut bins = Vec::new();
    let mut most_left = 0;
    for (partition, mut inputs) in partitions {
        if inputs.len() < min_inputs && !has_deletes(&inputs) {
            most_left = most_left.max(inputs.len());
            continue;
        }
        inputs.sort_by(|a, b| a.live.path().cmp(b.live.path()));
        let mut open: Vec<Input> = Vec::new();
        let mut open_size = 0;
        // A bin of one file is worth rewriting only to apply its deletes.
        let close = |open: &mut Vec<Input>, bins: &mut Vec<Bin>| {
            if open.len() > 1 || has_deletes(open) {
                bins.push(Bin {
                    partition: partition.clone(),
                    inputs: std::mem::take(open),
                });
            } else {
                open.clear();
            }
        };
        for input in inputs {
            if !open.is_empty() && open_size + input.size() > target {
                close(&mut open, &mut bins);
                open_size = 0;
            }
            open_size += input.size();
            open.push(input);
        }
        close(&mut open, &mut bins);
    }
    bins.sort_by(|a, b| a.inputs[0].live.path().cmp(b.inputs[0].live.path()));
    (bins, most_left)
}

/// A whole-file read task of `input` in the current schema, with its deletes.
fn scan_task(metadata: &TableMetadata, input: &Input) -> Result<FileScanTask> {
    let schema = metadata.current_schema().clone();
    let name_mapping = metadata
        .properties()
        .get(DEFAULT_SCHEMA_NAME_MAPPING)
        .map(|raw| serde_json::from_str::<NameMapping>(raw).map(Arc::new))
        .transpose()
        .map_err(|err| {
            MaintenanceError::Iceberg(format!("bad {DEFAULT_SCHEMA_NAME_MAPPING}: {err}"))
        })?;
    let file = &input.live.file;
    Ok(FileScanTask {
        file_size_in_bytes: file.file_size_in_bytes(),
        start: 0,
        length: file.file_size_in_bytes(),
        record_count: Some(file.record_count()),
        data_file_path: file.file_path().to_string(),
        data_file_format: file.file_format(),
        project_field_ids: schema.as_struct().fields().iter().map(|f| f.id).collect(),
        schema,
        predicate: None,
        deletes: input.deletes.clone(),
        partition: Some(file.partition().clone()),
        // As iceberg's own scan: the reader then reads every column from the file.
        partition_spec: None,
        name_mapping,
        case_sensitive: true,
    })
}

/// How a bin's rows are ordered in its outputs (Iceberg's rewrite strategies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Rows in input order: the inputs' files one after the other.
    #[default]
    BinPack,
    /// Rows sorted by the table's default sort order (identity transforms of top-level columns);
    /// the outputs record that sort order's id.
    Sort,
    /// Rows in z-order over [`CompactOptions::zorder_columns`] (see [`crate::zorder`]).
    ZOrder,
}

/// How a bin's rows are ordered before they are written.
enum Layout {
    Sort(SortPlan),
    ZOrder(ZOrderPlan),
}

/// The z-order columns as columns of the compaction reader's batches.
fn zorder_plan(
    table: &TableName,
    metadata: &TableMetadata,
    names: &[String],
) -> Result<ZOrderPlan> {
    if names.len() < 2 {
        return Err(MaintenanceError::InvalidRequest(
            "z-order needs two or more columns (for one, sort by it)".into(),
        ));
    }
    let fields = metadata.current_schema().as_struct().fields();
    let columns = names
        .iter()
        .map(|name| {
            fields.iter().position(|f| &f.name == name).ok_or_else(|| {
                MaintenanceError::InvalidRequest(format!(
                    "{table} has no top-level column {name:?} to z-order by (columns: {})",
                    fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ZOrderPlan { columns })
}

/// The sort order to write a bin in: its id and the sort columns of the reader's batches.
struct SortPlan {
    order_id: i64,
    keys: Vec<(usize, SortOptions)>,
}

/// The table's default sort order as columns of the compaction reader's batches (the current
/// schema's top-level fields, in order); refused when the table has none or it uses a transform
/// other than identity.
fn sort_plan(table: &TableName, metadata: &TableMetadata) -> Result<SortPlan> {
    let order = metadata.default_sort_order();
    if order.is_unsorted() {
        return Err(MaintenanceError::InvalidRequest(format!(
            "{table} has no sort order: set one (e.g. Spark's ALTER TABLE ... WRITE ORDERED BY) or compact with bin-pack"
        )));
    }
    let schema = metadata.current_schema();
    let fields = schema.as_struct().fields();
    let mut keys = Vec::new();
    for field in &order.fields {
        if field.transform != Transform::Identity {
            return Err(MaintenanceError::InvalidRequest(format!(
                "{table}'s sort order uses the transform {}: only identity sort fields are supported",
                field.transform
            )));
        }
        let column = fields
            .iter()
            .position(|f| f.id == field.source_id)
            .ok_or_else(|| {
                MaintenanceError::InvalidRequest(format!(
                    "{table}'s sort order names field {}, which is not a top-level column",
                    field.source_id
                ))
            })?;
        keys.push((
            column,
            SortOptions {
                descending: field.direction == SortDirection::Descending,
                nulls_first: field.null_order == NullOrder::First,
            },
        ));
    }
    Ok(SortPlan {
        order_id: order.order_id,
        keys,
    })
}

/// All of a bin's rows in one batch, sorted by `plan`.
fn sorted(batches: Vec<RecordBatch>, plan: &SortPlan) -> Result<Vec<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(batches);
    };
    let arrow = |err: arrow::error::ArrowError| MaintenanceError::Iceberg(err.to_string());
    let all = concat_batches(&first.schema(), &batches).map_err(arrow)?;
    let columns: Vec<SortColumn> = plan
        .keys
        .iter()
        .map(|(column, options)| SortColumn {
            values: all.column(*column).clone(),
            options: Some(*options),
        })
        .collect();
    let indices = lexsort_to_indices(&columns, None).map_err(arrow)?;
    Ok(vec![take_record_batch(&all, &indices).map_err(arrow)?])
}

#[allow(clippy::too_many_arguments)] // one call site; the pieces are all different
async fn write_bins(
    table: &TableName,
    loaded: &LoadedTable,
    file_io: &FileIO,
    bins: &[Bin],
    target: u64,
    sort: Option<&Layout>,
    progress: &ProgressSink,
    added: &mut Vec<DataFile>,
) -> Result<()> {
    let metadata = loaded.metadata();
    let schema = metadata.current_schema().clone();
    let spec = metadata.default_partition_spec().clone();
    let properties = metadata.table_properties().map_err(iceberg_error)?;
    let runtime = iceberg::Runtime::try_current().map_err(iceberg_error)?;
    let sort_order_id = match sort {
        Some(Layout::Sort(plan)) => Some(i32::try_from(plan.order_id).map_err(|_| {
            MaintenanceError::InvalidRequest(format!(
                "sort order id {} is too large",
                plan.order_id
            ))
        })?),
        Some(Layout::ZOrder(_)) | None => None,
    };
    for bin in bins {
        let tasks = bin
            .inputs
            .iter()
            .map(|i| {
                scan_task(metadata, i).map_err(|e| {
                    iceberg::Error::new(iceberg::ErrorKind::DataInvalid, e.to_string())
                })
            })
            .collect::<Vec<_>>();
        let read_error = |err: iceberg::Error| {
            MaintenanceError::Iceberg(format!("cannot read the inputs of {table}: {err}"))
        };
        let mut rows = ArrowReaderBuilder::new(file_io.clone(), runtime.clone())
            .build()
            .read(Box::pin(futures::stream::iter(tasks)))
            .map_err(iceberg_error)?
            .stream();
        let partition_key = bin
            .partition
            .clone()
            .map(|data| PartitionKey::new(spec.as_ref().clone(), schema.clone(), data));
        let parquet = ParquetWriterBuilder::from_table_properties(&properties, schema.clone())
            .with_match_mode(FieldMatchMode::Name);
        let mut writer = RollingFileWriterBuilder::new(
            parquet,
            usize::try_from(target).unwrap_or(usize::MAX),
            file_io.clone(),
            DefaultLocationGenerator::new(metadata).map_err(iceberg_error)?,
            DefaultFileNameGenerator::new(prefix(), None, DataFileFormat::Parquet),
        )
        .build();
        // Bin-pack streams: a batch is written as soon as it is read, so memory stays at a few
        // batches whatever the bin's size. Sort and z-order need the whole bin first.
        let ordered = match sort {
            None => None,
            Some(layout) => {
                let batches: Vec<RecordBatch> =
                    (&mut rows).try_collect().await.map_err(read_error)?;
                Some(match layout {
                    Layout::Sort(plan) => sorted(batches, plan)?,
                    Layout::ZOrder(plan) => zordered(batches, plan)?,
                })
            }
        };
        let mut ordered = ordered.map(Vec::into_iter);
        loop {
            let batch = match &mut ordered {
                Some(batches) => batches.next(),
                None => rows.try_next().await.map_err(read_error)?,
            };
            let Some(batch) = batch else { break };
            // Deletes can leave a whole file empty: nothing to write for it.
            if batch.num_rows() > 0 {
                writer
                    .write(&partition_key, &batch)
                    .await
                    .map_err(iceberg_error)?;
            }
        }
        // What iceberg's data-file writer does, plus the sort order the rows are in.
        for mut file in writer.close().await.map_err(iceberg_error)? {
            file.content(DataContentType::Data)
                .partition_spec_id(spec.spec_id());
            if let Some(id) = sort_order_id {
                file.sort_order_id(id);
            }
            if let Some(key) = &partition_key {
                file.partition(key.data().clone());
            }
            added.push(file.build().map_err(|err| {
                MaintenanceError::Iceberg(format!("cannot describe a written file: {err}"))
            })?);
        }
        progress.advance(
            bin.inputs.len() as u64,
            bin.inputs.iter().map(Input::size).sum(),
        );
    }
    Ok(())
}

fn prefix() -> String {
    format!("compact-{}", uuid::Uuid::now_v7().simple())
}

/// Deletes files the job wrote and will not commit (inside the table's location only).
async fn delete_files(scope: &TableScope, paths: impl Iterator<Item = String>) {
    for path in paths {
        if let Err(err) = scope.delete(&path).await {
            warn!(path, error = %err, "could not delete an unreferenced file");
        }
    }
}

fn iceberg_error(err: iceberg::Error) -> MaintenanceError {
    MaintenanceError::Iceberg(err.to_string())
}
