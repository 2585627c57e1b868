//! The maintenance scheduler `floe serve` runs: it maintains tables in the background as they
//! need it, so that no one has to.
//!
//! # The model
//!
//! Work becomes due from what happens to a table, never from walking the tables (see
//! `floe_store::due`): every commit records with its pointer swap what it added (data and delete
//! files, manifests, its oldest snapshot), and each table has one *due row* per kind of job, saying
//! when the job is due next. Every [`SchedulerOptions::interval`], and whenever a table's jobs
//! finish, the scheduler claims due rows with one indexed query, for as many tables as it has free
//! slots ([`SchedulerOptions::concurrency`]), and starts them. It claims only what it can start at
//! once, so that the replicas share a backlog and a job that falls due starts within one interval
//! whenever a slot is free, however long the jobs running in the other slots take. A claim that
//! finds nothing due costs that one query, however many tables there are.
//!
//! For each claimed table it resolves the table's [`policy`](crate::policy) and runs, in order,
//! the claimed jobs:
//!
//! 1. **compaction** when a partition has at least `compaction.min-input-files` small files (or a
//!    data file has deletes): the job plans first and commits nothing when nothing is due. It is
//!    due again once commits have added as many data files as the fullest partition lacks, or at
//!    once when a commit adds delete files;
//! 2. **snapshot expiry** by the table's age and count rules: nothing is committed when nothing
//!    has expired. It is due again when the oldest snapshot left (the current one aside) passes
//!    the age limit;
//! 3. **manifest rewrite** when the current snapshot has at least
//!    `manifest-rewrite.min-manifests` data manifests; due again once as many commits that add
//!    files have come as manifests are missing;
//! 4. **unreferenced-file removal** at most every `unreferenced-files.interval-hours`, judged by
//!    the last successful run in the job records (shared by all replicas), in two phases: a file
//!    unreferenced for `unreferenced-days` is marked, and deleted by a later run once marked for
//!    `non-current-days`. Due again one interval after its run.
//! 5. **scrubbing** at most every `scrub.interval-hours` (judged by the job records, like
//!    unreferenced-file removal): every file the table references is checked for existence and
//!    size (and, with `scrub.deep`, its Parquet footer), at `scrub.max-bytes-per-second` and
//!    `scrub.max-requests-per-second`; the findings go to the metadata store (see
//!    [`crate::scrub`]). Every run is recorded, with its finding counts.
//!
//! A new table, a change of its (or its namespace's) maintenance settings, a table registered
//! over or rolled back, and a change of the default warehouse's configured defaults make every job
//! of the tables concerned due at once. A table whose maintenance (or one job) is off is looked at
//! again only on such a change.
//!
//! A table that does not load (its metadata file lost or damaged) gets the scrub only, by its
//! namespace's and warehouse's settings, so that the scrub records why.
//!
//! A table whose `gc.enabled` is false gets no unreferenced-file removal, and its expiry deletes
//! no file: the scheduler deletes nothing of it (compaction's own uncommitted outputs aside).
//!
//! Tables are maintained [`SchedulerOptions::concurrency`] at a time, which bounds the memory and
//! object-store traffic the scheduler takes. A claim holds its rows for [`SchedulerOptions::claim_hold`]:
//! a replica that dies leaves its claimed jobs to be claimed again after that. Each job also holds
//! the table's maintenance lease (the scrub its own scrub lease), renewed while it runs
//! ([`crate::lease`], [`SchedulerOptions::lease`]), so across all replicas (and `floe maintain`)
//! one job and one scrub run per table at a time; a job whose table's lease another process holds
//! is put off by one lease time-to-live. A job whose lease is lost (it could not be renewed in
//! time, or another replica took it after it expired) stops before its next step and is recorded
//! with the outcome `stopped`. A job that fails is due again after a back-off that doubles per
//! consecutive failure ([`SchedulerOptions::failure_backoff`], at most 6 hours).
//!
//! Every job that changed something or failed is recorded in the metadata store
//! ([`floe_store::MetadataStore::record_job`]), listable with `floe maintenance history`; runs
//! that found nothing to do leave no record, so that the history stays readable. Every job that
//! ran is counted by kind and outcome, with the files and bytes it rewrote, wrote or deleted
//! (see [`crate::metrics`]).

