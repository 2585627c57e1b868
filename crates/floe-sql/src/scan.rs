//! Scans that use every core and say what they read: iceberg-datafusion's table scan, planned
//! here, read in balanced partitions, with metrics.
//!
//! iceberg-datafusion's `IcebergTableScan` plans the Iceberg scan (pruning data files by the
//! pushed-down filters against partition values and column bounds) and reads the files, all in
//! one partition: one task decodes every file of the table, and DataFusion spreads the rows over
//! the cores only after that. [`MeasuredTable`] wraps any table provider and replaces the scans it
//! plans with a [`MeasuredScan`], which does the same work — the same Iceberg scan, planned from
//! the same table, snapshot, projection and predicate, read by iceberg's Arrow reader — but plans
//! the files when the query is planned and spreads them over `target_partitions` partitions of
//! about equal bytes ([`spread`]): a file larger than its share is split into byte ranges, each
//! read as the row groups whose middle falls in it (iceberg's reader does that split), so that a
//! table of one big file is decoded on every core too.
//!
//! `EXPLAIN` shows the partitions on the `IcebergTableScan` line (`partitions=N`), and
//! `EXPLAIN ANALYZE` shows what the scan read:
//!
//! - `files_scanned`: data files the scan read (after pruning);
//! - `files_pruned`: data files of the snapshot it did not read (when the snapshot's summary has
//!   its total);
//! - `bytes_scanned`: bytes read from storage (data and delete files).
//!
//! It also shows DataFusion the table's columns with the types queries need
//! ([`crate::scan_types`]: no field-id metadata, strings as views), and converts what it reads.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session as DFSession;
use datafusion::common::stats::Precision;
use datafusion::common::{Constraints, Statistics};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{Stream, StreamExt, TryStreamExt};
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::scan::FileScanTask;
use iceberg::spec::TableMetadata;
use iceberg::table::Table;
use iceberg_datafusion::physical_plan::IcebergTableScan;

use crate::scan_types;

/// A table provider whose scans are [`MeasuredScan`]s; everything else is the inner provider's.
#[derive(Debug)]
pub struct MeasuredTable {
    inner: Arc<dyn TableProvider>,
    /// The inner provider's schema as queries see it ([`scan_types::query_schema`]).
    schema: SchemaRef,
}

impl MeasuredTable {
    pub fn new(inner: Arc<dyn TableProvider>) -> Self {
        let schema = scan_types::query_schema(&inner.schema());
        Self { inner, schema }
    }
}

#[async_trait]
impl TableProvider for MeasuredTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.inner.get_table_definition()
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        self.inner.get_logical_plan()
    }

    async fn scan(
        &self,
        state: &dyn DFSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let filters = scan_types::to_table_filters(filters)?;
        let plan = self.inner.scan(state, projection, &filters, limit).await?;
        let partitions = state.config().target_partitions();
        match plan.as_any().downcast_ref::<IcebergTableScan>() {
            Some(scan) => Ok(Arc::new(
                MeasuredScan::plan(scan, plan.clone(), partitions).await?,
            )),
            // Its batches would not have the types this provider's schema promises.
            None => Err(DataFusionError::Internal(format!(
                "an Iceberg table's scan is {}, not an IcebergTableScan",
                plan.name()
            ))),
        }
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn insert_into(
        &self,
        state: &dyn DFSession,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let input = scan_types::to_table_input(input, &self.inner.schema())?;
        self.inner.insert_into(state, input, insert_op).await
    }
}

/// iceberg-datafusion's scan, planned here and read in partitions, with metrics (see the module
/// docs).
#[derive(Debug)]
pub struct MeasuredScan {
    /// The scan this one stands for: its display and parameters.
    inner: Arc<dyn ExecutionPlan>,
    /// The inner scan's properties, with its schema as queries see it and this scan's partitions.
    properties: Arc<PlanProperties>,
    table: Table,
    /// Each partition's file scan tasks.
    groups: Arc<Vec<Vec<FileScanTask>>>,
    /// Each partition's rows by the manifests (a range of a file counts its share); `None` when
    /// a file's count is missing. Counted once here: the planner asks for statistics often.
    rows: Option<Vec<u64>>,
    files_scanned: usize,
    /// Files of the snapshot not read, when its summary has its total.
    files_pruned: Option<usize>,
    limit: Option<usize>,
    metrics: ExecutionPlanMetricsSet,
}

