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
use std::time::{Duration, Instant};

use floe_store::sqlite::SqliteStore;
use floe_store::{MetadataStore, PointerSwap, StoreError, TableName};
use floe_testkit::FloeServer;
use serde_json::{Value, json};

const CLIENTS: usize = 8;

fn quick() -> bool {
    std::env::var_os("FLOE_BENCH_QUICK").is_some()
}

struct Stats {
    label: String,
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn new(label: impl Into<String>, elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Self {
            label: label.into(),
            count: latencies.len(),
            elapsed,
            latencies,
        }
    }

    fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    fn print(&self) {
        println!(
            "{:<52} {:>8} ops {:>10.1} ops/s   p50 {:>8.2} ms   p99 {:>8.2} ms",
            self.label,
            self.count,
            self.per_second(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
        );
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    let response = client.post(url).json(body).send().await.expect("request");
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        panic!("POST {url} -> {status}: {text}");
    }
    response
}

async fn create_tables(client: &reqwest::Client, api: &str, namespace: &str, count: usize) {
    post(
        client,
        &format!("{api}/namespaces"),
        &json!({ "namespace": [namespace] }),
    )
    .await;
    for i in 0..count {
        post(
            client,
            &format!("{api}/namespaces/{namespace}/tables"),
            &json!({
                "name": format!("t{i}"),
                "schema": {"type": "struct", "schema-id": 0, "fields": [
                    {"id": 1, "name": "id", "type": "long", "required": true}
                ]},
            }),
        )
        .await;
    }
}

/// `CLIENTS` tasks, `per_client` commits each, spread round-robin over `tables`.
async fn commit_load(
    api: &str,
    namespace: &str,
    tables: usize,
    per_client: usize,
    label: &str,
) -> Stats {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let api = api.to_string();
        let namespace = namespace.to_string();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let table = (c + i * CLIENTS) % tables;
                let url = format!("{api}/namespaces/{namespace}/tables/t{table}");
                let body = json!({"requirements": [], "updates": [
                    {"action": "set-properties", "updates": {format!("client-{c}"): i.to_string()}}
                ]});
                let t0 = Instant::now();
                let response = client.post(&url).json(&body).send().await.expect("commit");
                assert_eq!(response.status().as_u16(), 200, "commit to {url}");
                latencies.push(t0.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    Stats::new(label, started.elapsed(), latencies)
}

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

/// Builds a table with `count` snapshots, in batches of metadata-only add-snapshot commits (the
/// catalog never opens manifest lists, so they need not exist for this measurement).
async fn table_with_snapshots(client: &reqwest::Client, api: &str, count: i64) -> String {
    create_tables(client, api, "history", 1).await;
    let url = format!("{api}/namespaces/history/tables/t0");
    let batch = 500;
    let mut parent: Option<i64> = None;
    let mut next = 1_i64;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    while next <= count {
        let mut updates = Vec::new();
        for id in next..(next + batch).min(count + 1) {
            let mut snapshot = json!({
                "snapshot-id": id,
                "sequence-number": id,
                "timestamp-ms": now_ms + id,
                "manifest-list": format!("file:///nowhere/snap-{id}.avro"),
                "summary": {"operation": "append"},
                "schema-id": 0,
            });
            if let Some(parent) = parent {
                snapshot["parent-snapshot-id"] = json!(parent);
            }
            updates.push(json!({"action": "add-snapshot", "snapshot": snapshot}));
            parent = Some(id);
        }
        updates.push(
            json!({"action": "set-snapshot-ref", "ref-name": "main", "type": "branch",
            "snapshot-id": parent}),
        );
        post(
            client,
            &url,
            &json!({"requirements": [], "updates": updates}),
        )
        .await;
        next += batch;
    }
    url
}

async fn load_loop(client: &reqwest::Client, url: &str, rounds: usize, label: &str) -> Stats {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        let response = client.get(url).send().await.expect("load");
        assert_eq!(response.status().as_u16(), 200);
        let body = response.bytes().await.expect("body");
        assert!(!body.is_empty());
        latencies.push(t0.elapsed());
    }
    Stats::new(label, started.elapsed(), latencies)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
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
        let one = commit_load(
            &api,
            "one",
            1,
            per_client,
            &format!("REST commits, 1 table, {CLIENTS} clients"),
        )
        .await;
        let many = commit_load(
            &api,
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