mod jobs;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use floe_commit::{Catalog, Warehouses};
use floe_store::{
    DueItem, DueKind, DueOutcome, JobRecord, NamespacePath, PageRequest, Properties, TableName,
};
use futures::future::BoxFuture;
use tracing::{debug, info, warn};

use crate::metrics::{JobOutcome, job_finished};
use crate::policy::{self, MaintenancePolicy};
use crate::{LeaseSettings, MaintenanceError};
use jobs::{JobResult, JobRun, Next};

/// How long job records are kept.
pub const JOB_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest back-off after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// How often old job records and resolved findings are deleted.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(3600);

/// The kinds of job, as job records name them (the names of [`DueKind`]).
pub mod kind {
    pub const COMPACTION: &str = "compaction";
    pub const SNAPSHOT_EXPIRY: &str = "snapshot-expiry";
    pub const MANIFEST_REWRITE: &str = "manifest-rewrite";
    pub const ORPHAN_REMOVAL: &str = "orphan-removal";
    pub const SCRUB: &str = "scrub";
}

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Time between two claims when no job finishes: how long a job may wait after it fell due
    /// while a slot is free.
    pub interval: Duration,
    /// Tables maintained at once.
    pub concurrency: usize,
    /// At most this many due rows claimed per query (fewer when fewer slots are free).
    pub claim_batch: usize,
    /// How long a claim keeps other replicas off its rows: a claim whose replica died is claimed
    /// again after this. Longer than one table's jobs take, or a slow table's last jobs are
    /// claimed again (and, their lease permitting, run twice).
    pub claim_hold: Duration,
    /// The first back-off after a failed job; doubles per consecutive failure.
    pub failure_backoff: Duration,
    /// How jobs hold and renew their table's lease.
    pub lease: LeaseSettings,
    /// The default warehouse's `floe.maintenance.*` defaults (from the server's configuration;
    /// registered warehouses carry theirs in their own properties).
    pub default_warehouse_properties: Properties,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
            concurrency: 2,
            claim_batch: 32,
            claim_hold: Duration::from_secs(30 * 60),
            failure_backoff: Duration::from_secs(60),
            lease: LeaseSettings::default(),
            default_warehouse_properties: Properties::new(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Tables with a job due.
    pub tables: usize,
    /// Jobs that changed something.
    pub jobs_run: usize,
    pub jobs_failed: usize,
    /// Tables left alone: disabled, another process's lease, or backing off.
    pub skipped: usize,
}

impl PassReport {
    fn add(&mut self, joined: Result<TableOutcome, tokio::task::JoinError>) {
        match joined {
            Ok(table) => {
                self.jobs_run += table.jobs_run;
                self.jobs_failed += table.jobs_failed;
                self.skipped += usize::from(table.skipped);
            }
            Err(err) => warn!(error = %err, "a maintenance task panicked"),
        }
    }
}

/// The tasks maintaining claimed tables, one per table.
type Running = tokio::task::JoinSet<TableOutcome>;

/// A table of a warehouse (`None`: the default one).
type TableKey = (Option<String>, TableName);

/// Consecutive failures of one job on one table.
type JobKey = (Option<String>, TableName, DueKind);

/// What one round of claims started.
struct Claim {
    started: usize,
    /// Whether more may be due: every slot is taken, or the last claim came back full.
    more: bool,
}

pub struct Scheduler {
    warehouses: Arc<Warehouses>,
    options: SchedulerOptions,
    failures: Mutex<HashMap<JobKey, u32>>,
}

