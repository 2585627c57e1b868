//! The maintenance scheduler at scale: what a replica's scheduler costs when nothing is due, and
//! how soon work that a commit made due starts, with many tables on one PostgreSQL store.
//! The event-driven scheduler (due rows claimed with one indexed query) against the sweep it
//! replaced (every pass walked every table), in one run on one database.
//!
//! The sweep is reproduced here with the public calls the previous scheduler made for each table
//! on each pass: list namespaces and tables, load the namespace and the table, plan compaction,
//! run snapshot expiry, plan a manifest rewrite (each of these three under the table's
//! maintenance lease), and read the job records that space out unreferenced-file removal and
//! the scrub.
//!
//! Set-up: `FLOE_BENCH_TABLES` tables (default 100,000; quick: 1,000) are created through the
//! commit engine on a throwaway PostgreSQL cluster, then brought to a steady state as if each had
//! been maintained once: their due rows finished through the store (compaction waiting for five
//! files, the time-based jobs due in a day) and a succeeded unreferenced-file removal and scrub
//! recorded for each, so the sweep, too, finds those spaced-out jobs not due.
//!
//! Measured, per scheduler: store operations (PostgreSQL transactions of the database), wall
//! time and the bench process's CPU time of a pass with nothing due; then 1% of the tables
//! receive five one-file appends each (compaction becomes due at the fifth), and the pass that
//! maintains them. For the event-driven scheduler also the delay from each table's fifth commit
//! to its compaction's start, with passes every second.
//!
//! Run with `cargo bench -p floe-benches --bench scheduler`; `FLOE_BENCH_QUICK=1` for a short
//! run, `FLOE_BENCH_SCHEDULER_SWEEP=0` to leave the sweep out. Prints the load average before and
//! after.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use floe_commit::open::{OpenOptions, open};
use floe_commit::{Catalog, CommitSettings, Warehouses};
use floe_maintenance::scheduler::{PassReport, Scheduler, SchedulerOptions, all_tables, kind};
use floe_maintenance::{
    CompactOptions, ExpireOptions, ManifestRewriteOptions, compact, expire_snapshots,
    rewrite_manifests,
};
use floe_sql::{EmbeddedCatalog, Session};
use floe_storage::RetryOptions;
use floe_store::{DueOutcome, JobFilter, JobRecord, Properties, TableName};
use floe_testkit::postgres::TestPostgres;

#[allow(dead_code)] // each bench uses part of the shared helpers
mod common;

use common::{load_average, quick};

const NAMESPACE: &str = "bench";
/// Tables created, settled and written at once.
const PARALLEL: usize = 8;
const DAY_MS: i64 = 24 * 3_600_000;

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms")
}

/// The bench process's CPU time (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("stat") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // Linux reports in USER_HZ, 100 per second on every architecture Floe runs on.
    Duration::from_millis(ticks * 10)
}

/// Transactions committed and rolled back in the database so far.
fn store_operations(postgres: &TestPostgres, database: &str) -> u64 {
    // A backend sends its counts to pg_stat_database when it goes idle, at most every 10 s
    // (PGSTAT_IDLE_INTERVAL): wait that long for the pool's idle connections to report.
    std::thread::sleep(Duration::from_millis(11_500));
    let out = postgres.psql(
        "postgres",
        &format!(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{database}'"
        ),
    );
    out.trim().parse().expect("transaction count")
}

struct Measured {
    operations: u64,
    wall: Duration,
    cpu: Duration,
}

async fn measure<F: Future<Output = T>, T>(
    postgres: &TestPostgres,
    database: &str,
    work: F,
) -> (Measured, T) {
    let operations = store_operations(postgres, database);
    let cpu = cpu_time();
    let start = Instant::now();
    let result = work.await;
    let wall = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu);
    let operations = store_operations(postgres, database).saturating_sub(operations);
    (
        Measured {
            operations,
            wall,
            cpu,
        },
        result,
    )
}

fn session(catalog: &Arc<Catalog>) -> Session {
    Session::new(Arc::new(EmbeddedCatalog::new(catalog.clone())))
}

