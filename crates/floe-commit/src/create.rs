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
use std::collections::HashMap;

use iceberg::spec::{FormatVersion, Schema, SortOrder, TableMetadata, UnboundPartitionSpec};
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

    let (spec_json, last_partition_id) = spec_json(spec, None)?;
    let order_json = sort_order_json(sort_order, None)?;

    let location = location.unwrap_or_else(|| default_location.to_string());
    assemble(Parts {
        schema: schema_json,
        spec: spec_json,
        last_partition_id,
        sort_order: order_json,
        location,
        format_version,
        uuid: uuid.unwrap_or_else(uuid::Uuid::now_v7),
        properties: serde_json::Map::new(),
    })
}

/// Metadata for a table the server creates (`createTable`, also staged): fresh field ids assigned
/// in the order the Java reference implementation assigns them (`TypeUtil.assignFreshIds`: a
/// struct's own fields first, then their nested types; a map's key and value ids before the key
/// and value types), so clients get the ids any Iceberg REST server would give them. Partition and
/// sort fields follow their source columns to the new ids.
pub(crate) fn new_table_metadata(
    schema: &Schema,
    spec: Option<&UnboundPartitionSpec>,
    sort_order: Option<&SortOrder>,
    location: String,
    format_version: FormatVersion,
    properties: HashMap<String, String>,
) -> Result<TableMetadata> {
    let invalid = |message: String| CommitError::InvalidRequest(message);
    let mut schema_json = serde_json::to_value(schema).map_err(|e| invalid(e.to_string()))?;
    let mut fresh_ids = HashMap::new();
    let mut last_id = 0;
    assign_fresh_ids(&mut schema_json, &mut last_id, &mut fresh_ids);
    schema_json["schema-id"] = json!(0);
    if let Some(ids) = schema_json
        .get_mut("identifier-field-ids")
        .and_then(Value::as_array_mut)
    {
        for id in ids.iter_mut() {
            let old = id.as_i64().unwrap_or_default();
            *id = json!(fresh_ids.get(&old).copied().unwrap_or(old));
        }
    }
    let (spec_json, last_partition_id) = spec_json(spec, Some(&fresh_ids))?;
    let order_json = sort_order_json(sort_order, Some(&fresh_ids))?;
    let mut properties: serde_json::Map<String, Value> = properties
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    // What the reference implementation stores on every new table since Iceberg 1.4; clients
    // and their tests expect it.
    properties
        .entry(PARQUET_COMPRESSION.to_string())
        .or_insert_with(|| json!("zstd"));
    assemble(Parts {
        schema: schema_json,
        spec: spec_json,
        last_partition_id,
        sort_order: order_json,
        location,
        format_version,
        uuid: uuid::Uuid::now_v7(),
        properties,
    })
}

const PARQUET_COMPRESSION: &str = "write.parquet.compression-codec";

/// Renumbers every field id in `ty` (a schema or nested type as JSON), recording old -> new.
fn assign_fresh_ids(ty: &mut Value, last_id: &mut i64, fresh_ids: &mut HashMap<i64, i64>) {
    let mut next = |old: Option<i64>, fresh_ids: &mut HashMap<i64, i64>| {
        *last_id += 1;
        if let Some(old) = old {
            fresh_ids.entry(old).or_insert(*last_id);
        }
        json!(*last_id)
    };
    let Some(object) = ty.as_object_mut() else {
        return; // a primitive type has no ids
    };
    match object.get("type").and_then(Value::as_str) {
        Some("struct") => {
            let Some(fields) = object.get_mut("fields").and_then(Value::as_array_mut) else {
                return;
            };
            for field in fields.iter_mut() {
                field["id"] = next(field["id"].as_i64(), fresh_ids);
            }
            for field in fields.iter_mut() {
                if let Some(field_type) = field.get_mut("type") {
                    assign_fresh_ids(field_type, last_id, fresh_ids);
                }
            }
        }
        Some("list") => {
            object["element-id"] = next(object["element-id"].as_i64(), fresh_ids);
            if let Some(element) = object.get_mut("element") {
                assign_fresh_ids(element, last_id, fresh_ids);
            }
        }
        Some("map") => {
            object["key-id"] = next(object["key-id"].as_i64(), fresh_ids);
            object["value-id"] = next(object["value-id"].as_i64(), fresh_ids);
            if let Some(key) = object.get_mut("key") {
                assign_fresh_ids(key, last_id, fresh_ids);
            }
            if let Some(value) = object.get_mut("value") {
                assign_fresh_ids(value, last_id, fresh_ids);
            }
        }
        _ => {}
    }
}

/// Moves a partition or sort field's `source-id` to the column's fresh id.
fn remap_source(field: &mut Value, fresh_ids: Option<&HashMap<i64, i64>>) -> Result<()> {
    let Some(fresh_ids) = fresh_ids else {
        return Ok(());
    };
    let old = field["source-id"].as_i64().unwrap_or_default();
    let new = fresh_ids.get(&old).ok_or_else(|| {
        CommitError::InvalidRequest(format!("partition or sort field {field} names no column"))
    })?;
    field["source-id"] = json!(new);
    Ok(())
}

