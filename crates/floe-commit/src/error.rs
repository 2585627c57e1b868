//! The commit engine's errors: one enum whose variants the server maps one-to-one onto REST errors.

use floe_storage::StorageError;
use floe_store::StoreError;

/// What went wrong, by what the caller (and the REST client) should do about it.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{0}")]
    NamespaceNotFound(String),
    #[error("{0}")]
    TableNotFound(String),
    #[error("{0}")]
    ViewNotFound(String),
    /// A file the request names does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    NamespaceNotEmpty(String),
    /// The REST prefix (or a management request) names no warehouse.
    #[error("{0}")]
    WarehouseNotFound(String),
    #[error("{0}")]
    WarehouseNotEmpty(String),
    /// A requirement failed, or concurrent commits kept winning: the client should refresh and retry.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong (bad update, bad location, bad name); retrying will not help.
    #[error("{0}")]
    InvalidRequest(String),
    /// A dependency (metadata store, object store) is down or overloaded; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A current metadata file does not match the size and checksum its pointer records: it was
    /// changed or damaged after it was committed. The table is not served until an operator
    /// restores the file or repairs the table (503: nothing the client does will fix it, but
    /// the table may come back).
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = CommitError> = std::result::Result<T, E>;

impl CommitError {
    /// Maps an error from Iceberg's metadata builder or updates: they reject bad input.
    pub(crate) fn from_iceberg(err: iceberg::Error) -> Self {
        use iceberg::ErrorKind;
        let message = err.to_string();
        match err.kind() {
            ErrorKind::CatalogCommitConflicts => CommitError::Conflict(message),
            ErrorKind::TableNotFound => CommitError::TableNotFound(message),
            ErrorKind::DataInvalid
            | ErrorKind::FeatureUnsupported
            | ErrorKind::PreconditionFailed => CommitError::InvalidRequest(message),
            _ => CommitError::InvalidRequest(message),
        }
    }
}

impl From<StoreError> for CommitError {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        match err {
            StoreError::NamespaceNotFound(_) => CommitError::NamespaceNotFound(message),
            StoreError::NamespaceAlreadyExists(_)
            | StoreError::TableAlreadyExists(_)
            | StoreError::ViewAlreadyExists(_) => CommitError::AlreadyExists(message),
            StoreError::NamespaceNotEmpty { .. } => CommitError::NamespaceNotEmpty(message),
            StoreError::WarehouseNotFound(_) => CommitError::WarehouseNotFound(message),
            StoreError::WarehouseAlreadyExists(_) | StoreError::AlreadyExists(_) => {
                CommitError::AlreadyExists(message)
            }
            StoreError::NotFound(_) => CommitError::NotFound(message),
            StoreError::WarehouseNotEmpty(_) => CommitError::WarehouseNotEmpty(message),
            StoreError::TableNotFound(_) => CommitError::TableNotFound(message),
            StoreError::ViewNotFound(_) => CommitError::ViewNotFound(message),
            StoreError::Conflict { .. } => CommitError::Conflict(message),
            StoreError::Unavailable(_) => CommitError::Unavailable(message),
            // The message names the table or view holding the location: the client picks another.
            StoreError::InvalidInput(_) | StoreError::LocationOverlap { .. } => {
                CommitError::InvalidRequest(message)
            }
            StoreError::Internal(_) => CommitError::Internal(message),
        }
    }
}

impl From<StorageError> for CommitError {
    fn from(err: StorageError) -> Self {
        let message = err.to_string();
        match err {
            StorageError::NotFound { .. } => CommitError::NotFound(message),
            StorageError::AlreadyExists { .. } => CommitError::Internal(message),
            StorageError::InvalidLocation { .. } => CommitError::InvalidRequest(message),
            // Transient: the client should retry (503).
            StorageError::Unavailable { .. } => CommitError::Unavailable(message),
            // Permanent (access denied, no bucket, bad settings): an operator must act; a retry
            // would fail the same way, so not a 503.
            StorageError::Refused { .. } | StorageError::Config { .. } => {
                CommitError::Internal(message)
            }
        }
    }
}
