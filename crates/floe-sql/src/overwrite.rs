//! `INSERT OVERWRITE t SELECT ...`: replace part or all of a table with a query's rows, in one
//! `overwrite` snapshot.
//!
//! Semantics are Spark's with `spark.sql.sources.partitionOverwriteMode=dynamic` (what Iceberg
//! recommends):
//!
//! - a **partitioned** table has exactly the partitions that the new rows fall into replaced:
//!   every data file of those partitions is removed, the new rows are added, and every other
//!   partition is left as it is. No rows means no partition is replaced: nothing changes.
//! - an **unpartitioned** table is replaced whole: every data file is removed and the new rows
//!   added (no rows leaves the table empty).
//!
//! DataFusion plans the statement as it plans `INSERT INTO` (columns by position, or by the
//! column list given, cast to the table's types, unnamed columns null); the rows are written as
//! new Parquet files (one or more per partition), and then one snapshot that removes the replaced
//! files and adds the new ones is written by Floe's snapshot producer
//! ([`floe_commit::producer`]) and committed like `DELETE`/`UPDATE` (see [`crate::dml`]). If a
//! concurrent commit lands first, which files to replace is worked out again on the new snapshot
//! (the written files are kept): files a concurrent writer added to a replaced partition are
//! replaced too, as if it had committed before. If the table's schema or partitioning changed
//! meanwhile, the statement fails and nothing is changed.
//!
//! Limits as for `DELETE`/`UPDATE`: tables with delete files, tables whose partition spec has
//! changed, and format-version 3 tables are refused; `INSERT OVERWRITE t PARTITION (...)` (a
//! static partition) is not supported.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::Schema as ArrowSchema;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::DmlStatement;
use floe_commit::{SnapshotChange, produce};
use futures::StreamExt;
use iceberg::arrow::{FieldMatchMode, RecordBatchPartitionSplitter, schema_to_arrow_schema};
use iceberg::spec::{
    DataFile, DataFileFormat, ManifestContentType, Operation, PartitionSpecRef, SchemaRef, Struct,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::unpartitioned_writer::UnpartitionedWriter;

use crate::dml::{ATTEMPTS, Outcome, conform, count_stream, delete_files, uuid_prefix};
use crate::provider::{self, display_ident};
use crate::{Session, SqlError};

/// What the new rows were written as.
struct Written {
    files: Vec<DataFile>,
    /// The partitions the rows fall into; unused for an unpartitioned table.
    partitions: HashSet<Struct>,
    rows: u64,
}

impl Session {
    pub(crate) async fn insert_overwrite(
        &self,
        dml: DmlStatement,
    ) -> Result<SendableRecordBatchStream, SqlError> {
        let Some(committer) = &self.committer else {
            return Err(SqlError::new(
                "INSERT OVERWRITE needs a Floe session (floe sql --catalog or --data-dir)",
            ));
        };
        let ident = self.ident(&dml.table_name)?;
        let shown = display_ident(&ident);
        let load = || async {
            match self.catalog.load_table(&ident).await {
                Ok(table) => Ok(table),
                Err(err) if provider::is_not_found(&err) => {
                    Err(SqlError::new(self.missing_table(&ident).await))
                }
                Err(err) => Err(SqlError::from(err)),
            }
        };
        let table = load().await?;
        let metadata = table.metadata();
        if metadata.partition_specs_iter().count() > 1 {
            return Err(SqlError::new(format!(
                "{shown}'s partition spec has changed: INSERT OVERWRITE does not handle such \
                 tables yet"
            )));
        }
        let schema = metadata.current_schema().clone();
        let spec = metadata.default_partition_spec().clone();
        let schema_id = schema.schema_id();
        let rows = self
            .ctx
            .execute_logical_plan(Arc::unwrap_or_clone(dml.input))
            .await?
            .execute_stream()
            .await?;
        let written = write_rows(&table, schema, spec.clone(), rows).await?;
        let added = written.files;
        let mut last_conflict = String::new();
        let mut table = table;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                table = load().await?;
                let metadata = table.metadata();
                if metadata.current_schema_id() != schema_id
                    || metadata.default_partition_spec_id() != spec.spec_id()
                    || metadata.partition_specs_iter().count() > 1
                {
                    delete_files(&table, added.iter().map(|f| f.file_path())).await;
                    return Err(SqlError::new(format!(
                        "the schema or partitioning of {shown} changed while INSERT OVERWRITE \
                         ran, so nothing was changed; run it again"
                    )));
                }
            }
            let replace = if spec.is_unpartitioned() {
                None
            } else {
                Some(&written.partitions)
            };
            let removed = match files_to_replace(&table, replace, &shown).await {
                Ok(removed) => removed,
                Err(err) => {
                    delete_files(&table, added.iter().map(|f| f.file_path())).await;
                    return Err(err);
                }
            };
            if added.is_empty() && removed.is_empty() {
                return Ok(count_stream(0));
            }
            let file_io = table.file_io();
            let produced = match produce(
                table.metadata(),
                file_io,
                SnapshotChange::new(Operation::Overwrite)
                    .adding(added.clone())
                    .removing(removed),
            )
            .await
            {
                Ok(produced) => produced,
                Err(err) => {
                    delete_files(&table, added.iter().map(|f| f.file_path())).await;
                    return Err(err.into());
                }
            };
            let manifests = produced.written_files.clone();
            let (requirements, updates) = produced.into_parts();
            match committer.commit(&ident, requirements, updates).await {
                Outcome::Committed => return Ok(count_stream(written.rows)),
                Outcome::Conflict(message) => {
                    // The data files are still good for the next attempt; the manifests are not.
                    delete_files(&table, manifests.iter().map(String::as_str)).await;
                    last_conflict = message;
                }
                Outcome::Refused(err) => {
                    delete_files(&table, manifests.iter().map(String::as_str)).await;
                    delete_files(&table, added.iter().map(|f| f.file_path())).await;
                    return Err(err);
                }
                Outcome::Unknown(err) => return Err(err),
            }
        }
        delete_files(&table, added.iter().map(|f| f.file_path())).await;
        Err(SqlError::new(format!(
            "{shown} kept changing while INSERT OVERWRITE ran ({ATTEMPTS} attempts), so nothing \
             was changed; the last conflict: {last_conflict}"
        )))
    }
}

