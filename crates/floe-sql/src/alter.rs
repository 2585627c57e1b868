//! `ALTER TABLE t ADD COLUMN c <type> [NULL | NOT NULL]`, `... RENAME COLUMN a TO b` and
//! `... DROP COLUMN c`: schema evolution, committed as one schema change.
//!
//! The new schema is built here from the table's current one (Iceberg schema evolution is by
//! field id: a renamed column keeps its id, so old data files still read under the new name; an
//! added column gets a fresh id, so older files read it as null; a dropped id is never reused).
//! It is committed through the same path as `DELETE`/`UPDATE` ([`crate::dml`]'s committer:
//! Floe's commit engine embedded, the table's REST `updateTable` otherwise) as `add-schema` +
//! `set-current-schema`, required to apply to the schema that was read
//! (`assert-current-schema-id`): if another writer changes the schema in between, the statement
//! fails and nothing is changed, rather than one schema change silently replacing the other.
//! iceberg-rust's own schema action cannot rename columns, and on a conflict it re-applies itself
//! to the new schema instead of failing; its `TableCommit` cannot be built outside the crate.
//!
//! Snapshots keep the id of the schema they were written with, so time travel to before the
//! change still reads the old columns.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema as ArrowSchema};
use datafusion::common::TableReference;
use datafusion::sql::sqlparser::ast::{
    AlterTable, AlterTableOperation, ColumnDef, ColumnOption, Ident, ObjectName,
};
use iceberg::spec::{
    ListType, MAIN_BRANCH, MapType, NestedField, NestedFieldRef, Schema, StructType, TableMetadata,
    Type,
};
use iceberg::table::Table;
use iceberg::{TableIdent, TableRequirement, TableUpdate};

use crate::dml::Outcome;
use crate::provider::{self, TableSpec, display_ident};
use crate::{Output, Session, SqlError, error};

/// One column change, in the order written.
enum Change {
    Add {
        field: NestedFieldRef,
        if_not_exists: bool,
    },
    Rename {
        from: String,
        to: String,
    },
    Drop {
        name: String,
        if_exists: bool,
    },
}

impl Session {
    pub(crate) async fn alter_table(&self, alter: &AlterTable) -> Result<Output, SqlError> {
        if alter.table_type.is_some() || alter.on_cluster.is_some() || alter.location.is_some() {
            return Err(SqlError::new(
                "ALTER TABLE supports only ALTER TABLE t ADD COLUMN / RENAME COLUMN / DROP COLUMN",
            ));
        }
        let ident = self.write_target(&alter.name, "ALTER TABLE")?;
        let table = match self.catalog.load_table(&ident).await {
            Ok(table) => table,
            Err(err) if provider::is_not_found(&err) => {
                if alter.if_exists {
                    return Ok(Output::Done(format!(
                        "table {} does not exist; nothing done",
                        display_ident(&ident)
                    )));
                }
                return Err(SqlError::new(self.missing_table(&ident).await));
            }
            Err(err) => return Err(err.into()),
        };
        self.alter_on(alter, table).await
    }

    /// Applies `alter` to `table` as loaded; committed only if the schema is still the one it has.
    pub(crate) async fn alter_on(
        &self,
        alter: &AlterTable,
        table: Table,
    ) -> Result<Output, SqlError> {
        let Some(committer) = &self.committer else {
            return Err(SqlError::new(
                "ALTER TABLE needs a Floe session (floe sql --catalog or --data-dir)",
            ));
        };
        let ident = table.identifier().clone();
        let shown = display_ident(&ident);
        let mut changes = Vec::new();
        for operation in &alter.operations {
            changes.push(self.change_of(operation, &shown, &table).await?);
        }
        let metadata = table.metadata();
        let Some(evolved) = evolve(metadata, &shown, &changes)? else {
            return Ok(Output::Done(format!(
                "table {shown} already has that schema; nothing done"
            )));
        };
        let mut requirements = vec![
            TableRequirement::UuidMatch {
                uuid: metadata.uuid(),
            },
            TableRequirement::CurrentSchemaIdMatch {
                current_schema_id: metadata.current_schema_id(),
            },
        ];
        if evolved.adds_required {
            // The table was found empty: it must still be when the change lands.
            requirements.push(TableRequirement::RefSnapshotIdMatch {
                r#ref: MAIN_BRANCH.to_string(),
                snapshot_id: metadata.current_snapshot_id(),
            });
        }
        let updates = vec![
            TableUpdate::AddSchema {
                schema: evolved.schema,
            },
            TableUpdate::SetCurrentSchema { schema_id: -1 },
        ];
        match committer.commit(&ident, requirements, updates).await {
            Outcome::Committed => Ok(Output::Done(format!(
                "altered table {shown}: {}",
                evolved.done.join(", ")
            ))),
            Outcome::Conflict(message) => Err(SqlError::new(format!(
                "{shown} changed while ALTER TABLE ran (another writer changed its schema{}), so \
                 nothing was changed; look at its columns again and rerun the statement ({message})",
                if evolved.adds_required {
                    " or added rows"
                } else {
                    ""
                }
            ))),
            Outcome::Refused(err) | Outcome::Unknown(err) => Err(err),
        }
    }

