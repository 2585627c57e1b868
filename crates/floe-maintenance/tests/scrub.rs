//! The scrubber on a real local warehouse: a table written with SQL, then files deleted,
//! truncated or corrupted on disk behind the catalog's back, and each pass's findings checked,
//! in its report and in the metadata store.

use std::path::PathBuf;
use std::sync::Arc;

use floe_commit::open::{OpenOptions, open};
use floe_commit::{CommitSettings, Warehouses};
use floe_maintenance::scheduler::{Scheduler, SchedulerOptions};
use floe_maintenance::{ScrubOptions, ScrubReport, scrub_table};
use floe_storage::RetryOptions;
use floe_store::{FindingFilter, FindingKind, JobFilter, ScrubFinding};

mod common;

use common::Fixture;
use common::parts;

fn local_path(location: &str) -> PathBuf {
    url::Url::parse(location).unwrap().to_file_path().unwrap()
}

/// A table with two appends of one data file each: snapshot 1 has file 1; snapshot 2 both.
struct TwoAppends {
    t: Fixture,
    snapshots: [i64; 2],
    files: [String; 2],
}

async fn two_appends() -> TwoAppends {
    let t = parts::table(false).await;
    t.append(0, 3).await;
    let first_snapshot = t.current_snapshot().await;
    let first: Vec<String> = t.live_files().await.into_iter().collect();
    assert_eq!(first.len(), 1);
    t.append(3, 6).await;
    let second_snapshot = t.current_snapshot().await;
    let both = t.live_files().await;
    let second: Vec<String> = both.iter().filter(|f| **f != first[0]).cloned().collect();
    assert_eq!(second.len(), 1);
    TwoAppends {
        t,
        snapshots: [first_snapshot, second_snapshot],
        files: [first[0].clone(), second[0].clone()],
    }
}

impl TwoAppends {
    async fn scrub(&self, deep: bool) -> ScrubReport {
        let options = ScrubOptions {
            deep,
            ..ScrubOptions::default()
        };
        scrub_table(&self.t.catalog, &self.t.table, &options)
            .await
            .unwrap()
    }

    async fn open_findings(&self) -> Vec<ScrubFinding> {
        let filter = FindingFilter {
            warehouse: Some(self.t.catalog.warehouse().name().to_string()),
            table: Some(self.t.table.clone()),
            open_only: true,
            since_ms: None,
        };
        self.t
            .catalog
            .store()
            .scrub()
            .list_findings(&filter, 100)
            .await
            .unwrap()
    }
}

async fn scrub_runs(t: &Fixture) -> Vec<floe_store::JobRecord> {
    let filter = JobFilter {
        warehouse: None,
        table: Some(t.table.clone()),
        kind: Some("scrub".into()),
    };
    t.catalog.store().list_jobs(&filter, 10).await.unwrap()
}

fn kinds(report: &ScrubReport) -> Vec<(String, FindingKind)> {
    report
        .problems
        .iter()
        .map(|problem| (problem.file.clone(), problem.kind))
        .collect()
}

#[tokio::test]
async fn a_healthy_table_has_no_findings_and_each_file_is_checked_once() {
    let t = two_appends().await;
    for deep in [false, true] {
        let report = t.scrub(deep).await;
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert!(report.complete);
        assert_eq!(report.snapshots, 2);
        // The metadata file, two manifest lists, two manifests (the first one is in both
        // snapshots' lists), two data files (the first one in both snapshots): seven files.
        assert_eq!(report.files_checked, 7, "{report:?}");
        // Every byte of every referenced file is accounted for: the table's files on disk but
        // the metadata files older than the current one.
        let referenced: u64 = t
            .t
            .files_on_disk()
            .await
            .iter()
            .filter(|file| !file.ends_with(".metadata.json") || **file == report.metadata_location)
            .map(|file| std::fs::metadata(local_path(file)).unwrap().len())
            .sum();
        assert_eq!(report.bytes_verified, referenced);
        assert!(report.bytes_read > 0 && report.bytes_read <= referenced);
        // One request per file, and on a deep pass one more per Parquet footer.
        let footers = if deep { 2 } else { 0 };
        assert_eq!(report.requests, 7 + footers);
    }
    assert!(t.open_findings().await.is_empty());
}

