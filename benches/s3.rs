//! Object-storage benchmark: the same loads on an `s3://` warehouse (SeaweedFS on loopback, from
//! `floe_testkit::seaweedfs`) and on a local-directory warehouse, in one process, with ratios.
//!
//! Run with `cargo bench -p floe-benches --bench s3` (release build; the `floe` binary is built on
//! demand; SeaweedFS is found as in `floe_testkit::seaweedfs`). It prints:
//!
//! - commit p50/p99 and commits/s for 8 concurrent clients spread over a few tables
//!   (metadata-only `set-properties` commits: every commit reads and writes a metadata file in the
//!   warehouse and swaps the pointer);
//! - append throughput (rows/s, MB/s of Parquet): 8 clients, each on its own table, write Parquet
//!   data files with iceberg-rust's writers straight to the warehouse (S3 through
//!   `floe_commit::file_io::ClientStorageFactory`) and commit each with a fast-append transaction (manifest and
//!   manifest list written by the client, metadata by Floe).
//!
//! The local run is the baseline: ratio S3/local. Set `FLOE_BENCH_QUICK=1` for a short smoke run.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use floe_commit::file_io::ClientStorageFactory;
use floe_testkit::FloeServer;
use floe_testkit::seaweedfs::{self, TestS3};
use iceberg::io::{LocalFsStorageFactory, StorageFactory};
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, NamespaceIdent, TableCreation};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};

// Shared with the other benches; this one does not load tables.
#[allow(dead_code)]
mod common;

use common::{CLIENTS, Stats, commit_load, create_tables, quick};

const BUCKET: &str = "bench";
/// Tables the commit load is spread over.
const COMMIT_TABLES: usize = 4;

/// One warehouse under test: a running Floe and an iceberg-rust client whose FileIO reaches it.
struct Target {
    name: &'static str,
    server: FloeServer,
    catalog: Arc<RestCatalog>,
}

async fn catalog(
    server: &FloeServer,
    storage: Arc<dyn StorageFactory>,
    extra: &[(&str, String)],
) -> RestCatalog {
    let mut properties = HashMap::from([("uri".to_string(), server.uri())]);
    properties.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    RestCatalogBuilder::default()
        .with_storage_factory(storage)
        .load("floe", properties)
        .await
        .expect("connect RestCatalog")
}

async fn local_target() -> Target {
    let server = FloeServer::start();
    let catalog = Arc::new(catalog(&server, Arc::new(LocalFsStorageFactory), &[]).await);
    Target {
        name: "local",
        server,
        catalog,
    }
}

async fn s3_target(s3: &TestS3) -> Target {
    s3.create_bucket(BUCKET).await;
    let args = s3.floe_args(BUCKET, "warehouse");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = FloeServer::start_with_env(&args, &TestS3::credentials_env());
    // The endpoint etc. also as catalog properties: iceberg-rust builds the FileIO of a table
    // returned by a commit from these alone, so appends can go on without reloading.
    let catalog = Arc::new(
        catalog(
            &server,
            Arc::new(ClientStorageFactory),
            &[
                ("s3.endpoint", s3.endpoint()),
                ("s3.region", seaweedfs::REGION.to_string()),
                ("s3.path-style-access", "true".to_string()),
                ("s3.access-key-id", seaweedfs::ACCESS_KEY_ID.to_string()),
                (
                    "s3.secret-access-key",
                    seaweedfs::SECRET_ACCESS_KEY.to_string(),
                ),
            ],
        )
        .await,
    );
    Target {
        name: "s3",
        server,
        catalog,
    }
}

fn schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .expect("schema")
}

/// Writes `rows` rows starting at `first` as one Parquet data file and fast-appends it; returns
/// the table after the commit and the file's size in bytes.
async fn append(catalog: &RestCatalog, table: &Table, first: i64, rows: usize) -> (Table, u64) {
    let schema = table.metadata().current_schema().clone();
    let arrow_schema =
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).expect("arrow schema"));
    let ids: Vec<i64> = (first..first + rows as i64).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from(
            ids.iter()
                .map(|id| format!("row-{id}-payload"))
                .collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(arrow_schema, columns).expect("batch");
    let files = floe_testkit::iceberg_data::write_data_files(table, batch).await;
    let bytes = files.iter().map(|file| file.file_size_in_bytes()).sum();
    let tx = Transaction::new(table);
    let tx = tx
        .fast_append()
        .add_data_files(files)
        .apply(tx)
        .expect("fast append");
    let table = tx.commit(catalog).await.expect("append commit");
    (table, bytes)
}