impl MeasuredScan {
    /// Plans the Iceberg scan `scan` stands for and spreads its files over `partitions`.
    async fn plan(
        scan: &IcebergTableScan,
        inner: Arc<dyn ExecutionPlan>,
        partitions: usize,
    ) -> DFResult<Self> {
        let table = match scan.snapshot_id() {
            Some(_) => scan.table().clone(),
            None => with_current_schema(scan.table())?,
        };
        let mut builder = match scan.snapshot_id() {
            Some(id) => table.scan().snapshot_id(id),
            None => table.scan(),
        };
        builder = match scan.projection() {
            Some(columns) => builder.select(columns.iter().cloned()),
            None => builder.select_all(),
        };
        if let Some(predicate) = scan.predicates() {
            builder = builder.with_filter(predicate.clone());
        }
        let planned = builder.build().map_err(external)?;
        let tasks: Vec<FileScanTask> = planned
            .plan_files()
            .await
            .map_err(external)?
            .try_collect()
            .await
            .map_err(external)?;
        refuse_deletion_vectors(&table, &tasks)?;
        let files_scanned = tasks
            .iter()
            .map(|task| task.data_file_path.as_str())
            .collect::<HashSet<_>>()
            .len();
        let files_pruned = planned
            .snapshot()
            .and_then(|s| s.summary().additional_properties.get("total-data-files"))
            .and_then(|n| n.parse::<usize>().ok())
            .map(|total| total.saturating_sub(files_scanned));
        let groups = spread(tasks, partitions);
        let rows = groups
            .iter()
            .map(|group| group.iter().map(task_rows).sum::<Option<u64>>())
            .collect();

        let read = inner.properties();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(scan_types::query_schema(&inner.schema())),
            Partitioning::UnknownPartitioning(groups.len()),
            read.emission_type,
            read.boundedness,
        );
        Ok(Self {
            inner,
            properties: Arc::new(properties),
            table,
            groups: Arc::new(groups),
            rows,
            files_scanned,
            files_pruned,
            limit: scan.limit(),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }
}

/// The smallest file split into byte ranges: below it, reading one more footer costs more than
/// decoding the file on one core.
const MIN_SPLIT_BYTES: u64 = 8 << 20;

/// Spreads a scan's tasks over at most `partitions` groups of about equal bytes: files larger
/// than a group's share (and [`MIN_SPLIT_BYTES`]) are cut into byte ranges first, then the pieces
/// go, largest first, to the lightest group. Empty groups are dropped (one is kept).
///
/// A range is read as the row groups whose middle falls in it, so the ranges of a file, covering
/// it end to end, read each row group exactly once. Position deletes apply to every range
/// (iceberg's reader maps a file's delete positions onto the row groups it selects).
fn spread(tasks: Vec<FileScanTask>, partitions: usize) -> Vec<Vec<FileScanTask>> {
    let partitions = partitions.max(1);
    let total: u64 = tasks.iter().map(task_bytes).sum();
    let share = total.div_ceil(partitions as u64).max(MIN_SPLIT_BYTES);
    let mut pieces = Vec::with_capacity(tasks.len());
    for task in tasks {
        let bytes = task_bytes(&task);
        let whole_file =
            task.start == 0 && (task.length == 0 || task.length == task.file_size_in_bytes);
        if !whole_file || bytes <= share {
            pieces.push(task);
            continue;
        }
        let size = task.file_size_in_bytes;
        let count = bytes.div_ceil(share);
        for i in 0..count {
            let (start, end) = (size * i / count, size * (i + 1) / count);
            let mut piece = task.clone();
            piece.start = start;
            piece.length = end - start;
            pieces.push(piece);
        }
    }
    // Largest first, then by file and offset: the same plan for the same table every time.
    pieces.sort_by(|a, b| {
        task_bytes(b)
            .cmp(&task_bytes(a))
            .then_with(|| a.data_file_path.cmp(&b.data_file_path))
            .then_with(|| a.start.cmp(&b.start))
    });
    let mut groups: Vec<(u64, Vec<FileScanTask>)> = vec![(0, Vec::new()); partitions];
    for piece in pieces {
        if let Some(lightest) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            lightest.0 += task_bytes(&piece);
            lightest.1.push(piece);
        }
    }
    let mut groups: Vec<Vec<FileScanTask>> = groups
        .into_iter()
        .map(|(_, group)| group)
        .filter(|group| !group.is_empty())
        .collect();
    if groups.is_empty() {
        groups.push(Vec::new());
    }
    groups
}

