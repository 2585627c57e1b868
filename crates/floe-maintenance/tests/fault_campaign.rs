//! Fault campaigns in process: the object store fails about 10% of requests (transient errors,
//! timeouts, writes cut short halfway, "no space left on device") while 8 writers append rows
//! through the commit engine (SQL `INSERT`) and compaction and snapshot expiry run on the same
//! tables. After every round, with the faults off: every table loads and reads, every acknowledged
//! row is there exactly once (and no row that no writer sent), and the scrubber finds every file
//! the tables reference, whole. A second test fills the disk (every put fails with ENOSPC): clean
//! errors that name the cause, nothing lost, and commits succeed again once space returns, on the
//! same engine, without a restart.
//!
//! The warehouse is a real local directory (object_store's `LocalFileSystem`) behind a
//! `FaultyStore`, so that a write cut short meets the real store's staging; the metadata store is
//! a SQLite file. `FLOE_CAMPAIGN_SEED` and `FLOE_CAMPAIGN_ROUNDS` size the campaign (the seed is
//! printed first); docs/reliability.md has the full-size command and figures.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use arrow::array::{Array, Int64Array};
use floe_commit::Catalog;
use floe_maintenance::{
    CompactOptions, ExpireOptions, ScrubOptions, TableName, compact, expire_snapshots, scrub_table,
};
use floe_sql::{EmbeddedCatalog, Session};
use floe_storage::Warehouse;
use floe_storage::testing::{Fault, FaultyStore, Op};
use floe_store::MetadataStore;
use floe_store::sqlite::SqliteStore;

const WRITERS: usize = 8;
const TABLES: usize = 3;
const INSERTS_PER_ROUND: usize = 4;
const DEFAULT_ROUNDS: usize = 3;
const DEFAULT_SEED: u64 = 0x00f1_0e12;

fn settings(name: &str) -> (u64, usize) {
    let seed = std::env::var("FLOE_CAMPAIGN_SEED")
        .ok()
        .map(|text| {
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("FLOE_CAMPAIGN_SEED={text} is not a number"))
        })
        .unwrap_or(DEFAULT_SEED);
    let rounds = std::env::var("FLOE_CAMPAIGN_ROUNDS")
        .ok()
        .map(|text| {
            text.parse()
                .unwrap_or_else(|_| panic!("FLOE_CAMPAIGN_ROUNDS={text} is not a number"))
        })
        .unwrap_or(DEFAULT_ROUNDS);
    println!("campaign {name}: FLOE_CAMPAIGN_SEED={seed:#x} FLOE_CAMPAIGN_ROUNDS={rounds}");
    (seed, rounds)
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    faults: Arc<FaultyStore>,
    warehouse: Warehouse,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("catalog.db"))
                .await
                .unwrap(),
        );
        let root = dir.path().join("warehouse");
        std::fs::create_dir_all(&root).unwrap();
        let local = object_store::local::LocalFileSystem::new_with_prefix(&root).unwrap();
        let faults = Arc::new(FaultyStore::new(Arc::new(local)));
        let warehouse = Warehouse::new(
            "main",
            url::Url::from_directory_path(&root).unwrap(),
            faults.clone(),
        );
        let setup = Self {
            _dir: dir,
            store,
            faults,
            warehouse,
        };
        let catalog = setup.catalog();
        sql(&catalog, "CREATE SCHEMA s").await.unwrap();
        for t in 0..TABLES {
            sql(
                &catalog,
                &format!("CREATE TABLE s.t{t} (id BIGINT NOT NULL)"),
            )
            .await
            .unwrap();
        }
        setup
    }

    /// A commit engine with a cold metadata cache: what a restarted server reads.
    fn catalog(&self) -> Arc<Catalog> {
        Arc::new(Catalog::new(self.store.clone(), self.warehouse.clone()))
    }
}

fn table(t: usize) -> TableName {
    TableName::new(vec!["s".to_string()], format!("t{t}"))
}

async fn sql(catalog: &Arc<Catalog>, text: &str) -> Result<Vec<arrow::array::RecordBatch>, String> {
    Session::new(Arc::new(EmbeddedCatalog::new(catalog.clone())))
        .run(text)
        .await
        .map(|results| results.into_iter().flatten().collect())
        .map_err(|err| err.to_string())
}

