//! The table both maintenance test files work on: a catalog in a temp dir, one table `s.t`
//! written with SQL through the commit engine.

use std::sync::Arc;

use floe_commit::Catalog;
use floe_commit::open::{OpenOptions, open};
use floe_sql::{EmbeddedCatalog, Session};
use floe_store::TableName;

pub struct Fixture {
    _dir: Arc<tempfile::TempDir>,
    pub catalog: Arc<Catalog>,
    pub table: TableName,
}

impl Fixture {
    /// A fresh catalog with schema `s` and table `s.t` created by `create_table` (SQL).
    pub async fn with_table(create_table: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(
            open(&OpenOptions::new(dir.path().join("data")))
                .await
                .unwrap(),
        );
        let fixture = Self {
            _dir: Arc::new(dir),
            catalog,
            table: TableName::new(vec!["s".to_string()], "t"),
        };
        fixture.sql("CREATE SCHEMA s").await;
        fixture.sql(create_table).await;
        fixture
    }

    /// The data dir the catalog lives in, for opening a second engine on it.
    #[allow(dead_code)] // not every test file that includes this module needs it
    pub fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    /// The same data dir and table through a second engine with an empty metadata cache: what a
    /// restarted server reads.
    #[allow(dead_code)] // not every test file that includes this module needs it
    pub async fn reopened(&self) -> Self {
        Self {
            _dir: self._dir.clone(),
            catalog: Arc::new(open(&OpenOptions::new(self.data_dir())).await.unwrap()),
            table: self.table.clone(),
        }
    }

    pub fn session(&self) -> Session {
        Session::new(Arc::new(EmbeddedCatalog::new(self.catalog.clone())))
    }

    /// Runs `sql` through the embedded SQL engine; returns the last statement's rows.
    pub async fn sql(&self, sql: &str) -> Vec<arrow::array::RecordBatch> {
        self.session()
            .run(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"))
            .into_iter()
            .flatten()
            .collect()
    }
}

/// Tables of `(id BIGINT NOT NULL, name VARCHAR, part BIGINT)` with rows `(id, 'row-<id>', id % 3)`,
/// and the checks the compaction and manifest tests make on them: rows as sorted text, their
/// checksum, the live files, merge-on-read delete files written and committed directly.
#[allow(dead_code)] // each test file uses its own part
pub mod parts {
    use std::collections::{BTreeSet, hash_map::DefaultHasher};
    use std::hash::{Hash, Hasher};
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use floe_commit::{SnapshotChange, produce};
    use iceberg::io::{FileIO, FileIOBuilder, LocalFsStorageFactory};
    use iceberg::spec::{
        DataContentType, DataFile, DataFileFormat, Literal, ManifestContentType, ManifestList,
        NestedField, Operation, PartitionKey, PrimitiveType, Schema, Struct, TableMetadata, Type,
    };
    use iceberg::writer::file_writer::ParquetWriterBuilder;
    use iceberg::writer::file_writer::location_generator::{
        DefaultFileNameGenerator, DefaultLocationGenerator,
    };
    use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
    use parquet::file::properties::WriterProperties;

    use super::Fixture;

    /// Iceberg's reserved field ids of a position delete file's columns.
    const DELETE_FILE_PATH_ID: i32 = 2147483546;
    const DELETE_POS_ID: i32 = 2147483545;
    const ID_FIELD: i32 = 1;

    pub async fn table(partitioned: bool) -> Fixture {
        let partition = if partitioned {
            " PARTITIONED BY (part)"
        } else {
            ""
        };
        Fixture::with_table(&format!(
            "CREATE TABLE s.t (id BIGINT NOT NULL, name VARCHAR, part BIGINT){partition}"
        ))
        .await
    }

    /// The row `id` as [`Fixture::rows`] prints it.
    pub fn row(id: i64) -> String {
        format!("{id}|row-{id}|{}", id % 3)
    }

    impl Fixture {
        /// Appends rows `from..to`: one file per partition touched.
        pub async fn append(&self, from: i64, to: i64) {
            self.append_ids(&(from..to).collect::<Vec<_>>()).await;
        }

