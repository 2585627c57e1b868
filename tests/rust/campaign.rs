//! Fault campaigns against the real server: `floe serve` SIGKILLed at seeded moments while 8
//! clients append rows to a few tables and `floe maintain` runs a compaction and a snapshot expiry
//! on the same data dir, on SQLite and on PostgreSQL. After every restart and at the end: no
//! acknowledged append is lost (every acknowledged id is read back exactly once, and no row
//! appears that no client sent), every table loads, every file any live snapshot reaches exists
//! with its recorded size, and `floe scrub` has no finding.
//!
//! Maintenance runs as `floe maintain` processes rather than through the server's scheduler: a
//! separate process keeps running across the server's death, so maintenance commits race both the
//! crash and the restarted server, and its moments are chosen by the seed instead of by a timer.
//! (The processes are not killed: how a killed `floe maintain` leaves its table is tested in
//! `leases.rs`.)
//!
//! Every [`ROUNDS_PER_GENERATION`] rounds the writers move to a fresh set of tables, so that a
//! round costs about the same at round 100 as at round 1 (a table's checks read every row and
//! walk every snapshot it keeps, which grow with its appends). Nothing goes unchecked: each round
//! checks the current tables in full, checks that every earlier table still loads at the
//! snapshot it was left at, and the end checks every table of the run in full, with every
//! acknowledged append of the run.
//!
//! Brief by default; `FLOE_CAMPAIGN_ROUNDS` sets the number of kills and `FLOE_CAMPAIGN_SEED` the
//! seed (printed first, so a failing run can be replayed). docs/reliability.md has the full-size
//! command and figures.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iceberg::table::Table;
use iceberg::{Catalog, ErrorKind, TableIdent};
use tokio::sync::Notify;

use crate::support::*;

const WRITERS: usize = 8;
const TABLES: usize = 3;
const DEFAULT_ROUNDS: usize = 3;
const DEFAULT_SEED: u64 = 0x00f1_0e12;
/// Rounds that append to one set of tables before the writers move to fresh ones.
const ROUNDS_PER_GENERATION: usize = 5;

/// The campaign's size: `FLOE_CAMPAIGN_SEED` (decimal or 0x-hex) and `FLOE_CAMPAIGN_ROUNDS`.
pub fn campaign_settings(name: &str) -> (u64, usize) {
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

/// SplitMix64: a tiny, well-known generator; the campaign only needs reproducible choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low)
    }
}

/// The campaign's figures, printed as one table at the end.
#[derive(Default, Debug)]
pub struct Figures {
    pub kills: usize,
    pub operations: usize,
    pub acknowledged: usize,
    pub in_doubt: usize,
    pub lost: usize,
    pub files_checked: usize,
    pub findings: usize,
    /// `floe maintain` runs that finished successfully (the others were killed or failed).
    pub maintenance_done: usize,
}

impl Figures {
    pub fn print(&self, name: &str, seed: u64) {
        println!(
            "\n{name} (seed {seed:#x})\n\
             | faults | operations | acknowledged | in doubt | lost | files checked | findings |\n\
             |-------:|-----------:|-------------:|---------:|-----:|--------------:|---------:|\n\
             | {:>6} | {:>10} | {:>12} | {:>8} | {:>4} | {:>13} | {:>8} |",
            self.kills,
            self.operations,
            self.acknowledged,
            self.in_doubt,
            self.lost,
            self.files_checked,
            self.findings
        );
        println!(
            "(operations: appends attempted + maintenance runs; {} maintenance runs finished)",
            self.maintenance_done
        );
    }
}

/// What the writers of one round saw. An append is acknowledged when its commit returned;
/// rejected when the catalog refused it (409: it did not apply); in doubt when the server died
/// under it (it may or may not have applied, but at most once).
#[derive(Default)]
struct Ledger {
    acknowledged: Mutex<BTreeMap<String, BTreeSet<i64>>>,
    in_doubt: Mutex<BTreeMap<String, BTreeSet<i64>>>,
    attempts: AtomicUsize,
    acks: AtomicUsize,
    /// Requests that failed (after the kill, or during the outage).
    errors: AtomicUsize,
}