async fn ids(catalog: &Arc<Catalog>, t: usize) -> Vec<i64> {
    let batches = sql(catalog, &format!("SELECT id FROM s.t{t}"))
        .await
        .unwrap_or_else(|err| panic!("s.t{t} is unreadable: {err}"));
    let mut ids = Vec::new();
    for batch in &batches {
        let column = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("id column");
        ids.extend((0..column.len()).map(|row| column.value(row)));
    }
    ids.sort_unstable();
    ids
}

/// Acknowledged and failed (maybe applied, at most once) appends per table.
#[derive(Default)]
struct Ledger {
    acknowledged: BTreeMap<usize, BTreeSet<i64>>,
    failed: BTreeMap<usize, BTreeSet<i64>>,
}

#[derive(Default)]
struct Figures {
    operations: usize,
    acknowledged: usize,
    failed: usize,
    lost: usize,
    files_checked: u64,
    findings: usize,
    injected: u64,
}

/// Every table reads, holds each acknowledged id once and no id nobody sent, and the scrubber
/// finds no problem. Returns (lost, files checked).
async fn check(setup: &Setup, ledger: &Ledger, when: &str) -> (usize, u64, usize) {
    let catalog = setup.catalog();
    let (mut lost, mut files, mut findings) = (0, 0, 0);
    let empty = BTreeSet::new();
    for t in 0..TABLES {
        let ids = ids(&catalog, t).await;
        let distinct: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "{when}: s.t{t} has a row twice");
        let acked = ledger.acknowledged.get(&t).unwrap_or(&empty);
        let failed = ledger.failed.get(&t).unwrap_or(&empty);
        let missing: Vec<_> = acked.difference(&distinct).collect();
        lost += missing.len();
        assert!(
            missing.is_empty(),
            "{when}: s.t{t} lost acknowledged rows {missing:?}"
        );
        let unknown: Vec<_> = distinct
            .iter()
            .filter(|id| !acked.contains(id) && !failed.contains(id))
            .collect();
        assert!(
            unknown.is_empty(),
            "{when}: s.t{t} has rows nobody sent: {unknown:?}"
        );
        let report = scrub_table(&catalog, &table(t), &ScrubOptions::default())
            .await
            .unwrap_or_else(|err| panic!("{when}: scrub of s.t{t}: {err}"));
        findings += report.problems.len();
        assert!(
            report.problems.is_empty(),
            "{when}: s.t{t}: {:?}",
            report.problems
        );
        files += report.files_checked;
    }
    (lost, files, findings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_of_object_store_requests_failing_lose_no_acknowledged_append() {
    let (seed, rounds) = settings("object store failing 10% of requests");
    let setup = Setup::new().await;
    let next_id = Arc::new(AtomicI64::new(1));
    let mut ledger = Ledger::default();
    let mut figures = Figures::default();
    let maintenance_done = Arc::new(AtomicUsize::new(0));
    for round in 0..rounds as u64 {
        // About 10% of calls: transient errors, timeouts, writes cut short, a full disk, and
        // writes that landed but whose response was lost.
        let round_seed = seed.wrapping_add(round.wrapping_mul(0x9e37_79b9));
        setup
            .faults
            .fail_randomly(0.04, round_seed, Fault::Unavailable);
        setup
            .faults
            .fail_randomly(0.02, round_seed, Fault::Timeout(Duration::from_millis(20)));
        setup
            .faults
            .fail_op_randomly(Op::Put, 0.02, round_seed, Fault::CutShort);
        setup
            .faults
            .fail_op_randomly(Op::Put, 0.01, round_seed, Fault::NoSpace);
        setup
            .faults
            .fail_op_randomly(Op::Put, 0.01, round_seed, Fault::FailAfter);
        let catalog = setup.catalog();
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let catalog = catalog.clone();
                let next_id = next_id.clone();
                tokio::spawn(async move {
                    let t = writer % TABLES;
                    let mut outcomes = Vec::new();
                    for _ in 0..INSERTS_PER_ROUND {
                        let id = next_id.fetch_add(1, Ordering::SeqCst);
                        let result =
                            sql(&catalog, &format!("INSERT INTO s.t{t} VALUES ({id})")).await;
                        outcomes.push((t, id, result.is_ok()));
                    }
                    outcomes
                })
            })
            .collect();
        let maintenance = {
            let catalog = catalog.clone();
            let done = maintenance_done.clone();
            tokio::spawn(async move {
                let mut runs = 0;
                for t in 0..TABLES {
                    let options = CompactOptions {
                        target_file_size_bytes: Some(1 << 20),
                        unchecked_target: true,
                        min_input_files: Some(2),
                        ..CompactOptions::default()
                    };
                    runs += 2;
                    if compact(&catalog, &table(t), &options).await.is_ok() {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    let options = ExpireOptions {
                        older_than: Some(Duration::from_millis(1)),
                        retain_last: Some(2),
                        ..ExpireOptions::default()
                    };
                    if expire_snapshots(&catalog, &table(t), &options)
                        .await
                        .is_ok()
                    {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
                runs
            })
        };
        for writer in writers {
            for (t, id, acknowledged) in writer.await.unwrap() {
                figures.operations += 1;
                let book = if acknowledged {
                    &mut ledger.acknowledged
                } else {
                    &mut ledger.failed
                };
                book.entry(t).or_default().insert(id);
            }
        }
        figures.operations += maintenance.await.unwrap();
        setup.faults.clear();
        let (lost, files, findings) = check(&setup, &ledger, &format!("round {round}")).await;
        figures.lost += lost;
        figures.files_checked = files;
        figures.findings += findings;
    }
    figures.acknowledged = ledger.acknowledged.values().map(BTreeSet::len).sum();
    figures.failed = ledger.failed.values().map(BTreeSet::len).sum();
    figures.injected = setup.faults.injected();
    println!(
        "\nobject store failing 10% of requests (seed {seed:#x})\n\
         | faults | operations | acknowledged | failed (clean error) | lost | files checked | findings |\n\
         |-------:|-----------:|-------------:|---------------------:|-----:|--------------:|---------:|\n\
         | {:>6} | {:>10} | {:>12} | {:>20} | {:>4} | {:>13} | {:>8} |\n\
         ({} maintenance runs succeeded; files checked: the last round's scrub)",
        figures.injected,
        figures.operations,
        figures.acknowledged,
        figures.failed,
        figures.lost,
        figures.files_checked,
        figures.findings,
        maintenance_done.load(Ordering::SeqCst),
    );
    assert_eq!(figures.lost, 0);
    assert!(figures.acknowledged > 0, "no append got through");
    assert!(figures.injected > 0, "no fault was injected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_commits_cleanly_and_they_resume_when_space_returns() {
    let setup = Setup::new().await;
    let catalog = setup.catalog();
    sql(&catalog, "INSERT INTO s.t0 VALUES (1), (2)")
        .await
        .unwrap();
    sql(&catalog, "INSERT INTO s.t0 VALUES (3)").await.unwrap();

    // The disk fills up: every write fails with ENOSPC.
    setup
        .faults
        .fail_op_randomly(Op::Put, 1.0, 7, Fault::NoSpace);
    for id in 4..7 {
        let err = sql(&catalog, &format!("INSERT INTO s.t0 VALUES ({id})"))
            .await
            .unwrap_err();
        assert!(err.contains("No space left on device"), "{err}");
    }
    let options = CompactOptions {
        target_file_size_bytes: Some(1 << 20),
        unchecked_target: true,
        min_input_files: Some(2),
        ..CompactOptions::default()
    };
    let err = compact(&catalog, &table(0), &options).await.unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    // Reads go on.
    assert_eq!(ids(&catalog, 0).await, vec![1, 2, 3]);

    // Space returns: the same engine commits again, no restart.
    setup.faults.clear();
    sql(&catalog, "INSERT INTO s.t0 VALUES (10)").await.unwrap();
    assert_eq!(ids(&catalog, 0).await, vec![1, 2, 3, 10]);
    compact(&catalog, &table(0), &options).await.unwrap();
    assert_eq!(ids(&catalog, 0).await, vec![1, 2, 3, 10]);
    let report = scrub_table(&catalog, &table(0), &ScrubOptions::default())
        .await
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Nothing half-written was left under a name in the table's directories.
    let stray: Vec<_> = walk(&setup._dir.path().join("warehouse"))
        .into_iter()
        .filter(|path| path.to_string_lossy().contains('#'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}
