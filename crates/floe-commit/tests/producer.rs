//! The snapshot producer (`floe_commit::producer`) on a local warehouse: snapshots written by it,
//! committed through `Catalog::commit`, read back with iceberg-rust's own scan.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use floe_commit::open::{OpenOptions, open};
use floe_commit::producer::{produce_manifest_rewrite, rebase_manifest_rewrite};
use floe_commit::{Catalog, CommitError, CreateTable, SnapshotChange, produce};
use floe_store::TableName;
use futures::TryStreamExt;
use iceberg::io::{FileIO, FileIOBuilder, LocalFsStorageFactory};
use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, ManifestList, NestedField, Operation, PrimitiveType,
    Schema, Type,
};
use iceberg::table::Table;
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use iceberg::{NamespaceIdent, TableIdent};
use parquet::file::properties::WriterProperties;

struct Setup {
    _dir: tempfile::TempDir,
    catalog: Catalog,
    file_io: FileIO,
    name: TableName,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let catalog = open(&OpenOptions::new(dir.path().join("data")))
            .await
            .unwrap();
        catalog
            .create_namespace(&["ns".to_string()], &Default::default())
            .await
            .unwrap();
        let name = TableName::new(vec!["ns".to_string()], "t");
        let schema = Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)).into(),
            ])
            .build()
            .unwrap();
        catalog
            .create_table(CreateTable {
                name: name.clone(),
                location: None,
                schema,
                partition_spec: None,
                sort_order: None,
                properties: Default::default(),
                stage: false,
            })
            .await
            .unwrap();
        Self {
            _dir: dir,
            catalog,
            file_io: FileIOBuilder::new(Arc::new(LocalFsStorageFactory)).build(),
            name,
        }
    }

    async fn table(&self) -> Table {
        let loaded = self.catalog.load_table(&self.name).await.unwrap();
        Table::builder()
            .identifier(TableIdent::new(
                NamespaceIdent::new("ns".to_string()),
                "t".to_string(),
            ))
            .file_io(self.file_io.clone())
            .metadata(Arc::new(loaded.metadata().clone()))
            .runtime(iceberg::Runtime::try_current().unwrap())
            .build()
            .unwrap()
    }

    /// Writes one Parquet data file with `rows`.
    async fn write(&self, table: &Table, rows: &[(i64, &str)]) -> DataFile {
        let schema = table.metadata().current_schema().clone();
        let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).unwrap());
        let batch = RecordBatch::try_new(
            arrow_schema,
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap();
        let rolling = RollingFileWriterBuilder::new_with_default_file_size(
            ParquetWriterBuilder::new(WriterProperties::default(), schema),
            self.file_io.clone(),
            DefaultLocationGenerator::new(table.metadata()).unwrap(),
            DefaultFileNameGenerator::new(
                uuid::Uuid::now_v7().to_string(),
                None,
                DataFileFormat::Parquet,
            ),
        );
        let mut writer = DataFileWriterBuilder::new(rolling)
            .build(None)
            .await
            .unwrap();
        writer.write(batch).await.unwrap();
        let mut files = writer.close().await.unwrap();
        assert_eq!(files.len(), 1);
        files.remove(0)
    }

    async fn commit(&self, table: &Table, change: SnapshotChange) -> Result<i64, CommitError> {
        let produced = produce(table.metadata(), &self.file_io, change)
            .await
            .unwrap();
        let id = produced.snapshot_id;
        self.catalog
            .commit_table(produced.into_table_change(self.name.clone()))
            .await?;
        Ok(id)
    }

    /// Every row of the current snapshot, sorted.
    async fn rows(&self) -> Vec<(i64, String)> {
        let table = self.table().await;
        let batches: Vec<RecordBatch> = table
            .scan()
            .build()
            .unwrap()
            .to_arrow()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut rows = Vec::new();
        for batch in batches {
            let ids = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            let names = batch
                .column(1)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            for i in 0..batch.num_rows() {
                rows.push((ids.value(i), names.value(i).to_string()));
            }
        }
        rows.sort();
        rows
    }
}

fn rows(expected: &[(i64, &str)]) -> Vec<(i64, String)> {
    expected.iter().map(|(i, s)| (*i, s.to_string())).collect()
}