/// The rows a task reads by its manifest entry: its range's share of its file's rows.
fn task_rows(task: &FileScanTask) -> Option<u64> {
    let count = task.record_count?;
    Some(match task.file_size_in_bytes {
        0 => count,
        size => count.saturating_mul(task_bytes(task)) / size,
    })
}

/// The bytes a task reads: its range, or its whole file.
fn task_bytes(task: &FileScanTask) -> u64 {
    if task.length > 0 {
        task.length
    } else {
        task.file_size_in_bytes
    }
}

impl DisplayAs for MeasuredScan {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match self.inner.as_any().downcast_ref::<IcebergTableScan>() {
            Some(scan) => scan.fmt_as(t, f)?,
            None => write!(f, "IcebergTableScan")?,
        }
        write!(f, " partitions={}", self.groups.len())
    }
}

impl ExecutionPlan for MeasuredScan {
    fn name(&self) -> &str {
        "IcebergTableScan"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    /// The rows the scan's files hold, from the manifests ([`MeasuredScan::rows`]): an upper
    /// bound (deletes and a filter's rows within a file are not counted), which lets the planner
    /// build joins on the smaller side and broadcast small tables. Bytes are left unknown: a
    /// file's bytes are all its columns' and compressed, not what the scan yields.
    fn partition_statistics(&self, partition: Option<usize>) -> DFResult<Statistics> {
        let mut statistics = Statistics::new_unknown(&self.schema());
        let rows = self.rows.as_ref().and_then(|rows| match partition {
            None => Some(rows.iter().sum()),
            Some(partition) => rows.get(partition).copied(),
        });
        if let Some(rows) = rows {
            statistics.num_rows = Precision::Inexact(usize::try_from(rows).unwrap_or(usize::MAX));
        }
        Ok(statistics)
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let counter =
            |name: &'static str| MetricBuilder::new(&self.metrics).counter(name, partition);
        let (files_scanned, files_pruned) = (counter("files_scanned"), counter("files_pruned"));
        // The scan's file counts once, with its first partition.
        if partition == 0 {
            files_scanned.add(self.files_scanned);
            files_pruned.add(self.files_pruned.unwrap_or(0));
        }
        let bytes_scanned = counter("bytes_scanned");
        let tasks = self.groups.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "partition {partition} of a scan with {}",
                self.groups.len()
            ))
        })?;
        let table = self.table.clone();
        let batches =
            futures::stream::once(async move { read(&table, tasks, bytes_scanned) }).try_flatten();
        let schema = self.schema();
        let batches = batches.and_then(move |batch| {
            futures::future::ready(
                scan_types::to_query_batch(batch, &schema).map_err(DataFusionError::from),
            )
        });
        let mut remaining = self.limit;
        let limited = batches.try_filter_map(move |batch| {
            futures::future::ready(Ok(match &mut remaining {
                None => Some(batch),
                Some(0) => None,
                Some(left) if batch.num_rows() <= *left => {
                    *left -= batch.num_rows();
                    Some(batch)
                }
                Some(left) => {
                    let batch = batch.slice(0, *left);
                    *left = 0;
                    Some(batch)
                }
            }))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            limited,
        )))
    }
}

