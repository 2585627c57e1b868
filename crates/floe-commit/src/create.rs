//! The starting point of a create transaction's first commit.
//!
//! A create transaction (Spark's CTAS / REPLACE, PyIceberg's `create_table_transaction`) stages a
//! table and later commits it with `assert-create` plus the whole table as a list of updates:
//! assign-uuid, add-schema, add-spec, add-sort-order, set-location, set-properties, maybe snapshots.
//! Iceberg's builder can only apply updates to existing metadata, so this module builds that
//! metadata from the first schema, spec and sort order the updates add, *keeping the client's
//! field ids*. Applying the updates on top then re-adds the same schema, spec and order, which the
//! builder recognises as already present, so the result has exactly what the client described.

use iceberg::TableUpdate;
use iceberg::spec::{FormatVersion, TableMetadata};
use serde_json::{Value, json};

use crate::{CommitError, Result};

/// Partition field ids start here, as in every Iceberg implementation.
const FIRST_PARTITION_FIELD_ID: i64 = 1000;

pub(crate) fn base_metadata(
    updates: &[TableUpdate],
    default_location: &str,
) -> Result<TableMetadata> {
    let invalid = |message: String| CommitError::InvalidRequest(message);
    let mut schema = None;
    let mut spec = None;
    let mut sort_order = None;
    let mut location = None;
    let mut format_version = FormatVersion::V2;
    let mut uuid = None;
    for update in updates {
        match update {
            TableUpdate::AddSchema { schema: s } if schema.is_none() => schema = Some(s),
            TableUpdate::AddSpec { spec: s } if spec.is_none() => spec = Some(s),
            TableUpdate::AddSortOrder { sort_order: s } if sort_order.is_none() => {
                sort_order = Some(s)
            }
            TableUpdate::SetLocation { location: l } => location = Some(l.clone()),
            TableUpdate::UpgradeFormatVersion { format_version: v } => format_version = *v,
            TableUpdate::AssignUuid { uuid: u } => uuid = Some(*u),
            _ => {}
        }
    }
    let schema = schema.ok_or_else(|| {
        invalid("a create transaction must add a schema (add-schema update)".to_string())
    })?;
    let schema_json = serde_json::to_value(schema).map_err(|e| invalid(e.to_string()))?;

    let mut spec_json = match spec {
        Some(spec) => serde_json::to_value(spec).map_err(|e| invalid(e.to_string()))?,
        None => json!({ "fields": [] }),
    };
    let mut last_partition_id = FIRST_PARTITION_FIELD_ID - 1;
    if let Some(fields) = spec_json.get_mut("fields").and_then(Value::as_array_mut) {
        for (index, field) in fields.iter_mut().enumerate() {
            let id = field
                .get("field-id")
                .and_then(Value::as_i64)
                .unwrap_or(FIRST_PARTITION_FIELD_ID + index as i64);
            field["field-id"] = json!(id);
            last_partition_id = last_partition_id.max(id);
        }
    }
    spec_json["spec-id"] = json!(0);

    let mut order_json = match sort_order {
        Some(order) => serde_json::to_value(order).map_err(|e| invalid(e.to_string()))?,
        None => json!({ "order-id": 0, "fields": [] }),
    };
    let sorted = order_json
        .get("fields")
        .and_then(Value::as_array)
        .is_some_and(|fields| !fields.is_empty());
    // Order id 0 is reserved for "unsorted".
    let order_id = if sorted { 1 } else { 0 };
    order_json["order-id"] = json!(order_id);

    let location = location.unwrap_or_else(|| default_location.to_string());
    let version_number = match format_version {
        FormatVersion::V1 => 1,
        FormatVersion::V2 => 2,
        FormatVersion::V3 => 3,
    };
    let mut metadata = json!({
        "format-version": version_number,
        "table-uuid": uuid.unwrap_or_else(uuid::Uuid::now_v7).to_string(),
        "location": location,
        "last-sequence-number": 0,
        "last-updated-ms": chrono::Utc::now().timestamp_millis(),
        "last-column-id": schema.highest_field_id(),
        "schemas": [schema_json],
        "current-schema-id": schema.schema_id(),
        "partition-specs": [spec_json.clone()],
        "default-spec-id": 0,
        "last-partition-id": last_partition_id,
        "properties": {},
        "sort-orders": [order_json],
        "default-sort-order-id": order_id,
    });
    if format_version == FormatVersion::V1 {
        metadata["schema"] = metadata["schemas"][0].clone();
        metadata["partition-spec"] = spec_json["fields"].clone();
    }
    if format_version >= FormatVersion::V3 {
        metadata["next-row-id"] = json!(0);
    }
    serde_json::from_value(metadata).map_err(|e| {
        invalid(format!(
            "the create transaction does not describe a valid table: {e}"
        ))
    })
}
