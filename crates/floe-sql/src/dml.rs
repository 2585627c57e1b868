//! `DELETE FROM t WHERE ...` and `UPDATE t SET ... WHERE ...`, copy-on-write.
//!
//! A row-level change rewrites whole data files: for every data file of the table's current
//! snapshot, its rows are read and the `WHERE` predicate evaluated over them (DataFusion, on the
//! file's rows alone); a file with no matching row is left alone, a file with matching rows is
//! written again (iceberg's Parquet data-file writer, same partition) without them (`DELETE`) or
//! with them changed (`UPDATE`). Then one `overwrite` snapshot that removes the old files and adds
//! the new ones is written by Floe's snapshot producer ([`floe_commit::producer`]) and committed
//! through the catalog: Floe's commit engine in embedded mode, a REST `updateTable` otherwise.
//! Its requirements pin the snapshot that was read, so a concurrent commit makes it fail with a
//! conflict; the statement is then run again on the new state (a few times), never committed
//! over the other writer's data.
//!
//! Limits: tables with delete files (merge-on-read, e.g. written by Spark) are refused, the
//! `WHERE` and `SET` expressions may use only the table's own columns (no subqueries over other
//! tables), and `UPDATE` may not change partition source columns.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema as ArrowSchema};
use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::MemTable;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Delete, Expr, FromTable, ObjectName, TableFactor, TableWithJoins, Update,
};
use floe_commit::{SnapshotChange, produce};
use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::{ArrowReaderBuilder, FieldMatchMode, schema_to_arrow_schema};
use iceberg::scan::FileScanTask;
use iceberg::spec::{DataFile, DataFileFormat, Operation, PartitionKey};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{TableIdent, TableRequirement, TableUpdate};

use crate::provider::{self, TableSpec, display_ident};
use crate::{Session, SqlError};

/// How many times a statement that lost the race to a concurrent commit is run again.
pub(crate) const ATTEMPTS: usize = 5;

/// Where a produced snapshot is committed.
pub(crate) enum Committer {
    /// Floe's commit engine, in process.
    Embedded(Arc<floe_commit::Catalog>),
    /// An Iceberg REST catalog's `updateTable`; `base` is `<uri>/v1/[<prefix>/]`.
    Rest {
        client: reqwest::Client,
        base: String,
    },
}

/// How a commit ended.
pub(crate) enum Outcome {
    Committed,
    /// Refused because the table changed since it was read (409): run the statement again.
    Conflict(String),
    /// Refused for another reason: nothing references the written files.
    Refused(SqlError),
    /// Unknown (connection lost, server or store unavailable): the commit may have landed, so
    /// the written files must stay (at worst unreferenced, for orphan-file removal).
    Unknown(SqlError),
}

impl Committer {
    /// The REST committer for the catalog at `uri`: reads the prefix from `/v1/config`.
    pub(crate) async fn rest(uri: &str, warehouse: Option<&str>) -> Result<Self, SqlError> {
        let client = reqwest::Client::new();
        let uri = uri.trim_end_matches('/');
        let mut request = client.get(format!("{uri}/v1/config"));
        if let Some(warehouse) = warehouse {
            request = request.query(&[("warehouse", warehouse)]);
        }
        let config: serde_json::Value = request
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|err| SqlError::new(format!("cannot reach the catalog at {uri}: {err}")))?
            .json()
            .await
            .map_err(|err| SqlError::new(format!("bad /v1/config from {uri}: {err}")))?;
        let prefix = ["overrides", "defaults"]
            .iter()
            .find_map(|part| config[part]["prefix"].as_str().map(str::to_string));
        let base = match prefix {
            Some(prefix) if !prefix.is_empty() => format!("{uri}/v1/{}/", encode(&prefix)),
            _ => format!("{uri}/v1/"),
        };
        Ok(Committer::Rest { client, base })
    }

    pub(crate) async fn commit(
        &self,
        ident: &TableIdent,
        requirements: Vec<TableRequirement>,
        updates: Vec<TableUpdate>,
    ) -> Outcome {
        match self {
            Committer::Embedded(engine) => {
                let change = floe_commit::TableChange {
                    table: floe_store::TableName::new(
                        ident.namespace().as_ref().clone(),
                        ident.name(),
                    ),
                    requirements,
                    updates,
                };
                use floe_commit::CommitError;
                match engine.commit_table(change).await {
                    Ok(_) => Outcome::Committed,
                    Err(CommitError::Conflict(message)) => Outcome::Conflict(message),
                    Err(err @ (CommitError::Unavailable(_) | CommitError::Internal(_))) => {
                        Outcome::Unknown(SqlError::new(err.to_string()))
                    }
                    Err(err) => Outcome::Refused(SqlError::new(err.to_string())),
                }
            }
            Committer::Rest { client, base } => {
                let namespace = ident.namespace().as_ref().join("\u{1f}");
                let url = format!(
                    "{base}namespaces/{}/tables/{}",
                    encode(&namespace),
                    encode(ident.name())
                );
                let body = iceberg_catalog_rest::CommitTableRequest {
                    identifier: Some(ident.clone()),
                    requirements,
                    updates,
                };
                let response = match client.post(&url).json(&body).send().await {
                    Ok(response) => response,
                    Err(err) => {
                        return Outcome::Unknown(SqlError::new(format!(
                            "cannot commit to {url}: {err}"
                        )));
                    }
                };
                let status = response.status();
                if status.is_success() {
                    return Outcome::Committed;
                }
                let text = response.text().await.unwrap_or_default();
                let message = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or(text);
                let err = SqlError::new(format!(
                    "the catalog refused the commit ({status}): {message}"
                ));
                if status == reqwest::StatusCode::CONFLICT {
                    Outcome::Conflict(message)
                } else if status.is_client_error() {
                    Outcome::Refused(err)
                } else {
                    Outcome::Unknown(err)
                }
            }
        }
    }
}

