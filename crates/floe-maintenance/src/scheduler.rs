//! The maintenance scheduler `floe serve` runs: it finds tables due for work and maintains them in
//! the background, so that no one has to.
//!
//! # The model
//!
//! Every [`SchedulerOptions::interval`] a pass walks every warehouse, namespace and table. For each
//! table it resolves the table's [`policy`](crate::policy) and runs, in order, what is due:
//!
//! 1. **compaction** when a partition has at least `compaction.min-input-files` small files (or a
//!    data file has deletes): the job plans first and commits nothing when nothing is due;
//! 2. **snapshot expiry** by the table's age and count rules: nothing is committed when nothing
//!    has expired;
//! 3. **manifest rewrite** when the current snapshot has at least
//!    `manifest-rewrite.min-manifests` data manifests;
//! 4. **unreferenced-file removal** at most every `unreferenced-files.interval-hours`, judged by
//!    the last successful run in the job records (shared by all replicas), in two phases: a file
//!    unreferenced for `unreferenced-days` is marked, and deleted by a later run once marked for
//!    `non-current-days`.
//! 5. **scrubbing** at most every `scrub.interval-hours` (judged by the job records, like
//!    unreferenced-file removal): every file the table references is checked for existence and
//!    size (and, with `scrub.deep`, its Parquet footer), at `scrub.max-bytes-per-second` and
//!    `scrub.max-requests-per-second`; the findings go to the metadata store (see
//!    [`crate::scrub`]). Every run is recorded, with its finding counts.
//!
//! A table that does not load (its metadata file lost or damaged) gets the scrub only, by its
//! namespace's and warehouse's settings, so that the scrub records why.
//!
//! A table whose `gc.enabled` is false gets no unreferenced-file removal, and its expiry deletes
//! no file: the scheduler deletes nothing of it (compaction's own uncommitted outputs aside).
//!
//! Tables are maintained [`SchedulerOptions::concurrency`] at a time, which bounds the memory and
//! object-store traffic a pass takes. Each job holds the table's maintenance lease (the scrub its
//! own scrub lease), renewed while it runs ([`crate::lease`], [`SchedulerOptions::lease`]), so
//! across all replicas one job and one scrub run per table at a time; a table whose lease another
//! replica holds is skipped until the next pass. A
//! job whose lease is lost (it could not be renewed in time, or another replica took it after it
//! expired) stops before its next step and is recorded with the outcome `stopped`. A job that fails is retried on later passes after a back-off that
//! doubles per consecutive failure ([`SchedulerOptions::failure_backoff`], at most 6 hours).
//!
//! Every job that changed something or failed is recorded in the metadata store
//! ([`floe_store::MetadataStore::record_job`]), listable with `floe maintenance history`; passes
//! that found nothing to do leave no record, so that the history stays readable. Every job that
//! ran is counted by kind and outcome, with the files and bytes it rewrote, wrote or deleted
//! (see [`crate::metrics`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use floe_commit::{Catalog, Warehouses};
use floe_store::{JobFilter, JobRecord, NamespacePath, PageRequest, Properties, TableName};
use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::metrics::{JobOutcome, job_finished};
use crate::policy::{self, MaintenancePolicy};
use crate::{
    CompactOptions, ExpireOptions, LeaseSettings, MaintenanceError, ManifestRewriteOptions,
    OrphanOptions, ScrubOptions, compact, expire_snapshots, remove_orphan_files, rewrite_manifests,
    scrub_table,
};

/// How long job records are kept.
pub const JOB_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest back-off after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// The kinds of job, as job records name them.
pub mod kind {
    pub const COMPACTION: &str = "compaction";
    pub const SNAPSHOT_EXPIRY: &str = "snapshot-expiry";
    pub const MANIFEST_REWRITE: &str = "manifest-rewrite";
    pub const ORPHAN_REMOVAL: &str = "orphan-removal";
    pub const SCRUB: &str = "scrub";
}

