//! Maintenance errors, by what the operator can do about them.

use floe_commit::CommitError;
use floe_storage::StorageError;
use floe_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    /// The commit engine refused or failed (table missing, store down, conflicts that kept coming).
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// Reading, listing or deleting table files failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A manifest list or manifest could not be parsed.
    #[error("cannot read {location}: {message}")]
    Unreadable { location: String, message: String },
    /// Another maintenance run holds the table.
    #[error("{0}")]
    Busy(String),
    /// The job's lease ran out or was taken while it ran: it stopped before its next step.
    #[error("{0}")]
    LeaseLost(String),
    /// Reading or writing data files with Iceberg failed.
    #[error("{0}")]
    Iceberg(String),
    /// A concurrent commit made the job give up; the table is as the other writer left it.
    #[error("{0}")]
    Conflict(String),
    /// The table's `gc.enabled` is false: its files may be shared with other tables, so the job
    /// deletes nothing for it.
    #[error("{0}")]
    GcDisabled(String),
    /// The request itself is wrong (an age floor below the minimum, ...).
    #[error("{0}")]
    InvalidRequest(String),
}

impl From<StoreError> for MaintenanceError {
    fn from(err: StoreError) -> Self {
        Self::Commit(err.into())
    }
}

pub type Result<T, E = MaintenanceError> = std::result::Result<T, E>;