/// Where the campaign's server keeps its catalog: the data dir's SQLite file or a PostgreSQL URL.
#[derive(Clone)]
enum Store {
    Sqlite,
    Postgres(String),
}

impl Store {
    fn args(&self) -> Vec<String> {
        match self {
            Store::Sqlite => Vec::new(),
            Store::Postgres(url) => vec!["--metastore".into(), url.clone()],
        }
    }
}

/// The maintenance server flags: the scheduler is off, maintenance runs as `floe maintain`.
const SERVE_ARGS: [&str; 2] = ["--maintenance", "false"];

fn start_server(store: &Store, dir: &Path) -> FloeServer {
    match store {
        Store::Sqlite => FloeServer::start_in_with_args(dir, &SERVE_ARGS),
        Store::Postgres(url) => FloeServer::start_replica(url, dir, &SERVE_ARGS),
    }
}

/// Starts `floe maintain <table> <job...>` on the data dir.
fn spawn_maintain(store: &Store, dir: &Path, table: &str, job: &[&str]) -> Child {
    Command::new(floe_testkit::floe_binary())
        .arg("maintain")
        .arg(table)
        .args(job)
        .arg("--data-dir")
        .arg(dir)
        .args(store.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn floe maintain")
}

/// What the writers of one round share.
struct Round {
    uri: String,
    tables: Vec<TableIdent>,
    next_id: Arc<AtomicI64>,
    ledger: Arc<Ledger>,
    /// Set just before the kill: from then on, a failed request is expected.
    killing: AtomicBool,
    /// Outage mode: a failed request is retried after a pause, until `stop`, instead of ending
    /// the writer (the server stays up while its metadata store is down).
    keep_going: bool,
    stop: AtomicBool,
    /// The campaign-wide acknowledgement count at which the server is killed.
    kill_after: usize,
    reached: Notify,
}

/// Appends one-row batches to `tables[writer % TABLES]` until the server is gone.
async fn writer(writer: usize, round: Arc<Round>) {
    let Round {
        uri,
        tables,
        next_id,
        ledger,
        killing,
        kill_after,
        reached,
        keep_going,
        stop,
    } = &*round;
    let kill_after = *kill_after;
    let catalog = rest_catalog_at(uri).await;
    let table = &tables[writer % tables.len()];
    let name = table.to_string();
    let pause = || tokio::time::sleep(Duration::from_millis(100));
    while !stop.load(Ordering::SeqCst) {
        let ids = [next_id.fetch_add(1, Ordering::SeqCst)];
        ledger.attempts.fetch_add(1, Ordering::SeqCst);
        let current = match catalog.load_table(table).await {
            Ok(current) => current,
            Err(err) => {
                assert!(
                    killing.load(Ordering::SeqCst),
                    "writer {writer}: loading {name} failed with the server up: {err}"
                );
                ledger.errors.fetch_add(1, Ordering::SeqCst);
                if *keep_going {
                    pause().await;
                    continue;
                }
                return;
            }
        };
        match append(&catalog, &current, &ids).await {
            Ok(_) => {
                insert(&ledger.acknowledged, &name, ids[0]);
                if ledger.acks.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                    reached.notify_one();
                }
            }
            Err(err) if err.kind() == ErrorKind::CatalogCommitConflicts => {}
            Err(err) => {
                assert!(
                    killing.load(Ordering::SeqCst),
                    "writer {writer}: append to {name} failed with the server up: {err}"
                );
                insert(&ledger.in_doubt, &name, ids[0]);
                ledger.errors.fetch_add(1, Ordering::SeqCst);
                if *keep_going {
                    pause().await;
                    continue;
                }
                return;
            }
        }
    }
}

fn insert(map: &Mutex<BTreeMap<String, BTreeSet<i64>>>, table: &str, id: i64) {
    map.lock()
        .expect("ledger")
        .entry(table.to_string())
        .or_default()
        .insert(id);
}

