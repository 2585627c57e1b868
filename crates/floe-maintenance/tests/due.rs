//! The event-driven scheduler: work becomes due from commits, settings changes and time, never
//! from walking the tables. A pass looks only at tables with a job due, and a table nobody
//! touches is not looked at between its time-based dues.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use floe_commit::open::{OpenOptions, open};
use floe_commit::{CommitSettings, Warehouses};
use floe_maintenance::LeaseSettings;
use floe_maintenance::scheduler::{PassReport, Scheduler, SchedulerOptions};
use floe_sql::{EmbeddedCatalog, Session};
use floe_storage::RetryOptions;
use floe_store::{DueKind, DueRow, JobFilter, TableName};

mod common;

use common::Fixture;
use common::parts::table;

/// A scheduler on its own engine over the fixture's catalog, as a server's would be.
async fn scheduler_for(t: &Fixture, options: SchedulerOptions) -> Arc<Scheduler> {
    let catalog = open(&OpenOptions::new(t.data_dir())).await.unwrap();
    let warehouses = Warehouses::new(catalog, RetryOptions::default(), CommitSettings::default());
    Arc::new(Scheduler::new(Arc::new(warehouses), options))
}

async fn rows(t: &Fixture) -> BTreeMap<DueKind, DueRow> {
    rows_of(t, &t.table).await
}

fn looked_at(pass: &PassReport) -> usize {
    pass.tables
}

#[tokio::test]
async fn work_becomes_due_from_commits_not_from_passes() {
    let t = table(true).await;
    let scheduler = scheduler_for(&t, SchedulerOptions::default()).await;

    // A new table is looked at once, and then not again while nothing happens to it.
    let first = scheduler.run_pass().await;
    assert_eq!(looked_at(&first), 1, "{first:?}");
    assert_eq!(
        first.jobs_run, 2,
        "the first unreferenced-file pass and scrub are recorded"
    );
    for _ in 0..3 {
        let idle = scheduler.run_pass().await;
        assert_eq!(idle, PassReport::default(), "nothing is due");
    }
    let due = rows(&t).await;
    assert_eq!(due.len(), 5);
    let compaction = &due[&DueKind::Compaction];
    assert_eq!(
        (compaction.due_at_ms, compaction.threshold),
        (None, 5),
        "an empty table needs five files in a partition"
    );
    let day = 24 * 3_600_000;
    for kind in [DueKind::OrphanRemoval, DueKind::Scrub] {
        let at = due[&kind].due_at_ms.expect("time-based");
        let in_a_day = at - now_ms();
        assert!(
            (day - 60_000..=day).contains(&in_a_day),
            "{kind} is due in a day, not in {in_a_day} ms"
        );
    }

    // Four appends add four files to each of three partitions: twelve files reach the threshold
    // of five, the planner finds no partition with five, and asks for one more file.
    for i in 0..4 {
        t.append(i * 3, i * 3 + 3).await;
    }
    assert_eq!(rows(&t).await[&DueKind::Compaction].pending, 12);
    let before = t.current_snapshot().await;
    let pass = scheduler.run_pass().await;
    assert_eq!((looked_at(&pass), pass.jobs_run), (1, 0), "{pass:?}");
    assert_eq!(t.current_snapshot().await, before, "nothing compacted");
    let compaction = &rows(&t).await[&DueKind::Compaction];
    assert_eq!(
        (
            compaction.pending,
            compaction.threshold,
            compaction.due_at_ms
        ),
        (0, 1, None)
    );
    assert_eq!(scheduler.run_pass().await, PassReport::default());

    // The fifth file of each partition makes it due, and the next pass compacts.
    let checksum = t.checksum("s.t").await;
    t.append(12, 15).await;
    let pass = scheduler.run_pass().await;
    assert_eq!((looked_at(&pass), pass.jobs_run), (1, 1), "{pass:?}");
    assert_eq!(t.checksum("s.t").await.0, checksum.0 + 3);
    assert_eq!(t.live_files().await.len(), 3, "one file per partition");
    // Compaction's own commit does not bring it back.
    assert_eq!(scheduler.run_pass().await, PassReport::default());

    // Snapshot expiry is due when the oldest snapshot but the current one passes the age limit.
    let expiry = &rows(&t).await[&DueKind::SnapshotExpiry];
    let oldest = t
        .metadata()
        .await
        .snapshots()
        .map(|snapshot| snapshot.timestamp_ms())
        .min()
        .unwrap();
    assert_eq!(expiry.period_ms, 120 * 3_600_000);
    assert_eq!(expiry.due_at_ms, Some(oldest + expiry.period_ms));
}

