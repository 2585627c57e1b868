//! The scheduler's jobs: each runs one kind of maintenance on one table by its policy, and says
//! what it changed (for the job record) and when it is due next (for the due row).

use std::time::Duration;

use floe_commit::Catalog;
use floe_store::{DueKind, JobFilter, Properties, TableName};
use tracing::warn;

use super::now_ms;
use crate::policy::MaintenancePolicy;
use crate::{
    CompactOptions, ExpireOptions, MaintenanceError, ManifestRewriteOptions, OrphanOptions,
    ScrubOptions, compact, expire_snapshots, remove_orphan_files, rewrite_manifests, scrub_table,
};

/// When a job is next due, as its due row keeps it (see `floe_store::due`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Next {
    /// By time (Unix ms); `None`: only when commits make it due.
    pub due_ms: Option<i64>,
    /// Files or manifests commits must add to make it due at once.
    pub threshold: i64,
    /// Snapshot expiry: the table's snapshot age limit.
    pub period_ms: i64,
}

impl Next {
    /// Due again only when commits make it so: the first commit that adds anything.
    pub const ON_COMMIT: Next = Next {
        due_ms: None,
        threshold: 1,
        period_ms: 0,
    };

    pub fn at(due_ms: i64) -> Self {
        Self {
            due_ms: Some(due_ms),
            ..Self::ON_COMMIT
        }
    }
}

/// What a job did: `stats` when it changed something (or must be recorded anyway), and when it is
/// due next.
pub(crate) struct JobRun {
    pub stats: Option<Properties>,
    pub next: Next,
}

pub(crate) type JobResult = Result<JobRun, MaintenanceError>;

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) async fn run_compaction(
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
        // Due once enough files land for the fullest partition to reach the minimum.
        let missing = policy
            .min_input_files
            .saturating_sub(report.most_candidates_left);
        return Ok(JobRun {
            stats: None,
            next: Next {
                threshold: to_i64(missing as u64).max(1),
                ..Next::ON_COMMIT
            },
        });
    }
    // Its outputs may leave a small file per partition: the next commit that adds files has the
    // planner look again, which then knows how far each partition is.
    Ok(JobRun {
        stats: Some(stats(&[
            ("files-in", report.input_files as u64),
            ("bytes-in", report.input_bytes),
            ("commits", report.commits as u64),
            ("files-out", report.output_files as u64),
            ("bytes-out", report.output_bytes),
            ("delete-files-removed", report.removed_delete_files as u64),
        ])),
        next: Next::ON_COMMIT,
    })
}

pub(crate) async fn run_expiry(
    catalog: &Catalog,
    table: &TableName,
    policy: &MaintenancePolicy,
) -> JobResult {
    let max_age = Duration::from_secs(policy.max_snapshot_age_hours.saturating_mul(3600));
    let options = ExpireOptions {
        older_than: Some(max_age),
        retain_last: Some(policy.min_snapshots_to_keep),
        ..ExpireOptions::default()
    };
    let report = expire_snapshots(catalog, table, &options).await?;
    let period_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
    // Due when the oldest snapshot left ages out; if it is past its age already, something keeps
    // it (the minimum count, a tag, a branch's retention) until a commit changes the picture.
    let loaded = catalog.load_table(table).await?;
    let now = now_ms();
    let due_ms = floe_commit::due::oldest_expirable_snapshot_ms(loaded.metadata())
        .map(|oldest| oldest.saturating_add(period_ms))
        .filter(|due| *due > now);
    let next = Next {
        due_ms,
        threshold: 1,
        period_ms,
    };
    if report.expired_snapshots.is_empty() && report.removed_refs.is_empty() {
        return Ok(JobRun { stats: None, next });
    }
    Ok(JobRun {
        stats: Some(stats(&[
            ("snapshots-expired", report.expired_snapshots.len() as u64),
            ("refs-removed", report.removed_refs.len() as u64),
            ("files-deleted", report.deleted_files.len() as u64),
            ("bytes-deleted", report.deleted_bytes),
        ])),
        next,
    })
}