/// iceberg-rust's REST client for a server URI (a fresh one per round: no pooled connection to a
/// dead process).
async fn rest_catalog_at(uri: &str) -> iceberg_catalog_rest::RestCatalog {
    use iceberg::CatalogBuilder;
    iceberg_catalog_rest::RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(iceberg::io::LocalFsStorageFactory))
        .load(
            "floe",
            std::collections::HashMap::from([("uri".to_string(), uri.to_string())]),
        )
        .await
        .expect("connect RestCatalog")
}

/// Every file that any snapshot of `table` reaches (manifest lists, manifests, live data and
/// delete files) exists, and manifests and data files have their recorded sizes; the current
/// metadata file exists. Returns the number of distinct files checked.
pub async fn check_referenced_files(table: &Table) -> usize {
    let name = table.identifier().to_string();
    let mut seen: HashSet<String> = HashSet::new();
    let mut check = |location: &str, size: Option<u64>| {
        if !seen.insert(location.to_string()) {
            return;
        }
        let path = local_path(location);
        let found = std::fs::metadata(&path)
            .unwrap_or_else(|err| panic!("{name}: referenced file {location} is gone: {err}"));
        if let Some(size) = size {
            assert_eq!(
                found.len(),
                size,
                "{name}: {location} is not the size its metadata records"
            );
        }
    };
    if let Some(location) = table.metadata_location() {
        check(location, None);
    }
    for snapshot in table.metadata().snapshots() {
        check(snapshot.manifest_list(), None);
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .unwrap_or_else(|err| {
                panic!("{name}: manifest list of {}: {err}", snapshot.snapshot_id())
            });
        for manifest_file in list.entries() {
            check(
                &manifest_file.manifest_path,
                Some(manifest_file.manifest_length as u64),
            );
            let manifest = manifest_file
                .load_manifest(table.file_io())
                .await
                .unwrap_or_else(|err| panic!("{name}: {}: {err}", manifest_file.manifest_path));
            for entry in manifest.entries().iter().filter(|entry| entry.is_alive()) {
                check(
                    entry.data_file().file_path(),
                    Some(entry.data_file().file_size_in_bytes()),
                );
            }
        }
    }
    seen.len()
}

/// Loads every table and checks it against the ledger; returns (lost, files checked).
async fn check_tables(
    uri: &str,
    tables: &[TableIdent],
    ledger: &Ledger,
    when: &str,
) -> (usize, usize) {
    let catalog = rest_catalog_at(uri).await;
    let acknowledged = ledger.acknowledged.lock().expect("ledger").clone();
    let in_doubt = ledger.in_doubt.lock().expect("ledger").clone();
    let (mut lost, mut files) = (0, 0);
    for table in tables {
        let name = table.to_string();
        let loaded = catalog
            .load_table(table)
            .await
            .unwrap_or_else(|err| panic!("{when}: {name} does not load: {err}"));
        let ids = read_ids(&loaded).await;
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for id in &ids {
            *counts.entry(*id).or_default() += 1;
        }
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{when}: {name}: rows twice: {twice:?}");
        let empty = BTreeSet::new();
        let acked = acknowledged.get(&name).unwrap_or(&empty);
        let doubtful = in_doubt.get(&name).unwrap_or(&empty);
        let missing: Vec<_> = acked.iter().filter(|id| !counts.contains_key(id)).collect();
        lost += missing.len();
        let unknown: Vec<_> = counts
            .keys()
            .filter(|id| !acked.contains(id) && !doubtful.contains(id))
            .collect();
        assert!(
            unknown.is_empty(),
            "{when}: {name}: rows no acknowledged or in-doubt append wrote: {unknown:?}"
        );
        assert!(
            missing.is_empty(),
            "{when}: {name}: {} acknowledged appends lost: {missing:?}",
            missing.len()
        );
        files += check_referenced_files(&loaded).await;
    }
    (lost, files)
}