        pub async fn append_ids(&self, ids: &[i64]) {
            let values: Vec<String> = ids
                .iter()
                .map(|id| format!("({id}, 'row-{id}', {})", id % 3))
                .collect();
            self.sql(&format!("INSERT INTO s.t VALUES {}", values.join(", ")))
                .await;
        }

        /// Every row as text, sorted.
        pub async fn rows(&self, from: &str) -> Vec<String> {
            let batches = self
                .sql(&format!("SELECT id, name, part FROM {from}"))
                .await;
            let mut rows = Vec::new();
            for batch in &batches {
                let formatters: Vec<_> = batch
                    .columns()
                    .iter()
                    .map(|c| {
                        ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap()
                    })
                    .collect();
                for row in 0..batch.num_rows() {
                    let cells: Vec<String> = formatters
                        .iter()
                        .map(|f| f.value(row).to_string())
                        .collect();
                    rows.push(cells.join("|"));
                }
            }
            rows.sort();
            rows
        }

        pub async fn checksum(&self, from: &str) -> (usize, u64) {
            let rows = self.rows(from).await;
            let mut hasher = DefaultHasher::new();
            rows.hash(&mut hasher);
            (rows.len(), hasher.finish())
        }

        /// The data files of the current snapshot.
        pub async fn live_files(&self) -> BTreeSet<String> {
            self.live_entries(ManifestContentType::Data).await
        }

        /// The delete files of the current snapshot.
        pub async fn live_delete_files(&self) -> BTreeSet<String> {
            self.live_entries(ManifestContentType::Deletes).await
        }

        async fn live_entries(&self, content: ManifestContentType) -> BTreeSet<String> {
            let metadata = self.metadata().await;
            let mut files = BTreeSet::new();
            for manifest in self.manifests(&metadata).await {
                if manifest.content != content {
                    continue;
                }
                let loaded = manifest.load_manifest(&file_io()).await.unwrap();
                for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
                    assert!(
                        files.insert(entry.file_path().to_string()),
                        "{} is live twice",
                        entry.file_path()
                    );
                }
            }
            files
        }

        /// The manifests of the current snapshot.
        pub async fn manifests(
            &self,
            metadata: &TableMetadata,
        ) -> Vec<iceberg::spec::ManifestFile> {
            let Some(snapshot) = metadata.current_snapshot() else {
                return Vec::new();
            };
            let bytes = file_io()
                .new_input(snapshot.manifest_list())
                .unwrap()
                .read()
                .await
                .unwrap();
            ManifestList::parse_with_version(&bytes, metadata.format_version())
                .unwrap()
                .consume_entries()
                .into_iter()
                .collect()
        }

        pub async fn metadata(&self) -> TableMetadata {
            let loaded = self.catalog.load_table(&self.table).await.unwrap();
            loaded.metadata().clone()
        }

        pub async fn current_snapshot(&self) -> i64 {
            self.metadata().await.current_snapshot_id().unwrap()
        }

        /// Every file under the table's location.
        pub async fn files_on_disk(&self) -> BTreeSet<String> {
            let location = self.metadata().await.location().to_string();
            self.catalog
                .warehouse()
                .list_under(&location)
                .await
                .unwrap()
                .into_iter()
                .collect()
        }

        /// The live data files holding rows of `part`, as written (one per append).
        pub async fn files_of_part(&self, part: i64) -> Vec<String> {
            let mut files = Vec::new();
            for file in self.live_files().await {
                if self
                    .ids_in_file(&file)
                    .await
                    .iter()
                    .all(|id| id % 3 == part)
                {
                    files.push(file);
                }
            }
            files
        }

        /// The ids of a data file, in row order (position `i` holds `ids[i]`).
        pub async fn ids_in_file(&self, path: &str) -> Vec<i64> {
            let bytes = file_io().new_input(path).unwrap().read().await.unwrap();
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .unwrap()
                    .build()
                    .unwrap();
            let mut ids = Vec::new();
            for batch in reader {
                let batch = batch.unwrap();
                let column = batch.column_by_name("id").unwrap();
                ids.extend(
                    column
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .unwrap()
                        .values()
                        .iter(),
                );
            }
            ids
        }