#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Time between the starts of two passes.
    pub interval: Duration,
    /// Tables maintained at once.
    pub concurrency: usize,
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
            failure_backoff: Duration::from_secs(60),
            lease: LeaseSettings::default(),
            default_warehouse_properties: Properties::new(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    pub tables: usize,
    /// Jobs that changed something.
    pub jobs_run: usize,
    pub jobs_failed: usize,
    /// Tables left alone: disabled, another replica's lease, or backing off.
    pub skipped: usize,
}

/// Consecutive failures of one job on one table, and when it may run again.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Instant,
}

type JobKey = (String, TableName, &'static str);

pub struct Scheduler {
    warehouses: Arc<Warehouses>,
    options: SchedulerOptions,
    backoff: Mutex<HashMap<JobKey, Backoff>>,
}

impl Scheduler {
    pub fn new(warehouses: Arc<Warehouses>, options: SchedulerOptions) -> Self {
        Self {
            warehouses,
            options,
            backoff: Mutex::new(HashMap::new()),
        }
    }

    /// Runs passes until the task is dropped or aborted. The first pass starts after one
    /// interval, so that a starting server serves before it maintains.
    pub async fn run(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(self.options.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let report = self.run_pass().await;
            if report.jobs_run + report.jobs_failed > 0 {
                info!(
                    tables = report.tables,
                    jobs = report.jobs_run,
                    failed = report.jobs_failed,
                    "maintenance pass done"
                );
            } else {
                debug!(tables = report.tables, "maintenance pass: nothing due");
            }
            let store = self.warehouses.default_catalog().store();
            if let Err(err) = store.expire_jobs(JOB_RETENTION).await {
                warn!(error = %err, "could not expire old maintenance job records");
            }
            if let Err(err) = store.scrub().expire_findings(JOB_RETENTION).await {
                warn!(error = %err, "could not expire old resolved scrub findings");
            }
        }
    }

    /// One pass over every table of every warehouse.
    pub async fn run_pass(self: &Arc<Self>) -> PassReport {
        let mut report = PassReport::default();
        let warehouses = match self.warehouses.list().await {
            Ok(warehouses) => warehouses,
            Err(err) => {
                warn!(error = %err, "maintenance pass: cannot list warehouses");
                return report;
            }
        };
        let permits = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut running = tokio::task::JoinSet::new();
        for info in warehouses {
            let catalog = match self.warehouses.catalog(&info.name).await {
                Ok(catalog) => catalog,
                Err(err) => {
                    warn!(warehouse = %info.name, error = %err, "maintenance pass: cannot open warehouse");
                    continue;
                }
            };
            let warehouse_properties = self.warehouse_properties(&info.name, info.default).await;
            for table in all_tables(&catalog).await {
                report.tables += 1;
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let scheduler = self.clone();
                let catalog = catalog.clone();
                let warehouse = info.name.clone();
                let properties = warehouse_properties.clone();
                running.spawn(async move {
                    let outcome = scheduler
                        .maintain_table(&warehouse, &catalog, &table, &properties)
                        .await;
                    drop(permit);
                    outcome
                });
            }
        }
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok(table) => {
                    report.jobs_run += table.jobs_run;
                    report.jobs_failed += table.jobs_failed;
                    report.skipped += usize::from(table.skipped);
                }
                Err(err) => warn!(error = %err, "a maintenance task panicked"),
            }
        }
        report
    }

    /// The registered warehouse's properties (its `floe.maintenance.*` defaults among them);
    /// none for the configured default warehouse.
    async fn warehouse_properties(&self, name: &str, default: bool) -> Properties {
        if default {
            return self.options.default_warehouse_properties.clone();
        }
        let store = self.warehouses.default_catalog().store();
        match store.load_warehouse(name).await {
            Ok(record) => record.properties,
            Err(err) => {
                warn!(warehouse = name, error = %err, "cannot read warehouse settings");
                Properties::new()
            }
        }
    }

    async fn maintain_table(
        &self,
        warehouse: &str,
        catalog: &Catalog,
        table: &TableName,
        warehouse_properties: &Properties,
    ) -> TableOutcome {
        let mut outcome = TableOutcome::default();
        let policy = match table_policy(catalog, table, warehouse_properties).await {
            Ok(Some(policy)) => policy,
            Ok(None) => {
                outcome.skipped = true;
                return outcome;
            }
            Err(err) => {
                warn!(warehouse, %table, error = %err, "cannot resolve the table's maintenance settings");
                // A table that does not load may have lost its metadata file: the scrub reads
                // what the pointer names itself, so it still runs, to record why.
                match scrub_only_policy(catalog, table, warehouse_properties).await {
                    Some(policy) => policy,
                    None => {
                        outcome.skipped = true;
                        return outcome;
                    }
                }
            }
        };
        let jobs: [(&'static str, bool); 5] = [
            (kind::COMPACTION, policy.compaction),
            (kind::SNAPSHOT_EXPIRY, policy.snapshot_expiry),
            (kind::MANIFEST_REWRITE, policy.manifest_rewrite),
            (kind::ORPHAN_REMOVAL, policy.unreferenced_files),
            (kind::SCRUB, policy.scrub),
        ];
        for (job, enabled) in jobs {
            let key = (warehouse.to_string(), table.clone(), job);
            if !enabled || self.backing_off(&key) {
                continue;
            }
            let started_at_ms = now_ms();
            // Boxed as `Send` futures: without the erasure the compiler cannot prove the jobs'
            // futures `Send` for every lifetime (rust-lang/rust#110338), which `spawn` needs.
            let job_future: BoxFuture<'_, JobResult> = match job {
                kind::COMPACTION => Box::pin(run_compaction(catalog, table, &policy)),
                kind::SNAPSHOT_EXPIRY => Box::pin(run_expiry(catalog, table, &policy)),
                kind::MANIFEST_REWRITE => Box::pin(run_manifest_rewrite(catalog, table, &policy)),
                kind::ORPHAN_REMOVAL => {
                    Box::pin(run_orphan_removal(catalog, warehouse, table, &policy))
                }
                _ => Box::pin(run_scrub(catalog, warehouse, table, &policy)),
            };
            let result = crate::lease::with_settings(self.options.lease, job_future).await;
            let record = |outcome: &str, error: Option<String>, stats: Properties| JobRecord {
                id: uuid::Uuid::now_v7().to_string(),
                warehouse: warehouse.to_string(),
                table: table.clone(),
                kind: job.to_string(),
                trigger: "schedule".into(),
                started_at_ms,
                finished_at_ms: Some(now_ms()),
                outcome: outcome.into(),
                error,
                stats,
            };
            match result {
                Ok(None) => self.succeeded(&key),
                Ok(Some(stats)) => {
                    self.succeeded(&key);
                    job_finished(job, JobOutcome::Succeeded, &stats);
                    outcome.jobs_run += 1;
                    info!(warehouse, %table, job, ?stats, "maintenance job done");
                    save(catalog, &record("succeeded", None, stats)).await;
                }
                // Another replica (or `floe maintain`) is on this table: its turn.
                Err(MaintenanceError::Busy(_)) => {
                    job_finished(job, JobOutcome::Busy, &Properties::new());
                    outcome.skipped = true;
                    break;
                }
                // Another replica may be running it now; the next pass looks again. Recorded, so
                // that a job that keeps running out of time is seen.
                Err(MaintenanceError::LeaseLost(message)) => {
                    job_finished(job, JobOutcome::Stopped, &Properties::new());
                    warn!(warehouse, %table, job, %message, "maintenance job stopped: its lease was lost");
                    save(
                        catalog,
                        &record("stopped", Some(message), Properties::new()),
                    )
                    .await;
                    break;
                }
                // A writer changed what the job was replacing: the writer wins, nothing was
                // committed, and the next pass plans again from the new state. Not a failure.
                Err(MaintenanceError::Conflict(message)) => {
                    job_finished(job, JobOutcome::Yielded, &Properties::new());
                    info!(warehouse, %table, job, %message, "maintenance job yielded to a concurrent writer");
                }
                Err(err) => {
                    job_finished(job, JobOutcome::Failed, &Properties::new());
                    let delay = self.failed(key);
                    outcome.jobs_failed += 1;
                    warn!(warehouse, %table, job, error = %err, retry_in = ?delay, "maintenance job failed");
                    save(
                        catalog,
                        &record("failed", Some(err.to_string()), Properties::new()),
                    )
                    .await;
                }
            }
        }
        outcome
    }

    fn backing_off(&self, key: &JobKey) -> bool {
        self.backoff_map()
            .get(key)
            .is_some_and(|backoff| Instant::now() < backoff.until)
    }

    fn succeeded(&self, key: &JobKey) {
        self.backoff_map().remove(key);
    }

    /// Records a failure and returns how long the job now waits.
    fn failed(&self, key: JobKey) -> Duration {
        let mut map = self.backoff_map();
        let failures = map.get(&key).map_or(0, |backoff| backoff.failures) + 1;
        let delay = self
            .options
            .failure_backoff
            .saturating_mul(2u32.saturating_pow(failures - 1))
            .min(MAX_BACKOFF);
        map.insert(
            key,
            Backoff {
                failures,
                until: Instant::now() + delay,
            },
        );
        delay
    }

    fn backoff_map(&self) -> std::sync::MutexGuard<'_, HashMap<JobKey, Backoff>> {
        // Single-call updates cannot leave the map half-written, so a poisoned lock is usable.
        self.backoff
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