/// Append throughput of one target.
struct Appends {
    stats: Stats,
    rows: usize,
    bytes: u64,
    elapsed: Duration,
}

impl Appends {
    fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64()
    }

    fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    fn print(&self) {
        self.stats.print();
        println!(
            "{:<52} {:>8} rows {:>10.0} rows/s {:>8.2} MB/s ({:.1} MB of Parquet)",
            "",
            self.rows,
            self.rows_per_second(),
            self.mb_per_second(),
            self.bytes as f64 / 1e6
        );
    }
}

/// `CLIENTS` tasks, each on its own table, `per_client` appends of `rows` rows each.
async fn append_load(target: &Target, per_client: usize, rows: usize) -> Appends {
    let namespace = NamespaceIdent::new("appends".to_string());
    target
        .catalog
        .create_namespace(&namespace, HashMap::new())
        .await
        .expect("create namespace");
    let mut tables = Vec::new();
    for c in 0..CLIENTS {
        let table = target
            .catalog
            .create_table(
                &namespace,
                TableCreation::builder()
                    .name(format!("t{c}"))
                    .schema(schema())
                    .build(),
            )
            .await
            .expect("create table");
        // Loaded, not as created: a loaded table carries the table config (S3 endpoint ...).
        tables.push(
            target
                .catalog
                .load_table(table.identifier())
                .await
                .expect("load table"),
        );
    }
    let catalog = target.catalog.clone();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut table) in tables.into_iter().enumerate() {
        let catalog = catalog.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            let mut bytes = 0;
            for i in 0..per_client {
                let t0 = Instant::now();
                let first = ((c * per_client + i) * rows) as i64;
                let (next, size) = append(&catalog, &table, first, rows).await;
                latencies.push(t0.elapsed());
                bytes += size;
                table = next;
            }
            (latencies, bytes)
        }));
    }
    let mut latencies = Vec::new();
    let mut bytes = 0;
    for task in tasks {
        let (task_latencies, task_bytes) = task.await.expect("append task");
        latencies.extend(task_latencies);
        bytes += task_bytes;
    }
    let elapsed = started.elapsed();
    Appends {
        stats: Stats::new(
            format!(
                "{}: appends of {rows} rows, {CLIENTS} clients/tables",
                target.name
            ),
            elapsed,
            latencies,
        ),
        rows: CLIENTS * per_client * rows,
        bytes,
        elapsed,
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn main() {
    common::run(async {
        let commits_per_client = if quick() { 10 } else { 200 };
        let appends_per_client = if quick() { 2 } else { 20 };
        let rows = if quick() { 10_000 } else { 200_000 };

        let s3 = TestS3::start();
        let local = local_target().await;
        let remote = s3_target(&s3).await;
        println!(
            "floe object-storage benchmark: s3:// warehouse on SeaweedFS (loopback) vs local directory"
        );
        println!();

        let client = reqwest::Client::new();
        let mut commits = Vec::new();
        for target in [&local, &remote] {
            let api = target.server.api();
            create_tables(&client, &api, "commits", COMMIT_TABLES).await;
            commits.push(
                commit_load(
                    &[api],
                    "commits",
                    COMMIT_TABLES,
                    commits_per_client,
                    &format!(
                        "{}: commits, {COMMIT_TABLES} tables, {CLIENTS} clients",
                        target.name
                    ),
                )
                .await,
            );
        }
        for stats in &commits {
            stats.print();
        }
        let (base, s3_commits) = (&commits[0], &commits[1]);
        println!(
            "ratio s3/local commit latency: p50 {:.2}, p99 {:.2}; commits/s {:.2}",
            ms(s3_commits.percentile(0.5)) / ms(base.percentile(0.5)),
            ms(s3_commits.percentile(0.99)) / ms(base.percentile(0.99)),
            s3_commits.per_second() / base.per_second(),
        );
        println!();

        let local_appends = append_load(&local, appends_per_client, rows).await;
        let s3_appends = append_load(&remote, appends_per_client, rows).await;
        local_appends.print();
        s3_appends.print();
        println!(
            "ratio s3/local append throughput: rows/s {:.2}, MB/s {:.2}; append p50 latency {:.2}",
            s3_appends.rows_per_second() / local_appends.rows_per_second(),
            s3_appends.mb_per_second() / local_appends.mb_per_second(),
            ms(s3_appends.stats.percentile(0.5)) / ms(local_appends.stats.percentile(0.5)),
        );
        let objects = s3.list(BUCKET, "warehouse/appends").await;
        assert!(
            objects.iter().any(|key| key.ends_with(".parquet")),
            "the S3 appends wrote Parquet to the bucket: {objects:?}"
        );
    });
}
