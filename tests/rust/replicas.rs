//! Scale-out: several `floe serve` replicas on one PostgreSQL database and one shared warehouse
//! behave as one catalog. A commit through one replica is seen at once through the others;
//! concurrent appends through all of them land exactly once, in one snapshot chain per table; a
//! replica killed and PostgreSQL restarted during a write stream lose no acknowledged commit, and
//! clients see retryable 503s (never 500s or hung requests) until the store is back; `/health` and
//! `/ready` tell a load balancer which replicas can serve.
//!
//! Tests that only need a database take a fresh one on the cluster this test process shares; tests
//! that kill PostgreSQL start a cluster of their own, so that they never take down another test's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use floe_testkit::postgres::TestPostgres;
use iceberg::Catalog;
use serde_json::{Value, json};

use crate::support::*;

/// A fresh, empty database on the cluster this test process shares.
async fn fresh_database() -> String {
    tokio::task::spawn_blocking(|| TestPostgres::shared().create_database())
        .await
        .expect("create database")
}

/// A cluster of this test's own, for tests that kill it.
async fn own_cluster() -> Arc<TestPostgres> {
    tokio::task::spawn_blocking(|| Arc::new(TestPostgres::start()))
        .await
        .expect("start PostgreSQL")
}

/// Runs `f` on the cluster off the async runtime (kill, restart and psql block).
async fn with_cluster<T: Send + 'static>(
    cluster: &Arc<TestPostgres>,
    f: impl FnOnce(&TestPostgres) -> T + Send + 'static,
) -> T {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || f(&cluster))
        .await
        .expect("cluster operation")
}

/// `count` replicas on `metastore`, sharing the warehouse in `dir`.
fn start_replicas(metastore: &str, dir: &Path, count: usize, args: &[&str]) -> Vec<FloeServer> {
    (0..count)
        .map(|_| FloeServer::start_replica(metastore, dir, args))
        .collect()
}

async fn get(url: &str) -> reqwest::Response {
    floe_testkit::http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {url}: {err}"))
}

/// Asserts a 503 with `Retry-After` and a ServiceUnavailableException ErrorModel.
async fn assert_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert!(
        response.headers().contains_key("retry-after"),
        "{what}: a 503 without Retry-After"
    );
    let (kind, _, _) = error_model(response).await;
    assert_eq!(kind, "ServiceUnavailableException", "{what}");
}