type JobResult = Result<Option<Properties>, MaintenanceError>;

async fn run_compaction(
    catalog: &Catalog,
    table: &TableName,
    policy: &MaintenancePolicy,
) -> JobResult {
    let options = CompactOptions {
        target_file_size_bytes: Some(policy.target_file_size_bytes),
        min_input_files: Some(policy.min_input_files),
        max_commit_bytes: Some(policy.max_commit_bytes),
        ..CompactOptions::default()
    };
    let report = compact(catalog, table, &options).await?;
    if report.snapshot_id.is_none() {
        return Ok(None);
    }
    Ok(Some(stats(&[
        ("files-in", report.input_files as u64),
        ("bytes-in", report.input_bytes),
        ("commits", report.commits as u64),
        ("files-out", report.output_files as u64),
        ("bytes-out", report.output_bytes),
        ("delete-files-removed", report.removed_delete_files as u64),
    ])))
}

async fn run_expiry(catalog: &Catalog, table: &TableName, policy: &MaintenancePolicy) -> JobResult {
    let options = ExpireOptions {
        older_than: Some(Duration::from_secs(
            policy.max_snapshot_age_hours.saturating_mul(3600),
        )),
        retain_last: Some(policy.min_snapshots_to_keep),
        ..ExpireOptions::default()
    };
    let report = expire_snapshots(catalog, table, &options).await?;
    if report.expired_snapshots.is_empty() && report.removed_refs.is_empty() {
        return Ok(None);
    }
    Ok(Some(stats(&[
        ("snapshots-expired", report.expired_snapshots.len() as u64),
        ("refs-removed", report.removed_refs.len() as u64),
        ("files-deleted", report.deleted_files.len() as u64),
        ("bytes-deleted", report.deleted_bytes),
    ])))
}