#[tokio::test]
async fn a_deleted_data_file_shared_by_two_snapshots_is_one_finding_until_restored() {
    let t = two_appends().await;
    let before = floe_maintenance::scrub::counters();
    let path = local_path(&t.files[0]);
    let saved = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();

    let report = t.scrub(false).await;
    assert_eq!(
        kinds(&report),
        vec![(t.files[0].clone(), FindingKind::Missing)]
    );
    let mut both = t.snapshots.to_vec();
    both.sort();
    assert_eq!(report.problems[0].snapshots, both);
    assert_eq!(report.files_checked, 7, "the shared file is checked once");
    assert_eq!(report.recorded.opened, 1);
    let after = floe_maintenance::scrub::counters();
    assert!(
        after.problems_total[&FindingKind::Missing] > before.problems_total[&FindingKind::Missing]
    );
    assert!(after.requests_total >= before.requests_total + report.requests);

    // Found again: still one finding.
    let again = t.scrub(false).await;
    assert_eq!(again.recorded.still_open, 1);
    let open = t.open_findings().await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].file, t.files[0]);
    assert_eq!(open[0].kind, FindingKind::Missing);
    assert_eq!(open[0].snapshots, both);

    // Restored: the next pass resolves it.
    std::fs::write(&path, saved).unwrap();
    let restored = t.scrub(false).await;
    assert!(restored.problems.is_empty());
    assert_eq!(restored.recorded.resolved, 1);
    assert!(t.open_findings().await.is_empty());
}

#[tokio::test]
async fn a_truncated_data_file_is_a_size_mismatch() {
    let t = two_appends().await;
    let path = local_path(&t.files[1]);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();

    let report = t.scrub(false).await;
    assert_eq!(
        kinds(&report),
        vec![(t.files[1].clone(), FindingKind::SizeMismatch)]
    );
    let problem = &report.problems[0];
    assert_eq!(problem.snapshots, vec![t.snapshots[1]]);
    assert!(
        problem.detail.contains(&bytes.len().to_string())
            && problem.detail.contains(&(bytes.len() / 2).to_string()),
        "{}",
        problem.detail
    );
    assert_eq!(t.open_findings().await.len(), 1);
}

#[tokio::test]
async fn a_deleted_manifest_is_missing_and_the_pass_resolves_nothing() {
    let t = two_appends().await;
    // A finding about the first data file, to see that an incomplete pass leaves it open.
    let data = local_path(&t.files[0]);
    let saved = std::fs::read(&data).unwrap();
    std::fs::remove_file(&data).unwrap();
    assert_eq!(t.scrub(false).await.recorded.opened, 1);
    std::fs::write(&data, saved).unwrap();

    // The manifest the second append added (only the second snapshot lists it).
    let metadata = t.t.metadata().await;
    let manifests = t.t.manifests(&metadata).await;
    let added = manifests
        .iter()
        .find(|manifest| manifest.added_snapshot_id == t.snapshots[1])
        .unwrap();
    std::fs::remove_file(local_path(&added.manifest_path)).unwrap();

    let report = t.scrub(false).await;
    assert_eq!(
        kinds(&report),
        vec![(added.manifest_path.clone(), FindingKind::Missing)]
    );
    assert_eq!(report.problems[0].snapshots, vec![t.snapshots[1]]);
    assert!(!report.complete);
    assert_eq!(report.recorded.resolved, 0);
    let open: Vec<String> = t
        .open_findings()
        .await
        .into_iter()
        .map(|finding| finding.file)
        .collect();
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(open.contains(&t.files[0]) && open.contains(&added.manifest_path));
}

