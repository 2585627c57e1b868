//! What authentication and authorization cost on the request path: loadTable and commit latency
//! on `floe serve --auth oauth2` against `--auth none`, in one run.
//!
//! Run with `cargo bench -p floe-benches --bench auth` (release build; the `floe` binary is built on
//! demand). It starts two real servers on free loopback ports and measures sequential loadTable
//! and sequential metadata-only commits (`set-properties`: the full commit protocol) on one table
//! of each, alternating between the two servers in blocks of 100 requests. On the oauth2 server the caller is a principal with `write` on the table's namespace
//! only, not an administrator: the realistic decision path (token check, policy lookup up the
//! namespace tree, audit record for the commit). It prints p50/p90, the oauth2/none ratios, and the
//! load average before and after (figures from a busy machine are not comparable).
//!
//! `FLOE_BENCH_QUICK=1`: a short smoke run. `FLOE_BENCH_ROUNDS=N`: N of each measurement.

use std::time::{Duration, Instant};

use floe_testkit::FloeServer;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::json;

#[allow(dead_code)] // each bench uses part of the shared helpers
mod common;

use common::{Stats, create_tables, load_average, post, rounds};

const NAMESPACE: &str = "bench";

fn client(token: Option<&str>) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("token header");
        headers.insert(AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .expect("http client")
}

/// A token for `client_id:client_secret`.
async fn token(server: &FloeServer, credential: &str) -> String {
    let (id, secret) = credential.split_once(':').expect("id:secret");
    let response = reqwest::Client::new()
        .post(format!("{}/v1/oauth/tokens", server.uri()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .expect("token request");
    assert!(
        response.status().is_success(),
        "token: {}",
        response.status()
    );
    let body: serde_json::Value = response.json().await.expect("token body");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// On an oauth2 server: a principal holding `write` on namespace `bench` through its own role,
/// set up by the administrator; returns its token.
async fn writer_token(server: &FloeServer) -> String {
    let credential = std::fs::read_to_string(server.data_dir().join("admin-credential"))
        .expect("admin-credential");
    let admin = client(Some(&token(server, credential.trim()).await));
    let uri = server.uri();
    let created: serde_json::Value = post(
        &admin,
        &format!("{uri}/management/v1/principals"),
        &json!({"name": "bench-writer"}),
    )
    .await
    .json()
    .await
    .expect("principal");
    post(
        &admin,
        &format!("{uri}/management/v1/roles"),
        &json!({"name": "writers"}),
    )
    .await;
    post(
        &admin,
        &format!("{uri}/management/v1/roles/writers/principals"),
        &json!({"principal": "bench-writer"}),
    )
    .await;
    post(
        &admin,
        &format!("{uri}/management/v1/grants"),
        &json!({"role": "writers", "privilege": "write", "on": format!("namespace:main:{NAMESPACE}")}),
    )
    .await;
    let credential = format!(
        "{}:{}",
        created["client-id"].as_str().expect("client-id"),
        created["client-secret"].as_str().expect("client-secret")
    );
    token(server, &credential).await
}

/// Latencies of one kind of request, measured in alternating blocks on both servers so that
/// drift of the machine (frequency, caches, other work) falls on both alike.
async fn alternate(
    targets: [(&reqwest::Client, &str); 2],
    rounds: usize,
    commit: bool,
) -> [Vec<Duration>; 2] {
    const BLOCK: usize = 100;
    let mut latencies = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    let mut done = 0;
    while done < rounds {
        let block = BLOCK.min(rounds - done);
        for (side, (client, url)) in targets.iter().enumerate() {
            for i in 0..block {
                let t0 = Instant::now();
                let response = if commit {
                    let body = json!({"requirements": [], "updates": [
                        {"action": "set-properties", "updates": {"round": (done + i).to_string()}}
                    ]});
                    client.post(*url).json(&body).send().await.expect("commit")
                } else {
                    client.get(*url).send().await.expect("load")
                };
                assert_eq!(response.status().as_u16(), 200, "{url}");
                response.bytes().await.expect("body");
                latencies[side].push(t0.elapsed());
            }
        }
        done += block;
    }
    latencies
}

fn ratio(name: &str, oauth2: &Stats, none: &Stats) {
    let p = |stats: &Stats, q: f64| stats.percentile(q).as_secs_f64();
    println!(
        "{name:<10} oauth2/none: p50 {:.3}x ({:+.1} µs)   p90 {:.3}x",
        p(oauth2, 0.5) / p(none, 0.5),
        (p(oauth2, 0.5) - p(none, 0.5)) * 1e6,
        p(oauth2, 0.9) / p(none, 0.9),
    );
}

fn main() {
    common::run(async {
        println!("load average before: {}", load_average());
        let none = FloeServer::start_with_args(&["--auth", "none", "--maintenance", "false"]);
        let oauth2 = FloeServer::start_with_args(&["--auth", "oauth2", "--maintenance", "false"]);
        let anonymous = client(None);
        create_tables(&anonymous, &none.api(), NAMESPACE, 1).await;

        let credential = std::fs::read_to_string(oauth2.data_dir().join("admin-credential"))
            .expect("admin-credential");
        let admin = client(Some(&token(&oauth2, credential.trim()).await));
        create_tables(&admin, &oauth2.api(), NAMESPACE, 1).await;
        let writer = client(Some(&writer_token(&oauth2).await));

        let none_url = format!("{}/namespaces/{NAMESPACE}/tables/t0", none.api());
        let oauth2_url = format!("{}/namespaces/{NAMESPACE}/tables/t0", oauth2.api());
        let targets = [
            (&anonymous, none_url.as_str()),
            (&writer, oauth2_url.as_str()),
        ];
        // Warm both paths (connections, caches, the verified-token memory) before timing.
        alternate(targets, 50, false).await;
        alternate(targets, 20, true).await;

        let rounds = rounds();
        let [load_none, load_oauth2] = alternate(targets, rounds, false).await;
        let [commit_none, commit_oauth2] = alternate(targets, rounds, true).await;
        // Each series' own time: the sum of its latencies (they ran one after the other).
        let stats = |label: &str, latencies: Vec<Duration>| {
            Stats::new(label, latencies.iter().sum(), latencies)
        };
        let stats = [
            stats("loadTable, --auth none", load_none),
            stats("loadTable, --auth oauth2 (namespace grant)", load_oauth2),
            stats("commit, --auth none", commit_none),
            stats("commit, --auth oauth2 (namespace grant)", commit_oauth2),
        ];
        println!();
        for stat in &stats {
            stat.print();
        }
        println!();
        ratio("loadTable", &stats[1], &stats[0]);
        ratio("commit", &stats[3], &stats[2]);
        println!("load average after: {}", load_average());
    });
}