/// Polls `GET url` until it answers 200, for at most `limit`.
async fn wait_for_200(url: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let status = floe_testkit::http()
            .get(url)
            .send()
            .await
            .map(|response| response.status().as_u16())
            .map_err(|err| err.to_string());
        if status == Ok(200) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET {url} still {status:?} after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_through_one_replica_is_seen_at_once_through_the_others() {
    const ROUNDS: usize = 1_000;
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let servers = start_replicas(&url, dir.path(), 3, &[]);
    let apis: Vec<Api> = servers.iter().map(Api::new).collect();
    apis[0].create_namespace(&["ns"]).await;
    apis[1].create_table(&["ns"], "t", json!({})).await;
    assert!(
        !dir.path().join("catalog.db").exists(),
        "replicas on PostgreSQL created the embedded SQLite store"
    );

    for round in 0..ROUNDS {
        let (writer, reader) = (round % apis.len(), (round + 1) % apis.len());
        let committed = apis[writer]
            .set_properties(&["ns"], "t", json!({ "round": round.to_string() }))
            .await;
        let location = metadata_location_of(&committed);
        let loaded = apis[reader].load_table(&["ns"], "t").await;
        assert_eq!(
            metadata_location_of(&loaded),
            location,
            "round {round}: replica {reader} served a state older than replica {writer}'s commit"
        );
        assert_eq!(
            loaded["metadata"]["properties"]["round"],
            json!(round.to_string()),
            "round {round}"
        );
    }
    assert!(!dir.path().join("catalog.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_through_every_replica_land_once_in_one_chain_per_table() {
    const REPLICAS: usize = 3;
    const TABLES: usize = 4;
    const WRITERS: usize = 32;
    const APPENDS_PER_WRITER: usize = 2;
    const ROWS_PER_APPEND: usize = 2;
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let servers = start_replicas(&url, dir.path(), REPLICAS, &[]);
    let catalog = rest_catalog(&servers[0]).await;
    let namespace = create_namespace(&catalog, "ns").await;
    let mut tables = Vec::new();
    for t in 0..TABLES {
        // Client back-off long enough that 8 writers per table do not burn the CPU on doomed
        // attempts.
        let properties = [
            ("commit.retry.num-retries", "20"),
            ("commit.retry.min-wait-ms", "50"),
            ("commit.retry.max-wait-ms", "2000"),
        ];
        tables.push(create_table_with(&catalog, &namespace, &format!("t{t}"), &properties).await);
    }

    // Writer w appends through replica w % REPLICAS to table w % TABLES, so that every table
    // gets writers on every replica.
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let catalog = rest_catalog(&servers[writer % REPLICAS]).await;
        let (index, table) = (writer % TABLES, tables[writer % TABLES].clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for append in 0..APPENDS_PER_WRITER {
                let first = ((writer * APPENDS_PER_WRITER + append) * ROWS_PER_APPEND) as i64;
                let ids: Vec<i64> = (first..first + ROWS_PER_APPEND as i64).collect();
                let committed = append_until_acknowledged(&catalog, &table, &ids).await;
                let snapshot = committed
                    .metadata()
                    .current_snapshot_id()
                    .expect("an acknowledged append has a current snapshot");
                acknowledged.push((index, snapshot, ids));
            }
            acknowledged
        }));
    }
    // table -> snapshot id -> the ids its append acknowledged
    let mut acknowledged: Vec<BTreeMap<i64, Vec<i64>>> = vec![BTreeMap::new(); TABLES];
    for writer in writers {
        for (table, snapshot, ids) in writer.await.expect("writer") {
            let previous = acknowledged[table].insert(snapshot, ids);
            assert!(
                previous.is_none(),
                "two acknowledged appends got snapshot {snapshot}"
            );
        }
    }

    let catalogs = futures::future::join_all(servers.iter().map(rest_catalog)).await;
    for (t, table) in tables.iter().enumerate() {
        let loaded = catalogs[t % REPLICAS].load_table(table).await.unwrap();
        let metadata = loaded.metadata();
        let chain: BTreeSet<i64> = check_snapshot_chain(metadata).into_iter().collect();
        let acked: BTreeSet<i64> = acknowledged[t].keys().copied().collect();
        assert_eq!(
            chain, acked,
            "{table}: the snapshot chain is not exactly the acknowledged appends"
        );
        for (snapshot, ids) in &acknowledged[t] {
            let summary = metadata.snapshot_by_id(*snapshot).unwrap().summary();
            assert_eq!(
                summary.additional_properties.get("added-records"),
                Some(&ids.len().to_string()),
                "{table}: snapshot {snapshot}"
            );
        }
        let mut expected: Vec<i64> = acknowledged[t].values().flatten().copied().collect();
        expected.sort_unstable();
        assert_eq!(
            read_ids(&loaded).await,
            expected,
            "{table}: every acknowledged row exactly once"
        );
        // Every replica serves the same state.
        for other in &catalogs {
            let seen = other.load_table(table).await.unwrap();
            assert_eq!(
                seen.metadata_location(),
                loaded.metadata_location(),
                "{table}"
            );
        }
    }
    assert_eq!(
        acknowledged.iter().map(BTreeMap::len).sum::<usize>(),
        WRITERS * APPENDS_PER_WRITER
    );
}

/// What the writers of the outage test saw.
#[derive(Default)]
struct StreamLog {
    acknowledged: Mutex<Vec<String>>,
    acks: AtomicUsize,
    unavailable: AtomicUsize,
    refused: AtomicUsize,
    stop: AtomicBool,
}