    /// The Iceberg name of the table a write or DDL statement names; past versions and metadata
    /// tables are refused.
    pub(crate) fn write_target(
        &self,
        name: &ObjectName,
        what: &str,
    ) -> Result<TableIdent, SqlError> {
        let normalize = self
            .ctx
            .state()
            .config()
            .options()
            .sql_parser
            .enable_ident_normalization;
        let reference: TableReference =
            datafusion::sql::planner::object_name_to_table_reference(name.clone(), normalize)?;
        let spec = TableSpec::parse(reference.table());
        if spec.version != provider::Version::Current {
            return Err(SqlError::new(format!(
                "{} is a past version or metadata table of {}: {what} cannot change it",
                reference.table(),
                spec.base
            )));
        }
        self.ident(&reference)
    }

    /// A column name as DataFusion reads it: unquoted names are lower-cased.
    fn column_name(&self, ident: &Ident) -> String {
        let normalize = self
            .ctx
            .state()
            .config()
            .options()
            .sql_parser
            .enable_ident_normalization;
        if ident.quote_style.is_none() && normalize {
            ident.value.to_lowercase()
        } else {
            ident.value.clone()
        }
    }

    async fn change_of(
        &self,
        operation: &AlterTableOperation,
        shown: &str,
        table: &Table,
    ) -> Result<Change, SqlError> {
        match operation {
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                column_position: None,
                ..
            } => Ok(Change::Add {
                field: self.new_field(column_def, shown, table).await?,
                if_not_exists: *if_not_exists,
            }),
            AlterTableOperation::AddColumn { .. } => Err(SqlError::new(
                "ADD COLUMN ... FIRST/AFTER is not supported: new columns go last",
            )),
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name,
            } => Ok(Change::Rename {
                from: self.column_name(old_column_name),
                to: self.column_name(new_column_name),
            }),
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                drop_behavior: None,
                ..
            } => {
                let [name] = column_names.as_slice() else {
                    return Err(SqlError::new(
                        "DROP COLUMN takes one column; write one DROP COLUMN per column",
                    ));
                };
                Ok(Change::Drop {
                    name: self.column_name(name),
                    if_exists: *if_exists,
                })
            }
            AlterTableOperation::DropColumn { .. } => Err(SqlError::new(
                "DROP COLUMN ... CASCADE/RESTRICT is not supported",
            )),
            other => Err(SqlError::new(format!(
                "ALTER TABLE ... {} is not supported by floe sql; it supports ADD COLUMN, \
                 RENAME COLUMN and DROP COLUMN",
                first_words(&other.to_string())
            ))),
        }
    }

    /// The Iceberg field of an `ADD COLUMN`, with ids from 1: the table's ids are given when the
    /// schema is built.
    async fn new_field(
        &self,
        column: &ColumnDef,
        shown: &str,
        table: &Table,
    ) -> Result<NestedFieldRef, SqlError> {
        let name = self.column_name(&column.name);
        let mut required = false;
        for option in &column.options {
            match option.option {
                ColumnOption::Null => required = false,
                ColumnOption::NotNull => required = true,
                _ => {
                    return Err(SqlError::new(format!(
                        "ADD COLUMN {name}: column option {} is not supported (only NULL and NOT \
                         NULL)",
                        option.option
                    )));
                }
            }
        }
        // DataFusion's own mapping of SQL types to Arrow types, as for CREATE TABLE.
        let plan = self
            .ctx
            .state()
            .create_logical_plan(&format!("SELECT CAST(NULL AS {}) AS c", column.data_type))
            .await
            .map_err(|err| {
                SqlError::new(format!("ADD COLUMN {name}: {}", error::describe(&err)))
            })?;
        let arrow_field = plan.schema().field(0).clone();
        let arrow = crate::iceberg_friendly_schema(&ArrowSchema::new(vec![Field::new(
            name.clone(),
            arrow_field.data_type().clone(),
            true,
        )]));
        let schema =
            iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&arrow).map_err(|err| {
                SqlError::new(format!(
                    "ADD COLUMN {name}: type {} has no Iceberg type: {}",
                    column.data_type,
                    error::describe_iceberg(&err)
                ))
            })?;
        let field = schema
            .as_struct()
            .fields()
            .first()
            .ok_or_else(|| SqlError::new("internal: a one-column schema without its column"))?;
        if !field.field_type.is_primitive() && !is_empty(table.metadata()) {
            return Err(SqlError::new(format!(
                "cannot add column {name} of type {} to {shown}: the table has rows, and \
                 iceberg-rust cannot yet read a list, struct or map column from files written \
                 before it existed; add a column of a primitive type",
                column.data_type
            )));
        }
        if required && !is_empty(table.metadata()) {
            return Err(SqlError::new(format!(
                "cannot add NOT NULL column {name} to {shown}: the table has rows, which would \
                 have no value for it; add it without NOT NULL (a nullable column)"
            )));
        }
        let mut field = field.clone();
        Arc::make_mut(&mut field).required = required;
        Ok(field)
    }
}

