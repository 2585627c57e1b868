//! Scans that say what they read: iceberg-datafusion's table scan, with metrics.
//!
//! iceberg-datafusion's `IcebergTableScan` plans the Iceberg scan (pruning data files by the
//! pushed-down filters against partition values and column bounds) and reads the files, but
//! reports nothing. [`MeasuredTable`] wraps any table provider and replaces the scans it plans with
//! a [`MeasuredScan`], which does the same work — the same Iceberg scan, planned from the same
//! table, snapshot, projection and predicate, read by iceberg's Arrow reader — and counts it, so
//! `EXPLAIN ANALYZE` shows, on the `IcebergTableScan` line:
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
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{Stream, StreamExt, TryStreamExt};
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::expr::Predicate;
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
        match plan.as_any().downcast_ref::<IcebergTableScan>() {
            Some(scan) => Ok(Arc::new(MeasuredScan::new(scan, plan.clone()))),
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

/// iceberg-datafusion's scan, run here with metrics (see the module docs).
#[derive(Debug)]
pub struct MeasuredScan {
    /// The scan this one stands for: its display and parameters.
    inner: Arc<dyn ExecutionPlan>,
    /// The inner scan's properties, with its schema as queries see it.
    properties: Arc<PlanProperties>,
    table: Table,
    snapshot_id: Option<i64>,
    projection: Option<Vec<String>>,
    predicate: Option<Predicate>,
    limit: Option<usize>,
    metrics: ExecutionPlanMetricsSet,
}

impl MeasuredScan {
    fn new(scan: &IcebergTableScan, inner: Arc<dyn ExecutionPlan>) -> Self {
        let read = inner.properties();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(scan_types::query_schema(&inner.schema())),
            read.partitioning.clone(),
            read.emission_type,
            read.boundedness,
        );
        Self {
            inner,
            properties: Arc::new(properties),
            table: scan.table().clone(),
            snapshot_id: scan.snapshot_id(),
            projection: scan.projection().map(<[String]>::to_vec),
            predicate: scan.predicates().cloned(),
            limit: scan.limit(),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for MeasuredScan {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match self.inner.as_any().downcast_ref::<IcebergTableScan>() {
            Some(scan) => scan.fmt_as(t, f),
            None => write!(f, "IcebergTableScan"),
        }
    }
}

/// The counters of one execution of a scan.
#[derive(Clone)]
struct Counters {
    files_scanned: Count,
    files_pruned: Count,
    bytes_scanned: Count,
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

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let counters = Counters {
            files_scanned: MetricBuilder::new(&self.metrics).counter("files_scanned", partition),
            files_pruned: MetricBuilder::new(&self.metrics).counter("files_pruned", partition),
            bytes_scanned: MetricBuilder::new(&self.metrics).counter("bytes_scanned", partition),
        };
        let batches = futures::stream::once(read(
            self.table.clone(),
            self.snapshot_id,
            self.projection.clone(),
            self.predicate.clone(),
            counters,
        ))
        .try_flatten();
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

/// Plans the Iceberg scan, counts its files, and reads them.
async fn read(
    table: Table,
    snapshot_id: Option<i64>,
    projection: Option<Vec<String>>,
    predicate: Option<Predicate>,
    counters: Counters,
) -> DFResult<BatchStream> {
    let table = match snapshot_id {
        Some(_) => table,
        None => with_current_schema(&table)?,
    };
    let mut builder = match snapshot_id {
        Some(id) => table.scan().snapshot_id(id),
        None => table.scan(),
    };
    builder = match projection {
        Some(columns) => builder.select(columns),
        None => builder.select_all(),
    };
    if let Some(predicate) = predicate {
        builder = builder.with_filter(predicate);
    }
    let scan = builder.build().map_err(external)?;
    let tasks: Vec<FileScanTask> = scan
        .plan_files()
        .await
        .map_err(external)?
        .try_collect()
        .await
        .map_err(external)?;
    refuse_deletion_vectors(&table, &tasks)?;
    let files: HashSet<&str> = tasks.iter().map(|t| t.data_file_path.as_str()).collect();
    counters.files_scanned.add(files.len());
    let total = scan
        .snapshot()
        .and_then(|s| s.summary().additional_properties.get("total-data-files"))
        .and_then(|n| n.parse::<usize>().ok());
    if let Some(total) = total {
        counters.files_pruned.add(total.saturating_sub(files.len()));
    }
    let runtime = iceberg::Runtime::try_current().map_err(external)?;
    let result = ArrowReaderBuilder::new(table.file_io().clone(), runtime)
        .build()
        .read(Box::pin(futures::stream::iter(tasks.into_iter().map(Ok))))
        .map_err(external)?;
    let scan_metrics = result.metrics().clone();
    let batches = result.stream().map_err(external);
    // Bytes are known once the files are read: counted when the stream ends.
    let done = futures::stream::once(async move {
        counters
            .bytes_scanned
            .add(scan_metrics.bytes_read() as usize);
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