        /// Writes a position delete file deleting `(data file, position)` pairs of partition
        /// `part` (`None`: unpartitioned table).
        pub async fn position_deletes(&self, part: Option<i64>, rows: &[(&str, i64)]) -> DataFile {
            let schema = Schema::builder()
                .with_fields(vec![
                    NestedField::required(
                        DELETE_FILE_PATH_ID,
                        "file_path",
                        Type::Primitive(PrimitiveType::String),
                    )
                    .into(),
                    NestedField::required(
                        DELETE_POS_ID,
                        "pos",
                        Type::Primitive(PrimitiveType::Long),
                    )
                    .into(),
                ])
                .build()
                .unwrap();
            let mut sorted = rows.to_vec();
            sorted.sort();
            let batch = |arrow_schema| {
                RecordBatch::try_new(
                    arrow_schema,
                    vec![
                        Arc::new(StringArray::from_iter_values(sorted.iter().map(|r| r.0))),
                        Arc::new(Int64Array::from_iter_values(sorted.iter().map(|r| r.1))),
                    ],
                )
                .unwrap()
            };
            self.write_delete(schema, batch, part, DataContentType::PositionDeletes)
                .await
        }

        /// Writes an equality delete file on `id` deleting `ids`, in partition `part`, or with
        /// `None` in the table's spec when unpartitioned (a global delete).
        pub async fn equality_deletes(&self, part: Option<i64>, ids: &[i64]) -> DataFile {
            let schema = Schema::builder()
                .with_fields(vec![
                    NestedField::required(ID_FIELD, "id", Type::Primitive(PrimitiveType::Long))
                        .into(),
                ])
                .build()
                .unwrap();
            let ids = ids.to_vec();
            let batch = move |arrow_schema| {
                RecordBatch::try_new(
                    arrow_schema,
                    vec![Arc::new(Int64Array::from_iter_values(ids.iter().copied()))],
                )
                .unwrap()
            };
            self.write_delete(schema, batch, part, DataContentType::EqualityDeletes)
                .await
        }

        async fn write_delete(
            &self,
            schema: Schema,
            batch: impl FnOnce(arrow::datatypes::SchemaRef) -> RecordBatch,
            part: Option<i64>,
            content: DataContentType,
        ) -> DataFile {
            let metadata = self.metadata().await;
            let schema = Arc::new(schema);
            let arrow_schema = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).unwrap());
            let spec = metadata.default_partition_spec().as_ref().clone();
            let key = part.map(|p| {
                PartitionKey::new(
                    spec.clone(),
                    metadata.current_schema().clone(),
                    Struct::from_iter([Some(Literal::long(p))]),
                )
            });
            let mut writer = RollingFileWriterBuilder::new_with_default_file_size(
                ParquetWriterBuilder::new(WriterProperties::default(), schema),
                file_io(),
                DefaultLocationGenerator::new(&metadata).unwrap(),
                DefaultFileNameGenerator::new(
                    format!("delete-{}", uuid::Uuid::now_v7().simple()),
                    None,
                    DataFileFormat::Parquet,
                ),
            )
            .build();
            writer.write(&key, &batch(arrow_schema)).await.unwrap();
            let mut builders = writer.close().await.unwrap();
            assert_eq!(builders.len(), 1);
            let mut builder = builders.remove(0);
            builder.content(content);
            if content == DataContentType::EqualityDeletes {
                builder.equality_ids(Some(vec![ID_FIELD]));
            }
            builder.partition_spec_id(spec.spec_id());
            if let Some(key) = &key {
                builder.partition(key.data().clone());
            }
            builder.build().unwrap()
        }

        /// Commits `deletes` as a row delta (a `delete` snapshot adding delete files).
        pub async fn row_delta(&self, deletes: Vec<DataFile>) -> i64 {
            let metadata = self.metadata().await;
            let produced = produce(
                &metadata,
                &file_io(),
                SnapshotChange::new(Operation::Delete).adding_deletes(deletes),
            )
            .await
            .unwrap();
            let id = produced.snapshot_id;
            self.catalog
                .commit_table(produced.into_table_change(self.table.clone()))
                .await
                .unwrap();
            id
        }
    }

    pub fn file_io() -> FileIO {
        FileIOBuilder::new(Arc::new(LocalFsStorageFactory)).build()
    }
}