impl Scheduler {
    pub fn new(warehouses: Arc<Warehouses>, options: SchedulerOptions) -> Self {
        Self {
            warehouses,
            options,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Maintains tables until the task is dropped or aborted: claims what is due every
    /// interval and whenever a table's jobs finish, as many tables as there are free slots. The
    /// first claim comes after one interval, so that a starting server serves before it
    /// maintains.
    pub async fn run(self: Arc<Self>) {
        self.prepare().await;
        let mut ticks = tokio::time::interval(self.options.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut housekept: Option<Instant> = None;
        let mut housekeeping = tokio::task::JoinSet::new();
        let mut running = Running::new();
        loop {
            // Claims do not wait for running jobs: a long compaction takes one slot, and work
            // that falls due meanwhile starts within an interval in the others.
            tokio::select! {
                _ = ticks.tick() => {
                    // On a task of its own (dropped with this one): deleting a month of job
                    // records may take a while, and claims must not wait for it.
                    if housekept.is_none_or(|at| at.elapsed() >= HOUSEKEEPING_EVERY) {
                        let scheduler = self.clone();
                        housekeeping.spawn(async move { scheduler.housekeeping().await });
                        housekept = Some(Instant::now());
                    }
                }
                Some(_) = housekeeping.join_next() => continue,
                Some(joined) = running.join_next() => {
                    let mut report = PassReport::default();
                    report.add(joined);
                    debug!(?report, "maintenance: a table's jobs finished");
                }
            }
            self.start_due(&mut running, None).await;
        }
    }

    /// Once per process, before the first claim: gives tables without due rows theirs, and makes
    /// every default-warehouse table due if the configured defaults changed since the last start.
    pub async fn prepare(&self) {
        let store = self.warehouses.default_catalog().store();
        match store.due().adopt_unscheduled_tables().await {
            Ok(0) => {}
            Ok(adopted) => info!(
                adopted,
                "maintenance: tables without due rows were given theirs"
            ),
            Err(err) => {
                warn!(error = %err, "maintenance: could not look for tables without due rows")
            }
        }
        let defaults = policy::settings_fingerprint(&self.options.default_warehouse_properties);
        match store.due().sync_default_settings(&defaults).await {
            Ok(0) => {}
            Ok(rows) => info!(
                rows,
                "maintenance: the default warehouse's maintenance defaults changed; every table is due"
            ),
            Err(err) => {
                warn!(error = %err, "maintenance: could not compare the maintenance defaults")
            }
        }
    }

    async fn housekeeping(&self) {
        let store = self.warehouses.default_catalog().store();
        if let Err(err) = store.expire_jobs(JOB_RETENTION).await {
            warn!(error = %err, "could not expire old maintenance job records");
        }
        if let Err(err) = store.scrub().expire_findings(JOB_RETENTION).await {
            warn!(error = %err, "could not expire old resolved scrub findings");
        }
    }

    /// One pass: claims what is due and runs it, `concurrency` tables at a time, until nothing
    /// is due. Each table is maintained at most once per pass: one whose jobs come due again
    /// while the pass runs (put off briefly, made due by a commit) is left for the next.
    pub async fn run_pass(self: &Arc<Self>) -> PassReport {
        let mut report = PassReport::default();
        let mut running = Running::new();
        let mut seen = BTreeSet::new();
        let mut claiming = true;
        loop {
            if claiming {
                let claim = self.start_due(&mut running, Some(&mut seen)).await;
                report.tables += claim.started;
                claiming = claim.more;
            }
            match running.join_next().await {
                Some(joined) => report.add(joined),
                None => return report,
            }
        }
    }

    /// Claims due tables while fewer than `concurrency` are being maintained, and starts each:
    /// a replica claims only what it starts at once, so that replicas share a backlog. In a
    /// pass, `seen` holds the tables it has started; one claimed again is released, and the
    /// pass claims no more.
    async fn start_due(
        self: &Arc<Self>,
        running: &mut Running,
        mut seen: Option<&mut BTreeSet<TableKey>>,
    ) -> Claim {
        let store = self.warehouses.default_catalog().store();
        let mut started = 0;
        loop {
            let free = self
                .options
                .concurrency
                .max(1)
                .saturating_sub(running.len());
            if free == 0 {
                return Claim {
                    started,
                    more: true,
                };
            }
            let wanted = free.min(self.options.claim_batch.max(1));
            let claimed = match store.due().claim_due(wanted, self.options.claim_hold).await {
                Ok(claimed) => claimed,
                Err(err) => {
                    warn!(error = %err, "maintenance: cannot claim due jobs");
                    return Claim {
                        started,
                        more: false,
                    };
                }
            };
            // A claim takes whole tables: at most `wanted` of them, with all their due rows.
            let mut more = claimed.len() >= wanted;
            let mut by_table: BTreeMap<TableKey, Vec<DueItem>> = BTreeMap::new();
            for item in claimed {
                by_table
                    .entry((item.warehouse.clone(), item.table.clone()))
                    .or_default()
                    .push(item);
            }
            if let Some(seen) = seen.as_deref_mut() {
                let again: Vec<TableKey> = by_table
                    .keys()
                    .filter(|key| !seen.insert((*key).clone()))
                    .cloned()
                    .collect();
                for key in again {
                    more = false;
                    for item in by_table.remove(&key).unwrap_or_default() {
                        self.put_off(&item, Duration::ZERO).await;
                    }
                }
            }
            started += self.start_tables(by_table, running).await;
            if !more {
                return Claim { started, more };
            }
        }
    }

    /// Starts one task per claimed table, running its claimed jobs in order.
    async fn start_tables(
        self: &Arc<Self>,
        by_table: BTreeMap<TableKey, Vec<DueItem>>,
        running: &mut Running,
    ) -> usize {
        // Each warehouse's catalog and settings once per claim, not once per table.
        let mut warehouses = HashMap::new();
        for (warehouse, _) in by_table.keys() {
            if !warehouses.contains_key(warehouse) {
                let found = self.warehouse(warehouse.as_deref()).await;
                warehouses.insert(warehouse.clone(), found);
            }
        }
        let started = by_table.len();
        for ((warehouse, table), mut items) in by_table {
            items.sort_by_key(|item| item.kind);
            let scheduler = self.clone();
            let found = warehouses
                .get(&warehouse)
                .cloned()
                .unwrap_or_else(|| Err("not resolved".into()));
            running.spawn(async move {
                scheduler
                    .maintain_table(warehouse.as_deref(), found, &table, &items)
                    .await
            });
        }
        started
    }

    /// The warehouse's catalog and properties (its `floe.maintenance.*` defaults among them).
    async fn warehouse(&self, name: Option<&str>) -> Result<(Arc<Catalog>, Properties), String> {
        let Some(name) = name else {
            return Ok((
                self.warehouses.default_catalog().clone(),
                self.options.default_warehouse_properties.clone(),
            ));
        };
        let catalog = self
            .warehouses
            .catalog(name)
            .await
            .map_err(|err| err.to_string())?;
        let store = self.warehouses.default_catalog().store();
        let properties = store
            .load_warehouse(name)
            .await
            .map_err(|err| err.to_string())?
            .properties;
        Ok((catalog, properties))
    }

    async fn maintain_table(
        &self,
        warehouse_name: Option<&str>,
        warehouse: Result<(Arc<Catalog>, Properties), String>,
        table: &TableName,
        items: &[DueItem],
    ) -> TableOutcome {
        let mut outcome = TableOutcome::default();
        let (catalog, warehouse_properties) = match warehouse {
            Ok(found) => found,
            Err(err) => {
                warn!(warehouse = warehouse_name, %table, error = %err, "maintenance: cannot open the table's warehouse");
                for item in items {
                    self.put_off(item, self.options.failure_backoff).await;
                }
                outcome.skipped = true;
                return outcome;
            }
        };
        let warehouse = catalog.warehouse().name().to_string();
        let policy = match table_policy(&catalog, table, &warehouse_properties).await {
            Ok(policy) => policy,
            Err(err) => {
                warn!(warehouse, %table, error = %err, "cannot resolve the table's maintenance settings");
                // A table that does not load may have lost its metadata file: the scrub reads
                // what the pointer names itself, so it still runs, to record why.
                scrub_only_policy(&catalog, table, &warehouse_properties).await
            }
        };
        let mut busy = false;
        for item in items {
            let enabled = policy.as_ref().is_some_and(|policy| match item.kind {
                DueKind::Compaction => policy.compaction,
                DueKind::SnapshotExpiry => policy.snapshot_expiry,
                DueKind::ManifestRewrite => policy.manifest_rewrite,
                DueKind::OrphanRemoval => policy.unreferenced_files,
                DueKind::Scrub => policy.scrub,
            });
            let (Some(policy), true) = (&policy, enabled) else {
                // Off: looked at again when the settings change (which makes it due).
                self.finish(item, Next::ON_COMMIT).await;
                outcome.skipped = true;
                continue;
            };
            if busy {
                self.put_off(item, self.options.lease.ttl).await;
                continue;
            }
            let job = item.kind.as_str();
            let started_at_ms = now_ms();
            // Boxed as `Send` futures: without the erasure the compiler cannot prove the jobs'
            // futures `Send` for every lifetime (rust-lang/rust#110338), which `spawn` needs.
            let job_future: BoxFuture<'_, JobResult> = match item.kind {
                DueKind::Compaction => Box::pin(jobs::run_compaction(&catalog, table, policy)),
                DueKind::SnapshotExpiry => Box::pin(jobs::run_expiry(&catalog, table, policy)),
                DueKind::ManifestRewrite => {
                    Box::pin(jobs::run_manifest_rewrite(&catalog, table, policy))
                }
                DueKind::OrphanRemoval => Box::pin(jobs::run_orphan_removal(
                    &catalog, &warehouse, table, policy,
                )),
                DueKind::Scrub => Box::pin(jobs::run_scrub(&catalog, &warehouse, table, policy)),
            };
            let result = crate::lease::with_settings(self.options.lease, job_future).await;
            let record = |outcome: &str, error: Option<String>, stats: Properties| JobRecord {
                id: uuid::Uuid::now_v7().to_string(),
                warehouse: warehouse.clone(),
                table: table.clone(),
                kind: job.to_string(),
                trigger: "schedule".into(),
                started_at_ms,
                finished_at_ms: Some(now_ms()),
                outcome: outcome.into(),
                error,
                stats,
            };
            let key = (item.warehouse.clone(), table.clone(), item.kind);
            match result {
                Ok(JobRun { stats: None, next }) => {
                    self.succeeded(&key);
                    self.finish(item, next).await;
                }
                Ok(JobRun {
                    stats: Some(stats),
                    next,
                }) => {
                    self.succeeded(&key);
                    job_finished(job, JobOutcome::Succeeded, &stats);
                    outcome.jobs_run += 1;
                    info!(warehouse, %table, job, ?stats, "maintenance job done");
                    save(&catalog, &record("succeeded", None, stats)).await;
                    self.finish(item, next).await;
                }
                // Another replica (or `floe maintain`) is on this table: its turn. The table's
                // other jobs wait for it too.
                Err(MaintenanceError::Busy(_)) => {
                    job_finished(job, JobOutcome::Busy, &Properties::new());
                    outcome.skipped = true;
                    busy = true;
                    self.put_off(item, self.options.lease.ttl).await;
                }
                // Another replica may be running it now; looked at again after one lease
                // time-to-live. Recorded, so that a job that keeps running out of time is seen.
                Err(MaintenanceError::LeaseLost(message)) => {
                    job_finished(job, JobOutcome::Stopped, &Properties::new());
                    warn!(warehouse, %table, job, %message, "maintenance job stopped: its lease was lost");
                    save(
                        &catalog,
                        &record("stopped", Some(message), Properties::new()),
                    )
                    .await;
                    busy = true;
                    self.put_off(item, self.options.lease.ttl).await;
                }
                // A writer changed what the job was replacing: the writer wins, nothing was
                // committed, and the job plans again from the new state one interval later (not
                // at once: a table written without pause would keep a slot retrying). Not a
                // failure.
                Err(MaintenanceError::Conflict(message)) => {
                    job_finished(job, JobOutcome::Yielded, &Properties::new());
                    info!(warehouse, %table, job, %message, "maintenance job yielded to a concurrent writer");
                    self.put_off(item, self.options.interval).await;
                }
                Err(err) => {
                    job_finished(job, JobOutcome::Failed, &Properties::new());
                    let delay = self.failed(key);
                    outcome.jobs_failed += 1;
                    warn!(warehouse, %table, job, error = %err, retry_in = ?delay, "maintenance job failed");
                    save(
                        &catalog,
                        &record("failed", Some(err.to_string()), Properties::new()),
                    )
                    .await;
                    self.put_off(item, delay).await;
                }
            }
        }
        outcome
    }

    /// Writes back when the claimed job is due next.
    async fn finish(&self, item: &DueItem, next: Next) {
        let outcome = DueOutcome {
            next_due_ms: next.due_ms,
            threshold: next.threshold,
            period_ms: next.period_ms,
            consumed: item.pending,
        };
        let store = self.warehouses.default_catalog().store();
        match store.due().finish_due(item, &outcome).await {
            Ok(true) => {}
            // Made due again meanwhile (a settings change), or claimed by another replica after
            // the hold: their turn decides.
            Ok(false) => {
                debug!(table = %item.table, kind = %item.kind, "a due row changed while its job ran")
            }
            Err(err) => {
                warn!(table = %item.table, kind = %item.kind, error = %err, "could not record when a maintenance job is due next; it comes due again after its claim")
            }
        }
    }

    /// Makes a claimed job due again after `delay`, counters untouched.
    async fn put_off(&self, item: &DueItem, delay: Duration) {
        let at = now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        let store = self.warehouses.default_catalog().store();
        if let Err(err) = store.due().postpone_due(item, at).await {
            warn!(table = %item.table, kind = %item.kind, error = %err, "could not put a maintenance job off; it comes due again after its claim");
        }
    }

    fn succeeded(&self, key: &JobKey) {
        self.failure_map().remove(key);
    }

    /// Records a failure and returns how long the job now waits.
    fn failed(&self, key: JobKey) -> Duration {
        let mut map = self.failure_map();
        let failures = map.entry(key).or_insert(0);
        *failures += 1;
        self.options
            .failure_backoff
            .saturating_mul(2u32.saturating_pow(*failures - 1))
            .min(MAX_BACKOFF)
    }

    fn failure_map(&self) -> std::sync::MutexGuard<'_, HashMap<JobKey, u32>> {
        // Single-call updates cannot leave the map half-written, so a poisoned lock is usable.
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct TableOutcome {
    jobs_run: usize,
    jobs_failed: usize,
    skipped: bool,
}

/// The table's resolved policy; `None` when maintenance is off for it.
async fn table_policy(
    catalog: &Catalog,
    table: &TableName,
    warehouse_properties: &Properties,
) -> Result<Option<MaintenancePolicy>, String> {
    let namespace = catalog
        .load_namespace(&table.namespace)
        .await
        .map_err(|err| err.to_string())?;
    let loaded = catalog
        .load_table(table)
        .await
        .map_err(|err| err.to_string())?;
    let table_properties: BTreeMap<String, String> = loaded
        .metadata()
        .properties()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut policy = policy::resolve(warehouse_properties, &namespace, &table_properties)?;
    // `gc.enabled=false`: nothing of this table is deleted on a schedule. Unreferenced-file
    // removal would refuse anyway; expiry still runs and deletes nothing (see `expire`).
    if !floe_commit::gc_enabled(loaded.metadata()) {
        policy.unreferenced_files = false;
    }
    Ok(policy.enabled.then_some(policy))
}

/// The policy of a table that does not load, from its namespace's and warehouse's settings, with
/// every job but the scrub off; `None` when that is off too (or the namespace is gone).
async fn scrub_only_policy(
    catalog: &Catalog,
    table: &TableName,
    warehouse_properties: &Properties,
) -> Option<MaintenancePolicy> {
    let namespace = catalog.load_namespace(&table.namespace).await.ok()?;
    let mut policy = policy::resolve(warehouse_properties, &namespace, &Properties::new()).ok()?;
    policy.compaction = false;
    policy.snapshot_expiry = false;
    policy.manifest_rewrite = false;
    policy.unreferenced_files = false;
    (policy.enabled && policy.scrub).then_some(policy)
}

async fn save(catalog: &Catalog, record: &JobRecord) {
    if let Err(err) = catalog.store().record_job(record).await {
        warn!(table = %record.table, kind = %record.kind, error = %err, "could not record a maintenance job");
    }
}

/// Every table of every namespace of the warehouse, nested namespaces included, in name order.
/// A namespace that disappears meanwhile is skipped.
pub async fn all_tables(catalog: &Catalog) -> Vec<TableName> {
    let mut tables = Vec::new();
    let mut pending: Vec<Option<NamespacePath>> = vec![None];
    while let Some(parent) = pending.pop() {
        let all = PageRequest::default();
        match catalog.list_namespaces(parent.as_deref(), &all).await {
            Ok(page) => pending.extend(page.items.into_iter().map(Some)),
            Err(err) => debug!(error = %err, "listing namespaces during a maintenance pass"),
        }
        let Some(namespace) = parent else { continue };
        match catalog.list_tables(&namespace, &all).await {
            Ok(page) => tables.extend(
                page.items
                    .into_iter()
                    .map(|name| TableName::new(namespace.clone(), name)),
            ),
            Err(err) => debug!(error = %err, "listing tables during a maintenance pass"),
        }
    }
    tables.sort();
    tables
}

pub(crate) fn now_ms() -> i64 {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(millis).unwrap_or(i64::MAX)
}