#[tokio::test]
async fn an_overwrite_replaces_exactly_the_removed_files() {
    let setup = Setup::new().await;
    let table = setup.table().await;
    let a = setup.write(&table, &[(1, "a"), (2, "b")]).await;
    let b = setup.write(&table, &[(3, "c")]).await;
    let a_path = a.file_path().to_string();
    let first = setup
        .commit(
            &table,
            SnapshotChange::new(Operation::Append).adding([a, b]),
        )
        .await
        .unwrap();
    assert_eq!(setup.rows().await, rows(&[(1, "a"), (2, "b"), (3, "c")]));

    // Rewrite file a without row 2 (a copy-on-write delete).
    let table = setup.table().await;
    let a2 = setup.write(&table, &[(1, "a")]).await;
    let second = setup
        .commit(
            &table,
            SnapshotChange::new(Operation::Overwrite)
                .adding([a2])
                .removing([a_path]),
        )
        .await
        .unwrap();
    assert_eq!(setup.rows().await, rows(&[(1, "a"), (3, "c")]));

    let table = setup.table().await;
    let metadata = table.metadata();
    let snapshot = metadata.current_snapshot().unwrap();
    assert_eq!(snapshot.snapshot_id(), second);
    assert_eq!(snapshot.parent_snapshot_id(), Some(first));
    assert_eq!(snapshot.sequence_number(), 2);
    assert_eq!(metadata.last_sequence_number(), 2);
    let summary = snapshot.summary();
    assert_eq!(summary.operation, Operation::Overwrite);
    let prop = |k: &str| summary.additional_properties.get(k).cloned();
    assert_eq!(prop("added-data-files").as_deref(), Some("1"));
    assert_eq!(prop("deleted-data-files").as_deref(), Some("1"));
    assert_eq!(prop("added-records").as_deref(), Some("1"));
    assert_eq!(prop("deleted-records").as_deref(), Some("2"));
    assert_eq!(prop("total-data-files").as_deref(), Some("2"));
    assert_eq!(prop("total-records").as_deref(), Some("2"));

    // Time travel to the first snapshot still sees every row.
    let old: usize = table
        .scan()
        .snapshot_id(first)
        .build()
        .unwrap()
        .to_arrow()
        .await
        .unwrap()
        .try_collect::<Vec<RecordBatch>>()
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(old, 3);
}

#[tokio::test]
async fn a_concurrent_append_makes_the_overwrite_conflict_and_keeps_both() {
    let setup = Setup::new().await;
    let table = setup.table().await;
    let a = setup.write(&table, &[(1, "a"), (2, "b")]).await;
    let a_path = a.file_path().to_string();
    setup
        .commit(&table, SnapshotChange::new(Operation::Append).adding([a]))
        .await
        .unwrap();

    // The overwrite reads the table...
    let read = setup.table().await;
    let a2 = setup.write(&read, &[(1, "a")]).await;
    let overwrite = produce(
        read.metadata(),
        &setup.file_io,
        SnapshotChange::new(Operation::Overwrite)
            .adding([a2])
            .removing([a_path.clone()]),
    )
    .await
    .unwrap();

    // ...another writer appends in between...
    let other = setup.table().await;
    let c = setup.write(&other, &[(9, "z")]).await;
    setup
        .commit(&other, SnapshotChange::new(Operation::Append).adding([c]))
        .await
        .unwrap();

    // ...so the overwrite's commit is refused, and both writers' data is intact.
    let err = setup
        .catalog
        .commit_table(overwrite.into_table_change(setup.name.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, CommitError::Conflict(_)), "{err:?}");
    assert_eq!(setup.rows().await, rows(&[(1, "a"), (2, "b"), (9, "z")]));

    // Produced again on the new state, it commits and keeps the other writer's row.
    let table = setup.table().await;
    let a3 = setup.write(&table, &[(1, "a")]).await;
    setup
        .commit(
            &table,
            SnapshotChange::new(Operation::Overwrite)
                .adding([a3])
                .removing([a_path]),
        )
        .await
        .unwrap();
    assert_eq!(setup.rows().await, rows(&[(1, "a"), (9, "z")]));
}