#[tokio::test]
async fn corrupt_footers_are_found_by_deep_passes_only() {
    let t = two_appends().await;
    // File 1: the tail (footer length and magic) zeroed. File 2: the footer's bytes garbled,
    // magic intact. Both keep their size.
    let first = local_path(&t.files[0]);
    let mut bytes = std::fs::read(&first).unwrap();
    let end = bytes.len();
    bytes[end - 8..].fill(0);
    std::fs::write(&first, &bytes).unwrap();
    let second = local_path(&t.files[1]);
    let mut bytes = std::fs::read(&second).unwrap();
    let footer_length =
        u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let end = bytes.len() - 8;
    bytes[end - footer_length as usize..end].fill(0xff);
    std::fs::write(&second, &bytes).unwrap();

    let shallow = t.scrub(false).await;
    assert!(shallow.problems.is_empty(), "{:?}", shallow.problems);

    let deep = t.scrub(true).await;
    let mut expected = vec![
        (t.files[0].clone(), FindingKind::UnreadableFooter),
        (t.files[1].clone(), FindingKind::UnreadableFooter),
    ];
    expected.sort();
    assert_eq!(kinds(&deep), expected, "{:?}", deep.problems);
    assert_eq!(t.open_findings().await.len(), 2);

    // A shallow pass did not look at footers: it leaves their findings open.
    let shallow = t.scrub(false).await;
    assert_eq!(shallow.recorded.resolved, 0);
    assert_eq!(t.open_findings().await.len(), 2);
}

#[tokio::test]
async fn a_missing_metadata_file_is_a_finding() {
    let t = two_appends().await;
    let pointer = t.t.catalog.table_pointer(&t.t.table).await.unwrap();
    std::fs::remove_file(local_path(&pointer.metadata_location)).unwrap();
    let report = t.scrub(false).await;
    assert_eq!(
        kinds(&report),
        vec![(pointer.metadata_location.clone(), FindingKind::Missing)]
    );
    assert!(!report.complete);
    assert_eq!(report.files_checked, 1);
}

#[tokio::test]
async fn the_scheduler_scrubs_and_records_findings_and_the_run() {
    let t = two_appends().await;
    std::fs::remove_file(local_path(&t.files[1])).unwrap();

    let catalog = open(&OpenOptions::new(t.t.data_dir())).await.unwrap();
    let warehouse = catalog.warehouse().name().to_string();
    let warehouses = Warehouses::new(catalog, RetryOptions::default(), CommitSettings::default());
    let scheduler = Arc::new(Scheduler::new(
        Arc::new(warehouses),
        SchedulerOptions::default(),
    ));
    let pass = scheduler.run_pass().await;
    assert_eq!(pass.jobs_failed, 0, "{pass:?}");

    let open = t.open_findings().await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].file, t.files[1]);
    assert_eq!(open[0].warehouse, warehouse);
    assert_eq!(warehouse, "main");
    let runs = scrub_runs(&t.t).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].outcome, "succeeded");
    assert_eq!(runs[0].trigger, "schedule");
    assert_eq!(runs[0].stats["findings"], "1");
    assert_eq!(runs[0].stats["findings-new"], "1");
    assert_eq!(runs[0].stats["files-checked"], "7");

    // Not due again before its interval (a day by default): no second run.
    scheduler.run_pass().await;
    assert_eq!(scrub_runs(&t.t).await.len(), 1);
}

#[tokio::test]
async fn the_scheduler_leaves_a_table_with_scrubbing_off_alone() {
    let t = two_appends().await;
    std::fs::remove_file(local_path(&t.files[1])).unwrap();
    t.t.catalog
        .commit_table(floe_commit::TableChange {
            table: t.t.table.clone(),
            requirements: vec![],
            updates: vec![iceberg::TableUpdate::SetProperties {
                updates: [(
                    "floe.maintenance.scrub.enabled".to_string(),
                    "false".to_string(),
                )]
                .into(),
            }],
        })
        .await
        .unwrap();
    let catalog = open(&OpenOptions::new(t.t.data_dir())).await.unwrap();
    let warehouses = Warehouses::new(catalog, RetryOptions::default(), CommitSettings::default());
    let scheduler = Arc::new(Scheduler::new(
        Arc::new(warehouses),
        SchedulerOptions::default(),
    ));
    scheduler.run_pass().await;
    assert!(t.open_findings().await.is_empty());
}