#[tokio::test]
async fn the_claims_of_a_replica_that_died_are_taken_over_after_their_hold() {
    let t = table(false).await;
    for i in 0..5 {
        t.append(i, i + 1).await;
    }
    // Another replica claimed everything due and died.
    let hold = Duration::from_secs(2);
    let claimed = t.catalog.store().due().claim_due(100, hold).await.unwrap();
    assert_eq!(claimed.len(), 5);
    let scheduler = scheduler_for(&t, SchedulerOptions::default()).await;
    assert_eq!(scheduler.run_pass().await, PassReport::default(), "held");

    tokio::time::sleep(hold + Duration::from_millis(200)).await;
    let before = t.current_snapshot().await;
    let pass = scheduler.run_pass().await;
    assert_eq!(looked_at(&pass), 1, "{pass:?}");
    assert_ne!(t.current_snapshot().await, before, "compacted");
    assert_eq!(t.live_files().await.len(), 1);
    assert!(rows(&t).await.values().all(|row| !row.claimed));
}

#[tokio::test]
async fn settings_changes_make_the_tables_due() {
    let t = table(false).await;
    for i in 0..3 {
        t.append(i, i + 1).await;
    }
    let scheduler = scheduler_for(&t, SchedulerOptions::default()).await;
    scheduler.run_pass().await;
    assert_eq!(scheduler.run_pass().await, PassReport::default());
    assert_eq!(t.live_files().await.len(), 3, "below the minimum of five");

    // A namespace setting that lowers the minimum: the table is due at once, and compacted.
    let namespace = t.table.namespace.clone();
    let setting = BTreeMap::from([(
        "floe.maintenance.compaction.min-input-files".to_string(),
        "3".to_string(),
    )]);
    t.catalog
        .update_namespace_properties(&namespace, &[], &setting)
        .await
        .unwrap();
    let pass = scheduler.run_pass().await;
    assert_eq!((looked_at(&pass), pass.jobs_run), (1, 1), "{pass:?}");
    assert_eq!(t.live_files().await.len(), 1);

    // Other properties change nothing.
    let other = BTreeMap::from([("owner".to_string(), "ana".to_string())]);
    t.catalog
        .update_namespace_properties(&namespace, &[], &other)
        .await
        .unwrap();
    assert_eq!(scheduler.run_pass().await, PassReport::default());

    // The server's configured defaults: compared across starts, a change makes every table due.
    let defaults = |min: &str| SchedulerOptions {
        default_warehouse_properties: BTreeMap::from([(
            "floe.maintenance.compaction.min-input-files".to_string(),
            min.to_string(),
        )]),
        ..SchedulerOptions::default()
    };
    let first = scheduler_for(&t, defaults("7")).await;
    first.prepare().await;
    assert_eq!(first.run_pass().await, PassReport::default(), "first start");
    let restarted = scheduler_for(&t, defaults("7")).await;
    restarted.prepare().await;
    assert_eq!(
        restarted.run_pass().await,
        PassReport::default(),
        "same defaults"
    );
    let changed = scheduler_for(&t, defaults("9")).await;
    changed.prepare().await;
    assert_eq!(looked_at(&changed.run_pass().await), 1);
}

/// Claims do not wait for running jobs: a table that falls due while another table's long job
/// runs starts in the free slot at the next claim, not when the long job ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_that_falls_due_starts_while_a_long_job_runs() {
    let t = table(false).await;
    t.append(0, 1).await;
    t.append(1, 2).await;
    // `s.t`'s scrub slowed to one request a second: it takes seconds over the table's metadata,
    // manifests and files.
    t.catalog
        .commit_table(floe_commit::TableChange {
            table: t.table.clone(),
            requirements: vec![],
            updates: vec![iceberg::TableUpdate::SetProperties {
                updates: [(
                    "floe.maintenance.scrub.max-requests-per-second".to_string(),
                    "1".to_string(),
                )]
                .into(),
            }],
        })
        .await
        .unwrap();
    t.sql("CREATE TABLE s.u (id BIGINT NOT NULL, name VARCHAR, part BIGINT)")
        .await;
    let other = TableName::new(t.table.namespace.clone(), "u");
    let scheduler = scheduler_for(
        &t,
        SchedulerOptions {
            interval: Duration::from_millis(200),
            ..SchedulerOptions::default()
        },
    )
    .await;

    // Both new tables are claimed at once; `s.u`'s first jobs finish while `s.t`'s scrub runs.
    let background = tokio::spawn(scheduler.clone().run());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let scrub_running = rows_of(&t, &t.table).await[&DueKind::Scrub].claimed;
        let other_idle = rows_of(&t, &other).await.values().all(|row| !row.claimed)
            && !wait_for_job(&t, &other, "scrub", 0, deadline)
                .await
                .is_empty();
        if scrub_running && other_idle {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scrub never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Meanwhile `s.u` gets its fifth file.
    for id in 0..5 {
        t.sql(&format!("INSERT INTO s.u VALUES ({id}, 'x', 0)"))
            .await;
    }
    let compaction = wait_for_job(&t, &other, "compaction", 1, deadline).await;
    let scrub = wait_for_job(&t, &t.table, "scrub", 1, deadline).await;
    background.abort();
    let (compaction, scrub) = (&compaction[0], &scrub[0]);
    assert_eq!(compaction.outcome, "succeeded");
    let scrub_ran = scrub.started_at_ms..scrub.finished_at_ms.unwrap();
    assert!(
        scrub_ran.contains(&compaction.started_at_ms),
        "the compaction (started at {}) started while the scrub ran ({scrub_ran:?})",
        compaction.started_at_ms
    );
}

