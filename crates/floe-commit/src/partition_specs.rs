//! Partition specs bound by the rules of Iceberg's Java reference implementation.
//!
//! Floe applies updates with iceberg-rust's `TableMetadataBuilder`, whose partition-spec binding
//! is stricter than Java's `UnboundPartitionSpec.bind`, which Java's REST catalog uses. Two specs
//! that clients legitimately produce are refused by the builder and accepted by Java:
//!
//! * two time transforms on one column (`day(ts)` and then `hour(ts)`): the builder calls them
//!   "redundant"; Java's `bind` has no such check (only its named helpers such as `day(...)` do);
//! * a `void` field named like its own source column: on a v1 table removing a partition field
//!   replaces it with `void`, keeping its name (`id`), so the name now belongs to a non-identity
//!   transform. Java allows a field to share its name with its *own* source column whatever the
//!   transform; the builder only allows it for `identity`.
//!
//! The builder also re-binds the default spec with the same rules in `build()`, so once such a
//! spec is the default, every later commit to the table would fail too. Hence this module owns
//! partition specs whenever a commit touches them (`add-spec`, `set-default-spec`,
//! `remove-partition-specs`) or the table's default spec is one the builder refuses:
//!
//! 1. the builder gets the table with an extra empty spec as its default (it still sees the real
//!    specs, e.g. to refuse new columns named like partition fields), and every update except the
//!    three spec updates;
//! 2. this module applies the spec updates as the builder would (field-id reuse and assignment,
//!    spec-id reuse, v1's sequential ids, `-1` for the last added spec), but binds each added spec
//!    by Java's rules against the current schema at that point;
//! 3. after `build()`, the real specs, default spec id and last partition id replace the
//!    builder's in the metadata JSON, which is parsed again (so the result is what every reader
//!    will parse), after the default spec was checked against the final schema.
//!
//! Every other commit goes to the builder alone, as before.
//!
//! The checks kept from both implementations: names are non-empty and unique in a spec, a name
//! that is a column of the schema must be that field's source column, field ids are unique in a
//! spec (and sequential from 1000 on v1), transforms other than `void` need a primitive source of
//! a type they apply to. One check is stricter than Java's: the source column of a `void` field
//! must exist, as iceberg-rust computes every default spec's partition type from its sources.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use iceberg::TableUpdate;
use iceberg::spec::{
    FormatVersion, MetadataLog, PartitionField, Schema, SchemaRef, TableMetadata,
    TableMetadataBuilder, Transform, UnboundPartitionSpec,
};
use serde_json::{Value, json};

use crate::{CommitError, Result};

/// Partition field ids start here, as in every Iceberg implementation.
const FIRST_FIELD_ID: i32 = 1000;

/// The id of the empty spec the builder sees as the default while this module owns the real ones.
/// Never written: the real specs replace the builder's before the metadata leaves this module.
const STAND_IN_SPEC_ID: i32 = i32::MAX;

/// What applying a change's updates produced.
pub(crate) struct Applied {
    pub metadata: TableMetadata,
    /// Entries the metadata log dropped (see `write.metadata.previous-versions-max`).
    pub expired_metadata_logs: Vec<MetadataLog>,
}

