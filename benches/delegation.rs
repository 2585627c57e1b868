//! What delegated access costs on the request path, in one run against one S3 server (SeaweedFS
//! with STS, on loopback):
//!
//! - loadTable with vended credentials (`X-Iceberg-Access-Delegation: vended-credentials`, served
//!   from the credential cache) against loadTable without delegation, on the same table, in
//!   alternating blocks of 100;
//! - the first load of a table (a cache miss: one STS `AssumeRole`), over fresh tables;
//! - how many STS calls all of it made (`floe_delegation_sts_calls_total`).
//!
//! Run with `cargo bench -p floe-benches --bench delegation`. `FLOE_BENCH_QUICK=1`: a short smoke
//! run. `FLOE_BENCH_ROUNDS=N`: N loads of each kind. Prints the load average before and after
//! (figures from a busy machine are not comparable).

use std::time::{Duration, Instant};

use floe_testkit::FloeServer;
use floe_testkit::seaweedfs::{self, TestS3};
use serde_json::json;

#[allow(dead_code)] // each bench uses part of the shared helpers
mod common;

use common::{Stats, create_tables, post, quick};

const NAMESPACE: &str = "bench";
const HEADER: &str = "X-Iceberg-Access-Delegation";

fn rounds() -> usize {
    std::env::var("FLOE_BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick() { 200 } else { 3_000 })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

async fn load(client: &reqwest::Client, url: &str, vended: bool) -> Duration {
    let mut request = client.get(url);
    if vended {
        request = request.header(HEADER, "vended-credentials");
    }
    let t0 = Instant::now();
    let response = request.send().await.expect("load");
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let body = response.bytes().await.expect("body");
    let elapsed = t0.elapsed();
    if vended {
        assert!(
            body.windows(17).any(|w| w == b"s3.session-token\""),
            "credentials were vended"
        );
    }
    elapsed
}

/// Sequential loads of `url`, alternating blocks of 100 without and with vending.
async fn alternate(client: &reqwest::Client, url: &str, rounds: usize) -> [Vec<Duration>; 2] {
    const BLOCK: usize = 100;
    let mut latencies = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    let mut done = 0;
    while done < rounds {
        let block = BLOCK.min(rounds - done);
        for (side, vended) in [false, true].into_iter().enumerate() {
            for _ in 0..block {
                latencies[side].push(load(client, url, vended).await);
            }
        }
        done += block;
    }
    latencies
}

async fn sts_calls(server: &FloeServer) -> u64 {
    let text = reqwest::get(format!("{}/metrics", server.uri()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|line| line.starts_with("floe_delegation_sts_calls_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn main() {
    common::run(async {
        println!("load average before: {}", load_average());
        let s3 = TestS3::start_with_sts();
        s3.create_bucket("lake").await;
        let server = FloeServer::start_with_args(&[
            "--maintenance",
            "false",
            "--allowed-storage-root",
            "s3://lake",
        ]);
        let client = reqwest::Client::new();
        let created = post(
            &client,
            &format!("{}/management/v1/warehouses", server.uri()),
            &json!({
                "name": "vend",
                "storage-url": "s3://lake/vend",
                "properties": {
                    "s3.endpoint": s3.endpoint(),
                    "s3.region": seaweedfs::REGION,
                    "s3.path-style-access": "true",
                    "s3.access-key-id": seaweedfs::ACCESS_KEY_ID,
                    "s3.secret-access-key": seaweedfs::SECRET_ACCESS_KEY,
                    "s3.sts-role-arn": seaweedfs::STS_ROLE_ARN,
                    "s3.default-access-delegation": "none",
                },
            }),
        )
        .await;
        assert_eq!(created.status().as_u16(), 201);
        let api = format!("{}/v1/vend", server.uri());
        let cold_tables = if quick() { 20 } else { 200 };
        create_tables(&client, &api, NAMESPACE, cold_tables + 1).await;

        let url = format!("{api}/namespaces/{NAMESPACE}/tables/t0");
        alternate(&client, &url, 100).await; // warm: connections, metadata cache, one STS call
        let rounds = rounds();
        let [plain, vended] = alternate(&client, &url, rounds).await;
        let stats = |label: &str, latencies: Vec<Duration>| {
            Stats::new(label, latencies.iter().sum(), latencies)
        };
        let plain = stats("loadTable, no delegation", plain);
        let vended = stats("loadTable, vended credentials (cached)", vended);

        let mut cold = Vec::with_capacity(cold_tables);
        for i in 1..=cold_tables {
            let url = format!("{api}/namespaces/{NAMESPACE}/tables/t{i}");
            load(&client, &url, false).await; // the metadata file is cached; only STS is cold
            cold.push(load(&client, &url, true).await);
        }
        let cold = stats(
            "loadTable, vended credentials (first load: one STS call)",
            cold,
        );
        for series in [&plain, &vended, &cold] {
            series.print();
        }
        let p = |stats: &Stats, q: f64| stats.percentile(q).as_secs_f64();
        println!(
            "vended (cached)/none: p50 {:.3}x ({:+.1} µs)   p90 {:.3}x",
            p(&vended, 0.5) / p(&plain, 0.5),
            (p(&vended, 0.5) - p(&plain, 0.5)) * 1e6,
            p(&vended, 0.9) / p(&plain, 0.9),
        );
        println!(
            "first load/none: p50 {:.2}x ({:+.2} ms: the STS call)",
            p(&cold, 0.5) / p(&plain, 0.5),
            (p(&cold, 0.5) - p(&plain, 0.5)) * 1e3,
        );
        println!(
            "STS calls: {} for {} vended loads of 1 + {cold_tables} tables",
            sts_calls(&server).await,
            rounds + 100 + cold_tables,
        );
        println!("load average after: {}", load_average());
    });
}
