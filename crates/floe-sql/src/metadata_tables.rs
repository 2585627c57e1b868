//! Iceberg's metadata tables, addressed as `<table>$<kind>`: `$snapshots`, `$history`, `$refs`,
//! `$manifests` and `$files`.
//!
//! `$snapshots` and `$manifests` are iceberg-rust's own (`Table::inspect`); `$history`, `$refs`
//! and `$files` are built here with the columns Spark gives them (`$files` shows the partition as
//! text, e.g. `{region=eu}`, rather than as a struct). Each is computed from the table as it was
//! loaded when the statement was planned, and held in memory: they are small next to the data.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::{MemTable, TableProvider};
use futures::TryStreamExt;
use iceberg::spec::{
    Literal, PrimitiveLiteral, SnapshotReference, SnapshotRetention, TableMetadata,
};
use iceberg::table::Table;

use crate::SqlError;

/// The metadata tables `floe sql` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataTable {
    Snapshots,
    History,
    Refs,
    Manifests,
    Files,
}

impl MetadataTable {
    pub const ALL: [MetadataTable; 5] = [
        MetadataTable::Snapshots,
        MetadataTable::History,
        MetadataTable::Refs,
        MetadataTable::Manifests,
        MetadataTable::Files,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MetadataTable::Snapshots => "snapshots",
            MetadataTable::History => "history",
            MetadataTable::Refs => "refs",
            MetadataTable::Manifests => "manifests",
            MetadataTable::Files => "files",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(name))
    }

    /// The metadata table of `table`, computed now.
    pub async fn provider(self, table: &Table) -> Result<Arc<dyn TableProvider>, SqlError> {
        let batch = match self {
            MetadataTable::Snapshots => {
                let inspect = table.inspect();
                let batches: Vec<RecordBatch> =
                    inspect.snapshots().scan().await?.try_collect().await?;
                return memory_table(batches);
            }
            MetadataTable::Manifests => {
                let inspect = table.inspect();
                let batches: Vec<RecordBatch> =
                    inspect.manifests().scan().await?.try_collect().await?;
                return memory_table(batches);
            }
            MetadataTable::History => history(table.metadata())?,
            MetadataTable::Refs => refs(table.metadata())?,
            MetadataTable::Files => files(table).await?,
        };
        memory_table(vec![batch])
    }
}

fn memory_table(batches: Vec<RecordBatch>) -> Result<Arc<dyn TableProvider>, SqlError> {
    let Some(first) = batches.first() else {
        return Err(SqlError::new("metadata table produced no schema"));
    };
    let schema = first.schema();
    let table = MemTable::try_new(schema, vec![batches])?;
    Ok(Arc::new(table))
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
}

/// Every time the current snapshot changed (the snapshot log), oldest first.
fn history(metadata: &TableMetadata) -> Result<RecordBatch, SqlError> {
    let ancestors = current_ancestors(metadata);
    let mut made_current_at = TimestampMicrosecondBuilder::new().with_data_type(utc_micros());
    let mut snapshot_id = Int64Builder::new();
    let mut parent_id = Int64Builder::new();
    let mut is_current_ancestor = BooleanBuilder::new();
    for entry in metadata.history() {
        made_current_at.append_value(entry.timestamp_ms * 1000);
        snapshot_id.append_value(entry.snapshot_id);
        parent_id.append_option(
            metadata
                .snapshot_by_id(entry.snapshot_id)
                .and_then(|s| s.parent_snapshot_id()),
        );
        is_current_ancestor.append_value(ancestors.contains(&entry.snapshot_id));
    }
    let schema = Schema::new(vec![
        Field::new("made_current_at", utc_micros(), false),
        Field::new("snapshot_id", DataType::Int64, false),
        Field::new("parent_id", DataType::Int64, true),
        Field::new("is_current_ancestor", DataType::Boolean, false),
    ]);
    batch(
        schema,
        vec![
            Arc::new(made_current_at.finish()),
            Arc::new(snapshot_id.finish()),
            Arc::new(parent_id.finish()),
            Arc::new(is_current_ancestor.finish()),
        ],
    )
}

