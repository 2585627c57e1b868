//! Commit and load benchmark for the REST catalog.
//!
//! Run with `cargo bench -p floe-benches --bench commit` (release build; the `floe` binary is built
//! on demand). It starts a real `floe serve` on a free loopback port and prints:
//!
//! - commits/s and p50/p99 latency for 8 concurrent clients committing to one table, and spread
//!   over 64 tables (metadata-only `set-properties` commits, so every commit does the full protocol:
//!   read pointer, read metadata, apply, write a metadata file, compare-and-swap);
//! - the same commit loop straight against the SQLite store's compare-and-swap, in this process:
//!   the baseline that shows what the HTTP + metadata-file work costs on top of the store;
//! - loadTable p50/p99 for a table with 10,000 snapshots, with `snapshots=all` and `snapshots=refs`.
//!
//! Set `FLOE_BENCH_QUICK=1` for a short smoke run.

use std::sync::Arc;
use std::time::Instant;

use floe_store::sqlite::SqliteStore;
use floe_store::{FileChecksum, MetadataStore, PointerSwap, StoreError, TableName};
use floe_testkit::FloeServer;

#[allow(dead_code)] // each bench uses part of the shared helpers
mod common;

use common::{CLIENTS, Stats, commit_load, create_tables, load_loop, quick, table_with_snapshots};

/// The same shape of load directly on the store: the floor under every REST commit.
async fn store_baseline(tables: usize, per_client: usize) -> Stats {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn MetadataStore> = Arc::new(
        SqliteStore::open(&dir.path().join("catalog.db"))
            .await
            .expect("open store"),
    );
    let namespace = vec!["bench".to_string()];
    store
        .create_namespace(&namespace, &Default::default())
        .await
        .expect("namespace");
    for t in 0..tables {
        let swap = PointerSwap {
            table: TableName::new(namespace.clone(), format!("t{t}")),
            expected: None,
            new_location: format!("file:///bench/t{t}/0"),
            new_checksum: FileChecksum::of(b"bench"),
            location: Some(format!("file:///bench/t{t}")),
            events: Default::default(),
        };
        store.swap_pointers(&[swap]).await.expect("create");
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let store = store.clone();
        let namespace = namespace.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let table = TableName::new(
                    namespace.clone(),
                    format!("t{}", (c + i * CLIENTS) % tables),
                );
                let t0 = Instant::now();
                loop {
                    let pointer = store.load_table(&table).await.expect("load");
                    let swap = PointerSwap {
                        table: table.clone(),
                        expected: Some(pointer.metadata_location),
                        new_location: format!("file:///bench/{c}/{i}"),
                        // The store's swap alone is measured: what the checksum is of does not matter.
                        new_checksum: FileChecksum::of(b"bench"),
                        location: None,
                        events: Default::default(),
                    };
                    match store.swap_pointers(&[swap]).await {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(err) => panic!("swap: {err}"),
                    }
                }
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("store task"));
    }
    Stats::new(
        format!("baseline: store CAS only, {tables} table(s), {CLIENTS} clients"),
        started.elapsed(),
        latencies,
    )
}

fn main() {
    common::run(async {
        let per_client = if quick() { 20 } else { 250 };
        let snapshots = if quick() { 1_000 } else { 10_000 };
        let load_rounds = if quick() { 10 } else { 100 };

        let server = FloeServer::start();
        let api = server.api();
        let client = reqwest::Client::new();
        println!(
            "floe commit benchmark: {CLIENTS} concurrent clients, SQLite store, local warehouse"
        );
        println!();

        create_tables(&client, &api, "one", 1).await;
        create_tables(&client, &api, "many", 64).await;
        let apis = [api.clone()];
        let one = commit_load(
            &apis,
            "one",
            1,
            per_client,
            &format!("REST commits, 1 table, {CLIENTS} clients"),
        )
        .await;
        let many = commit_load(
            &apis,
            "many",
            64,
            per_client,
            &format!("REST commits, 64 tables, {CLIENTS} clients"),
        )
        .await;
        let base_one = store_baseline(1, per_client).await;
        let base_many = store_baseline(64, per_client).await;
        for stats in [&one, &many, &base_one, &base_many] {
            stats.print();
        }
        println!(
            "ratio REST/store-only commits/s: 1 table {:.2}, 64 tables {:.2}",
            one.per_second() / base_one.per_second(),
            many.per_second() / base_many.per_second()
        );
        println!();

        let url = table_with_snapshots(&client, &api, snapshots).await;
        let all = load_loop(
            &client,
            &url,
            load_rounds,
            &format!("loadTable, {snapshots} snapshots, snapshots=all"),
        )
        .await;
        let refs = load_loop(
            &client,
            &format!("{url}?snapshots=refs"),
            load_rounds,
            &format!("loadTable, {snapshots} snapshots, snapshots=refs"),
        )
        .await;
        all.print();
        refs.print();
        println!(
            "ratio p50 all/refs: {:.2}",
            all.percentile(0.5).as_secs_f64() / refs.percentile(0.5).as_secs_f64()
        );
    });
}
