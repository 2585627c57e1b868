//! Scale-out benchmark: replicas of `floe serve` on one PostgreSQL database, against the embedded
//! SQLite store, in one run.
//!
//! Run with `cargo bench -p floe-benches --bench replicas` (release build; the `floe` binary is
//! built on demand, PostgreSQL is a throwaway cluster from `floe-testkit`). It prints:
//!
//! - loadTable p50/p99 for a table with 10,000 snapshots on PostgreSQL, *cached* (a replica that
//!   has the metadata file parsed in memory) and *cold* (the first load on each of several freshly
//!   started replicas: read the pointer, read and parse the file);
//! - commits/s and p50/p99 for 8 concurrent clients spread over 64 tables (metadata-only
//!   `set-properties` commits), on SQLite with one replica and on PostgreSQL with 1, 2 and 4
//!   replicas; the clients are spread round-robin over the replicas, all replicas share one
//!   warehouse directory.
//!
//! Every figure runs on this one machine: the replicas share its cores with PostgreSQL and the
//! clients, so more replicas show what the shared store costs, not what more machines would add.
//!
//! Set `FLOE_BENCH_QUICK=1` for a short smoke run.

use floe_testkit::FloeServer;
use floe_testkit::postgres::TestPostgres;

#[allow(dead_code)] // each bench uses part of the shared helpers
mod common;

use common::{
    CLIENTS, Stats, commit_load, create_tables, load_loop, load_once, quick, table_with_snapshots,
};

const TABLES: usize = 64;

/// `count` replicas on `metastore` sharing the warehouse in `dir`.
fn replicas(metastore: &str, dir: &std::path::Path, count: usize) -> Vec<FloeServer> {
    (0..count)
        .map(|_| FloeServer::start_replica(metastore, dir, &[]))
        .collect()
}

/// Commits spread over `servers`, on tables created through the first.
async fn commits_on(servers: &[FloeServer], per_client: usize, label: &str) -> Stats {
    let client = reqwest::Client::new();
    let apis: Vec<String> = servers.iter().map(FloeServer::api).collect();
    create_tables(&client, &apis[0], "many", TABLES).await;
    commit_load(&apis, "many", TABLES, per_client, label).await
}

fn main() {
    common::run(async {
        let per_client = if quick() { 20 } else { 250 };
        let snapshots = if quick() { 1_000 } else { 10_000 };
        let load_rounds = if quick() { 10 } else { 100 };
        let cold_rounds = if quick() { 3 } else { 20 };

        let cluster = TestPostgres::start();
        let client = reqwest::Client::new();
        println!(
            "floe replicas benchmark: PostgreSQL {} on 127.0.0.1, local warehouse shared by the \
             replicas, {CLIENTS} concurrent clients",
            cluster.psql("postgres", "SHOW server_version").trim()
        );
        println!();

        // loadTable: cached on the replica that wrote the table, cold on fresh replicas.
        let url = cluster.create_database();
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = FloeServer::start_replica(&url, dir.path(), &[]);
        let table = table_with_snapshots(&client, &writer.api(), snapshots).await;
        let path = table
            .strip_prefix(&writer.api())
            .expect("table URL under the API")
            .to_string();
        load_once(&client, &table).await;
        let cached = load_loop(
            &client,
            &table,
            load_rounds,
            &format!("loadTable, {snapshots} snapshots, cached"),
        )
        .await;
        let mut cold = Vec::with_capacity(cold_rounds);
        for _ in 0..cold_rounds {
            let fresh = FloeServer::start_replica(&url, dir.path(), &[]);
            // Open the HTTP connection first: the figure is the catalog's work, not TCP's.
            let health = client
                .get(format!("{}/health", fresh.uri()))
                .send()
                .await
                .expect("health");
            assert_eq!(health.status().as_u16(), 200);
            cold.push(load_once(&client, &format!("{}{path}", fresh.api())).await);
        }
        // Wall time without the replicas' start-ups: the loads' own.
        let cold = Stats::new(
            format!("loadTable, {snapshots} snapshots, cold (fresh replica)"),
            cold.iter().sum(),
            cold,
        );
        drop(writer);
        cached.print();
        cold.print();
        println!(
            "ratio p50 cold/cached: {:.2}",
            cold.percentile(0.5).as_secs_f64() / cached.percentile(0.5).as_secs_f64()
        );
        println!();

        // Commits: the same load on SQLite and on 1, 2 and 4 PostgreSQL replicas.
        let sqlite = FloeServer::start();
        let on_sqlite = commits_on(
            std::slice::from_ref(&sqlite),
            per_client,
            &format!("commits, {TABLES} tables, SQLite, 1 replica"),
        )
        .await;
        drop(sqlite);
        let mut on_postgres = Vec::new();
        for count in [1, 2, 4] {
            let dir = tempfile::tempdir().expect("temp dir");
            let servers = replicas(&cluster.create_database(), dir.path(), count);
            on_postgres.push(
                commits_on(
                    &servers,
                    per_client,
                    &format!(
                        "commits, {TABLES} tables, PostgreSQL, {count} replica{}",
                        if count == 1 { "" } else { "s" }
                    ),
                )
                .await,
            );
        }
        on_sqlite.print();
        for stats in &on_postgres {
            stats.print();
        }
        println!(
            "ratio commits/s PostgreSQL/SQLite: 1 replica {:.2}, 2 replicas {:.2}, 4 replicas {:.2}",
            on_postgres[0].per_second() / on_sqlite.per_second(),
            on_postgres[1].per_second() / on_sqlite.per_second(),
            on_postgres[2].per_second() / on_sqlite.per_second(),
        );
    });
}
