//! Compaction benchmark: Floe's bin-pack compaction (`floe_maintenance::compact`, what
//! `floe maintain --compact` and the scheduler run) against Spark 3.5's `rewrite_data_files` on
//! the same table of small files, in one run.
//!
//! Two identical tables are written through a running Floe: 1,000 small Parquet files each (100 in
//! quick mode), committed 100 files per fast append. Floe compacts one in this process, on the
//! server's data dir; Spark (local[2], the Iceberg 1.10.2 runtime, through Floe's REST API)
//! compacts the other. Both use the same target file size and count only the rewrite itself (not
//! Spark's JVM start). It prints files and MB in and out, seconds, MB/s, and the ratio of the two
//! throughputs, and checks that both tables hold the same rows after.
//!
//! Run with `cargo bench -p floe-benches --bench compaction`. Spark comes from the compat venv
//! (`scripts/test.sh compat` makes it: `~/.cache/floe/venv-compat`, or `$FLOE_BENCH_SPARK_PYTHON`)
//! and the jar it caches (`$FLOE_ICEBERG_SPARK_JAR`). `FLOE_BENCH_QUICK=1`: a short smoke run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use floe_commit::open::OpenOptions;
use floe_maintenance::{CompactOptions, TableName, compact};
use floe_testkit::FloeServer;
use floe_testkit::iceberg_data::write_data_files;
use iceberg::io::LocalFsStorageFactory;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};
use serde_json::Value;

#[allow(dead_code)]
mod common;

use common::quick;

const NAMESPACE: &str = "bench";
/// Files per fast-append commit while loading.
const FILES_PER_COMMIT: usize = 100;
const TARGET_FILE_SIZE_BYTES: u64 = 128 * 1024 * 1024;
const ICEBERG_SPARK_JAR: &str = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar";

fn schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::required(2, "category", Type::Primitive(PrimitiveType::String)).into(),
            NestedField::optional(3, "payload", Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .expect("schema")
}

/// File `index` of the load: `rows` rows, the same for both tables.
fn batch(table: &iceberg::table::Table, index: usize, rows: usize) -> RecordBatch {
    let arrow_schema = Arc::new(
        iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema())
            .expect("arrow schema"),
    );
    let first = (index * rows) as i64;
    let ids: Vec<i64> = (first..first + rows as i64).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|id| ["click", "view", "buy", "share"][(*id % 4) as usize])
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|id| {
                    format!(
                        "event-{id:012}-{}",
                        id.wrapping_mul(2_654_435_761) % 1_000_003
                    )
                })
                .collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(arrow_schema, columns).expect("batch")
}

/// Creates `name` and loads `files` small data files into it; returns their total bytes.
async fn load(catalog: &RestCatalog, name: &str, files: usize, rows: usize) -> u64 {
    let namespace = NamespaceIdent::new(NAMESPACE.into());
    catalog
        .create_table(
            &namespace,
            TableCreation::builder()
                .name(name.into())
                .schema(schema())
                .build(),
        )
        .await
        .expect("create table");
    let ident = TableIdent::new(namespace, name.into());
    let mut bytes = 0;
    let mut index = 0;
    while index < files {
        let table = catalog.load_table(&ident).await.expect("load");
        let mut data_files = Vec::new();
        for _ in 0..FILES_PER_COMMIT.min(files - index) {
            let written = write_data_files(&table, batch(&table, index, rows)).await;
            bytes += written.iter().map(|f| f.file_size_in_bytes()).sum::<u64>();
            data_files.extend(written);
            index += 1;
        }
        let tx = Transaction::new(&table);
        let tx = tx
            .fast_append()
            .add_data_files(data_files)
            .apply(tx)
            .expect("fast append");
        tx.commit(catalog).await.expect("append commit");
    }
    bytes
}

/// One side's measurement.
struct Rewrite {
    engine: &'static str,
    files_in: u64,
    files_out: u64,
    bytes_in: u64,
    seconds: f64,
}

impl Rewrite {
    fn mb_per_second(&self) -> f64 {
        self.bytes_in as f64 / 1e6 / self.seconds
    }

    fn print(&self) {
        println!(
            "{:<8} {:>6} files in {:>6} out {:>9.1} MB in {:>8.2} s {:>9.1} MB/s in {:>9.1} files/s",
            self.engine,
            self.files_in,
            self.files_out,
            self.bytes_in as f64 / 1e6,
            self.seconds,
            self.mb_per_second(),
            self.files_in as f64 / self.seconds,
        );
    }
}

fn cache_dir() -> PathBuf {
    std::env::var_os("FLOE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/floe")
        })
}