/// Applies `updates` to `base` (read from `previous_location`, `None` for a new table) and builds
/// the new metadata. See the module docs for which path a commit takes.
pub(crate) fn apply(
    base: TableMetadata,
    previous_location: Option<String>,
    updates: Vec<TableUpdate>,
) -> Result<Applied> {
    if !updates.iter().any(is_spec_update) && builder_accepts_default_spec(&base) {
        let mut builder = TableMetadataBuilder::new_from_metadata(base, previous_location);
        for update in updates {
            builder = update.apply(builder).map_err(CommitError::from_iceberg)?;
        }
        let built = builder.build().map_err(CommitError::from_iceberg)?;
        return Ok(Applied {
            metadata: built.metadata,
            expired_metadata_logs: built.expired_metadata_logs,
        });
    }

    let mut specs = Specs::of(&base);
    let mut schemas = Schemas::of(&base);
    let mut builder = TableMetadataBuilder::new_from_metadata(
        with_stand_in_default_spec(&base)?,
        previous_location,
    );
    for update in updates {
        match update {
            TableUpdate::AddSpec { spec } => specs.add(spec, schemas.current()?)?,
            TableUpdate::SetDefaultSpec { spec_id } => specs.set_default(spec_id)?,
            TableUpdate::RemovePartitionSpecs { spec_ids } => specs.remove(&spec_ids)?,
            other => {
                if let TableUpdate::UpgradeFormatVersion { format_version } = &other {
                    // The builder refuses downgrades; v1's sequential ids apply until the upgrade.
                    specs.format_version = specs.format_version.max(*format_version);
                }
                schemas.track(&other);
                builder = other.apply(builder).map_err(CommitError::from_iceberg)?;
            }
        }
    }
    let built = builder.build().map_err(CommitError::from_iceberg)?;
    let metadata = specs.put_into(built.metadata)?;
    Ok(Applied {
        metadata,
        expired_metadata_logs: built.expired_metadata_logs,
    })
}

fn is_spec_update(update: &TableUpdate) -> bool {
    matches!(
        update,
        TableUpdate::AddSpec { .. }
            | TableUpdate::SetDefaultSpec { .. }
            | TableUpdate::RemovePartitionSpecs { .. }
    )
}

/// Whether the builder's `build()` can re-bind the table's default spec as it is.
fn builder_accepts_default_spec(metadata: &TableMetadata) -> bool {
    let spec = metadata.default_partition_spec().as_ref().clone();
    spec.into_unbound()
        .bind(metadata.current_schema().clone())
        .is_ok()
}

fn invalid(message: String) -> CommitError {
    CommitError::InvalidRequest(message)
}

/// `metadata` with an empty spec as its default, for the builder.
fn with_stand_in_default_spec(metadata: &TableMetadata) -> Result<TableMetadata> {
    let mut document = to_json(metadata)?;
    if let Some(specs) = document
        .get_mut("partition-specs")
        .and_then(Value::as_array_mut)
    {
        specs.push(json!({ "spec-id": STAND_IN_SPEC_ID, "fields": [] }));
    }
    document["default-spec-id"] = json!(STAND_IN_SPEC_ID);
    if metadata.format_version() == FormatVersion::V1 {
        document["partition-spec"] = json!([]);
    }
    serde_json::from_value(document)
        .map_err(|err| CommitError::Internal(format!("cannot re-read table metadata: {err}")))
}

fn to_json(metadata: &TableMetadata) -> Result<Value> {
    serde_json::to_value(metadata)
        .map_err(|err| CommitError::Internal(format!("cannot serialize table metadata: {err}")))
}

/// The table's schemas as the updates change them, to bind each added spec to the schema that is
/// current at that point (as the builder and Java do).
struct Schemas {
    by_id: HashMap<i32, SchemaRef>,
    current: i32,
    last_added: Option<i32>,
}

impl Schemas {
    fn of(metadata: &TableMetadata) -> Self {
        Self {
            by_id: metadata
                .schemas_iter()
                .map(|schema| (schema.schema_id(), schema.clone()))
                .collect(),
            current: metadata.current_schema_id(),
            last_added: None,
        }
    }

    fn current(&self) -> Result<&Schema> {
        self.by_id
            .get(&self.current)
            .map(Arc::as_ref)
            .ok_or_else(|| {
                invalid(format!(
                    "the current schema {} does not exist",
                    self.current
                ))
            })
    }

    /// Follows `add-schema` and `set-current-schema` the way the builder numbers schemas; the
    /// builder itself refuses invalid ones.
    fn track(&mut self, update: &TableUpdate) {
        match update {
            TableUpdate::AddSchema { schema } => {
                let same = |known: &SchemaRef| {
                    known.as_struct() == schema.as_struct()
                        && known.identifier_field_ids().collect::<HashSet<_>>()
                            == schema.identifier_field_ids().collect::<HashSet<_>>()
                };
                let id = match self.by_id.iter().find(|(_, known)| same(known)) {
                    Some((id, _)) => *id,
                    None => {
                        let id = self.by_id.keys().max().copied().unwrap_or(self.current) + 1;
                        self.by_id.insert(id, Arc::new(schema.clone()));
                        id
                    }
                };
                self.last_added = Some(id);
            }
            TableUpdate::SetCurrentSchema { schema_id } => {
                let id = if *schema_id == TableMetadataBuilder::LAST_ADDED {
                    self.last_added
                } else {
                    Some(*schema_id)
                };
                if let Some(id) = id.filter(|id| self.by_id.contains_key(id)) {
                    self.current = id;
                }
            }
            _ => {}
        }
    }
}

