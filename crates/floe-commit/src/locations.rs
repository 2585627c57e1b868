//! Table and view locations on the engine's side (see *Locations* in `floe_store`): the
//! `set-location` updates made canonical before they apply, and the one-time recording of the
//! locations of tables and views created before the store kept them.
//!
//! # Recording existing locations
//!
//! Migration 0007 added the `location` column empty. [`record_missing`] runs when a catalog opens:
//! it reads the metadata file of each table and view without a recorded location, once, and
//! records the location it names. That is one object-store read per such table, paid once, at the
//! first start after the upgrade; later starts find nothing to do (one indexed query). Until a
//! row's location is recorded it takes part in no overlap check, and an existing overlap found
//! while recording is logged, not undone: both tables exist already.

use std::collections::HashMap;
use std::sync::Arc;

use floe_storage::{RetryOptions, Warehouse, canonical_location};
use floe_store::{MetadataStore, UnlocatedPointer};
use iceberg::{TableUpdate, ViewUpdate};
use serde::Deserialize;
use tracing::{info, warn};

use crate::Result;

/// `updates` with every `set-location` made canonical, and refused if it leaves the warehouse.
pub(crate) fn canonical_updates(
    warehouse: &Warehouse,
    updates: &[TableUpdate],
) -> Result<Vec<TableUpdate>> {
    updates
        .iter()
        .map(|update| match update {
            TableUpdate::SetLocation { location } => Ok(TableUpdate::SetLocation {
                location: warehouse.table_location(location)?,
            }),
            other => Ok(other.clone()),
        })
        .collect()
}

/// The view form of [`canonical_updates`], for one update.
pub(crate) fn canonical_view_update(
    warehouse: &Warehouse,
    update: &ViewUpdate,
) -> Result<ViewUpdate> {
    Ok(match update {
        ViewUpdate::SetLocation { location } => ViewUpdate::SetLocation {
            location: warehouse.table_location(location)?,
        },
        other => other.clone(),
    })
}

/// The one field of table and view metadata this needs.
#[derive(Deserialize)]
struct Located {
    location: String,
}

/// Records the location of every table and view that has none (see the module docs). `default`
/// is the default warehouse; registered ones are opened from their records with `retry`. Never
/// fails: what cannot be read now is logged and tried again at the next start.
pub async fn record_missing(
    store: &Arc<dyn MetadataStore>,
    default: &Warehouse,
    retry: &RetryOptions,
) {
    let unlocated = match store.unlocated_pointers().await {
        Ok(unlocated) => unlocated,
        Err(err) => {
            warn!(error = %err, "cannot list tables without a recorded location; will retry at the next start");
            return;
        }
    };
    if unlocated.is_empty() {
        return;
    }
    info!(
        count = unlocated.len(),
        "recording the locations of tables and views created before locations were recorded (once)"
    );
    let mut registered: HashMap<String, Warehouse> = HashMap::new();
    for pointer in &unlocated {
        let warehouse = match &pointer.warehouse {
            None => default.clone(),
            Some(name) => match registered.get(name) {
                Some(warehouse) => warehouse.clone(),
                None => match open_registered(store, name, retry).await {
                    Ok(warehouse) => {
                        registered.insert(name.clone(), warehouse.clone());
                        warehouse
                    }
                    Err(err) => {
                        warn!(warehouse = %name, error = %err, "cannot open a warehouse to record its tables' locations");
                        continue;
                    }
                },
            },
        };
        if let Err(err) = record_one(store, &warehouse, pointer).await {
            warn!(
                kind = %pointer.kind,
                name = %pointer.name,
                error = %err,
                "cannot record a location; will retry at the next start"
            );
        }
    }
}

async fn open_registered(
    store: &Arc<dyn MetadataStore>,
    name: &str,
    retry: &RetryOptions,
) -> Result<Warehouse> {
    let record = store.load_warehouse(name).await?;
    crate::warehouses::open_storage(&record, retry)
}

async fn record_one(
    store: &Arc<dyn MetadataStore>,
    warehouse: &Warehouse,
    pointer: &UnlocatedPointer,
) -> Result<()> {
    let bytes = warehouse.get(&pointer.metadata_location).await?;
    let located: Located = serde_json::from_slice(&bytes).map_err(|err| {
        crate::CommitError::Internal(format!(
            "metadata file {} names no location: {err}",
            pointer.metadata_location
        ))
    })?;
    let location = canonical_location(&located.location)?;
    if let Some(holder) = store.record_location(pointer, &location).await? {
        warn!(
            kind = %pointer.kind,
            name = %pointer.name,
            %location,
            other = %holder,
            "two existing tables or views have overlapping locations: purging one may delete the other's files"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
    use sqlx::Connection;

    use crate::open::{OpenOptions, open};
    use crate::{CommitError, CreateTable};
    use floe_store::TableName;

    fn create(name: &str, location: Option<String>) -> CreateTable {
        CreateTable {
            name: TableName::new(vec!["ns".to_string()], name),
            location,
            schema: Schema::builder()
                .with_fields(vec![
                    NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
                ])
                .build()
                .unwrap(),
            partition_spec: None,
            sort_order: None,
            properties: HashMap::new(),
            stage: false,
        }
    }

    /// A store from before migration 0007 (locations emptied by hand) gets them recorded when the
    /// catalog opens, and from then on they are checked.
    #[tokio::test]
    async fn existing_locations_are_recorded_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let options = OpenOptions::new(dir.path().join("data"));
        let catalog = open(&options).await.unwrap();
        catalog
            .create_namespace(&["ns".to_string()], &Default::default())
            .await
            .unwrap();
        let old = catalog.create_table(create("old", None)).await.unwrap();
        let old_location = old.metadata().location().to_string();
        drop(catalog);

        let url = format!("sqlite://{}", options.catalog_db().display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE tables SET location = NULL")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();

        let catalog = open(&options).await.unwrap();
        assert!(
            catalog
                .store()
                .unlocated_pointers()
                .await
                .unwrap()
                .is_empty()
        );
        let err = catalog
            .create_table(create("new", Some(format!("{old_location}/data"))))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CommitError::InvalidRequest(message) if message.contains("table ns.old")),
            "{err:?}"
        );
    }
}
