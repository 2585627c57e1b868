//! What the metadata store keeps for the scrubber: its *findings*, the problems it found with the
//! files a table references.
//!
//! The scrubber (`floe-maintenance`) checks a table's files and reports each pass here with
//! [`ScrubStore::record_scrub`]. A finding is one problem of one file (`kind`) in one table, and
//! it is either **open** or **resolved**:
//!
//! - A problem found again by a later pass refreshes its open finding (detail, snapshots affected,
//!   last seen time) instead of adding a row, so a file missing for a month is one finding, not one
//!   per pass. One open finding per (warehouse, table, file, kind) is a unique index, so two
//!   replicas recording at once cannot make two either.
//! - A pass resolves every open finding of its table that it checked for and did not find again:
//!   the file is fine now (restored), or the table no longer references it (repaired, expired). A
//!   pass that did not check a kind (a shallow pass and footer problems), or that could not reach
//!   every file (an unreadable manifest), leaves findings as they are. A repair resolves the findings of the files it dealt with
//!   ([`ScrubStore::resolve_findings`]).
//! - A problem that comes back after being resolved opens a new finding: the history keeps both.
//!
//! Findings are global, like the access-control records: every warehouse handle sees them all,
//! and each names its warehouse. Times are the store's clock, in Unix milliseconds.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;

use crate::{Result, TableName};

/// What is wrong with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// The file does not exist.
    Missing,
    /// The file's size differs from the size its metadata records (`file_size_in_bytes`, a
    /// manifest's length): truncated or overwritten.
    SizeMismatch,
    /// A Parquet file whose footer (the last bytes: length and `PAR1` magic, then the footer
    /// itself) does not parse. Found by deep passes only.
    UnreadableFooter,
    /// A manifest list or manifest that does not parse: what it names cannot be checked.
    UnreadableManifest,
    /// The table's current metadata file does not parse.
    UnreadableMetadata,
    /// The current metadata file's bytes differ from the checksum its pointer recorded.
    MetadataChecksumMismatch,
}

impl FindingKind {
    pub const ALL: [FindingKind; 6] = [
        FindingKind::Missing,
        FindingKind::SizeMismatch,
        FindingKind::UnreadableFooter,
        FindingKind::UnreadableManifest,
        FindingKind::UnreadableMetadata,
        FindingKind::MetadataChecksumMismatch,
    ];

    /// The name findings, the CLI and the management API use.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Missing => "missing",
            FindingKind::SizeMismatch => "size-mismatch",
            FindingKind::UnreadableFooter => "unreadable-footer",
            FindingKind::UnreadableManifest => "unreadable-manifest",
            FindingKind::UnreadableMetadata => "unreadable-metadata",
            FindingKind::MetadataChecksumMismatch => "metadata-checksum-mismatch",
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FindingKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "unknown finding kind {name:?}; known: {}",
                    Self::ALL.map(FindingKind::as_str).join(", ")
                )
            })
    }
}

/// One problem a pass found, as the scrubber reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file's location, as the table's metadata spells it.
    pub file: String,
    pub kind: FindingKind,
    /// For people: what was expected and what was there.
    pub detail: String,
    /// The snapshots that reference the file (none for the metadata file itself), ascending.
    pub snapshots: Vec<i64>,
}

/// What one scrub pass of one table found (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubPass {
    /// The warehouse's name (its REST prefix).
    pub warehouse: String,
    pub table: TableName,
    pub problems: Vec<Problem>,
    /// The kinds the pass checked for: open findings of the table of these kinds that it did not
    /// find again are resolved; those of other kinds are left alone.
    pub checked: Vec<FindingKind>,
    /// Whether the pass reached every file the table references. One that could not (its
    /// metadata file or a manifest was unreadable) resolves nothing: a file it did not reach is
    /// not known to be fine.
    pub complete: bool,
}

/// What [`ScrubStore::record_scrub`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScrubRecorded {
    /// Problems that opened a new finding.
    pub opened: u64,
    /// Problems that were open already (refreshed).
    pub still_open: u64,
    /// Open findings the pass did not find again.
    pub resolved: u64,
}

/// A recorded finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubFinding {
    /// Unique; time-ordered (UUIDv7).
    pub id: String,
    pub warehouse: String,
    pub table: TableName,
    pub file: String,
    pub kind: FindingKind,
    /// As the last pass that found it described it.
    pub detail: String,
    /// As the last pass that found it saw them.
    pub snapshots: Vec<i64>,
    /// When a pass first found it (Unix ms, the store's clock).
    pub found_at_ms: i64,
    /// When a pass last found it.
    pub last_seen_ms: i64,
    /// When a pass (or a repair) found it gone; `None` while it is open.
    pub resolved_at_ms: Option<i64>,
}

impl ScrubFinding {
    pub fn is_open(&self) -> bool {
        self.resolved_at_ms.is_none()
    }
}

/// Which findings [`ScrubStore::list_findings`] returns; `None` and `false` match all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingFilter {
    pub warehouse: Option<String>,
    pub table: Option<TableName>,
    /// Only open findings.
    pub open_only: bool,
    /// Only findings first found at or after this time (Unix ms).
    pub since_ms: Option<i64>,
}

/// How many findings of one table are open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenFindings {
    pub warehouse: String,
    pub table: TableName,
    pub open: u64,
}

/// The scrubber's findings (see the module docs). Every method is one atomic operation.
#[async_trait]
pub trait ScrubStore: Send + Sync + 'static {
    /// Records one pass of one table, in one transaction: each problem opens a finding or
    /// refreshes the open one of its file and kind; the table's other open findings of a checked
    /// kind are resolved. Table and warehouse names follow the store's naming rules, and no text
    /// holds U+0000 ([`crate::StoreError::InvalidInput`] otherwise).
    ///
    /// A problem found outside a pass (a metadata file whose checksum does not match, on a read)
    /// is recorded as a pass with that one problem, `checked` empty and `complete` false: it opens
    /// or refreshes its finding and resolves nothing.
    async fn record_scrub(&self, pass: &ScrubPass) -> Result<ScrubRecorded>;

    /// Resolves the open findings of `files` in `table` (a repair dealt with them); returns how
    /// many.
    async fn resolve_findings(
        &self,
        warehouse: &str,
        table: &TableName,
        files: &[String],
    ) -> Result<u64>;

    /// The most recently found findings matching `filter`, newest first, at most `limit`.
    async fn list_findings(
        &self,
        filter: &FindingFilter,
        limit: usize,
    ) -> Result<Vec<ScrubFinding>>;

    /// The number of open findings of every table that has any (of `warehouse` only, if given),
    /// in warehouse and table order.
    async fn open_finding_counts(&self, warehouse: Option<&str>) -> Result<Vec<OpenFindings>>;

    /// The number of open findings of each kind that has any, over every warehouse: what the
    /// metrics scrape reports, counted by the store rather than read row by row.
    async fn open_findings_by_kind(&self) -> Result<Vec<(FindingKind, u64)>>;

    /// Deletes findings resolved more than `older_than` ago (open ones stay, however old);
    /// returns how many.
    async fn expire_findings(&self, older_than: Duration) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in FindingKind::ALL {
            assert_eq!(kind.as_str().parse::<FindingKind>(), Ok(kind));
        }
        let err = "lost".parse::<FindingKind>().unwrap_err();
        assert!(err.contains("size-mismatch"), "{err}");
    }
}