/// Writes `rows` as new data files of `table`, split by its partition spec.
async fn write_rows(
    table: &Table,
    schema: SchemaRef,
    spec: PartitionSpecRef,
    mut rows: SendableRecordBatchStream,
) -> Result<Written, SqlError> {
    let metadata = table.metadata();
    let arrow_schema: Arc<ArrowSchema> = Arc::new(schema_to_arrow_schema(&schema)?);
    let properties = metadata.table_properties()?;
    let parquet = ParquetWriterBuilder::from_table_properties(&properties, schema.clone())
        .with_match_mode(FieldMatchMode::Name);
    let rolling = RollingFileWriterBuilder::new(
        parquet,
        properties.write_target_file_size_bytes,
        table.file_io().clone(),
        DefaultLocationGenerator::new(metadata)?,
        DefaultFileNameGenerator::new(uuid_prefix(), None, DataFileFormat::Parquet),
    );
    let builder = DataFileWriterBuilder::new(rolling);
    let mut written = Written {
        files: Vec::new(),
        partitions: HashSet::new(),
        rows: 0,
    };
    if spec.is_unpartitioned() {
        let mut writer = UnpartitionedWriter::new(builder);
        while let Some(batch) = rows.next().await {
            for batch in conform(&[batch?], &arrow_schema)? {
                written.rows += batch.num_rows() as u64;
                writer.write(batch).await?;
            }
        }
        written.files = writer.close().await?;
    } else {
        let splitter =
            RecordBatchPartitionSplitter::try_new_with_computed_values(schema, spec.clone())?;
        let mut writer = FanoutWriter::new(builder);
        while let Some(batch) = rows.next().await {
            for batch in conform(&[batch?], &arrow_schema)? {
                written.rows += batch.num_rows() as u64;
                for (key, part) in splitter.split(&batch)? {
                    written.partitions.insert(key.data().clone());
                    writer.write(key, part).await?;
                }
            }
        }
        written.files = writer.close().await?;
    }
    Ok(written)
}

/// The data files of the table's current snapshot to replace: those of `partitions`, or every
/// one (`None`).
async fn files_to_replace(
    table: &Table,
    partitions: Option<&HashSet<Struct>>,
    shown: &str,
) -> Result<Vec<String>, SqlError> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    let list = table.manifest_list_reader(snapshot).load().await?;
    for manifest_file in list.entries() {
        let manifest = manifest_file.load_manifest(table.file_io()).await?;
        let mut alive = manifest
            .entries()
            .iter()
            .filter(|e| e.is_alive())
            .peekable();
        if manifest_file.content == ManifestContentType::Deletes {
            if alive.peek().is_some() {
                return Err(SqlError::new(format!(
                    "{shown} has delete files (merge-on-read, e.g. written by Spark): INSERT \
                     OVERWRITE in floe sql does not handle such tables yet"
                )));
            }
            continue;
        }
        for entry in alive {
            let file = entry.data_file();
            if partitions.is_none_or(|p| p.contains(file.partition())) {
                removed.push(file.file_path().to_string());
            }
        }
    }
    Ok(removed)
}
