//! The series maintenance records, with their descriptions: the one place that names them.
//!
//! Recorded through the `metrics` facade, which costs nothing until a binary installs a
//! recorder (`floe serve` does; see docs/operations.md for every series). Jobs are counted by the
//! [`crate::scheduler`], which is what runs them inside the server; open scrub findings are read
//! from the metadata store when they are scraped ([`record_open_findings`]), so that every
//! replica reports the same, current, numbers.

use floe_store::{FindingKind, MetadataStore, Properties};
use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};

/// Scheduled jobs, by `kind` (compaction, snapshot-expiry, manifest-rewrite, orphan-removal,
/// scrub) and `outcome` (see [`JobOutcome`]). Runs that found nothing due are not counted, as
/// they leave no job record.
pub const JOBS: &str = "floe_maintenance_jobs_total";
/// Files jobs rewrote (inputs replaced), wrote or deleted, by `kind` and `action`.
pub const FILES: &str = "floe_maintenance_files_total";
/// Bytes of those files, by `kind` and `action`.
pub const BYTES: &str = "floe_maintenance_bytes_total";
/// Findings open now, by `kind` (missing, size-mismatch, ...), over every warehouse.
pub const OPEN_FINDINGS: &str = "floe_scrub_findings_open";
/// Problems scrub passes found, by `kind` (a problem found by two passes counts twice).
pub const PROBLEMS: &str = "floe_scrub_problems_total";
/// Files the scrubber checked.
pub const FILES_CHECKED: &str = "floe_scrub_files_checked_total";
/// Object-store requests the scrubber made.
pub const REQUESTS: &str = "floe_scrub_requests_total";
/// Bytes the scrubber read.
pub const BYTES_READ: &str = "floe_scrub_bytes_read_total";

/// The `outcome` label of [`JOBS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// It did its work (and left a job record).
    Succeeded,
    /// It failed; it backs off before it runs again.
    Failed,
    /// Its lease was lost (taken over, or not renewed in time); it stopped before its next step.
    Stopped,
    /// A writer changed what it was replacing: nothing was committed, the next pass plans again.
    Yielded,
    /// Another replica (or `floe maintain`) held the table's lease.
    Busy,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Failed => "failed",
            JobOutcome::Stopped => "stopped",
            JobOutcome::Yielded => "yielded",
            JobOutcome::Busy => "busy",
        }
    }
}

/// Which `action` (and whether files or bytes) each job statistic counts.
const STATISTICS: &[(&str, &str, &str)] = &[
    ("files-in", FILES, "rewritten"),
    ("manifests-in", FILES, "rewritten"),
    ("bytes-in", BYTES, "rewritten"),
    ("files-out", FILES, "written"),
    ("manifests-out", FILES, "written"),
    ("bytes-out", BYTES, "written"),
    ("files-deleted", FILES, "deleted"),
    ("bytes-deleted", BYTES, "deleted"),
];

/// Counts one finished job, and what its statistics (its job record's) say it rewrote, wrote and
/// deleted.
pub(crate) fn job_finished(kind: &'static str, outcome: JobOutcome, stats: &Properties) {
    counter!(JOBS, "kind" => kind, "outcome" => outcome.as_str()).increment(1);
    for (statistic, series, action) in STATISTICS {
        if let Some(value) = stats.get(*statistic).and_then(|v| v.parse::<u64>().ok()) {
            counter!(*series, "kind" => kind, "action" => *action).increment(value);
        }
    }
}

pub(crate) fn scrub_problem(kind: FindingKind) {
    counter!(PROBLEMS, "kind" => kind.as_str()).increment(1);
}

pub(crate) fn scrub_checked() {
    counter!(FILES_CHECKED).increment(1);
}

pub(crate) fn scrub_request() {
    counter!(REQUESTS).increment(1);
}

pub(crate) fn scrub_bytes(bytes: u64) {
    counter!(BYTES_READ).increment(bytes);
}

/// Sets [`OPEN_FINDINGS`] from the metadata store: the findings open now, by kind (kinds with
/// none are set to zero, so a resolved kind drops to 0 rather than keeping its last value).
pub async fn record_open_findings(store: &dyn MetadataStore) -> floe_store::Result<()> {
    let counts = store.scrub().open_findings_by_kind().await?;
    for kind in FindingKind::ALL {
        let open = counts
            .iter()
            .find(|(counted, _)| *counted == kind)
            .map_or(0, |(_, open)| *open);
        gauge!(OPEN_FINDINGS, "kind" => kind.as_str()).set(open as f64);
    }
    Ok(())
}

/// Describes every series, and registers them at zero (the labelled ones with the label values
/// they usually take), so that dashboards see them before the first job.
pub fn describe() {
    describe_counter!(
        JOBS,
        Unit::Count,
        "Scheduled maintenance jobs, by kind and outcome (succeeded, failed, stopped, yielded, busy)."
    );
    describe_counter!(
        FILES,
        Unit::Count,
        "Files maintenance jobs rewrote, wrote or deleted, by kind and action."
    );
    describe_counter!(
        BYTES,
        Unit::Bytes,
        "Bytes of the files maintenance jobs rewrote, wrote or deleted, by kind and action."
    );
    describe_gauge!(
        OPEN_FINDINGS,
        Unit::Count,
        "Scrub findings open now, by kind, over every warehouse."
    );
    describe_counter!(
        PROBLEMS,
        Unit::Count,
        "Problems scrub passes found, by kind."
    );
    describe_counter!(FILES_CHECKED, Unit::Count, "Files the scrubber checked.");
    describe_counter!(
        REQUESTS,
        Unit::Count,
        "Object-store requests the scrubber made."
    );
    describe_counter!(BYTES_READ, Unit::Bytes, "Bytes the scrubber read.");
    for name in [FILES_CHECKED, REQUESTS, BYTES_READ] {
        counter!(name).increment(0);
    }
    use crate::scheduler::kind;
    let kinds = [
        kind::COMPACTION,
        kind::SNAPSHOT_EXPIRY,
        kind::MANIFEST_REWRITE,
        kind::ORPHAN_REMOVAL,
        kind::SCRUB,
    ];
    for kind in kinds {
        for outcome in [JobOutcome::Succeeded, JobOutcome::Failed] {
            counter!(JOBS, "kind" => kind, "outcome" => outcome.as_str()).increment(0);
        }
    }
    // The (kind, action) pairs the jobs' statistics have.
    for (kind, action) in [
        (kind::COMPACTION, "rewritten"),
        (kind::COMPACTION, "written"),
        (kind::MANIFEST_REWRITE, "rewritten"),
        (kind::MANIFEST_REWRITE, "written"),
        (kind::SNAPSHOT_EXPIRY, "deleted"),
        (kind::ORPHAN_REMOVAL, "deleted"),
    ] {
        counter!(FILES, "kind" => kind, "action" => action).increment(0);
        counter!(BYTES, "kind" => kind, "action" => action).increment(0);
    }
    for kind in FindingKind::ALL {
        counter!(PROBLEMS, "kind" => kind.as_str()).increment(0);
    }
}