/// The table's partition specs, owned by this module for one commit.
struct Specs {
    by_id: BTreeMap<i32, Vec<PartitionField>>,
    default_id: i32,
    last_partition_id: i32,
    last_added: Option<i32>,
    format_version: FormatVersion,
}

impl Specs {
    fn of(metadata: &TableMetadata) -> Self {
        Self {
            by_id: metadata
                .partition_specs_iter()
                .map(|spec| (spec.spec_id(), spec.fields().to_vec()))
                .collect(),
            default_id: metadata.default_partition_spec_id(),
            last_partition_id: metadata.last_partition_id(),
            last_added: None,
            format_version: metadata.format_version(),
        }
    }

    /// `add-spec`: binds the spec to `schema` by Java's rules, reusing an equal spec's id.
    fn add(&mut self, unbound: UnboundPartitionSpec, schema: &Schema) -> Result<()> {
        let fields = self.assign_field_ids(unbound)?;
        check_fields(&fields, schema)?;
        let equal = |known: &Vec<PartitionField>| {
            known.len() == fields.len()
                && known.iter().zip(&fields).all(|(a, b)| {
                    a.source_id == b.source_id && a.name == b.name && a.transform == b.transform
                })
        };
        if let Some((id, _)) = self.by_id.iter().find(|(_, known)| equal(known)) {
            self.last_added = Some(*id);
            return Ok(());
        }
        if self.format_version == FormatVersion::V1 && !has_sequential_ids(&fields) {
            return Err(invalid(
                "a partition spec of a format version 1 table must number its fields 1000, 1001, ..."
                    .to_string(),
            ));
        }
        let id = self.by_id.keys().max().map_or(0, |id| id + 1);
        if let Some(highest) = fields.iter().map(|field| field.field_id).max() {
            self.last_partition_id = self.last_partition_id.max(highest);
        }
        self.by_id.insert(id, fields);
        self.last_added = Some(id);
        Ok(())
    }

    /// Field ids as the builder assigns them: a field without one takes the id of a field with the
    /// same source and transform in an earlier spec, else the next id after the table's last.
    fn assign_field_ids(&self, unbound: UnboundPartitionSpec) -> Result<Vec<PartitionField>> {
        let mut known_ids = HashMap::new();
        for field in self.by_id.values().flatten() {
            known_ids
                .entry((field.source_id, field.transform))
                .or_insert(field.field_id);
        }
        let fields = unbound
            .fields()
            .iter()
            .map(|field| {
                let mut field = field.clone();
                if field.field_id.is_none() {
                    field.field_id = known_ids.get(&(field.source_id, field.transform)).copied();
                }
                field
            })
            .collect::<Vec<_>>();
        let taken = fields
            .iter()
            .filter_map(|field| field.field_id)
            .collect::<HashSet<_>>();
        let mut last = self.last_partition_id.max(FIRST_FIELD_ID - 1);
        let mut bound = Vec::with_capacity(fields.len());
        for field in fields {
            let field_id = match field.field_id {
                Some(id) => {
                    last = last.max(id);
                    id
                }
                None => loop {
                    last = last
                        .checked_add(1)
                        .ok_or_else(|| invalid("no partition field id is left".to_string()))?;
                    if !taken.contains(&last) {
                        break last;
                    }
                },
            };
            bound.push(PartitionField {
                source_id: field.source_id,
                field_id,
                name: field.name,
                transform: field.transform,
            });
        }
        Ok(bound)
    }

