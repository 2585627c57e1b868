//! The series this crate records, with their descriptions: the one place that names them.
//!
//! Recorded through the `metrics` facade, which costs nothing until a binary installs a
//! recorder (`floe serve` does; see docs/operations.md for every series).

use metrics::{Unit, counter, describe_counter, describe_histogram};

/// Object-store calls, by `operation` (see [`Operation`]).
pub const OPERATIONS: &str = "floe_object_store_operations_total";
/// Object-store calls that failed, by `operation`; a missing file or a put-if-absent that found
/// one is an answer, not a failure, and is not counted.
pub const ERRORS: &str = "floe_object_store_errors_total";
/// How long object-store calls took, by `operation` (a `get` until its response arrived, a
/// `list` until its last page).
pub const DURATION: &str = "floe_object_store_operation_duration_seconds";
/// Deletes a table scope refused: the file was not the table's own.
pub const REFUSED_DELETES: &str = "floe_storage_refused_deletes_total";

/// The `operation` label's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Put,
    /// The start of a multipart upload (its parts are not counted one by one).
    PutMultipart,
    Get,
    Head,
    Delete,
    List,
    Copy,
    Rename,
}

impl Operation {
    pub const ALL: [Operation; 8] = [
        Operation::Put,
        Operation::PutMultipart,
        Operation::Get,
        Operation::Head,
        Operation::Delete,
        Operation::List,
        Operation::Copy,
        Operation::Rename,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Put => "put",
            Operation::PutMultipart => "put_multipart",
            Operation::Get => "get",
            Operation::Head => "head",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Copy => "copy",
            Operation::Rename => "rename",
        }
    }
}

/// Describes every series, and registers the unlabelled ones and each operation's counters at
/// zero, so that dashboards see them before the first call.
pub fn describe() {
    describe_counter!(OPERATIONS, Unit::Count, "Object-store calls, by operation.");
    describe_counter!(
        ERRORS,
        Unit::Count,
        "Object-store calls that failed, by operation (not-found and already-exists answers excluded)."
    );
    describe_histogram!(
        DURATION,
        Unit::Seconds,
        "Object-store call latency, by operation."
    );
    describe_counter!(
        REFUSED_DELETES,
        Unit::Count,
        "Deletes refused because the file was outside its table's location or reached through a link."
    );
    for operation in Operation::ALL {
        counter!(OPERATIONS, "operation" => operation.as_str()).increment(0);
        counter!(ERRORS, "operation" => operation.as_str()).increment(0);
    }
    counter!(REFUSED_DELETES).increment(0);
}
