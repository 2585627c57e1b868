//! What the benchmarks share: the quick-mode switch, latency statistics, and REST load loops
//! against running `floe serve` processes. Each bench target includes it with `mod common;`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Concurrent clients in every commit load.
pub const CLIENTS: usize = 8;

/// `FLOE_BENCH_QUICK=1`: a short smoke run.
/// Runs a benchmark's body on a multi-threaded runtime: every bench's `main`.
pub fn run(bench: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench);
}

pub fn quick() -> bool {
    std::env::var_os("FLOE_BENCH_QUICK").is_some()
}

/// How many of each measurement a latency bench takes: `FLOE_BENCH_ROUNDS`, else 200 quick or
/// 3,000 in full.
pub fn rounds() -> usize {
    std::env::var("FLOE_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick() { 200 } else { 3_000 })
}

/// The 1, 5 and 15 minute load averages, printed beside figures: numbers from a busy machine
/// are not comparable.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Latencies of one measurement, and the wall time it took.
pub struct Stats {
    label: String,
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    pub fn new(label: impl Into<String>, elapsed: Duration, mut latencies: Vec<Duration>) -> Self {
        latencies.sort_unstable();
        Self {
            label: label.into(),
            count: latencies.len(),
            elapsed,
            latencies,
        }
    }

    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    pub fn print(&self) {
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

/// POSTs `body`; panics unless 2xx.
pub async fn post(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::Response {
    let response = client.post(url).json(body).send().await.expect("request");
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        panic!("POST {url} -> {status}: {text}");
    }
    response
}

/// Creates `namespace` with tables `t0` .. `t<count-1>` (schema `id: long`).
pub async fn create_tables(client: &reqwest::Client, api: &str, namespace: &str, count: usize) {
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

/// `CLIENTS` tasks, `per_client` metadata-only commits each, spread round-robin over `tables`;
/// client `c` sends all its requests to `apis[c % apis.len()]` (one API base per replica).
pub async fn commit_load(
    apis: &[String],
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
        let api = apis[c % apis.len()].clone();
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

/// Builds table `history.t0` with `count` snapshots, in batches of metadata-only add-snapshot
/// commits (the catalog never opens manifest lists, so they need not exist for this
/// measurement); returns its URL.
pub async fn table_with_snapshots(client: &reqwest::Client, api: &str, count: i64) -> String {
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

/// Times one loadTable (`GET url`, body read in full).
pub async fn load_once(client: &reqwest::Client, url: &str) -> Duration {
    let t0 = Instant::now();
    let response = client.get(url).send().await.expect("load");
    assert_eq!(response.status().as_u16(), 200, "GET {url}");
    let body = response.bytes().await.expect("body");
    assert!(!body.is_empty());
    t0.elapsed()
}

/// `rounds` loadTables of `url`, one after the other.
pub async fn load_loop(client: &reqwest::Client, url: &str, rounds: usize, label: &str) -> Stats {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        latencies.push(load_once(client, url).await);
    }
    Stats::new(label, started.elapsed(), latencies)
}