#[tokio::test]
async fn removing_a_file_the_snapshot_does_not_have_is_refused() {
    let setup = Setup::new().await;
    let table = setup.table().await;
    let a = setup.write(&table, &[(1, "a")]).await;
    setup
        .commit(&table, SnapshotChange::new(Operation::Append).adding([a]))
        .await
        .unwrap();
    let table = setup.table().await;
    let err = produce(
        table.metadata(),
        &setup.file_io,
        SnapshotChange::new(Operation::Delete).removing(["file:///nowhere.parquet".to_string()]),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not a data file"), "{err}");
}

#[tokio::test]
async fn a_delete_snapshot_removes_whole_files() {
    let setup = Setup::new().await;
    let table = setup.table().await;
    let a = setup.write(&table, &[(1, "a")]).await;
    let b = setup.write(&table, &[(2, "b"), (3, "c")]).await;
    let b_path = b.file_path().to_string();
    setup
        .commit(&table, SnapshotChange::new(Operation::Append).adding([a]))
        .await
        .unwrap();
    let table = setup.table().await;
    setup
        .commit(&table, SnapshotChange::new(Operation::Append).adding([b]))
        .await
        .unwrap();
    let table = setup.table().await;
    setup
        .commit(
            &table,
            SnapshotChange::new(Operation::Delete).removing([b_path]),
        )
        .await
        .unwrap();
    assert_eq!(setup.rows().await, rows(&[(1, "a")]));
    let table = setup.table().await;
    let summary = table
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .clone();
    assert_eq!(summary.operation, Operation::Delete);
    assert_eq!(
        summary
            .additional_properties
            .get("total-records")
            .map(String::as_str),
        Some("1")
    );
    assert_eq!(
        table
            .metadata()
            .current_snapshot()
            .unwrap()
            .sequence_number(),
        3
    );
}

impl Setup {
    /// Writes a position delete file deleting `(data file, position)` pairs.
    async fn position_deletes(&self, table: &Table, rows: &[(&str, i64)]) -> DataFile {
        let schema = Arc::new(
            Schema::builder()
                .with_fields(vec![
                    NestedField::required(
                        2147483546,
                        "file_path",
                        Type::Primitive(PrimitiveType::String),
                    )
                    .into(),
                    NestedField::required(2147483545, "pos", Type::Primitive(PrimitiveType::Long))
                        .into(),
                ])
                .build()
                .unwrap(),
        );
        let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).unwrap());
        let batch = RecordBatch::try_new(
            arrow_schema,
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .unwrap();
        let mut writer = RollingFileWriterBuilder::new_with_default_file_size(
            ParquetWriterBuilder::new(WriterProperties::default(), schema),
            self.file_io.clone(),
            DefaultLocationGenerator::new(table.metadata()).unwrap(),
            DefaultFileNameGenerator::new(
                uuid::Uuid::now_v7().to_string(),
                None,
                DataFileFormat::Parquet,
            ),
        )
        .build();
        writer.write(&None, &batch).await.unwrap();
        let mut builder = writer.close().await.unwrap().remove(0);
        builder.content(DataContentType::PositionDeletes);
        builder.build().unwrap()
    }
}

fn summary_of(table: &Table, key: &str) -> Option<String> {
    table
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties
        .get(key)
        .cloned()
}