/// `floe scrub` over the whole warehouse; returns the number of files it checked. Panics with the
/// scrub's output if it has an open finding or fails.
fn scrub(store: &Store, dir: &Path) -> usize {
    let mut args = vec!["scrub".to_string(), "--data-dir".into()];
    args.push(dir.to_string_lossy().into_owned());
    args.extend(store.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = floe(&args);
    let files = out
        .lines()
        .filter_map(|line| {
            let before = line.split(" file(s) checked").next()?;
            if before.len() == line.len() {
                return None;
            }
            before.rsplit(' ').next()?.parse::<usize>().ok()
        })
        .sum();
    assert!(ok, "floe scrub found problems:\n{out}\n{err}");
    assert!(out.contains("no open findings"), "{out}");
    files
}

/// `g<generation>.t0` .. `g<generation>.t<TABLES-1>`, with the id/name schema.
async fn create_tables(server: &FloeServer, generation: usize) -> Vec<TableIdent> {
    let catalog = rest_catalog(server).await;
    let namespace = create_namespace(&catalog, &format!("g{generation}")).await;
    // Client back-off long enough that writers sharing a table do not burn the CPU on doomed
    // attempts.
    let properties = [
        ("commit.retry.num-retries", "20"),
        ("commit.retry.min-wait-ms", "20"),
        ("commit.retry.max-wait-ms", "1000"),
    ];
    let mut tables = Vec::new();
    for t in 0..TABLES {
        tables.push(create_table_with(&catalog, &namespace, &format!("t{t}"), &properties).await);
    }
    tables
}

/// The tables of a campaign: the current generation, which the writers append to, and the
/// earlier ones, left alone since, with the snapshot each was left at.
struct Generations {
    current: Vec<TableIdent>,
    retired: Vec<(TableIdent, Option<i64>)>,
}

impl Generations {
    async fn start(server: &FloeServer) -> Self {
        Self {
            current: create_tables(server, 0).await,
            retired: Vec::new(),
        }
    }

    /// Before `round`: every [`ROUNDS_PER_GENERATION`] rounds, fresh tables for the writers.
    async fn before_round(&mut self, server: &FloeServer, round: usize) {
        if round == 0 || !round.is_multiple_of(ROUNDS_PER_GENERATION) {
            return;
        }
        let catalog = rest_catalog(server).await;
        for table in &self.current {
            let loaded = catalog.load_table(table).await.expect("load table");
            let snapshot = loaded.metadata().current_snapshot_id();
            self.retired.push((table.clone(), snapshot));
        }
        self.current = create_tables(server, round / ROUNDS_PER_GENERATION).await;
    }

    /// Every earlier table still loads, at the snapshot it was left at (cheap: one metadata
    /// read each; their rows and files are checked in full at the end).
    async fn check_retired(&self, uri: &str, when: &str) {
        let catalog = rest_catalog_at(uri).await;
        for (table, snapshot) in &self.retired {
            let loaded = catalog
                .load_table(table)
                .await
                .unwrap_or_else(|err| panic!("{when}: {table} does not load: {err}"));
            assert_eq!(
                loaded.metadata().current_snapshot_id(),
                *snapshot,
                "{when}: {table} moved after the writers left it"
            );
        }
    }

    fn all(&self) -> Vec<TableIdent> {
        let retired = self.retired.iter().map(|(table, _)| table.clone());
        retired.chain(self.current.iter().cloned()).collect()
    }
}

async fn kill9_campaign(store: Store, name: &str) -> Figures {
    let (seed, rounds) = campaign_settings(name);
    let mut rng = Rng::new(seed);
    let temp = tempfile::tempdir().expect("temp dir");
    let dir: PathBuf = temp.path().join("data");
    let mut server = start_server(&store, &dir);
    let mut generations = Generations::start(&server).await;

    let mut figures = Figures::default();
    let ledger = Arc::new(Ledger::default());
    let next_id = Arc::new(AtomicI64::new(1));
    for round in 0..rounds {
        let started = std::time::Instant::now();
        generations.before_round(&server, round).await;
        let tables = generations.current.clone();
        let kill_after = rng.range(5, 40) as usize;
        let acks_before = ledger.acks.load(Ordering::SeqCst);
        let shared = Arc::new(Round {
            uri: server.uri(),
            tables: tables.clone(),
            next_id: next_id.clone(),
            ledger: ledger.clone(),
            killing: AtomicBool::new(false),
            keep_going: false,
            stop: AtomicBool::new(false),
            kill_after: acks_before + kill_after,
            reached: Notify::new(),
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(w, shared.clone())))
            .collect();
        // One compaction and one expiry per round, on seeded tables, started with the writers.
        let compact_table = tables[rng.range(0, TABLES as u64) as usize].to_string();
        let expire_table = tables[rng.range(0, TABLES as u64) as usize].to_string();
        let mut maintenance = [
            spawn_maintain(&store, &dir, &compact_table, &["--compact"]),
            spawn_maintain(
                &store,
                &dir,
                &expire_table,
                &[
                    "--expire-snapshots",
                    "--older-than",
                    "1ms",
                    "--retain-last",
                    "2",
                ],
            ),
        ];
        figures.operations += maintenance.len();

        tokio::time::timeout(Duration::from_secs(180), shared.reached.notified())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the writers stopped before the kill point"));
        shared.killing.store(true, Ordering::SeqCst);
        server.kill();
        figures.kills += 1;
        for writer in writers {
            writer.await.expect("writer");
        }
        figures.maintenance_done += tokio::task::spawn_blocking(move || {
            maintenance
                .iter_mut()
                .map(|child| child.wait())
                .filter(|status| status.as_ref().is_ok_and(|status| status.success()))
                .count()
        })
        .await
        .expect("maintenance");

        server.restart();
        let when = format!("round {round}");
        let (lost, _) = check_tables(&server.uri(), &tables, &ledger, &when).await;
        figures.lost += lost;
        generations.check_retired(&server.uri(), &when).await;
        println!(
            "round {round}: killed after {kill_after} acknowledged appends, checked in {:.1?}",
            started.elapsed()
        );
    }

    let started = std::time::Instant::now();
    let all = generations.all();
    let (lost, files) = check_tables(&server.uri(), &all, &ledger, "at the end").await;
    println!("final check in {:.1?}", started.elapsed());
    figures.lost += lost;
    figures.files_checked = files;
    let scrub_store = store.clone();
    let scrub_dir = dir.clone();
    let scrubbed = tokio::task::spawn_blocking(move || scrub(&scrub_store, &scrub_dir))
        .await
        .expect("scrub");
    figures.files_checked += scrubbed;
    println!(
        "floe scrub done {:.1?} after the final check began",
        started.elapsed()
    );
    figures.operations += ledger.attempts.load(Ordering::SeqCst);
    figures.acknowledged = ledger.acks.load(Ordering::SeqCst);
    figures.in_doubt = ledger
        .in_doubt
        .lock()
        .expect("ledger")
        .values()
        .map(BTreeSet::len)
        .sum();
    figures.print(name, seed);
    drop(server);
    figures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_campaign_on_sqlite() {
    let figures = kill9_campaign(Store::Sqlite, "kill -9 of floe serve (SQLite)").await;
    assert_eq!(figures.lost, 0);
    assert_eq!(figures.findings, 0);
    assert!(figures.acknowledged > 0 && figures.files_checked > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_campaign_on_postgres() {
    let url = tokio::task::spawn_blocking(|| {
        floe_testkit::postgres::TestPostgres::shared().create_database()
    })
    .await
    .expect("create database");
    let figures = kill9_campaign(Store::Postgres(url), "kill -9 of floe serve (PostgreSQL)").await;
    assert_eq!(figures.lost, 0);
    assert_eq!(figures.findings, 0);
    assert!(figures.acknowledged > 0 && figures.files_checked > 0);
}

/// PostgreSQL SIGKILLed at seeded moments under the same 8 appending clients, and started again
/// after a seeded pause, while `floe serve` keeps running: during the outage clients get clean
/// errors (503 ServiceUnavailable with Retry-After, never a 500), and once PostgreSQL is back
/// commits succeed again without restarting the server; no acknowledged append is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_campaign() {
    let name = "PostgreSQL killed and restarted under floe serve";
    let (seed, rounds) = campaign_settings(name);
    let mut rng = Rng::new(seed);
    // A cluster of this test's own: it is killed.
    let cluster =
        tokio::task::spawn_blocking(|| Arc::new(floe_testkit::postgres::TestPostgres::start()))
            .await
            .expect("start PostgreSQL");
    let url = {
        let cluster = cluster.clone();
        tokio::task::spawn_blocking(move || cluster.create_database())
            .await
            .expect("create database")
    };
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    // A short acquire timeout keeps the outage's 503s quick (the default is 3 s).
    let server = FloeServer::start_replica(
        &url,
        &dir,
        &[
            "--maintenance",
            "false",
            "--metastore-acquire-timeout-ms",
            "1000",
        ],
    );
    let mut generations = Generations::start(&server).await;
    let ledger = Arc::new(Ledger::default());
    let next_id = Arc::new(AtomicI64::new(1));
    let mut figures = Figures::default();
    for round in 0..rounds {
        let started = std::time::Instant::now();
        generations.before_round(&server, round).await;
        let tables = generations.current.clone();
        let kill_after = rng.range(5, 20) as usize;
        let outage = Duration::from_millis(rng.range(200, 2000));
        let acks_before = ledger.acks.load(Ordering::SeqCst);
        let shared = Arc::new(Round {
            uri: server.uri(),
            tables: tables.clone(),
            next_id: next_id.clone(),
            ledger: ledger.clone(),
            killing: AtomicBool::new(false),
            kill_after: acks_before + kill_after,
            reached: Notify::new(),
            keep_going: true,
            stop: AtomicBool::new(false),
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(w, shared.clone())))
            .collect();
        tokio::time::timeout(Duration::from_secs(180), shared.reached.notified())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the writers stopped before the kill point"));
        shared.killing.store(true, Ordering::SeqCst);
        let down = cluster.clone();
        tokio::task::spawn_blocking(move || down.kill())
            .await
            .expect("kill PostgreSQL");
        figures.kills += 1;
        tokio::time::sleep(outage).await;
        let up = cluster.clone();
        tokio::task::spawn_blocking(move || up.restart())
            .await
            .expect("restart PostgreSQL");
        // Recovery on its own: commits are acknowledged again by the same server process.
        let acks_back = ledger.acks.load(Ordering::SeqCst) + 5;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while ledger.acks.load(Ordering::SeqCst) < acks_back {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: commits did not resume after PostgreSQL came back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        shared.stop.store(true, Ordering::SeqCst);
        for writer in writers {
            writer.await.expect("writer");
        }
        let when = format!("round {round}");
        let (lost, _) = check_tables(&server.uri(), &tables, &ledger, &when).await;
        figures.lost += lost;
        generations.check_retired(&server.uri(), &when).await;
        println!(
            "round {round}: PostgreSQL down {outage:?} after {kill_after} acknowledged appends, \
             checked in {:.1?}",
            started.elapsed()
        );
    }
    let all = generations.all();
    let (lost, files) = check_tables(&server.uri(), &all, &ledger, "at the end").await;
    figures.lost += lost;
    figures.files_checked = files;
    let log = server.log();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    assert!(
        !log.contains("InternalServerError"),
        "the server answered 500 during the outage:\n{log}"
    );
    figures.operations = ledger.attempts.load(Ordering::SeqCst);
    figures.acknowledged = ledger.acks.load(Ordering::SeqCst);
    figures.in_doubt = ledger
        .in_doubt
        .lock()
        .expect("ledger")
        .values()
        .map(BTreeSet::len)
        .sum();
    figures.print(name, seed);
    println!(
        "({} requests failed cleanly during the outages)",
        ledger.errors.load(Ordering::SeqCst)
    );
    assert_eq!(figures.lost, 0);
    assert!(
        ledger.errors.load(Ordering::SeqCst) > 0,
        "no client noticed an outage"
    );
}