impl StreamLog {
    async fn wait_for_acks(&self, count: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acks.load(Ordering::SeqCst) < count {
            assert!(
                Instant::now() < deadline,
                "{what}: only {} of {count} commits acknowledged",
                self.acks.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Commits `set-properties {w<writer>-<i>: v}` through the replicas in turn until `log.stop`,
/// each key until acknowledged: a 503 (with Retry-After) or 409 is retried, a refused connection
/// (a dead replica) is retried on the next replica, anything else fails the test.
async fn write_stream(writer: usize, tables: Vec<String>, log: Arc<StreamLog>) {
    let client = floe_testkit::http();
    let mut target = writer;
    for i in 0.. {
        let key = format!("w{writer}-{i}");
        let body = set_properties_body(json!({ key.clone(): "v" }));
        loop {
            if log.stop.load(Ordering::SeqCst) {
                return;
            }
            let url = &tables[target % tables.len()];
            let sent = client
                .post(url)
                .json(&body)
                .timeout(Duration::from_secs(20))
                .send()
                .await;
            match sent {
                Ok(response) if response.status() == 200 => {
                    // Acknowledged only once the whole response arrived.
                    if response.bytes().await.is_ok() {
                        log.acknowledged.lock().unwrap().push(key.clone());
                        log.acks.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    target += 1;
                }
                Ok(response) if response.status() == 503 => {
                    assert_unavailable(response, &format!("commit {key}")).await;
                    log.unavailable.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(response) if response.status() == 409 => {
                    let (kind, _, _) = error_model(response).await;
                    assert_eq!(kind, "CommitFailedException", "commit {key}");
                }
                Ok(response) => panic!(
                    "commit {key} through {url}: {} {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                ),
                Err(err) => {
                    assert!(
                        !err.is_timeout(),
                        "commit {key} through {url} hung for 20 s: {err}"
                    );
                    log.refused.fetch_add(1, Ordering::SeqCst);
                    target += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        target += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_and_a_restarted_postgres_lose_no_acknowledged_commit() {
    const WRITERS: usize = 4;
    let cluster = own_cluster().await;
    let url = with_cluster(&cluster, TestPostgres::create_database).await;
    let dir = tempfile::tempdir().unwrap();
    // A short acquire timeout keeps the outage's 503s quick (the default is 3 s).
    let mut servers = start_replicas(
        &url,
        dir.path(),
        2,
        &["--metastore-acquire-timeout-ms", "1000"],
    );
    let apis: Vec<Api> = servers.iter().map(Api::new).collect();
    apis[0].create_namespace(&["ns"]).await;
    apis[0].create_table(&["ns"], "t", json!({})).await;

    let log = Arc::new(StreamLog::default());
    let table_urls: Vec<String> = apis.iter().map(|api| api.table_url(&["ns"], "t")).collect();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write_stream(writer, table_urls.clone(), log.clone())))
        .collect();

    log.wait_for_acks(20, "before the replica is killed").await;
    servers[1].kill();
    let acks = log.acks.load(Ordering::SeqCst);
    log.wait_for_acks(acks + 20, "with one replica dead").await;

    with_cluster(&cluster, TestPostgres::kill).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.unavailable.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no client saw a 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = get(&format!("{}/health", servers[0].uri())).await;
    assert_eq!(
        health.status(),
        200,
        "liveness does not depend on the store"
    );
    assert_unavailable(
        get(&format!("{}/ready", servers[0].uri())).await,
        "/ready with PostgreSQL down",
    )
    .await;
    let acks_in_outage = log.acks.load(Ordering::SeqCst);

    with_cluster(&cluster, TestPostgres::restart).await;
    wait_for_200(
        &format!("{}/ready", servers[0].uri()),
        Duration::from_secs(20),
    )
    .await;
    log.wait_for_acks(acks_in_outage + 20, "after PostgreSQL came back")
        .await;
    servers[1].restart();
    let acks = log.acks.load(Ordering::SeqCst);
    log.wait_for_acks(acks + 20, "after the replica came back")
        .await;
    log.stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.expect("writer");
    }

    let acknowledged = log.acknowledged.lock().unwrap().clone();
    let apis: Vec<Api> = servers.iter().map(Api::new).collect();
    let states: Vec<Value> =
        futures::future::join_all(apis.iter().map(|api| api.load_table(&["ns"], "t"))).await;
    assert_eq!(
        metadata_location_of(&states[0]),
        metadata_location_of(&states[1]),
        "the restarted replica serves another state"
    );
    let properties = states[0]["metadata"]["properties"]
        .as_object()
        .expect("properties");
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|key| !properties.contains_key(key.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged commits were lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    assert!(
        log.refused.load(Ordering::SeqCst) > 0,
        "the kill went unnoticed"
    );
    for server in &servers {
        assert!(
            !server.log().contains("InternalServerError"),
            "a replica answered 500:\n{}",
            server.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_liveness_and_ready_follows_the_metadata_store() {
    // The embedded store is always ready.
    let embedded = FloeServer::start();
    for path in ["health", "ready"] {
        let response = get(&format!("{}/{path}", embedded.uri())).await;
        assert_eq!(response.status(), 200, "/{path}");
    }

    let cluster = own_cluster().await;
    let url = with_cluster(&cluster, TestPostgres::create_database).await;
    let dir = tempfile::tempdir().unwrap();
    // Default settings: the outage must be answered within the default acquire timeout (3 s).
    let server = FloeServer::start_replica(&url, dir.path(), &[]);
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    api.create_table(&["ns"], "t", json!({})).await;
    let health = get(&format!("{}/health", server.uri())).await;
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let ready = get(&format!("{}/ready", server.uri())).await;
    assert_eq!(ready.status(), 200);

    with_cluster(&cluster, TestPostgres::kill).await;
    let started = Instant::now();
    assert_unavailable(
        get(&format!("{}/ready", server.uri())).await,
        "/ready with PostgreSQL down",
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "/ready took {:?} to notice the outage",
        started.elapsed()
    );
    let started = Instant::now();
    let load = api
        .client
        .get(api.table_url(&["ns"], "t"))
        .send()
        .await
        .unwrap();
    assert_unavailable(load, "loadTable with PostgreSQL down").await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "loadTable took {:?} to fail over a dead store",
        started.elapsed()
    );
    let health = get(&format!("{}/health", server.uri())).await;
    assert_eq!(
        health.status(),
        200,
        "liveness does not depend on the store"
    );

    with_cluster(&cluster, TestPostgres::restart).await;
    wait_for_200(&format!("{}/ready", server.uri()), Duration::from_secs(10)).await;
    api.load_table(&["ns"], "t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_lists_every_replica_by_its_heartbeat() {
    let url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let servers = start_replicas(&url, dir.path(), 3, &[]);
    let mut addresses: Vec<String> = servers
        .iter()
        .map(|server| server.uri().trim_start_matches("http://").to_string())
        .collect();
    addresses.sort();
    for server in &servers {
        let summary: serde_json::Value = get(&format!("{}/management/v1/server", server.uri()))
            .await
            .json()
            .await
            .expect("server summary");
        let replicas = summary["replicas"].as_array().expect("replicas");
        let mut seen: Vec<String> = replicas
            .iter()
            .map(|replica| replica["address"].as_str().unwrap_or_default().to_string())
            .collect();
        seen.sort();
        assert_eq!(seen, addresses, "{summary}");
        let answering: Vec<&str> = replicas
            .iter()
            .filter(|replica| replica["answered-this-request"] == true)
            .filter_map(|replica| replica["address"].as_str())
            .collect();
        assert_eq!(
            answering,
            [server.uri().trim_start_matches("http://")],
            "{summary}"
        );
    }
}
