//! What remote signing costs per object request: a GET of a small table object signed by Floe
//! (`POST .../sign`, then the GET with the headers it returned) against the same GET signed by
//! the client itself with the keys (the SigV4 computation in-process, no catalog round trip), on
//! SeaweedFS, in one run.
//!
//! Run with `cargo bench -p floe-benches --bench signing` (release build; the `floe` binary is
//! built on demand; SeaweedFS is found as in `floe_testkit::seaweedfs`). It registers a warehouse
//! with `s3.access-delegation=remote-signing`, writes one 4 KiB object into a table, and times
//! sequential GETs of it both ways, alternating in blocks of 100. It prints p50/p90 of each, of
//! the signing call alone, the overhead (signed by Floe − signed by the client), and the load
//! average before and after (figures from a busy machine are not comparable).
//!
//! `FLOE_BENCH_QUICK=1`: a short smoke run. `FLOE_BENCH_ROUNDS=N`: N of each measurement.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use floe_delegation::{SignRequest, SignedRequest, TableAccess, TablePrefix};
use floe_storage::{DelegationOptions, S3Access};
use floe_testkit::FloeServer;
use floe_testkit::seaweedfs::{self, TestS3};
use object_store::ObjectStoreExt;
use serde_json::json;

#[allow(dead_code)] // each bench uses part of the shared helpers
mod common;

use common::{Stats, post, quick};

const OBJECT_BYTES: usize = 4096;

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

/// The GET of `signed`, body read; panics unless S3 answers 200 with the object.
async fn get(http: &reqwest::Client, signed: &SignedRequest) {
    let mut request = http.get(&signed.uri);
    for (name, values) in &signed.headers {
        for value in values {
            request = request.header(name, value);
        }
    }
    let response = request.send().await.expect("S3 answers");
    assert_eq!(response.status().as_u16(), 200, "{}", signed.uri);
    assert_eq!(response.bytes().await.expect("body").len(), OBJECT_BYTES);
}

fn main() {
    common::run(async {
        println!("load average before: {}", load_average());
        let s3 = TestS3::start();
        s3.create_bucket("lake").await;
        let server = FloeServer::start_with_args(&[
            "--allowed-storage-root",
            "s3://lake",
            "--maintenance",
            "false",
        ]);
        let http = reqwest::Client::new();
        let uri = server.uri();
        post(
            &http,
            &format!("{uri}/management/v1/warehouses"),
            &json!({
                "name": "lake",
                "storage-url": "s3://lake/tables",
                "properties": {
                    "s3.endpoint": s3.endpoint(),
                    "s3.region": seaweedfs::REGION,
                    "s3.path-style-access": "true",
                    "s3.access-key-id": seaweedfs::ACCESS_KEY_ID,
                    "s3.secret-access-key": seaweedfs::SECRET_ACCESS_KEY,
                    "s3.access-delegation": "remote-signing",
                }
            }),
        )
        .await;
        common::create_tables(&http, &format!("{uri}/v1/lake"), "bench", 1).await;
        let table_url = format!("{uri}/v1/lake/namespaces/bench/tables/t0");
        let loaded: serde_json::Value = http
            .get(&table_url)
            .send()
            .await
            .expect("load")
            .json()
            .await
            .expect("LoadTableResult");
        let location = loaded["metadata"]["location"].as_str().expect("location");
        let key = format!(
            "{}/data/bench.bin",
            location.strip_prefix("s3://lake/").expect("in the bucket")
        );
        s3.store("lake")
            .put(
                &object_store::path::Path::from(key.as_str()),
                vec![7u8; OBJECT_BYTES].into(),
            )
            .await
            .expect("put the object");

        let request = SignRequest {
            region: seaweedfs::REGION.into(),
            uri: format!("{}/lake/{key}", s3.endpoint()),
            method: "GET".into(),
            headers: BTreeMap::from([("User-Agent".into(), vec!["floe-bench".into()])]),
            ..SignRequest::default()
        };
        // The client that holds the keys signs the same request itself.
        let keys = S3Access {
            bucket: "lake".into(),
            endpoint: Some(s3.endpoint()),
            region: seaweedfs::REGION.into(),
            path_style: true,
            access_key_id: Some(seaweedfs::ACCESS_KEY_ID.into()),
            secret_access_key: Some(seaweedfs::SECRET_ACCESS_KEY.into()),
            session_token: None,
            delegation: DelegationOptions::default(),
        };
        let whole_bucket = TablePrefix {
            bucket: "lake".into(),
            key_prefix: String::new(),
        };
        let sign_url = format!("{table_url}/sign");
        let body = serde_json::to_value(&request).expect("request JSON");

        let sign_by_client = || {
            floe_delegation::sign(
                &request,
                TableAccess::Read,
                &whole_bucket,
                &keys,
                SystemTime::now(),
            )
            .expect("sign locally")
        };
        let sign_by_floe = || async {
            let response = post(&http, &sign_url, &body).await;
            response
                .json::<SignedRequest>()
                .await
                .expect("RemoteSignResult")
        };
        // Warm both paths (connections, the metadata cache) before timing.
        for _ in 0..50 {
            get(&http, &sign_by_client()).await;
            get(&http, &sign_by_floe().await).await;
        }
        let rounds = rounds();
        let mut by_client = Vec::with_capacity(rounds);
        let mut by_floe = Vec::with_capacity(rounds);
        let mut signing = Vec::with_capacity(rounds);
        let mut done = 0;
        while done < rounds {
            let block = 100.min(rounds - done);
            for _ in 0..block {
                let t0 = Instant::now();
                get(&http, &sign_by_client()).await;
                by_client.push(t0.elapsed());
            }
            for _ in 0..block {
                let t0 = Instant::now();
                let signed = sign_by_floe().await;
                signing.push(t0.elapsed());
                get(&http, &signed).await;
                by_floe.push(t0.elapsed());
            }
            done += block;
        }
        let stats = |label: &str, latencies: Vec<Duration>| {
            Stats::new(label, latencies.iter().sum(), latencies)
        };
        let client = stats("GET 4 KiB, signed by the client", by_client);
        let floe = stats("GET 4 KiB, signed by Floe (sign + GET)", by_floe);
        let sign_only = stats("POST .../sign alone", signing);
        println!();
        for stat in [&client, &floe, &sign_only] {
            stat.print();
        }
        let p = |stats: &Stats, q: f64| stats.percentile(q).as_secs_f64();
        println!();
        println!(
            "remote signing overhead per request: p50 {:+.1} µs ({:.2}x)   p90 {:+.1} µs ({:.2}x)",
            (p(&floe, 0.5) - p(&client, 0.5)) * 1e6,
            p(&floe, 0.5) / p(&client, 0.5),
            (p(&floe, 0.9) - p(&client, 0.9)) * 1e6,
            p(&floe, 0.9) / p(&client, 0.9),
        );
        println!("load average after: {}", load_average());
    });
}