/// The current snapshot and its ancestors.
fn current_ancestors(metadata: &TableMetadata) -> HashSet<i64> {
    let mut ancestors = HashSet::new();
    let mut next = metadata.current_snapshot_id();
    while let Some(id) = next {
        if !ancestors.insert(id) {
            break;
        }
        next = metadata
            .snapshot_by_id(id)
            .and_then(|s| s.parent_snapshot_id());
    }
    ancestors
}

/// The table's branches and tags, by name. `TableMetadata` keeps its refs to itself; its JSON
/// form has them.
pub(crate) fn refs_of(
    metadata: &TableMetadata,
) -> Result<Vec<(String, SnapshotReference)>, SqlError> {
    let json = serde_json::to_value(metadata)
        .map_err(|err| SqlError::new(format!("cannot read the table's refs: {err}")))?;
    let refs: HashMap<String, SnapshotReference> = match json.get("refs") {
        Some(refs) => serde_json::from_value(refs.clone())
            .map_err(|err| SqlError::new(format!("cannot read the table's refs: {err}")))?,
        None => HashMap::new(),
    };
    let mut refs: Vec<_> = refs.into_iter().collect();
    refs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(refs)
}

/// Branches and tags.
fn refs(metadata: &TableMetadata) -> Result<RecordBatch, SqlError> {
    let refs = refs_of(metadata)?;
    let mut name = StringBuilder::new();
    let mut kind = StringBuilder::new();
    let mut snapshot_id = Int64Builder::new();
    let mut max_reference_age = Int64Builder::new();
    let mut min_snapshots_to_keep = Int32Builder::new();
    let mut max_snapshot_age = Int64Builder::new();
    for (ref_name, reference) in refs {
        name.append_value(ref_name);
        snapshot_id.append_value(reference.snapshot_id);
        match reference.retention {
            SnapshotRetention::Branch {
                min_snapshots_to_keep: keep,
                max_snapshot_age_ms,
                max_ref_age_ms,
            } => {
                kind.append_value("BRANCH");
                max_reference_age.append_option(max_ref_age_ms);
                min_snapshots_to_keep.append_option(keep);
                max_snapshot_age.append_option(max_snapshot_age_ms);
            }
            SnapshotRetention::Tag { max_ref_age_ms } => {
                kind.append_value("TAG");
                max_reference_age.append_option(max_ref_age_ms);
                min_snapshots_to_keep.append_null();
                max_snapshot_age.append_null();
            }
        }
    }
    let schema = Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("snapshot_id", DataType::Int64, false),
        Field::new("max_reference_age_in_ms", DataType::Int64, true),
        Field::new("min_snapshots_to_keep", DataType::Int32, true),
        Field::new("max_snapshot_age_in_ms", DataType::Int64, true),
    ]);
    batch(
        schema,
        vec![
            Arc::new(name.finish()),
            Arc::new(kind.finish()),
            Arc::new(snapshot_id.finish()),
            Arc::new(max_reference_age.finish()),
            Arc::new(min_snapshots_to_keep.finish()),
            Arc::new(max_snapshot_age.finish()),
        ],
    )
}