pub(crate) async fn run_manifest_rewrite(
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
    // Each commit that adds files adds a manifest: due once enough commits came.
    let waiting = |manifests: usize| Next {
        threshold: to_i64(policy.min_manifests.saturating_sub(manifests) as u64).max(1),
        ..Next::ON_COMMIT
    };
    if plan.data_manifests < policy.min_manifests || plan.manifests_replaced == 0 {
        return Ok(JobRun {
            stats: None,
            next: waiting(plan.data_manifests),
        });
    }
    let report = rewrite_manifests(catalog, table, &ManifestRewriteOptions::default()).await?;
    if report.snapshot_id.is_none() {
        return Ok(JobRun {
            stats: None,
            next: waiting(report.data_manifests),
        });
    }
    let left = report.manifests_kept + report.manifests_created;
    Ok(JobRun {
        stats: Some(stats(&[
            ("manifests-in", report.manifests_replaced as u64),
            ("bytes-in", report.bytes_replaced),
            ("manifests-out", report.manifests_created as u64),
            ("bytes-out", report.bytes_created),
        ])),
        next: waiting(left),
    })
}

/// When a job spaced out by `interval_hours` is next due: now if no run succeeded within the
/// interval on any replica (the job records tell), else one interval after the last success.
async fn spaced_due_ms(
    catalog: &Catalog,
    warehouse: &str,
    table: &TableName,
    kind: DueKind,
    interval_hours: u64,
) -> Result<i64, MaintenanceError> {
    let last = catalog
        .store()
        .list_jobs(
            &JobFilter {
                warehouse: Some(warehouse.to_string()),
                table: Some(table.clone()),
                kind: Some(kind.as_str().to_string()),
            },
            10,
        )
        .await?
        .into_iter()
        .find(|job| job.outcome == "succeeded");
    let interval_ms = interval_ms(interval_hours);
    Ok(last.map_or(0, |job| job.started_at_ms.saturating_add(interval_ms)))
}

fn interval_ms(hours: u64) -> i64 {
    i64::try_from(hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX)
}

pub(crate) async fn run_orphan_removal(
    catalog: &Catalog,
    warehouse: &str,
    table: &TableName,
    policy: &MaintenancePolicy,
) -> JobResult {
    let interval = policy.orphan_interval_hours;
    let due = spaced_due_ms(catalog, warehouse, table, DueKind::OrphanRemoval, interval).await?;
    if due > now_ms() {
        return Ok(JobRun {
            stats: None,
            next: Next::at(due),
        });
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
    Ok(JobRun {
        stats: Some(stats(&[
            ("files-listed", report.listed as u64),
            ("files-deleted", report.deleted_files.len() as u64),
            ("bytes-deleted", report.deleted_bytes),
            ("files-too-young", report.too_young as u64),
            ("files-marked-pending", report.marked_pending as u64),
        ])),
        next: Next::at(now_ms().saturating_add(interval_ms(interval))),
    })
}

pub(crate) async fn run_scrub(
    catalog: &Catalog,
    warehouse: &str,
    table: &TableName,
    policy: &MaintenancePolicy,
) -> JobResult {
    let interval = policy.scrub_interval_hours;
    let due = spaced_due_ms(catalog, warehouse, table, DueKind::Scrub, interval).await?;
    if due > now_ms() {
        return Ok(JobRun {
            stats: None,
            next: Next::at(due),
        });
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
    Ok(JobRun {
        stats: Some(stats(&[
            ("files-checked", report.files_checked),
            ("bytes-verified", report.bytes_verified),
            ("bytes-read", report.bytes_read),
            ("requests", report.requests),
            ("deep", u64::from(report.deep)),
            ("findings", report.problems.len() as u64),
            ("findings-new", report.recorded.opened),
            ("findings-resolved", report.recorded.resolved),
        ])),
        next: Next::at(now_ms().saturating_add(interval_ms(interval))),
    })
}

fn stats(pairs: &[(&str, u64)]) -> Properties {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}