#[tokio::test]
async fn a_row_delta_adds_delete_files_and_a_replace_removes_them() {
    let setup = Setup::new().await;
    let table = setup.table().await;
    let a = setup.write(&table, &[(1, "a"), (2, "b"), (3, "c")]).await;
    let a_path = a.file_path().to_string();
    setup
        .commit(&table, SnapshotChange::new(Operation::Append).adding([a]))
        .await
        .unwrap();

    // A row delta: a position delete of row 1 (id 2), read back through iceberg's scan.
    let table = setup.table().await;
    let delete = setup.position_deletes(&table, &[(&a_path, 1)]).await;
    let delete_path = delete.file_path().to_string();
    setup
        .commit(
            &table,
            SnapshotChange::new(Operation::Delete).adding_deletes([delete]),
        )
        .await
        .unwrap();
    assert_eq!(setup.rows().await, rows(&[(1, "a"), (3, "c")]));
    let table = setup.table().await;
    assert_eq!(
        summary_of(&table, "added-delete-files").as_deref(),
        Some("1")
    );
    assert_eq!(
        summary_of(&table, "total-delete-files").as_deref(),
        Some("1")
    );
    assert_eq!(
        summary_of(&table, "total-position-deletes").as_deref(),
        Some("1")
    );
    // A delete file is not a data file: each goes through its own list.
    let misplaced = setup.position_deletes(&table, &[(&a_path, 0)]).await;
    let err = produce(
        table.metadata(),
        &setup.file_io,
        SnapshotChange::new(Operation::Append).adding([misplaced]),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("adding_deletes"), "{err}");

    // The file rewritten without the deleted row replaces the file and its delete.
    let a2 = setup.write(&table, &[(1, "a"), (3, "c")]).await;
    setup
        .commit(
            &table,
            SnapshotChange::new(Operation::Replace)
                .adding([a2])
                .removing([a_path])
                .removing_deletes([delete_path.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(setup.rows().await, rows(&[(1, "a"), (3, "c")]));
    let table = setup.table().await;
    assert_eq!(
        summary_of(&table, "removed-delete-files").as_deref(),
        Some("1")
    );
    assert_eq!(
        summary_of(&table, "total-delete-files").as_deref(),
        Some("0")
    );
    assert_eq!(
        summary_of(&table, "total-position-deletes").as_deref(),
        Some("0")
    );
    assert_eq!(summary_of(&table, "total-records").as_deref(), Some("2"));
    let tasks: Vec<_> = table
        .scan()
        .build()
        .unwrap()
        .plan_files()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].deletes.is_empty());

    // Removing it again is refused: it is no longer live.
    let err = produce(
        table.metadata(),
        &setup.file_io,
        SnapshotChange::new(Operation::Replace).removing_deletes([delete_path]),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not a delete file"), "{err}");
}

#[tokio::test]
async fn a_manifest_rewrite_keeps_every_entry_and_is_rebased_over_a_concurrent_append() {
    let setup = Setup::new().await;
    for i in 0..6 {
        let table = setup.table().await;
        let file = setup.write(&table, &[(i, "x")]).await;
        setup
            .commit(
                &table,
                SnapshotChange::new(Operation::Append).adding([file]),
            )
            .await
            .unwrap();
    }
    let read = setup.table().await;
    let mut rewritten = produce_manifest_rewrite(read.metadata(), &setup.file_io, 8 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rewritten.manifests_replaced, 6);
    assert_eq!(rewritten.manifests_created, 1);
    assert_eq!(rewritten.entries, 6);

    // Another writer appends first: the rewrite made on the old state is refused...
    let other = setup.table().await;
    let late = setup.write(&other, &[(99, "late")]).await;
    setup
        .commit(
            &other,
            SnapshotChange::new(Operation::Append).adding([late]),
        )
        .await
        .unwrap();
    let err = setup
        .catalog
        .commit_table(
            rewritten
                .produced
                .clone()
                .into_table_change(setup.name.clone()),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, CommitError::Conflict(_)), "{err:?}");

    // ...and rebased on the new state, with the same manifests, it keeps the append's manifest.
    let table = setup.table().await;
    let created = rewritten.created[0].manifest_path.clone();
    assert!(
        rebase_manifest_rewrite(table.metadata(), &setup.file_io, &mut rewritten)
            .await
            .unwrap()
    );
    setup
        .catalog
        .commit_table(
            rewritten
                .produced
                .clone()
                .into_table_change(setup.name.clone()),
        )
        .await
        .unwrap();
    let want: Vec<(i64, &str)> = (0..6).map(|i| (i, "x")).chain([(99, "late")]).collect();
    assert_eq!(setup.rows().await, rows(&want));
    let table = setup.table().await;
    let snapshot = table.metadata().current_snapshot().unwrap();
    assert_eq!(snapshot.snapshot_id(), rewritten.produced.snapshot_id);
    assert_eq!(snapshot.summary().operation, Operation::Replace);
    assert_eq!(
        summary_of(&table, "manifests-created").as_deref(),
        Some("1")
    );
    assert_eq!(summary_of(&table, "manifests-kept").as_deref(), Some("1"));
    assert_eq!(summary_of(&table, "total-data-files").as_deref(), Some("7"));
    let list = ManifestList::parse_with_version(
        &setup
            .file_io
            .new_input(snapshot.manifest_list())
            .unwrap()
            .read()
            .await
            .unwrap(),
        table.metadata().format_version(),
    )
    .unwrap();
    let paths: Vec<String> = list
        .entries()
        .iter()
        .map(|m| m.manifest_path.clone())
        .collect();
    assert_eq!(paths.len(), 2);
    assert!(paths.contains(&created));

    // Two rewrites of the same state: once the first commits, the second cannot be rebased
    // (the manifests it replaced are gone) and must be produced again.
    let first = produce_manifest_rewrite(table.metadata(), &setup.file_io, 8 << 20)
        .await
        .unwrap()
        .unwrap();
    let mut second = produce_manifest_rewrite(table.metadata(), &setup.file_io, 8 << 20)
        .await
        .unwrap()
        .unwrap();
    setup
        .catalog
        .commit_table(first.produced.into_table_change(setup.name.clone()))
        .await
        .unwrap();
    let table = setup.table().await;
    assert!(
        !rebase_manifest_rewrite(table.metadata(), &setup.file_io, &mut second)
            .await
            .unwrap()
    );
    assert_eq!(setup.rows().await, rows(&want));
    // A single manifest is not "many small manifests": nothing to do.
    assert!(
        produce_manifest_rewrite(table.metadata(), &setup.file_io, 8 << 20)
            .await
            .unwrap()
            .is_none()
    );
}

/// Servers and the SQL shell run the producer on spawned tasks.
#[test]
fn producing_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let metadata: Option<iceberg::spec::TableMetadata> = None;
    if let Some(metadata) = &metadata {
        let file_io = FileIOBuilder::new(Arc::new(LocalFsStorageFactory)).build();
        let future = produce(metadata, &file_io, SnapshotChange::new(Operation::Append));
        assert_send(&future);
    }
}