#[tokio::test]
async fn the_scheduler_records_a_lost_metadata_file_of_a_table_it_cannot_load() {
    let t = two_appends().await;
    let pointer = t.t.catalog.table_pointer(&t.t.table).await.unwrap();
    std::fs::remove_file(local_path(&pointer.metadata_location)).unwrap();
    // A fresh catalog: nothing cached, so the table does not load.
    let catalog = open(&OpenOptions::new(t.t.data_dir())).await.unwrap();
    assert!(catalog.load_table(&t.t.table).await.is_err());
    let warehouses = Warehouses::new(catalog, RetryOptions::default(), CommitSettings::default());
    let scheduler = Arc::new(Scheduler::new(
        Arc::new(warehouses),
        SchedulerOptions::default(),
    ));
    let pass = scheduler.run_pass().await;
    assert_eq!(pass.jobs_failed, 0, "{pass:?}");
    let open = t.open_findings().await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].file, pointer.metadata_location);
    assert_eq!(open[0].kind, FindingKind::Missing);
    let runs = scrub_runs(&t.t).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].stats["files-checked"], "1");
}

#[tokio::test]
async fn a_scrub_runs_beside_a_maintenance_lease_but_not_beside_another_scrub() {
    let two = two_appends().await;
    let catalog = &two.t.catalog;
    let store = catalog.store();
    let hour = std::time::Duration::from_secs(3600);
    // What a SIGKILLed `floe maintain` leaves: the maintenance lease held by nobody alive.
    let maintenance = floe_maintenance::lease::maintenance_lease_name(catalog, &two.t.table);
    assert!(
        store
            .try_acquire_lease(&maintenance, "dead job", hour)
            .await
            .unwrap()
    );
    let report = two.scrub(false).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.files_checked, 7);

    // Two scrubs of one table do not overlap (two replicas' schedulers).
    let scrub = floe_maintenance::lease::scrub_lease_name(catalog, &two.t.table);
    assert!(
        store
            .try_acquire_lease(&scrub, "other scrub", hour)
            .await
            .unwrap()
    );
    let busy = scrub_table(catalog, &two.t.table, &ScrubOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&busy, floe_maintenance::MaintenanceError::Busy(m) if m.contains("another scrub run")),
        "{busy}"
    );
}

/// A table whose pointer moves during every pass that finds a problem: the scrub walks it
/// [`floe_maintenance::scrub::MAX_WALKS`] times, then gives up with a conflict and records
/// nothing (its findings could name files a concurrent expiry rightly removed). Once the table
/// holds still, the next scrub records the finding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_moves_under_every_pass_is_given_up_on_and_nothing_is_recorded() {
    let t = two_appends().await;
    std::fs::remove_file(local_path(&t.files[0])).unwrap();
    let before = t.t.catalog.table_pointer(&t.t.table).await.unwrap().version;

    // Commits without pause while the scrub runs; the scrub is slowed to a few requests a second
    // so that every pass outlasts many commits.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let committer = {
        let (catalog, table, stop) = (t.t.catalog.clone(), t.t.table.clone(), stop.clone());
        tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                catalog
                    .commit_table(floe_commit::TableChange {
                        table: table.clone(),
                        requirements: vec![],
                        updates: vec![iceberg::TableUpdate::SetProperties {
                            updates: [("round".to_string(), round.to_string())].into(),
                        }],
                    })
                    .await
                    .unwrap();
            }
            round
        })
    };
    let slow = ScrubOptions {
        limits: floe_maintenance::scrub::RateLimits {
            bytes_per_second: 0,
            requests_per_second: 10,
        },
        ..ScrubOptions::default()
    };
    let result = scrub_table(&t.t.catalog, &t.t.table, &slow).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let commits = committer.await.unwrap();
    let err = result.expect_err("a table moving under every pass is given up on");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "changed during each of {} scrub passes",
            floe_maintenance::scrub::MAX_WALKS
        )),
        "{message}"
    );
    assert!(t.open_findings().await.is_empty(), "nothing recorded");
    let after = t.t.catalog.table_pointer(&t.t.table).await.unwrap().version;
    assert!(after - before >= commits as i64, "the commits landed");

    // Held still, the same table is scrubbed and its missing file recorded.
    let report = t.scrub(false).await;
    assert_eq!(
        kinds(&report),
        vec![(t.files[0].clone(), FindingKind::Missing)]
    );
    assert_eq!(t.open_findings().await.len(), 1);
}