/// Percent-encodes a path segment (everything but RFC 3986's unreserved characters).
fn encode(segment: &str) -> String {
    let mut out = String::new();
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// What to do with the rows that match.
enum RowChange {
    Delete,
    /// Column name → SQL expression of its new value.
    Update(Vec<(String, String)>),
}

impl Session {
    pub(crate) async fn delete(
        &self,
        delete: &Delete,
    ) -> Result<SendableRecordBatchStream, SqlError> {
        if delete.using.is_some() || delete.returning.is_some() || delete.limit.is_some() {
            return Err(SqlError::new(
                "DELETE supports only DELETE FROM t [WHERE ...] (no USING, RETURNING or LIMIT)",
            ));
        }
        if !delete.order_by.is_empty() || !delete.tables.is_empty() {
            return Err(SqlError::new(
                "DELETE supports only DELETE FROM t [WHERE ...]",
            ));
        }
        let tables = match &delete.from {
            FromTable::WithFromKeyword(tables) | FromTable::WithoutKeyword(tables) => tables,
        };
        let [table] = tables.as_slice() else {
            return Err(SqlError::new("DELETE takes exactly one table"));
        };
        let name = self.target(table, "DELETE")?;
        self.rewrite_rows(name, delete.selection.as_ref(), RowChange::Delete)
            .await
    }

    pub(crate) async fn update(
        &self,
        update: &Update,
    ) -> Result<SendableRecordBatchStream, SqlError> {
        if update.from.is_some() || update.returning.is_some() || update.limit.is_some() {
            return Err(SqlError::new(
                "UPDATE supports only UPDATE t SET col = expr, ... [WHERE ...] (no FROM, RETURNING or LIMIT)",
            ));
        }
        let name = self.target(&update.table, "UPDATE")?;
        let mut assignments = Vec::new();
        for assignment in &update.assignments {
            let AssignmentTarget::ColumnName(column) = &assignment.target else {
                return Err(SqlError::new(
                    "UPDATE ... SET (a, b) = ... is not supported",
                ));
            };
            let column = column
                .0
                .last()
                .and_then(|part| part.as_ident())
                .map(|ident| ident.value.clone())
                .ok_or_else(|| SqlError::new(format!("bad column name {column}")))?;
            assignments.push((column, assignment.value.to_string()));
        }
        self.rewrite_rows(
            name,
            update.selection.as_ref(),
            RowChange::Update(assignments),
        )
        .await
    }

    /// The table a DELETE/UPDATE names.
    fn target(&self, table: &TableWithJoins, what: &str) -> Result<ObjectName, SqlError> {
        if !table.joins.is_empty() {
            return Err(SqlError::new(format!("{what} with joins is not supported")));
        }
        match &table.relation {
            TableFactor::Table {
                name, alias: None, ..
            } => Ok(name.clone()),
            TableFactor::Table { .. } => {
                Err(SqlError::new(format!("{what} does not take a table alias")))
            }
            _ => Err(SqlError::new(format!("{what} needs a table name"))),
        }
    }

    async fn rewrite_rows(
        &self,
        name: ObjectName,
        selection: Option<&Expr>,
        change: RowChange,
    ) -> Result<SendableRecordBatchStream, SqlError> {
        let Some(committer) = &self.committer else {
            return Err(SqlError::new(
                "DELETE and UPDATE need a Floe session (floe sql --catalog or --data-dir)",
            ));
        };
        let normalize = self
            .ctx
            .state()
            .config()
            .options()
            .sql_parser
            .enable_ident_normalization;
        let reference: TableReference =
            datafusion::sql::planner::object_name_to_table_reference(name, normalize)?;
        let spec = TableSpec::parse(reference.table());
        if spec.version != provider::Version::Current {
            return Err(SqlError::new(format!(
                "{} is a past version or metadata table of {}: it is read-only",
                reference.table(),
                spec.base
            )));
        }
        let ident = self.ident(&reference)?;
        let predicate = selection
            .map(|e| e.to_string())
            .unwrap_or_else(|| "TRUE".to_string());
        let mut last_conflict = String::new();
        for _ in 0..ATTEMPTS {
            let table = match self.catalog.load_table(&ident).await {
                Ok(table) => table,
                Err(err) if provider::is_not_found(&err) => {
                    return Err(SqlError::new(self.missing_table(&ident).await));
                }
                Err(err) => return Err(err.into()),
            };
            let candidates = self.candidate_files(&reference, &table, selection).await;
            let rewrite =
                rewrite_files(&table, &ident, &predicate, &change, candidates.as_ref()).await?;
            if rewrite.removed.is_empty() {
                return Ok(count_stream(0));
            }
            let file_io = table.file_io();
            let produced = match produce(
                table.metadata(),
                file_io,
                SnapshotChange::new(Operation::Overwrite)
                    .adding(rewrite.added.clone())
                    .removing(rewrite.removed.clone()),
            )
            .await
            {
                Ok(produced) => produced,
                Err(err) => {
                    delete_files(&table, rewrite.added.iter().map(|f| f.file_path())).await;
                    return Err(err.into());
                }
            };
            let written = produced.written_files.clone();
            let (requirements, updates) = produced.into_parts();
            let outcome = committer.commit(&ident, requirements, updates).await;
            if matches!(outcome, Outcome::Conflict(_) | Outcome::Refused(_)) {
                delete_files(&table, rewrite.added.iter().map(|f| f.file_path())).await;
                delete_files(&table, written.iter().map(String::as_str)).await;
            }
            match outcome {
                Outcome::Committed => return Ok(count_stream(rewrite.rows)),
                Outcome::Conflict(message) => last_conflict = message,
                Outcome::Refused(err) | Outcome::Unknown(err) => return Err(err),
            }
        }
        Err(SqlError::new(format!(
            "{} kept changing while this statement ran ({ATTEMPTS} attempts); the last conflict: \
             {last_conflict}",
            display_ident(&ident)
        )))
    }
}

impl Session {
    /// The data files of the current snapshot that may hold rows matching `selection`: an
    /// Iceberg scan planned with the predicate (as far as it converts to an Iceberg predicate)
    /// prunes by partition values and column bounds. `None` (read every file) when there is no
    /// `WHERE`, or the predicate cannot be used for pruning.
    pub(crate) async fn candidate_files(
        &self,
        reference: &TableReference,
        table: &Table,
        selection: Option<&Expr>,
    ) -> Option<HashSet<String>> {
        let selection = selection?;
        let frame = self.ctx.table(reference.clone()).await.ok()?;
        let expr = frame.parse_sql_expr(&selection.to_string()).ok()?;
        // iceberg-datafusion's conversion keeps the convertible half of an `AND` and looks through
        // casts: sound for pruning (a weaker predicate) except under a `NOT` or a narrowing cast.
        let unsound = expr
            .exists(|e| {
                Ok(matches!(
                    e,
                    datafusion::prelude::Expr::Not(_)
                        | datafusion::prelude::Expr::Cast(_)
                        | datafusion::prelude::Expr::TryCast(_)
                ))
            })
            .unwrap_or(true);
        if unsound {
            return None;
        }
        let predicate = iceberg_datafusion::physical_plan::convert_filters_to_predicate(&[expr])?;
        let tasks = crate::scan::with_current_schema(table)
            .ok()?
            .scan()
            .with_filter(predicate)
            .build()
            .ok()?
            .plan_files()
            .await
            .ok()?;
        let tasks: Vec<FileScanTask> = tasks.try_collect().await.ok()?;
        Some(tasks.into_iter().map(|t| t.data_file_path).collect())
    }
}

/// The files to swap and how many rows matched.
struct Rewrite {
    added: Vec<DataFile>,
    removed: Vec<String>,
    rows: u64,
}

async fn rewrite_files(
    table: &Table,
    ident: &TableIdent,
    predicate: &str,
    change: &RowChange,
    candidates: Option<&HashSet<String>>,
) -> Result<Rewrite, SqlError> {
    let mut rewrite = Rewrite {
        added: Vec::new(),
        removed: Vec::new(),
        rows: 0,
    };
    // Rows are read with the table's current schema, also when it changed after the last write.
    let table = &crate::scan::with_current_schema(table)?;
    let metadata = table.metadata();
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(rewrite);
    };
    let refuse_deletes = || {
        SqlError::new(format!(
            "{} has delete files (merge-on-read, e.g. written by Spark): DELETE and UPDATE in \
             floe sql are copy-on-write and do not handle such tables yet",
            display_ident(ident)
        ))
    };
    let existing_delete_files = snapshot
        .summary()
        .additional_properties
        .get("total-delete-files")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    if existing_delete_files > 0 {
        return Err(refuse_deletes());
    }
    let tasks: Vec<FileScanTask> = table
        .scan()
        .build()?
        .plan_files()
        .await?
        .try_collect()
        .await?;
    if tasks.iter().any(|t| !t.deletes.is_empty()) {
        return Err(refuse_deletes());
    }
    let schema = metadata.current_schema().clone();
    let arrow_schema = Arc::new(schema_to_arrow_schema(&schema)?);
    let spec = metadata.default_partition_spec().clone();
    if let RowChange::Update(assignments) = change {
        let known: HashSet<&str> = arrow_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        for (column, _) in assignments {
            if !known.contains(column.as_str()) {
                return Err(SqlError::new(format!(
                    "{} has no column {column}; its columns are: {}",
                    display_ident(ident),
                    arrow_schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let partitioned_by = spec.fields().iter().any(|field| {
                schema
                    .field_by_id(field.source_id)
                    .is_some_and(|f| &f.name == column)
            });
            if partitioned_by {
                return Err(SqlError::new(format!(
                    "UPDATE cannot change {column}: the table is partitioned by it"
                )));
            }
        }
    }
    let runtime = iceberg::Runtime::try_current()?;
    let result = async {
        let mut seen = HashSet::new();
        for task in tasks {
            if !seen.insert(task.data_file_path.clone()) {
                continue; // one file split into several tasks: read whole below
            }
            if candidates.is_some_and(|c| !c.contains(&task.data_file_path)) {
                continue; // pruned: its partition or column bounds rule out any match
            }
            let path = task.data_file_path.clone();
            let partition = task.partition.clone();
            let whole = FileScanTask {
                start: 0,
                length: task.file_size_in_bytes,
                predicate: None,
                ..task
            };
            let batches: Vec<RecordBatch> = ArrowReaderBuilder::new(table.file_io().clone(), runtime.clone())
                .build()
                .read(Box::pin(futures::stream::iter([Ok(whole)])))?
                .stream()
                .try_collect()
                .await?;
            let Some(first) = batches.first() else {
                continue;
            };
            let ctx = SessionContext::new();
            let mem = MemTable::try_new(first.schema(), vec![batches.clone()])?;
            ctx.register_table(ident.name(), Arc::new(mem))?;
            let quoted = crate::rewrite::quote_ident(ident.name());
            let matched = count_rows(&ctx, &format!("SELECT count(*) FROM {quoted} WHERE {predicate}"))
                .await?;
            if matched == 0 {
                continue;
            }
            let keep_sql = match change {
                RowChange::Delete => {
                    format!("SELECT * FROM {quoted} WHERE ({predicate}) IS NOT TRUE")
                }
                RowChange::Update(assignments) => {
                    let values: HashMap<&str, &str> = assignments
                        .iter()
                        .map(|(c, v)| (c.as_str(), v.as_str()))
                        .collect();
                    let columns: Vec<String> = arrow_schema
                        .fields()
                        .iter()
                        .map(|f| {
                            let column = crate::rewrite::quote_ident(f.name());
                            match values.get(f.name().as_str()) {
                                Some(value) => format!(
                                    "CASE WHEN ({predicate}) IS TRUE THEN {value} ELSE {column} END AS {column}"
                                ),
                                None => column,
                            }
                        })
                        .collect();
                    format!("SELECT {} FROM {quoted}", columns.join(", "))
                }
            };
            let kept: Vec<RecordBatch> = ctx.sql(&keep_sql).await?.collect().await?;
            let kept = conform(&kept, &arrow_schema)?;
            if kept.iter().any(|b| b.num_rows() > 0) {
                // The scan's tasks carry a file's partition values but not its spec id: with one
                // spec in the table's history it is the default one.
                let partition_key = match partition {
                    Some(data) if !spec.is_unpartitioned() => {
                        if metadata.partition_specs_iter().count() > 1 {
                            return Err(SqlError::new(format!(
                                "{path}: the table's partition spec has changed; rewriting its \
                                 files is not supported yet"
                            )));
                        }
                        Some(PartitionKey::new(spec.as_ref().clone(), schema.clone(), data))
                    }
                    _ => None,
                };
                let files = write(table, partition_key, kept).await?;
                rewrite.added.extend(files);
            }
            rewrite.removed.push(path);
            rewrite.rows += matched;
        }
        Ok::<_, SqlError>(())
    }
    .await;
    if let Err(err) = result {
        delete_files(table, rewrite.added.iter().map(|f| f.file_path())).await;
        return Err(err);
    }
    Ok(rewrite)
}

async fn count_rows(ctx: &SessionContext, sql: &str) -> Result<u64, SqlError> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut total = 0u64;
    for batch in batches {
        let column = arrow::compute::cast(batch.column(0), &DataType::UInt64)
            .map_err(|err| SqlError::new(err.to_string()))?;
        let counts = column
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| SqlError::new("count(*) is not a number"))?;
        total += counts.iter().flatten().sum::<u64>();
    }
    Ok(total)
}

/// Casts rows to the table's Arrow schema (with its field ids), by column name.
pub(crate) fn conform(
    batches: &[RecordBatch],
    schema: &Arc<ArrowSchema>,
) -> Result<Vec<RecordBatch>, SqlError> {
    batches
        .iter()
        .filter(|b| b.num_rows() > 0)
        .map(|batch| {
            let columns = schema
                .fields()
                .iter()
                .map(|field: &Arc<Field>| {
                    let column = batch.column_by_name(field.name()).ok_or_else(|| {
                        SqlError::new(format!("column {} is missing", field.name()))
                    })?;
                    arrow::compute::cast(column, field.data_type())
                        .map_err(|err| SqlError::new(format!("column {}: {err}", field.name())))
                })
                .collect::<Result<Vec<ArrayRef>, SqlError>>()?;
            RecordBatch::try_new(schema.clone(), columns)
                .map_err(|err| SqlError::new(err.to_string()))
        })
        .collect()
}

/// Writes `batches` as new Parquet data files of `table`.
async fn write(
    table: &Table,
    partition_key: Option<PartitionKey>,
    batches: Vec<RecordBatch>,
) -> Result<Vec<DataFile>, SqlError> {
    let metadata = table.metadata();
    let properties = metadata.table_properties()?;
    let parquet =
        ParquetWriterBuilder::from_table_properties(&properties, metadata.current_schema().clone())
            .with_match_mode(FieldMatchMode::Name);
    let rolling = RollingFileWriterBuilder::new(
        parquet,
        properties.write_target_file_size_bytes,
        table.file_io().clone(),
        DefaultLocationGenerator::new(metadata)?,
        DefaultFileNameGenerator::new(uuid_prefix(), None, DataFileFormat::Parquet),
    );
    let mut writer = DataFileWriterBuilder::new(rolling)
        .build(partition_key)
        .await?;
    let mut failed = None;
    for batch in batches {
        if let Err(err) = writer.write(batch).await {
            failed = Some(err);
            break;
        }
    }
    if let Some(err) = failed {
        return Err(err.into());
    }
    Ok(writer.close().await?)
}

pub(crate) fn uuid_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{:x}", std::process::id())
}

/// Best-effort removal of files this statement wrote and nobody references (inside the table's
/// location only: see [`floe_commit::producer::forget_written`]).
pub(crate) async fn delete_files<'a>(table: &Table, paths: impl Iterator<Item = &'a str>) {
    floe_commit::producer::forget_written(table.metadata(), table.file_io(), paths).await;
}

/// The `count` result of a DML statement, like `INSERT`'s.
pub(crate) fn count_stream(rows: u64) -> SendableRecordBatchStream {
    let schema = Arc::new(ArrowSchema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(UInt64Array::from(vec![rows])) as ArrayRef],
    );
    let stream = futures::stream::once(async move { batch.map_err(Into::into) });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream.boxed()))
}