/// The first words of an operation, to name it in an error.
fn first_words(text: &str) -> String {
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the table's current snapshot has no rows (or there is none).
fn is_empty(metadata: &TableMetadata) -> bool {
    match metadata.current_snapshot() {
        None => true,
        Some(snapshot) => {
            snapshot
                .summary()
                .additional_properties
                .get("total-records")
                .map(String::as_str)
                == Some("0")
        }
    }
}

/// `field` with every field id (its own and nested ones) moved by `offset`.
fn renumber(field: &NestedField, offset: i32) -> NestedFieldRef {
    let field_type = match field.field_type.as_ref() {
        Type::Primitive(_) => field.field_type.as_ref().clone(),
        Type::Struct(fields) => Type::Struct(StructType::new(
            fields
                .fields()
                .iter()
                .map(|f| renumber(f, offset))
                .collect(),
        )),
        Type::List(list) => Type::List(ListType {
            element_field: renumber(&list.element_field, offset),
        }),
        Type::Map(map) => Type::Map(MapType {
            key_field: renumber(&map.key_field, offset),
            value_field: renumber(&map.value_field, offset),
        }),
    };
    Arc::new(NestedField {
        id: field.id + offset,
        field_type: Box::new(field_type),
        ..field.clone()
    })
}

/// The highest field id in `field`, nested ones included.
fn highest_id(field: &NestedField) -> i32 {
    let nested = match field.field_type.as_ref() {
        Type::Primitive(_) => 0,
        Type::Struct(fields) => fields
            .fields()
            .iter()
            .map(|f| highest_id(f))
            .max()
            .unwrap_or(0),
        Type::List(list) => highest_id(&list.element_field),
        Type::Map(map) => highest_id(&map.key_field).max(highest_id(&map.value_field)),
    };
    field.id.max(nested)
}

struct Evolved {
    schema: Schema,
    /// What was done, for the message: "added column c", ...
    done: Vec<String>,
    adds_required: bool,
}

/// The schema after `changes`, applied in order to the current one; `None` if nothing changes
/// (every change was an `IF [NOT] EXISTS` that did not apply).
fn evolve(
    metadata: &TableMetadata,
    shown: &str,
    changes: &[Change],
) -> Result<Option<Evolved>, SqlError> {
    let current = metadata.current_schema();
    let mut fields: Vec<NestedFieldRef> = current.as_struct().fields().to_vec();
    let identifiers: HashSet<i32> = current.identifier_field_ids().collect();
    let mut next_id = metadata.last_column_id();
    let mut done = Vec::new();
    let mut adds_required = false;
    let columns = |fields: &[NestedFieldRef]| {
        fields
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for change in changes {
        match change {
            Change::Add {
                field,
                if_not_exists,
            } => {
                if fields.iter().any(|f| f.name == field.name) {
                    if *if_not_exists {
                        continue;
                    }
                    return Err(SqlError::new(format!(
                        "{shown} already has a column named {}",
                        field.name
                    )));
                }
                let field = renumber(field, next_id);
                next_id = highest_id(&field);
                adds_required |= field.required;
                done.push(format!("added column {}", field.name));
                fields.push(field);
            }
            Change::Rename { from, to } => {
                let Some(at) = fields.iter().position(|f| &f.name == from) else {
                    return Err(SqlError::new(format!(
                        "{shown} has no column {from}; its columns are: {}",
                        columns(&fields)
                    )));
                };
                if from == to {
                    continue;
                }
                if fields.iter().any(|f| &f.name == to) {
                    return Err(SqlError::new(format!(
                        "cannot rename {from} to {to}: {shown} already has a column named {to}"
                    )));
                }
                let mut renamed = fields[at].as_ref().clone();
                renamed.name = to.clone();
                fields[at] = Arc::new(renamed);
                done.push(format!("renamed column {from} to {to}"));
            }
            Change::Drop { name, if_exists } => {
                let Some(at) = fields.iter().position(|f| &f.name == name) else {
                    if *if_exists {
                        continue;
                    }
                    return Err(SqlError::new(format!(
                        "{shown} has no column {name}; its columns are: {}",
                        columns(&fields)
                    )));
                };
                let id = fields[at].id;
                check_droppable(metadata, shown, name, id, &identifiers)?;
                if fields.len() == 1 {
                    return Err(SqlError::new(format!(
                        "cannot drop {name}: it is the only column of {shown}"
                    )));
                }
                fields.remove(at);
                done.push(format!("dropped column {name}"));
            }
        }
    }
    if done.is_empty() {
        return Ok(None);
    }
    let highest_schema_id = metadata
        .schemas_iter()
        .map(|s| s.schema_id())
        .max()
        .unwrap_or_default();
    let schema = Schema::builder()
        .with_schema_id(highest_schema_id + 1)
        .with_fields(fields)
        .with_identifier_field_ids(identifiers)
        .build()
        .map_err(|err| {
            SqlError::new(format!(
                "cannot change the schema of {shown}: {}",
                error::describe_iceberg(&err)
            ))
        })?;
    Ok(Some(Evolved {
        schema,
        done,
        adds_required,
    }))
}

/// A column that a partition field, sort order or identifier uses cannot be dropped: the table's
/// files and their metadata refer to it.
fn check_droppable(
    metadata: &TableMetadata,
    shown: &str,
    name: &str,
    id: i32,
    identifiers: &HashSet<i32>,
) -> Result<(), SqlError> {
    if identifiers.contains(&id) {
        return Err(SqlError::new(format!(
            "cannot drop {name}: it is an identifier field (row key) of {shown}"
        )));
    }
    for spec in metadata.partition_specs_iter() {
        if let Some(field) = spec.fields().iter().find(|f| f.source_id == id) {
            let current = if spec.spec_id() == metadata.default_partition_spec_id() {
                ""
            } else {
                " (in an earlier partition spec, which older files still use)"
            };
            return Err(SqlError::new(format!(
                "cannot drop {name}: partition field {} ({}) of {shown} uses it{current}",
                field.name, field.transform
            )));
        }
    }
    for order in metadata.sort_orders_iter() {
        if order.fields.iter().any(|f| f.source_id == id) {
            return Err(SqlError::new(format!(
                "cannot drop {name}: a sort order of {shown} uses it"
            )));
        }
    }
    Ok(())
}