/// Spark's rewrite of `table`, run by `compaction/spark_rewrite.py`.
fn spark_rewrite(server: &FloeServer, table: &str) -> Value {
    let python = std::env::var_os("FLOE_BENCH_SPARK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("venv-compat/bin/python"));
    let jar = std::env::var_os("FLOE_ICEBERG_SPARK_JAR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            cache_dir()
                .join("iceberg-spark-runtime")
                .join(ICEBERG_SPARK_JAR)
        });
    assert!(
        python.is_file() && jar.is_file(),
        "Spark is needed for the baseline: run `scripts/test.sh compat` once (it makes {} and {}), \
         or set FLOE_BENCH_SPARK_PYTHON and FLOE_ICEBERG_SPARK_JAR",
        python.display(),
        jar.display()
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compaction/spark_rewrite.py");
    let output = std::process::Command::new(python)
        .arg(script)
        .args(["--uri", &server.uri(), "--table", table])
        .arg("--jar")
        .arg(jar)
        .args([
            "--target-file-size-bytes",
            &TARGET_FILE_SIZE_BYTES.to_string(),
        ])
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .output()
        .expect("run Spark");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Spark failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .expect("Spark's JSON line");
    serde_json::from_str(line).expect("Spark's JSON")
}

async fn total_records(server: &FloeServer, table: &str) -> String {
    let loaded: Value = reqwest::get(format!(
        "{}/namespaces/{NAMESPACE}/tables/{table}",
        server.api()
    ))
    .await
    .expect("load")
    .json()
    .await
    .expect("json");
    let current = &loaded["metadata"]["current-snapshot-id"];
    loaded["metadata"]["snapshots"]
        .as_array()
        .and_then(|all| all.iter().find(|s| &s["snapshot-id"] == current))
        .and_then(|s| s["summary"]["total-records"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn main() {
    common::run(async {
        let (files, rows) = if quick() { (100, 500) } else { (1000, 2000) };
        let server = FloeServer::start_with_args(&["--maintenance", "false"]);
        let catalog = RestCatalogBuilder::default()
            .with_storage_factory(Arc::new(LocalFsStorageFactory))
            .load("floe", HashMap::from([("uri".to_string(), server.uri())]))
            .await
            .expect("connect");
        catalog
            .create_namespace(&NamespaceIdent::new(NAMESPACE.into()), HashMap::new())
            .await
            .expect("namespace");
        let loading = Instant::now();
        let floe_bytes = load(&catalog, "floe_side", files, rows).await;
        let spark_bytes = load(&catalog, "spark_side", files, rows).await;
        println!(
            "loaded 2 tables x {files} files x {rows} rows ({:.1} MB each) in {:.1} s",
            floe_bytes as f64 / 1e6,
            loading.elapsed().as_secs_f64()
        );

        // Floe: in this process, on the server's data dir (the server keeps serving meanwhile).
        let engine = floe_commit::open::open(&OpenOptions::new(server.data_dir()))
            .await
            .expect("open the data dir");
        let started = Instant::now();
        let report = compact(
            &engine,
            &TableName::new(vec![NAMESPACE.to_string()], "floe_side"),
            &CompactOptions {
                target_file_size_bytes: Some(TARGET_FILE_SIZE_BYTES),
                min_input_files: Some(2),
                ..CompactOptions::default()
            },
        )
        .await
        .expect("Floe compaction");
        let floe = Rewrite {
            engine: "floe",
            files_in: report.input_files as u64,
            files_out: report.output_files as u64,
            bytes_in: report.input_bytes,
            seconds: started.elapsed().as_secs_f64(),
        };

        let spark_result = spark_rewrite(&server, &format!("{NAMESPACE}.spark_side"));
        let spark = Rewrite {
            engine: "spark",
            files_in: spark_result["rewritten_files"].as_u64().unwrap_or_default(),
            files_out: spark_result["added_files"].as_u64().unwrap_or_default(),
            bytes_in: spark_result["rewritten_bytes"]
                .as_u64()
                .unwrap_or(spark_bytes),
            seconds: spark_result["seconds"].as_f64().unwrap_or(f64::NAN),
        };

        println!(
            "\ncompaction of {files} small files, target {} MiB:",
            TARGET_FILE_SIZE_BYTES >> 20
        );
        floe.print();
        spark.print();
        println!(
            "ratio floe/spark (MB/s in): {:.2}x   (MB out: floe {:.1}, spark rewrote into {} files)",
            floe.mb_per_second() / spark.mb_per_second(),
            report.output_bytes as f64 / 1e6,
            spark.files_out
        );
        let (floe_rows, spark_rows) = (
            total_records(&server, "floe_side").await,
            total_records(&server, "spark_side").await,
        );
        assert_eq!(floe_rows, (files * rows).to_string(), "Floe kept every row");
        assert_eq!(
            spark_rows, floe_rows,
            "both tables hold the same rows after"
        );
        assert_eq!(floe.files_in, files as u64);
        println!("rows after: {floe_rows} in both tables");
    });
}
