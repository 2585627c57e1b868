//! The series the commit engine records, with their descriptions: the one place that names them.
//!
//! Recorded through the `metrics` facade, which costs nothing until a binary installs a
//! recorder (`floe serve` does; see docs/operations.md for every series).

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};

/// Calls of [`crate::Catalog::commit`] (one per table commit or multi-table transaction), by
/// `outcome` (see [`Outcome`]).
pub const COMMITS: &str = "floe_commits_total";
/// Attempts a commit started over after losing the pointer swap to a concurrent commit.
pub const RETRIES: &str = "floe_commit_retries_total";
/// How long the metadata store's compare-and-swap of pointers took (every swap: creates,
/// commits, registrations).
pub const SWAP_DURATION: &str = "floe_commit_swap_duration_seconds";
/// Reads of a current metadata file whose bytes were not the ones its pointer records.
pub const INTEGRITY_FAILURES: &str = "floe_commit_integrity_failures_total";
/// Metadata cache look-ups that found the file.
pub const CACHE_HITS: &str = "floe_metadata_cache_hits_total";
/// Metadata cache look-ups that did not.
pub const CACHE_MISSES: &str = "floe_metadata_cache_misses_total";
/// What the metadata caches hold now, in their accounting bytes (about three times the JSON).
pub const CACHE_BYTES: &str = "floe_metadata_cache_bytes";

/// The `outcome` label of [`COMMITS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    /// A requirement failed, or concurrent commits kept winning: the client gets a 409.
    Conflict,
    /// Anything else: bad input, a store or storage failure.
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Committed, Outcome::Conflict, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::Conflict => "conflict",
            Outcome::Failed => "failed",
        }
    }
}

pub(crate) fn commit_finished(outcome: Outcome) {
    counter!(COMMITS, "outcome" => outcome.as_str()).increment(1);
}

/// Describes every series and registers each at zero, so that dashboards see them before the
/// first commit.
pub fn describe() {
    describe_counter!(
        COMMITS,
        Unit::Count,
        "Commits (one per table commit or multi-table transaction), by outcome: committed, conflict (409), failed."
    );
    describe_counter!(
        RETRIES,
        Unit::Count,
        "Commit attempts started over after losing the pointer swap to a concurrent commit."
    );
    describe_histogram!(
        SWAP_DURATION,
        Unit::Seconds,
        "Latency of the metadata store's compare-and-swap of table pointers."
    );
    describe_counter!(
        INTEGRITY_FAILURES,
        Unit::Count,
        "Reads of a current metadata file whose size or SHA-256 did not match its pointer."
    );
    describe_counter!(CACHE_HITS, Unit::Count, "Metadata cache look-ups that hit.");
    describe_counter!(
        CACHE_MISSES,
        Unit::Count,
        "Metadata cache look-ups that missed."
    );
    describe_gauge!(
        CACHE_BYTES,
        Unit::Bytes,
        "Bytes the metadata caches hold (accounting size: about three times the JSON)."
    );
    for outcome in Outcome::ALL {
        counter!(COMMITS, "outcome" => outcome.as_str()).increment(0);
    }
    for name in [RETRIES, INTEGRITY_FAILURES, CACHE_HITS, CACHE_MISSES] {
        counter!(name).increment(0);
    }
    gauge!(CACHE_BYTES).increment(0.0);
}
