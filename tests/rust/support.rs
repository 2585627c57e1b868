//! Helpers shared by the end-to-end tests: a real REST client (iceberg-rust's `RestCatalog`),
//! a schema, and appends through iceberg's own writers and fast-append transaction.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use iceberg::io::LocalFsStorageFactory;
use iceberg::spec::{DataFile, DataFileFormat, NestedField, PrimitiveType, Schema, Type};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};
use parquet::file::properties::WriterProperties;

pub use floe_testkit::FloeServer;

/// iceberg-rust's REST client, pointed at `server`.
pub async fn rest_catalog(server: &FloeServer) -> RestCatalog {
    RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load("floe", HashMap::from([("uri".to_string(), server.uri())]))
        .await
        .expect("connect RestCatalog")
}

/// `id: long (required), name: string`
pub fn id_name_schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .expect("schema")
}

pub async fn create_namespace(catalog: &RestCatalog, name: &str) -> NamespaceIdent {
    let namespace = NamespaceIdent::new(name.to_string());
    catalog
        .create_namespace(&namespace, HashMap::new())
        .await
        .expect("create namespace");
    namespace
}

pub async fn create_table(catalog: &RestCatalog, namespace: &NamespaceIdent, name: &str) -> Table {
    catalog
        .create_table(
            namespace,
            TableCreation::builder()
                .name(name.to_string())
                .schema(id_name_schema())
                .build(),
        )
        .await
        .expect("create table")
}

/// Writes rows `ids` (name = "row-<id>") as one Parquet data file of `table`.
pub async fn write_data_file(table: &Table, ids: &[i64]) -> Vec<DataFile> {
    let schema = table.metadata().current_schema().clone();
    let arrow_schema =
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).expect("arrow schema"));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from(
            ids.iter().map(|id| format!("row-{id}")).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(arrow_schema, columns).expect("batch");
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        ParquetWriterBuilder::new(WriterProperties::default(), schema),
        table.file_io().clone(),
        DefaultLocationGenerator::new(table.metadata()).expect("location generator"),
        DefaultFileNameGenerator::new(
            format!("data-{}", uuid::Uuid::new_v4()),
            None,
            DataFileFormat::Parquet,
        ),
    );
    let mut writer = DataFileWriterBuilder::new(rolling)
        .build(None)
        .await
        .expect("data file writer");
    writer.write(batch).await.expect("write batch");
    writer.close().await.expect("close writer")
}

/// Appends `ids` through iceberg-rust's fast-append transaction (which retries on conflicts).
pub async fn append(catalog: &RestCatalog, table: &Table, ids: &[i64]) -> iceberg::Result<Table> {
    let files = write_data_file(table, ids).await;
    let tx = Transaction::new(table);
    let tx = tx.fast_append().add_data_files(files).apply(tx)?;
    tx.commit(catalog).await
}

/// Every `id` in the table's current snapshot, sorted.
pub async fn read_ids(table: &Table) -> Vec<i64> {
    if table.metadata().current_snapshot().is_none() {
        return Vec::new();
    }
    let stream = table
        .scan()
        .select(["id"])
        .build()
        .expect("scan")
        .to_arrow()
        .await
        .expect("arrow stream");
    let batches: Vec<RecordBatch> = stream.try_collect().await.expect("read batches");
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|batch| {
            batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("id column")
                .values()
                .to_vec()
        })
        .collect();
    ids.sort_unstable();
    ids
}

pub fn ident(namespace: &NamespaceIdent, name: &str) -> TableIdent {
    TableIdent::new(namespace.clone(), name.to_string())
}

/// Files under a directory, recursively (for "files gone after purge" checks).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// A `file://` location as a local path.
pub fn local_path(location: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}