async fn rows_of(t: &Fixture, table: &TableName) -> BTreeMap<DueKind, DueRow> {
    let rows = t.catalog.store().due().due_rows(table).await.unwrap();
    rows.into_iter().map(|row| (row.kind, row)).collect()
}

/// The runs of the job recorded so far, once there are at least `runs`.
async fn wait_for_job(
    t: &Fixture,
    table: &TableName,
    kind: &str,
    runs: usize,
    deadline: std::time::Instant,
) -> Vec<floe_store::JobRecord> {
    let filter = JobFilter {
        warehouse: None,
        table: Some(table.clone()),
        kind: Some(kind.to_string()),
    };
    loop {
        let jobs = t.catalog.store().list_jobs(&filter, 10).await.unwrap();
        if jobs.len() >= runs {
            return jobs;
        }
        assert!(std::time::Instant::now() < deadline, "no {kind} of {table}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two replicas on one PostgreSQL store claim different rows: every table due is compacted
/// exactly once, whichever replica gets it, and neither finds anything left afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_the_due_work_without_doing_it_twice() {
    let postgres = floe_testkit::postgres::TestPostgres::shared();
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions {
        metastore: Some(postgres.create_database()),
        ..OpenOptions::new(dir.path())
    };
    let writer = Arc::new(open(&options).await.unwrap());
    let sql = |statement: String| {
        let session = Session::new(Arc::new(EmbeddedCatalog::new(writer.clone())));
        async move { session.run(&statement).await.unwrap() }
    };
    sql("CREATE SCHEMA s".into()).await;
    let tables = 6;
    for table in 0..tables {
        sql(format!("CREATE TABLE s.t{table} (id BIGINT)")).await;
        for row in 0..5 {
            sql(format!("INSERT INTO s.t{table} VALUES ({row})")).await;
        }
    }
    let replica = || async {
        let catalog = open(&options).await.unwrap();
        let warehouses =
            Warehouses::new(catalog, RetryOptions::default(), CommitSettings::default());
        let options = SchedulerOptions {
            // Small batches, so that the replicas' claims interleave.
            claim_batch: 2,
            // A job whose table's lease the other replica holds is put off by one lease lifetime:
            // short here, so that the test can wait for it.
            lease: LeaseSettings {
                ttl: Duration::from_secs(2),
                renew_every: Duration::from_millis(500),
            },
            ..SchedulerOptions::default()
        };
        Arc::new(Scheduler::new(Arc::new(warehouses), options))
    };
    let (a, b) = (replica().await, replica().await);
    let (pass_a, pass_b) = tokio::join!(a.run_pass(), b.run_pass());
    assert_eq!(pass_a.jobs_failed + pass_b.jobs_failed, 0);
    assert!(
        pass_a.tables + pass_b.tables >= tables,
        "{pass_a:?} {pass_b:?}"
    );
    // Rarely, both replicas claim rows of one table at the same moment; the job that then finds
    // the table's lease taken is put off by one lease lifetime.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (late_a, late_b) = tokio::join!(a.run_pass(), b.run_pass());
    assert_eq!(late_a.jobs_failed + late_b.jobs_failed, 0);

    let compactions = writer
        .store()
        .list_jobs(
            &JobFilter {
                kind: Some("compaction".into()),
                ..JobFilter::default()
            },
            100,
        )
        .await
        .unwrap();
    let compacted: BTreeSet<String> = compactions
        .iter()
        .map(|job| job.table.name.clone())
        .collect();
    assert_eq!(compactions.len(), tables, "{compactions:?}");
    assert_eq!(compacted.len(), tables);
    for table in 0..tables {
        let rows = sql(format!("SELECT count(*) FROM s.t{table}")).await;
        let count = rows.last().unwrap()[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(count, 5);
    }
    let (pass_a, pass_b) = tokio::join!(a.run_pass(), b.run_pass());
    assert_eq!(
        (pass_a, pass_b),
        (PassReport::default(), PassReport::default())
    );
}

fn now_ms() -> i64 {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    i64::try_from(millis).unwrap()
}