/// The first partition spec (id 0) as JSON, and the table's last partition field id. With
/// `fresh_ids` the spec belongs to a newly created table: field ids restart at 1000.
fn spec_json(
    spec: Option<&UnboundPartitionSpec>,
    fresh_ids: Option<&HashMap<i64, i64>>,
) -> Result<(Value, i64)> {
    let mut spec_json = match spec {
        Some(spec) => {
            serde_json::to_value(spec).map_err(|e| CommitError::InvalidRequest(e.to_string()))?
        }
        None => json!({ "fields": [] }),
    };
    let mut last_partition_id = FIRST_PARTITION_FIELD_ID - 1;
    if let Some(fields) = spec_json.get_mut("fields").and_then(Value::as_array_mut) {
        for (index, field) in fields.iter_mut().enumerate() {
            let assigned = FIRST_PARTITION_FIELD_ID + index as i64;
            let id = match fresh_ids {
                Some(_) => assigned,
                None => field
                    .get("field-id")
                    .and_then(Value::as_i64)
                    .unwrap_or(assigned),
            };
            field["field-id"] = json!(id);
            last_partition_id = last_partition_id.max(id);
            remap_source(field, fresh_ids)?;
        }
    }
    spec_json["spec-id"] = json!(0);
    Ok((spec_json, last_partition_id))
}

/// The first sort order as JSON: id 1 when it sorts, 0 (reserved for "unsorted") when not.
fn sort_order_json(
    sort_order: Option<&SortOrder>,
    fresh_ids: Option<&HashMap<i64, i64>>,
) -> Result<Value> {
    let mut order_json = match sort_order {
        Some(order) => {
            serde_json::to_value(order).map_err(|e| CommitError::InvalidRequest(e.to_string()))?
        }
        None => json!({ "order-id": 0, "fields": [] }),
    };
    let mut sorted = false;
    if let Some(fields) = order_json.get_mut("fields").and_then(Value::as_array_mut) {
        sorted = !fields.is_empty();
        for field in fields.iter_mut() {
            remap_source(field, fresh_ids)?;
        }
    }
    order_json["order-id"] = json!(if sorted { 1 } else { 0 });
    Ok(order_json)
}

fn max_field_id(ty: &Value, max: &mut i64) {
    for key in ["id", "element-id", "key-id", "value-id"] {
        if let Some(id) = ty.get(key).and_then(Value::as_i64) {
            *max = (*max).max(id);
        }
    }
    for key in ["type", "element", "key", "value"] {
        if let Some(nested) = ty.get(key).filter(|v| v.is_object()) {
            max_field_id(nested, max);
        }
    }
    if let Some(fields) = ty.get("fields").and_then(Value::as_array) {
        for field in fields {
            max_field_id(field, max);
        }
    }
}

/// The pieces of a new table's first metadata.
struct Parts {
    /// With its final field ids and `schema-id`.
    schema: Value,
    /// With `spec-id` 0 and field ids assigned.
    spec: Value,
    last_partition_id: i64,
    /// With its `order-id` (0 when unsorted).
    sort_order: Value,
    location: String,
    format_version: FormatVersion,
    uuid: uuid::Uuid,
    properties: serde_json::Map<String, Value>,
}

fn assemble(parts: Parts) -> Result<TableMetadata> {
    let Parts {
        schema,
        spec,
        last_partition_id,
        sort_order,
        location,
        format_version,
        uuid,
        properties,
    } = parts;
    let version_number = match format_version {
        FormatVersion::V1 => 1,
        FormatVersion::V2 => 2,
        FormatVersion::V3 => 3,
    };
    let mut last_column_id = 0;
    max_field_id(&schema, &mut last_column_id);
    let order_id = sort_order["order-id"].clone();
    let mut metadata = json!({
        "format-version": version_number,
        "table-uuid": uuid.to_string(),
        "location": location,
        "last-sequence-number": 0,
        "last-updated-ms": chrono::Utc::now().timestamp_millis(),
        "last-column-id": last_column_id,
        "current-schema-id": schema["schema-id"].clone(),
        "schemas": [schema],
        "partition-specs": [spec.clone()],
        "default-spec-id": 0,
        "last-partition-id": last_partition_id,
        "properties": properties,
        "sort-orders": [sort_order],
        "default-sort-order-id": order_id,
    });
    if format_version == FormatVersion::V1 {
        metadata["schema"] = metadata["schemas"][0].clone();
        metadata["partition-spec"] = spec["fields"].clone();
    }
    if format_version >= FormatVersion::V3 {
        metadata["next-row-id"] = json!(0);
    }
    serde_json::from_value(metadata).map_err(|e| {
        CommitError::InvalidRequest(format!("the request does not describe a valid table: {e}"))
    })
}
