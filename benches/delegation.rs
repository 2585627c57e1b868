//! What delegated access costs on the request path, in one run against one S3 server (SeaweedFS
//! with STS, on loopback) and one Floe server:
//!
//! - loadTable with vended credentials (`X-Iceberg-Access-Delegation: vended-credentials`, served
//!   from the credential cache) against loadTable without delegation, on the same table, in
//!   alternating blocks of 100;
//! - the first load of a table (a cache miss: one STS `AssumeRole`), over fresh tables;
//! - how many STS calls all of it made (`floe_delegation_sts_calls_total`);
//! - remote signing per object request: a GET of a 4 KiB object signed by Floe (`POST .../sign`,
//!   then the GET) against the same GET signed in-process by a client holding the keys.
//!
//! Run with `cargo bench -p floe-benches --bench delegation`. `FLOE_BENCH_QUICK=1`: a short smoke
//! run. `FLOE_BENCH_ROUNDS=N`: N loads of each kind. Prints the load average before and after
//! (figures from a busy machine are not comparable).

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

use common::{Stats, create_tables, load_average, post, quick, rounds};

const NAMESPACE: &str = "bench";
const HEADER: &str = "X-Iceberg-Access-Delegation";

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

const OBJECT_BYTES: usize = 4096;

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

/// Vended credentials: loadTable served from the credential cache against loadTable without
/// delegation, the first load of fresh tables (one STS call each), and the STS call count.
async fn vending(s3: &TestS3, server: &FloeServer, client: &reqwest::Client) {
    let created = post(
        client,
        &format!("{}/management/v1/warehouses", server.uri()),
        &json!({
            "name": "vend",
            "storage-url": "s3://lake/vend",
            "properties": s3.warehouse_properties(json!({
        "s3.sts-role-arn": seaweedfs::STS_ROLE_ARN,
                "s3.default-access-delegation": "none",
            })),
        }),
    )
    .await;
    assert_eq!(created.status().as_u16(), 201);
    let api = format!("{}/v1/vend", server.uri());
    let cold_tables = if quick() { 20 } else { 200 };
    create_tables(client, &api, NAMESPACE, cold_tables + 1).await;

    let url = format!("{api}/namespaces/{NAMESPACE}/tables/t0");
    alternate(client, &url, 100).await; // warm: connections, metadata cache, one STS call
    let rounds = rounds();
    let [plain, vended] = alternate(client, &url, rounds).await;
    let stats = |label: &str, latencies: Vec<Duration>| {
        Stats::new(label, latencies.iter().sum(), latencies)
    };
    let plain = stats("loadTable, no delegation", plain);
    let vended = stats("loadTable, vended credentials (cached)", vended);

    let mut cold = Vec::with_capacity(cold_tables);
    for i in 1..=cold_tables {
        let url = format!("{api}/namespaces/{NAMESPACE}/tables/t{i}");
        load(client, &url, false).await; // the metadata file is cached; only STS is cold
        cold.push(load(client, &url, true).await);
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
        sts_calls(server).await,
        rounds + 100 + cold_tables,
    );
}

/// Remote signing: a GET of a 4 KiB table object signed by Floe (`POST .../sign`, then the GET
/// with the headers it returned) against the same GET signed by the client itself with the keys
/// (the SigV4 computation in-process, no catalog round trip), alternating in blocks of 100.
async fn signing(s3: &TestS3, server: &FloeServer, http: &reqwest::Client) {
    let uri = server.uri();
    post(
        http,
        &format!("{uri}/management/v1/warehouses"),
        &json!({
            "name": "lake",
            "storage-url": "s3://lake/tables",
            "properties": s3.warehouse_properties(json!({
        "s3.access-delegation": "remote-signing",
            })),
        }),
    )
    .await;
    common::create_tables(http, &format!("{uri}/v1/lake"), "bench", 1).await;
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
        let response = post(http, &sign_url, &body).await;
        response
            .json::<SignedRequest>()
            .await
            .expect("RemoteSignResult")
    };
    // Warm both paths (connections, the metadata cache) before timing.
    for _ in 0..50 {
        get(http, &sign_by_client()).await;
        get(http, &sign_by_floe().await).await;
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
            get(http, &sign_by_client()).await;
            by_client.push(t0.elapsed());
        }
        for _ in 0..block {
            let t0 = Instant::now();
            let signed = sign_by_floe().await;
            signing.push(t0.elapsed());
            get(http, &signed).await;
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
        let http = reqwest::Client::new();
        vending(&s3, &server, &http).await;
        println!();
        signing(&s3, &server, &http).await;
        println!("load average after: {}", load_average());
    });
}
