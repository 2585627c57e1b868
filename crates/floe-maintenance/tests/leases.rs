//! The scheduler's jobs hold their table's lease only while they can renew it: a job whose lease
//! runs out mid-job stops before committing and is recorded as stopped.

use std::sync::Arc;
use std::time::Duration;

use floe_commit::open::{OpenOptions, open};
use floe_commit::{CommitSettings, Warehouses};
use floe_maintenance::LeaseSettings;
use floe_maintenance::scheduler::{Scheduler, SchedulerOptions, kind};
use floe_storage::RetryOptions;
use floe_store::JobFilter;

mod common;

use common::parts::table;

#[tokio::test]
async fn a_job_whose_lease_runs_out_stops_without_committing_and_is_recorded() {
    let t = table(true).await;
    // Six appends: six small files per partition, so compaction (five at least) is due.
    for i in 0..6 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let before = t.current_snapshot().await;
    let checksum = t.checksum("s.t").await;

    let catalog = open(&OpenOptions::new(t.data_dir())).await.unwrap();
    let warehouses = Warehouses::new(catalog, RetryOptions::default(), CommitSettings::default());
    let options = SchedulerOptions {
        // The lease runs out long before compaction can have read its inputs, and no renewal
        // comes in time.
        lease: LeaseSettings {
            ttl: Duration::from_millis(1),
            renew_every: Duration::from_secs(3600),
        },
        ..SchedulerOptions::default()
    };
    let scheduler = Arc::new(Scheduler::new(Arc::new(warehouses), options));
    let pass = scheduler.run_pass().await;
    assert_eq!((pass.jobs_run, pass.jobs_failed), (0, 0), "{pass:?}");

    assert_eq!(t.current_snapshot().await, before, "nothing was committed");
    assert_eq!(t.checksum("s.t").await, checksum);
    let jobs = t
        .catalog
        .store()
        .list_jobs(&JobFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].kind, kind::COMPACTION);
    assert_eq!(jobs[0].outcome, "stopped");
    let error = jobs[0].error.as_deref().unwrap();
    assert!(error.contains("lease ran out"), "{error}");

    // With the default lease the same pass compacts.
    let catalog = open(&OpenOptions::new(t.data_dir())).await.unwrap();
    let warehouses = Warehouses::new(catalog, RetryOptions::default(), CommitSettings::default());
    let scheduler = Arc::new(Scheduler::new(
        Arc::new(warehouses),
        SchedulerOptions::default(),
    ));
    let pass = scheduler.run_pass().await;
    assert!(pass.jobs_run >= 1, "{pass:?}");
    assert_ne!(t.current_snapshot().await, before);
    assert_eq!(t.checksum("s.t").await, checksum);
}