/// The live data and delete files of the current snapshot.
async fn files(table: &Table) -> Result<RecordBatch, SqlError> {
    let metadata = table.metadata();
    let mut content = Int32Builder::new();
    let mut file_path = StringBuilder::new();
    let mut file_format = StringBuilder::new();
    let mut spec_id = Int32Builder::new();
    let mut partition = StringBuilder::new();
    let mut record_count = Int64Builder::new();
    let mut file_size = Int64Builder::new();
    if let Some(snapshot) = metadata.current_snapshot() {
        let list = table.manifest_list_reader(snapshot).load().await?;
        for manifest_file in list.entries() {
            let manifest = manifest_file.load_manifest(table.file_io()).await?;
            let names = partition_field_names(metadata, manifest_file.partition_spec_id);
            for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                let file = entry.data_file();
                content.append_value(file.content_type() as i32);
                file_path.append_value(file.file_path());
                file_format.append_value(file.file_format().to_string());
                spec_id.append_value(manifest_file.partition_spec_id);
                partition.append_value(render_partition(&names, file.partition().fields()));
                record_count.append_value(file.record_count() as i64);
                file_size.append_value(file.file_size_in_bytes() as i64);
            }
        }
    }
    let schema = Schema::new(vec![
        Field::new("content", DataType::Int32, false),
        Field::new("file_path", DataType::Utf8, false),
        Field::new("file_format", DataType::Utf8, false),
        Field::new("spec_id", DataType::Int32, false),
        Field::new("partition", DataType::Utf8, false),
        Field::new("record_count", DataType::Int64, false),
        Field::new("file_size_in_bytes", DataType::Int64, false),
    ]);
    batch(
        schema,
        vec![
            Arc::new(content.finish()),
            Arc::new(file_path.finish()),
            Arc::new(file_format.finish()),
            Arc::new(spec_id.finish()),
            Arc::new(partition.finish()),
            Arc::new(record_count.finish()),
            Arc::new(file_size.finish()),
        ],
    )
}

fn partition_field_names(metadata: &TableMetadata, spec_id: i32) -> Vec<String> {
    metadata
        .partition_spec_by_id(spec_id)
        .map(|spec| spec.fields().iter().map(|f| f.name.clone()).collect())
        .unwrap_or_default()
}

/// `{region=eu, id_bucket=3}`; `{}` for an unpartitioned file.
fn render_partition(names: &[String], values: &[Option<Literal>]) -> String {
    let parts: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let name = names.get(i).map(String::as_str).unwrap_or("?");
            format!("{name}={}", render_literal(value.as_ref()))
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn render_literal(value: Option<&Literal>) -> String {
    match value {
        None => "null".into(),
        Some(Literal::Primitive(value)) => match value {
            PrimitiveLiteral::Boolean(v) => v.to_string(),
            PrimitiveLiteral::Int(v) => v.to_string(),
            PrimitiveLiteral::Long(v) => v.to_string(),
            PrimitiveLiteral::Float(v) => v.to_string(),
            PrimitiveLiteral::Double(v) => v.to_string(),
            PrimitiveLiteral::String(v) => v.clone(),
            PrimitiveLiteral::Binary(v) => format!("0x{}", hex(v)),
            PrimitiveLiteral::Int128(v) => v.to_string(),
            PrimitiveLiteral::UInt128(v) => v.to_string(),
            PrimitiveLiteral::AboveMax => "+inf".into(),
            PrimitiveLiteral::BelowMin => "-inf".into(),
        },
        Some(_) => "(nested)".into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn batch(schema: Schema, columns: Vec<ArrayRef>) -> Result<RecordBatch, SqlError> {
    let schema: SchemaRef = Arc::new(schema);
    RecordBatch::try_new(schema, columns)
        .map_err(|err| SqlError::new(format!("cannot build metadata table: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_table_names_parse_case_insensitively() {
        assert_eq!(
            MetadataTable::parse("Snapshots"),
            Some(MetadataTable::Snapshots)
        );
        assert_eq!(MetadataTable::parse("files"), Some(MetadataTable::Files));
        assert_eq!(MetadataTable::parse("partitions"), None);
    }

    #[test]
    fn partitions_render_as_name_value_pairs() {
        let names = vec!["region".to_string(), "id_bucket".to_string()];
        let values = vec![
            Some(Literal::Primitive(PrimitiveLiteral::String("eu".into()))),
            None,
        ];
        assert_eq!(
            render_partition(&names, &values),
            "{region=eu, id_bucket=null}"
        );
        assert_eq!(render_partition(&[], &[]), "{}");
    }
}