async fn run_manifest_rewrite(
    catalog: &Catalog,
    table: &TableName,
    policy: &MaintenancePolicy,
) -> JobResult {
    let plan = rewrite_manifests(
        catalog,
        table,
        &ManifestRewriteOptions {
            dry_run: true,
            ..ManifestRewriteOptions::default()
        },
    )
    .await?;
    if plan.data_manifests < policy.min_manifests || plan.manifests_replaced == 0 {
        return Ok(None);
    }
    let report = rewrite_manifests(catalog, table, &ManifestRewriteOptions::default()).await?;
    if report.snapshot_id.is_none() {
        return Ok(None);
    }
    Ok(Some(stats(&[
        ("manifests-in", report.manifests_replaced as u64),
        ("bytes-in", report.bytes_replaced),
        ("manifests-out", report.manifests_created as u64),
        ("bytes-out", report.bytes_created),
    ])))
}

/// Whether a job spaced out by `interval_hours` is due: no run succeeded within the interval, on
/// any replica (the job records tell).
async fn due(
    catalog: &Catalog,
    warehouse: &str,
    table: &TableName,
    job: &str,
    interval_hours: u64,
) -> Result<bool, MaintenanceError> {
    let last = catalog
        .store()
        .list_jobs(
            &JobFilter {
                warehouse: Some(warehouse.to_string()),
                table: Some(table.clone()),
                kind: Some(job.to_string()),
            },
            10,
        )
        .await?
        .into_iter()
        .find(|job| job.outcome == "succeeded");
    let interval_ms = i64::try_from(interval_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    Ok(last.is_none_or(|job| now_ms().saturating_sub(job.started_at_ms) >= interval_ms))
}

async fn run_orphan_removal(
    catalog: &Catalog,
    warehouse: &str,
    table: &TableName,
    policy: &MaintenancePolicy,
) -> JobResult {
    let interval = policy.orphan_interval_hours;
    if !due(catalog, warehouse, table, kind::ORPHAN_REMOVAL, interval).await? {
        return Ok(None);
    }
    // Two phases, as S3 Tables: marked once past the floor, deleted after the delay.
    let options = OrphanOptions {
        older_than: Duration::from_secs(policy.unreferenced_days.saturating_mul(24 * 3600)),
        delete_after_marked: Some(Duration::from_secs(
            policy.non_current_days.saturating_mul(24 * 3600),
        )),
        ..OrphanOptions::default()
    };
    let report = remove_orphan_files(catalog, table, &options).await?;
    // Recorded even when nothing went: the record is what spaces the runs out.
    Ok(Some(stats(&[
        ("files-listed", report.listed as u64),
        ("files-deleted", report.deleted_files.len() as u64),
        ("bytes-deleted", report.deleted_bytes),
        ("files-too-young", report.too_young as u64),
        ("files-marked-pending", report.marked_pending as u64),
    ])))
}

async fn run_scrub(
    catalog: &Catalog,
    warehouse: &str,
    table: &TableName,
    policy: &MaintenancePolicy,
) -> JobResult {
    if !due(
        catalog,
        warehouse,
        table,
        kind::SCRUB,
        policy.scrub_interval_hours,
    )
    .await?
    {
        return Ok(None);
    }
    let options = ScrubOptions {
        deep: policy.scrub_deep,
        limits: policy.scrub_limits,
        ..ScrubOptions::default()
    };
    let report = scrub_table(catalog, table, &options).await?;
    if !report.problems.is_empty() {
        warn!(
            warehouse,
            %table,
            problems = report.problems.len(),
            new = report.recorded.opened,
            "the scrub found files missing or damaged; see `floe scrub` or GET /management/v1/scrub/findings"
        );
    }
    // Recorded even when all is well: the record is what spaces the runs out.
    Ok(Some(stats(&[
        ("files-checked", report.files_checked),
        ("bytes-verified", report.bytes_verified),
        ("bytes-read", report.bytes_read),
        ("requests", report.requests),
        ("deep", u64::from(report.deep)),
        ("findings", report.problems.len() as u64),
        ("findings-new", report.recorded.opened),
        ("findings-resolved", report.recorded.resolved),
    ])))
}

fn stats(pairs: &[(&str, u64)]) -> Properties {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
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

fn now_ms() -> i64 {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(millis).unwrap_or(i64::MAX)
}