    /// `set-default-spec`; `-1` names the spec added last in this commit.
    fn set_default(&mut self, spec_id: i32) -> Result<()> {
        let spec_id = if spec_id == TableMetadataBuilder::LAST_ADDED {
            self.last_added.ok_or_else(|| {
                invalid(
                    "cannot set the last added partition spec as default: none was added".into(),
                )
            })?
        } else {
            spec_id
        };
        if !self.by_id.contains_key(&spec_id) {
            return Err(invalid(format!(
                "cannot set the default partition spec to {spec_id}: no such spec"
            )));
        }
        self.default_id = spec_id;
        Ok(())
    }

    /// `remove-partition-specs`; ids of specs that do not exist are ignored.
    fn remove(&mut self, spec_ids: &[i32]) -> Result<()> {
        if spec_ids.contains(&self.default_id) {
            return Err(invalid(format!(
                "cannot remove the default partition spec {}",
                self.default_id
            )));
        }
        for id in spec_ids {
            self.by_id.remove(id);
        }
        Ok(())
    }

    /// Replaces the builder's specs in `metadata` with these, after checking that the default spec
    /// still binds to the final schema.
    fn put_into(self, metadata: TableMetadata) -> Result<TableMetadata> {
        let default = self.by_id.get(&self.default_id).ok_or_else(|| {
            invalid(format!(
                "the default partition spec {} does not exist",
                self.default_id
            ))
        })?;
        check_fields(default, metadata.current_schema()).map_err(|err| {
            invalid(format!(
                "the default partition spec {} does not fit the current schema: {err}",
                self.default_id
            ))
        })?;
        let mut document = to_json(&metadata)?;
        let specs = self
            .by_id
            .iter()
            .map(|(id, fields)| json!({ "spec-id": id, "fields": fields }))
            .collect::<Vec<_>>();
        document["partition-specs"] = Value::Array(specs);
        document["default-spec-id"] = json!(self.default_id);
        document["last-partition-id"] = json!(self.last_partition_id);
        if metadata.format_version() == FormatVersion::V1 {
            document["partition-spec"] = json!(default);
        }
        serde_json::from_value(document)
            .map_err(|err| invalid(format!("the partition specs are not valid: {err}")))
    }
}

/// The checks of Java's `UnboundPartitionSpec.bind` (which adds every field with
/// `PartitionSpec.Builder.add`, then runs `checkCompatibility`), plus unique field ids and existing
/// sources for `void` fields.
fn check_fields(fields: &[PartitionField], schema: &Schema) -> Result<()> {
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for field in fields {
        let name = &field.name;
        if name.is_empty() {
            return Err(invalid("a partition field name must not be empty".into()));
        }
        if !names.insert(name.as_str()) {
            return Err(invalid(format!(
                "partition field name {name:?} is used more than once"
            )));
        }
        if !ids.insert(field.field_id) {
            return Err(invalid(format!(
                "partition field id {} is used more than once in one spec",
                field.field_id
            )));
        }
        let source = schema.field_by_id(field.source_id).ok_or_else(|| {
            invalid(format!(
                "partition field {name:?}: no column has the source id {}",
                field.source_id
            ))
        })?;
        // A partition field may share its name only with its own source column.
        if let Some(column) = schema.field_by_name(name)
            && column.id != field.source_id
        {
            return Err(invalid(format!(
                "partition field {name:?} is named like column {} but its source is column {}",
                column.id, field.source_id
            )));
        }
        if field.transform != Transform::Void {
            if !source.field_type.is_primitive() {
                return Err(invalid(format!(
                    "partition field {name:?}: cannot partition by the non-primitive column {:?}",
                    source.name
                )));
            }
            if field.transform.result_type(&source.field_type).is_err() {
                return Err(invalid(format!(
                    "partition field {name:?}: transform {} does not apply to {} column {:?}",
                    field.transform, source.field_type, source.name
                )));
            }
        }
    }
    Ok(())
}

fn has_sequential_ids(fields: &[PartitionField]) -> bool {
    fields
        .iter()
        .enumerate()
        .all(|(index, field)| i64::from(field.field_id) == i64::from(FIRST_FIELD_ID) + index as i64)
}