type BatchStream = Pin<Box<dyn Stream<Item = DFResult<RecordBatch>> + Send>>;

/// Reads one partition's tasks.
fn read(table: &Table, tasks: Vec<FileScanTask>, bytes_scanned: Count) -> DFResult<BatchStream> {
    let runtime = iceberg::Runtime::try_current().map_err(external)?;
    let result = ArrowReaderBuilder::new(table.file_io().clone(), runtime)
        .build()
        .read(Box::pin(futures::stream::iter(tasks.into_iter().map(Ok))))
        .map_err(external)?;
    let scan_metrics = result.metrics().clone();
    let batches = result.stream().map_err(external);
    // Bytes are known once the files are read: counted when the stream ends.
    let done = futures::stream::once(async move {
        bytes_scanned.add(scan_metrics.bytes_read() as usize);
        None
    })
    .filter_map(futures::future::ready);
    Ok(Box::pin(batches.chain(done)))
}

/// Iceberg v3 deletion vectors live in Puffin files, which iceberg-rust 0.10 would read as
/// Parquet delete files and fail on with a "corrupt footer"; say what it is instead. (Java writes
/// them with the `.puffin` extension, and manifests carry no file format for deletes here.)
fn refuse_deletion_vectors(table: &Table, tasks: &[FileScanTask]) -> DFResult<()> {
    let puffin = tasks
        .iter()
        .flat_map(|task| &task.deletes)
        .find(|delete| delete.file_path.to_ascii_lowercase().ends_with(".puffin"));
    match puffin {
        None => Ok(()),
        Some(delete) => Err(datafusion::error::DataFusionError::NotImplemented(format!(
            "table {} has deletion vectors (Iceberg format v3, e.g. {}), which floe sql cannot \
             apply yet; read it with Spark, or keep the table on format version 2",
            table.identifier(),
            delete.file_path
        ))),
    }
}

/// `table` with its current snapshot marked as written with the table's current schema.
///
/// iceberg-rust scans a snapshot with the schema it was written with, the current snapshot too;
/// but the table's current rows have its current schema: a column added or renamed since the last
/// write must read (as null, or under its new name). Files are read by field id, so this is all it
/// takes. Scans of the table as it is now (queries, `DELETE`, `UPDATE`) go through this; time
/// travel does not.
pub(crate) fn with_current_schema(table: &Table) -> DFResult<Table> {
    let metadata = table.metadata();
    let current_schema_id = metadata.current_schema_id();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(table.clone());
    };
    if snapshot
        .schema_id()
        .is_none_or(|id| id == current_schema_id)
    {
        return Ok(table.clone());
    }
    let invalid = |err: serde_json::Error| {
        DataFusionError::Execution(format!("cannot read the table's metadata: {err}"))
    };
    let mut json = serde_json::to_value(metadata).map_err(invalid)?;
    let id = serde_json::Value::from(snapshot.snapshot_id());
    if let Some(snapshots) = json.get_mut("snapshots").and_then(|s| s.as_array_mut()) {
        for entry in snapshots.iter_mut().filter(|s| s["snapshot-id"] == id) {
            entry["schema-id"] = current_schema_id.into();
        }
    }
    let metadata: TableMetadata = serde_json::from_value(json).map_err(invalid)?;
    let mut builder = Table::builder()
        .identifier(table.identifier().clone())
        .file_io(table.file_io().clone())
        .metadata(Arc::new(metadata))
        .runtime(iceberg::Runtime::try_current().map_err(external)?);
    if let Some(location) = table.metadata_location() {
        builder = builder.metadata_location(location.to_string());
    }
    builder.build().map_err(external)
}

fn external(err: iceberg::Error) -> DataFusionError {
    DataFusionError::External(Box::new(err))
}