async fn run_sql(catalog: &Arc<Catalog>, sql: &str) {
    session(catalog)
        .run(sql)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}"));
}

fn table_name(index: usize) -> String {
    format!("t{index:06}")
}

/// Runs `job(index)` for every index below `count`, `PARALLEL` at a time.
async fn for_each<F, Fut>(count: usize, job: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let job = Arc::new(job);
    let mut running = tokio::task::JoinSet::new();
    for worker in 0..PARALLEL {
        let job = job.clone();
        running.spawn(async move {
            let mut index = worker;
            while index < count {
                job(index).await;
                index += PARALLEL;
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.expect("worker");
    }
}

/// Creates the tables and brings them to the steady state the module docs describe.
async fn set_up(catalog: &Arc<Catalog>, tables: usize) {
    run_sql(catalog, &format!("CREATE SCHEMA {NAMESPACE}")).await;
    let started = Instant::now();
    let shared = catalog.clone();
    for_each(tables, move |index| {
        let catalog = shared.clone();
        async move {
            run_sql(
                &catalog,
                &format!("CREATE TABLE {NAMESPACE}.{} (id BIGINT)", table_name(index)),
            )
            .await;
        }
    })
    .await;
    println!("created {tables} tables in {:.1?}", started.elapsed());

    let store = catalog.store();
    loop {
        let claimed = store
            .due()
            .claim_due(1_000, Duration::from_secs(600))
            .await
            .expect("claim");
        if claimed.is_empty() {
            break;
        }
        for item in &claimed {
            let time_based = matches!(item.kind.as_str(), kind::ORPHAN_REMOVAL | kind::SCRUB);
            let outcome = DueOutcome {
                next_due_ms: time_based.then(|| now_ms() + DAY_MS),
                threshold: if item.kind.as_str() == kind::COMPACTION {
                    5
                } else {
                    100
                },
                period_ms: 120 * 3_600_000,
                consumed: item.pending,
            };
            store
                .due()
                .finish_due(item, &outcome)
                .await
                .expect("finish");
        }
    }
    let shared = catalog.clone();
    for_each(tables, move |index| {
        let catalog = shared.clone();
        async move {
            for job in [kind::ORPHAN_REMOVAL, kind::SCRUB] {
                let now = now_ms();
                let record = JobRecord {
                    id: uuid::Uuid::now_v7().to_string(),
                    warehouse: catalog.warehouse().name().to_string(),
                    table: TableName::new(vec![NAMESPACE.to_string()], table_name(index)),
                    kind: job.to_string(),
                    trigger: "schedule".into(),
                    started_at_ms: now,
                    finished_at_ms: Some(now),
                    outcome: "succeeded".into(),
                    error: None,
                    stats: Properties::new(),
                };
                catalog.store().record_job(&record).await.expect("record");
            }
        }
    })
    .await;
    println!("steady state after {:.1?}", started.elapsed());
}

/// One pass of the sweep the event-driven scheduler replaced (see the module docs).
async fn sweep_pass(catalog: &Arc<Catalog>) -> usize {
    let tables = all_tables(catalog).await;
    let count = tables.len();
    let tables = Arc::new(tables);
    let shared = catalog.clone();
    // The previous scheduler maintained two tables at a time by default.
    let mut running = tokio::task::JoinSet::new();
    for worker in 0..2 {
        let catalog = shared.clone();
        let tables = tables.clone();
        running.spawn(async move {
            for table in tables.iter().skip(worker).step_by(2) {
                sweep_table(&catalog, table).await;
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.expect("sweep worker");
    }
    count
}

async fn sweep_table(catalog: &Catalog, table: &TableName) {
    catalog
        .load_namespace(&table.namespace)
        .await
        .expect("namespace");
    catalog.load_table(table).await.expect("table");
    let compaction = CompactOptions {
        min_input_files: Some(5),
        ..CompactOptions::default()
    };
    compact(catalog, table, &compaction)
        .await
        .expect("compaction");
    let expiry = ExpireOptions {
        older_than: Some(Duration::from_secs(120 * 3600)),
        retain_last: Some(1),
        ..ExpireOptions::default()
    };
    expire_snapshots(catalog, table, &expiry)
        .await
        .expect("expiry");
    let plan = ManifestRewriteOptions {
        dry_run: true,
        ..ManifestRewriteOptions::default()
    };
    rewrite_manifests(catalog, table, &plan)
        .await
        .expect("manifest plan");
    for job in [kind::ORPHAN_REMOVAL, kind::SCRUB] {
        let filter = JobFilter {
            warehouse: Some(catalog.warehouse().name().to_string()),
            table: Some(table.clone()),
            kind: Some(job.to_string()),
        };
        catalog.store().list_jobs(&filter, 10).await.expect("jobs");
    }
}

/// Five one-row appends to every table `first, first + step, ...`; returns each table's fifth
/// commit time.
async fn five_appends(catalog: &Arc<Catalog>, tables: Vec<usize>) -> Vec<(String, i64)> {
    let done = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (shared, sink, tables) = (catalog.clone(), done.clone(), Arc::new(tables));
    let list = tables.clone();
    for_each(tables.len(), move |slot| {
        let (catalog, sink, index) = (shared.clone(), sink.clone(), list[slot]);
        async move {
            let name = table_name(index);
            for row in 0..5 {
                run_sql(
                    &catalog,
                    &format!("INSERT INTO {NAMESPACE}.{name} VALUES ({row})"),
                )
                .await;
            }
            sink.lock().expect("sink").push((name, now_ms()));
        }
    })
    .await;
    let mut done = done.lock().expect("sink").clone();
    done.sort();
    done
}

fn report(label: &str, measured: &Measured, passes: usize) {
    let passes = passes.max(1) as f64;
    println!(
        "{label:<48} {:>10.1} store ops/pass {:>10.1} ms/pass {:>9.1} ms CPU/pass",
        measured.operations as f64 / passes,
        measured.wall.as_secs_f64() * 1e3 / passes,
        measured.cpu.as_secs_f64() * 1e3 / passes,
    );
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn main() {
    common::run(async {
        let tables: usize = std::env::var("FLOE_BENCH_TABLES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(if quick() { 1_000 } else { 100_000 });
        let busy = (tables / 100).max(1);
        println!(
            "scheduler bench: {tables} tables, {busy} busy; load average {}",
            load_average()
        );

        let postgres = TestPostgres::start();
        let url = postgres.create_database();
        let database = url.rsplit('/').next().expect("database").to_string();
        let dir = tempfile::tempdir().expect("tempdir");
        let options = OpenOptions {
            metastore: Some(url),
            max_connections: 16,
            ..OpenOptions::new(dir.path())
        };
        let catalog = Arc::new(open(&options).await.expect("open"));
        set_up(&catalog, tables).await;

        let scheduler_catalog = open(&options).await.expect("open");
        let warehouses = Warehouses::new(
            scheduler_catalog,
            RetryOptions::default(),
            CommitSettings::default(),
        );
        let scheduler = Arc::new(Scheduler::new(
            Arc::new(warehouses),
            SchedulerOptions::default(),
        ));

        // Idle: nothing is due.
        let idle_passes = 20;
        let (idle_new, reports) = measure(&postgres, &database, async {
            let mut reports = Vec::new();
            for _ in 0..idle_passes {
                reports.push(scheduler.run_pass().await);
            }
            reports
        })
        .await;
        assert!(
            reports.iter().all(|r| *r == PassReport::default()),
            "{reports:?}"
        );
        // FLOE_BENCH_SCHEDULER_SWEEP=0 leaves the sweep out (at 100,000 tables each of its
        // passes takes about ten minutes).
        let with_sweep = std::env::var("FLOE_BENCH_SCHEDULER_SWEEP").map_or(true, |v| v != "0");
        let idle_sweep = if with_sweep {
            let (idle_sweep, swept) = measure(&postgres, &database, sweep_pass(&catalog)).await;
            assert_eq!(swept, tables);
            Some(idle_sweep)
        } else {
            None
        };

        // Busy: 1% of the tables get five appends each.
        let first_busy: Vec<usize> = (0..busy).map(|i| i * 100).collect();
        let second_busy: Vec<usize> = (0..busy).map(|i| i * 100 + 50).collect();
        let committed = five_appends(&catalog, first_busy).await;
        let (busy_new, busy_report) = measure(&postgres, &database, scheduler.run_pass()).await;
        assert_eq!(busy_report.jobs_run, busy, "{busy_report:?}");
        let busy_sweep = if with_sweep {
            five_appends(&catalog, second_busy).await;
            let (busy_sweep, _) = measure(&postgres, &database, sweep_pass(&catalog)).await;
            // The sweep compacted the second set, but their due rows still say due: looked at
            // here (and found done), so that the probes below do not queue behind them.
            let drained = scheduler.run_pass().await;
            assert_eq!(drained.tables, busy, "{drained:?}");
            Some(busy_sweep)
        } else {
            None
        };

        // Delay from the commit that makes compaction due to its start, claims every second: one
        // table at a time, so that no compaction queues behind another's (that would measure the
        // concurrency setting, not the scheduler).
        let probes = busy.min(20);
        let third_busy: Vec<usize> = (0..probes).map(|i| i * 100 + 25).collect();
        let claim_interval = Duration::from_secs(1);
        let looping = Arc::new(Scheduler::new(
            Arc::new(Warehouses::new(
                open(&options).await.expect("open"),
                RetryOptions::default(),
                CommitSettings::default(),
            )),
            SchedulerOptions {
                interval: claim_interval,
                ..SchedulerOptions::default()
            },
        ));
        let background = tokio::spawn(looping.clone().run());
        // Its start (looking for tables without due rows: one statement over all of them) and
        // its first interval come before it claims anything; probes measure it running.
        tokio::time::sleep(claim_interval * 3).await;
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut delays = Vec::new();
        for index in third_busy {
            let committed = five_appends(&catalog, vec![index]).await;
            let (name, at) = &committed[0];
            let table = TableName::new(vec![NAMESPACE.to_string()], name.clone());
            loop {
                let jobs = catalog
                    .store()
                    .list_jobs(
                        &JobFilter {
                            warehouse: None,
                            table: Some(table.clone()),
                            kind: Some(kind::COMPACTION.to_string()),
                        },
                        1,
                    )
                    .await
                    .expect("jobs");
                if let Some(job) = jobs.first() {
                    delays.push(job.started_at_ms - at);
                    break;
                }
                assert!(Instant::now() < deadline, "{table} never compacted");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        background.abort();
        delays.sort_unstable();

        println!();
        println!("| {tables} tables, {busy} busy | store ops/pass | ms/pass | CPU ms/pass |");
        report("idle, event-driven (20 passes)", &idle_new, idle_passes);
        if let Some(idle_sweep) = &idle_sweep {
            report("idle, sweep", idle_sweep, 1);
        }
        report(
            &format!("busy ({busy} compactions), event-driven"),
            &busy_new,
            1,
        );
        if let Some(busy_sweep) = &busy_sweep {
            report(&format!("busy ({busy} compactions), sweep"), busy_sweep, 1);
        }
        let per_second = |measured: &Measured, passes: usize, interval: f64| {
            measured.operations as f64 / passes as f64 / interval
        };
        println!(
            "idle store ops/s per replica at the default 300 s interval: event-driven {:.4}, sweep {}",
            per_second(&idle_new, idle_passes, 300.0),
            idle_sweep
                .as_ref()
                .map_or("not run".to_string(), |idle_sweep| format!(
                    "{:.1}",
                    per_second(idle_sweep, 1, 300.0)
                )),
        );
        println!(
            "commit -> compaction start with a {claim_interval:?} claim interval ({} tables): p50 {} ms, max {} ms",
            delays.len(),
            percentile(&delays, 0.5),
            percentile(&delays, 1.0),
        );
        println!("fifth commits of the first busy set: {}", committed.len());
        println!("load average {}", load_average());
    });
}
