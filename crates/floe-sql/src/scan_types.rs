//! The types a table's columns have in queries, and the conversions at the scan and the write.
//!
//! iceberg-rust reads a table as Arrow with each Iceberg type's direct counterpart, every column
//! carrying its Iceberg field id as `PARQUET:field_id` metadata, and strings as `Utf8`. Two of
//! those choices break queries once they are inside DataFusion, so Floe shows DataFusion a
//! slightly different schema ([`query_schema`]) and converts each batch the reader yields to it
//! ([`to_query_batch`]):
//!
//! - **No field metadata.** Metadata is part of an Arrow field's identity, and DataFusion does not
//!   merge it the same way in its logical and its physical plans: when the optimizer prunes the
//!   columns of a `UNION ALL` whose inputs disagree (columns with different field ids, or a column
//!   and a literal), it rebuilds the union's logical fields without metadata, the physical union
//!   keeps the first input's, and the operator above it (an aggregate, a join) refuses to plan ("Physical input schema should be the same as the one converted from logical
//!   input schema", apache/datafusion#18337 and #19049, where DataFusion's own Parquet reader
//!   avoids it by dropping the metadata unless asked not to). The ids matter only to the reader,
//!   which has matched the file's columns by them before a batch leaves the scan; above the scan
//!   a column is known by its name.
//! - **Strings as `Utf8View` (binary as `BinaryView`).** A `Utf8` column keeps a batch's values in
//!   one buffer addressed by 32-bit offsets, so one batch can hold at most 2 GiB of it. Batches
//!   are bounded in rows, not bytes: a join that repeats long strings gathers its output with
//!   `take` past that bound and fails with "Offset overflow error". A view array addresses each
//!   value by buffer and offset, so `take`, filters and concatenation copy 16-byte views and share
//!   the string buffers: no bound, and less copying. It is the type DataFusion's own Parquet
//!   reader gives strings (`schema_force_view_types`), the one its string kernels are tuned for.
//!   Converting a batch makes one view per value, pointing into the
//!   reader's buffer (only strings of up to 12 bytes are copied, into their views).
//!
//! Writes go the other way: rows for a table are cast to the table's own schema
//! ([`to_table_input`]) before iceberg-rust's writer sees them. Only top-level columns change;
//! strings inside structs, lists and maps stay `Utf8` (with their ids), as iceberg-rust reads them.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::DataFusionError;
use datafusion::error::Result as DFResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::TryStreamExt;

/// The schema queries see for columns read as `read`: no metadata, strings and binary as views.
pub(crate) fn query_schema(read: &Schema) -> SchemaRef {
    let fields: Vec<Field> = read
        .fields()
        .iter()
        .map(|field| {
            Field::new(
                field.name(),
                query_type(field.data_type()),
                field.is_nullable(),
            )
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn query_type(read: &DataType) -> DataType {
    match read {
        DataType::Utf8 | DataType::LargeUtf8 => DataType::Utf8View,
        DataType::Binary | DataType::LargeBinary => DataType::BinaryView,
        other => other.clone(),
    }
}

/// `batch` in `schema`, which has its columns with other types (e.g. a batch as the reader
/// yields it, in its [`query_schema`]).
pub(crate) fn to_query_batch(
    batch: RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(
            |(column, field)| match column.data_type() == field.data_type() {
                true => Ok(column.clone()),
                false => cast(column, field.data_type()),
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
}

/// `filters` as the table's own provider understands them: it turns them into an Iceberg
/// predicate (to prune files), and knows string and binary literals only as `Utf8`/`Binary`,
/// while the planner writes them as views to compare them with the view columns. The values are
/// the same; without this, filters on strings would prune nothing.
pub(crate) fn to_table_filters(filters: &[Expr]) -> DFResult<Vec<Expr>> {
    filters
        .iter()
        .map(|filter| {
            filter
                .clone()
                .transform(|expr| {
                    Ok(match expr {
                        Expr::Literal(ScalarValue::Utf8View(value), metadata) => {
                            Transformed::yes(Expr::Literal(ScalarValue::Utf8(value), metadata))
                        }
                        Expr::Literal(ScalarValue::BinaryView(value), metadata) => {
                            Transformed::yes(Expr::Literal(ScalarValue::Binary(value), metadata))
                        }
                        other => Transformed::no(other),
                    })
                })
                .map(|transformed| transformed.data)
        })
        .collect()
}

/// `input` (rows for a table, in its [`query_schema`]) cast to `table`'s own schema, column by
/// column, as iceberg-rust's writer expects them.
pub(crate) fn to_table_input(
    input: Arc<dyn ExecutionPlan>,
    table: &Schema,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let input_schema = input.schema();
    // Rows of another shape are the writer's to refuse, with its own message.
    let other_shape = input_schema.fields().len() != table.fields().len();
    let same_types = input_schema
        .fields()
        .iter()
        .zip(table.fields())
        .all(|(given, wanted)| given.data_type() == wanted.data_type());
    if other_shape || same_types {
        return Ok(input);
    }
    let schema: SchemaRef = Arc::new(Schema::new(
        input_schema
            .fields()
            .iter()
            .zip(table.fields())
            .map(|(given, wanted)| {
                Field::new(
                    given.name(),
                    wanted.data_type().clone(),
                    given.is_nullable(),
                )
            })
            .collect::<Vec<_>>(),
    ));
    Ok(Arc::new(TableTypesExec::new(input, schema)))
}

/// Casts its input's batches to a table's types.
///
/// Not a `ProjectionExec` of casts: DataFusion merges projections into the ones above them, and
/// iceberg-datafusion's partition projection reads whole batches rather than its child
/// expressions, so it would see the uncast columns.
#[derive(Debug)]
struct TableTypesExec {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl TableTypesExec {
    fn new(input: Arc<dyn ExecutionPlan>, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            input.properties().partitioning.clone(),
            input.properties().emission_type,
            input.properties().boundedness,
        );
        Self {
            input,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for TableTypesExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TableTypesExec")
    }
}

impl ExecutionPlan for TableTypesExec {
    fn name(&self) -> &str {
        "TableTypesExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(Self::new(input, self.schema()))),
            Err(_) => Err(DataFusionError::Internal(
                "TableTypesExec takes one input".to_string(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DFResult<SendableRecordBatchStream> {
        let schema = self.schema();
        let batches = self.input.execute(partition, context)?;
        let stream_schema = schema.clone();
        let cast = batches.and_then(move |batch| {
            futures::future::ready(
                to_query_batch(batch, &stream_schema).map_err(DataFusionError::from),
            )
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, cast)))
    }
}
