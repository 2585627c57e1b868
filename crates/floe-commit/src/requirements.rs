//! Checking a commit's requirements against the table state it read.
//!
//! Iceberg's `TableRequirement::check` has the right semantics but its own wording; clients match
//! on the Java reference implementation's messages (PyIceberg's tests do, and people grep logs for
//! them), so Floe states failures in those words.

use iceberg::TableRequirement;
use iceberg::spec::TableMetadata;

use crate::CommitError;
use floe_store::TableName;

/// `Ok` if `requirement` holds for `metadata` (`None`: the table does not exist).
pub(crate) fn check(
    table: &TableName,
    requirement: &TableRequirement,
    metadata: Option<&TableMetadata>,
) -> Result<(), CommitError> {
    let Some(metadata) = metadata else {
        return match requirement {
            TableRequirement::NotExist => Ok(()),
            _ => Err(CommitError::TableNotFound(format!(
                "table {table} does not exist"
            ))),
        };
    };
    let failed = |message: String| {
        Err(CommitError::Conflict(format!(
            "Requirement failed: {message} (table {table})"
        )))
    };
    match requirement {
        TableRequirement::NotExist => failed("table already exists".into()),
        TableRequirement::UuidMatch { uuid } if *uuid != metadata.uuid() => failed(format!(
            "UUID does not match: expected {uuid} != {}",
            metadata.uuid()
        )),
        TableRequirement::RefSnapshotIdMatch { r#ref, snapshot_id } => {
            let current = metadata.snapshot_for_ref(r#ref).map(|s| s.snapshot_id());
            match (snapshot_id, current) {
                (Some(expected), Some(found)) if *expected != found => failed(format!(
                    "branch or tag {ref} has changed: expected id {expected} != {found}"
                )),
                (Some(expected), None) => failed(format!(
                    "branch or tag {ref} is missing, expected {expected}"
                )),
                (None, Some(_)) => failed(format!("branch or tag {ref} was created concurrently")),
                _ => Ok(()),
            }
        }
        TableRequirement::LastAssignedFieldIdMatch {
            last_assigned_field_id,
        } if *last_assigned_field_id != metadata.last_column_id() => failed(format!(
            "last assigned field id changed: expected id {last_assigned_field_id} != {}",
            metadata.last_column_id()
        )),
        TableRequirement::CurrentSchemaIdMatch { current_schema_id }
            if *current_schema_id != metadata.current_schema_id() =>
        {
            failed(format!(
                "current schema changed: expected id {current_schema_id} != {}",
                metadata.current_schema_id()
            ))
        }
        TableRequirement::LastAssignedPartitionIdMatch {
            last_assigned_partition_id,
        } if *last_assigned_partition_id != metadata.last_partition_id() => failed(format!(
            "last assigned partition id changed: expected id {last_assigned_partition_id} != {}",
            metadata.last_partition_id()
        )),
        TableRequirement::DefaultSpecIdMatch { default_spec_id }
            if *default_spec_id != metadata.default_partition_spec_id() =>
        {
            failed(format!(
                "default partition spec changed: expected id {default_spec_id} != {}",
                metadata.default_partition_spec_id()
            ))
        }
        TableRequirement::DefaultSortOrderIdMatch {
            default_sort_order_id,
        } if *default_sort_order_id != metadata.default_sort_order_id() => failed(format!(
            "default sort order changed: expected id {default_sort_order_id} != {}",
            metadata.default_sort_order_id()
        )),
        _ => Ok(()),
    }
}
