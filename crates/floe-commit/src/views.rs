//! Iceberg views: create, load, replace, drop and rename, by the same protocol as tables.
//!
//! A view is a chain of immutable view metadata files (`ViewMetadata`: versions, each a SQL text
//! per dialect over a schema) and a pointer in the [`MetadataStore`](floe_store::MetadataStore) to
//! the current one, kept beside the tables' pointers so that a view and a table never share a name
//! (see *Views* in `floe_store`'s docs). Changing a view is the table commit protocol with one
//! pointer:
//!
//! 1. read the view's pointer and its metadata file;
//! 2. check the requirements (`assert-view-uuid`, the only one the REST spec has) — a failed one
//!    is a conflict (409): the client replaces a view it did not read;
//! 3. apply the updates with Iceberg's `ViewMetadataBuilder`;
//! 4. write the new metadata file under the view's location with put-if-absent;
//! 5. move the pointer from the value read in step 1 with
//!    [`MetadataStore::swap_view_pointer`](floe_store::MetadataStore::swap_view_pointer).
//!
//! A lost race deletes the file of step 4 and starts again from step 1, up to the catalog's
//! attempt limit; a failed commit never leaves a file any pointer names. View metadata files are
//! small and read rarely (when a query plans), so they are not cached: every load reads the
//! pointer and the file afresh, and verifies the file against the size and SHA-256 the pointer
//! records (see `integrity`). Dropping a view removes its pointer and leaves its files, as
//! dropping a table without `purgeRequested` does.

use std::collections::HashMap;

use bytes::Bytes;
use floe_storage::StorageError;
use floe_store::{FileChecksum, Page, PageRequest, TablePointer, ViewName};
use iceberg::ViewUpdate;
use iceberg::spec::{Schema, ViewFormatVersion, ViewMetadata, ViewMetadataBuilder, ViewVersion};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::{
    Catalog, CommitError, Result, locations, metadata_file_location, metadata_file_version,
    validate_name,
};

/// A view as it is now: its pointer and parsed metadata.
#[derive(Debug, Clone)]
pub struct LoadedView {
    pub name: ViewName,
    pub metadata_location: String,
    /// The store's pointer version.
    pub version: i64,
    pub metadata: ViewMetadata,
    /// The metadata file's bytes: responses carry them as they are, so that every load of one
    /// file answers the same JSON (`metadata` re-serialized would order its maps at random).
    pub json: Bytes,
}

/// A request to create a view, as the REST API carries it.
#[derive(Debug, Clone)]
pub struct CreateView {
    pub name: ViewName,
    /// Where the view's metadata files go; a fresh directory in the warehouse when `None`.
    pub location: Option<String>,
    pub schema: Schema,
    /// The first version; its `schema-id` is replaced by the id the schema gets.
    pub view_version: ViewVersion,
    pub properties: HashMap<String, String>,
}

/// What must hold for a view change to apply (the REST spec's `ViewRequirement`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ViewRequirement {
    /// The view's UUID is this one: the view was not dropped and re-created since it was read.
    AssertViewUuid { uuid: Uuid },
}

/// One view's change: what must hold, and what to change.
#[derive(Debug, Clone)]
pub struct ViewChange {
    pub view: ViewName,
    pub requirements: Vec<ViewRequirement>,
    pub updates: Vec<ViewUpdate>,
}

impl Catalog {
    /// View names in `namespace`, in name order.
    pub async fn list_views(
        &self,
        namespace: &[String],
        page: &PageRequest,
    ) -> Result<Page<String>> {
        Ok(self.store.list_views(namespace, page).await?)
    }

    /// The view's pointer alone: one indexed read, for existence checks.
    pub async fn view_pointer(&self, view: &ViewName) -> Result<TablePointer> {
        Ok(self.store.load_view(view).await?)
    }

    /// The view's current state, read afresh from the store and its metadata file.
    pub async fn load_view(&self, view: &ViewName) -> Result<LoadedView> {
        let pointer = self.store.load_view(view).await?;
        let (metadata, json) = self.read_view_metadata(view, &pointer).await?;
        Ok(LoadedView {
            name: view.clone(),
            metadata_location: pointer.metadata_location,
            version: pointer.version,
            metadata,
            json,
        })
    }

    pub async fn create_view(&self, request: CreateView) -> Result<LoadedView> {
        validate_name(&request.name.name, "view")?;
        // Checked first so that a create into a missing namespace writes no file; the store
        // checks again when it creates the pointer.
        self.store.load_namespace(&request.name.namespace).await?;
        // Every file of the view must stay inside the warehouse, whatever location a client set.
        let location = self.warehouse.table_location(&match &request.location {
            Some(location) => location.clone(),
            None => self
                .warehouse
                .new_table_location(&request.name.namespace, &request.name.name),
        })?;
        let metadata = ViewMetadataBuilder::new(
            location,
            request.schema,
            request.view_version,
            ViewFormatVersion::V1,
            request.properties,
        )
        .and_then(ViewMetadataBuilder::build)
        .map_err(CommitError::from_iceberg)?
        .metadata;
        let json = view_json(&metadata)?;
        let new_location = metadata_file_location(metadata.location(), 0);
        self.write_view_metadata(&new_location, &json).await?;
        match self
            .store
            .create_view(
                &request.name,
                &new_location,
                &FileChecksum::of(&json),
                metadata.location(),
            )
            .await
        {
            Ok(pointer) => {
                info!(view = %request.name, location = %new_location, "view created");
                Ok(LoadedView {
                    name: request.name,
                    metadata_location: new_location,
                    version: pointer.version,
                    metadata,
                    json,
                })
            }
            Err(err) => {
                self.forget_files_of_failed_swap(&err, std::slice::from_ref(&new_location))
                    .await;
                Err(err.into())
            }
        }
    }

    /// Commits a change to a view (the REST API's replaceView). See the module docs for the
    /// protocol.
    pub async fn commit_view(&self, change: ViewChange) -> Result<LoadedView> {
        // Views and tables never share a name, so the tables' commit queues serve views too.
        let _turn = self.table_locks.acquire(&[&change.view]).await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Steps 1–3: read, check, apply.
            let pointer = self.store.load_view(&change.view).await?;
            let (current, _) = self.read_view_metadata(&change.view, &pointer).await?;
            for requirement in &change.requirements {
                check_requirement(&change.view, requirement, &current)?;
            }
            let current_uuid = current.uuid();
            let current_location = current.location().to_string();
            let mut builder = current.into_builder();
            for update in &change.updates {
                let update = locations::canonical_view_update(&self.warehouse, update)?;
                builder = apply_update(builder, update, current_uuid)?;
            }
            let metadata = builder.build().map_err(CommitError::from_iceberg)?.metadata;
            self.warehouse.object_path(metadata.location())?;
            // A moved view's location is recorded, and checked against the others', by the swap.
            let location = (metadata.location() != current_location)
                .then(|| self.warehouse.table_location(metadata.location()))
                .transpose()?;
            let json = view_json(&metadata)?;

            // Steps 4–5: write, swap.
            let previous = metadata_file_version(&pointer.metadata_location);
            let new_location = metadata_file_location(metadata.location(), previous + 1);
            self.write_view_metadata(&new_location, &json).await?;
            match self
                .store
                .swap_view_pointer(
                    &change.view,
                    &pointer.metadata_location,
                    &new_location,
                    &FileChecksum::of(&json),
                    location.as_deref(),
                )
                .await
            {
                Ok(moved) => {
                    debug!(view = %change.view, location = %new_location, attempt, "view committed");
                    return Ok(LoadedView {
                        name: change.view,
                        metadata_location: new_location,
                        version: moved.version,
                        metadata,
                        json,
                    });
                }
                Err(floe_store::StoreError::Conflict { .. }) => {
                    self.delete_quietly(metadata.location(), &new_location)
                        .await;
                    if attempt >= self.settings.max_attempts {
                        warn!(view = %change.view, attempt, "view commit gave up after repeated conflicts");
                        return Err(CommitError::Conflict(format!(
                            "view {} was changed by concurrent commits; gave up after {attempt} attempts",
                            change.view
                        )));
                    }
                    debug!(view = %change.view, attempt, "lost the pointer race, re-checking");
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(err) => {
                    self.forget_files_of_failed_swap(&err, std::slice::from_ref(&new_location))
                        .await;
                    return Err(err.into());
                }
            }
        }
    }

    /// Drops a view: its pointer goes, its files stay (see the module docs).
    pub async fn drop_view(&self, view: &ViewName) -> Result<()> {
        self.store.drop_view(view).await?;
        info!(%view, "view dropped");
        Ok(())
    }

    pub async fn rename_view(&self, from: &ViewName, to: &ViewName) -> Result<()> {
        validate_name(&to.name, "view")?;
        Ok(self.store.rename_view(from, to).await?)
    }

    /// The parsed metadata file `pointer` names, and its bytes, verified.
    async fn read_view_metadata(
        &self,
        view: &ViewName,
        pointer: &TablePointer,
    ) -> Result<(ViewMetadata, Bytes)> {
        let location = &pointer.metadata_location;
        let bytes = self.read_current_view(view, pointer).await?;
        let metadata = serde_json::from_slice(&bytes).map_err(|err| {
            CommitError::Internal(format!("view metadata file {location} is corrupt: {err}"))
        })?;
        Ok((metadata, bytes))
    }

    async fn write_view_metadata(&self, location: &str, json: &Bytes) -> Result<()> {
        match self.warehouse.put_new(location, json.clone()).await {
            Ok(()) => Ok(()),
            // As for tables: a fresh UUID is in every name, so the file can only be there because
            // the object store retried our own put after a 5xx whose request had landed.
            Err(StorageError::AlreadyExists { location }) => {
                match self.warehouse.get(&location).await {
                    Ok(bytes) if bytes == *json => Ok(()),
                    Ok(_) => Err(CommitError::Internal(format!(
                        "view metadata file {location} already exists with other content"
                    ))),
                    Err(err) => Err(err.into()),
                }
            }
            Err(err) => Err(err.into()),
        }
    }
}

fn check_requirement(
    view: &ViewName,
    requirement: &ViewRequirement,
    current: &ViewMetadata,
) -> Result<()> {
    match requirement {
        ViewRequirement::AssertViewUuid { uuid } if *uuid != current.uuid() => {
            Err(CommitError::Conflict(format!(
                "requirement failed: view {view} has UUID {}, not {uuid}",
                current.uuid()
            )))
        }
        ViewRequirement::AssertViewUuid { .. } => Ok(()),
    }
}

/// Applies one REST `ViewUpdate` with the builder (iceberg has no `ViewUpdate::apply`).
fn apply_update(
    builder: ViewMetadataBuilder,
    update: ViewUpdate,
    current_uuid: Uuid,
) -> Result<ViewMetadataBuilder> {
    let applied = match update {
        // A view keeps the UUID it was created with, as in Iceberg's Java builder: another one
        // would make every reader's `assert-view-uuid` meaningless.
        ViewUpdate::AssignUuid { uuid } if uuid != current_uuid => {
            return Err(CommitError::InvalidRequest(format!(
                "cannot reassign the view's UUID {current_uuid} to {uuid}"
            )));
        }
        ViewUpdate::AssignUuid { uuid } => Ok(builder.assign_uuid(uuid)),
        ViewUpdate::UpgradeFormatVersion { format_version } => {
            builder.upgrade_format_version(format_version)
        }
        ViewUpdate::AddSchema { schema, .. } => Ok(builder.add_schema(schema)),
        ViewUpdate::SetLocation { location } => Ok(builder.set_location(location)),
        ViewUpdate::SetProperties { updates } => builder.set_properties(updates),
        ViewUpdate::RemoveProperties { removals } => Ok(builder.remove_properties(&removals)),
        ViewUpdate::AddViewVersion { view_version } => builder.add_version(view_version),
        ViewUpdate::SetCurrentViewVersion { view_version_id } => {
            builder.set_current_version_id(view_version_id)
        }
    };
    applied.map_err(CommitError::from_iceberg)
}

fn view_json(metadata: &ViewMetadata) -> Result<Bytes> {
    serde_json::to_vec(metadata)
        .map(Bytes::from)
        .map_err(|err| CommitError::Internal(format!("encoding view metadata: {err}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use floe_storage::Warehouse;
    use floe_storage::testing::FaultyStore;
    use floe_store::MetadataStore;
    use floe_store::sqlite::SqliteStore;
    use iceberg::spec::{NestedField, PrimitiveType, Type};
    use serde_json::json;

    use super::*;

    /// Two catalogs (as two replicas: their own commit queues) on one store and one warehouse.
    async fn replicas() -> (Catalog, Catalog) {
        let store: Arc<dyn MetadataStore> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let objects = Arc::new(FaultyStore::in_memory());
        let root = url::Url::parse("memory://views/warehouse").unwrap();
        let warehouse = Warehouse::new("main", root, objects);
        let first = Catalog::new(store.clone(), warehouse.clone());
        first
            .create_namespace(&["ns".to_string()], &Default::default())
            .await
            .unwrap();
        (first, Catalog::new(store, warehouse))
    }

    fn name(view: &str) -> ViewName {
        ViewName::new(vec!["ns".to_string()], view)
    }

    fn schema(columns: &[&str]) -> Schema {
        let fields = columns.iter().enumerate().map(|(i, column)| {
            NestedField::optional(i as i32 + 1, *column, Type::Primitive(PrimitiveType::Long))
                .into()
        });
        Schema::builder()
            .with_fields(fields.collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    fn version(sql: &str, schema_id: i32) -> ViewVersion {
        serde_json::from_value(json!({
            "version-id": 1,
            "schema-id": schema_id,
            "timestamp-ms": chrono::Utc::now().timestamp_millis(),
            "summary": {"engine-name": "test"},
            "representations": [{"type": "sql", "sql": sql, "dialect": "spark"}],
            "default-namespace": ["ns"],
        }))
        .unwrap()
    }

    fn create(view: &str, sql: &str) -> CreateView {
        CreateView {
            name: name(view),
            location: None,
            schema: schema(&["id"]),
            view_version: version(sql, 0),
            properties: HashMap::new(),
        }
    }

    /// What `CREATE OR REPLACE VIEW` sends: a schema, a version over it, made current.
    fn replace(view: &str, uuid: Uuid, sql: &str) -> ViewChange {
        ViewChange {
            view: name(view),
            requirements: vec![ViewRequirement::AssertViewUuid { uuid }],
            updates: vec![
                ViewUpdate::AddSchema {
                    schema: schema(&["id", "n"]),
                    last_column_id: Some(2),
                },
                ViewUpdate::AddViewVersion {
                    view_version: version(sql, -1),
                },
                ViewUpdate::SetCurrentViewVersion {
                    view_version_id: -1,
                },
            ],
        }
    }

    fn sql_of(view: &LoadedView) -> String {
        let representation = view
            .metadata
            .current_version()
            .representations()
            .iter()
            .next();
        match representation {
            Some(iceberg::spec::ViewRepresentation::Sql(sql)) => sql.sql.clone(),
            None => panic!("no representation"),
        }
    }

    async fn files_of(catalog: &Catalog, view: &LoadedView) -> Vec<String> {
        let mut files = catalog
            .warehouse()
            .list_under(view.metadata.location())
            .await
            .unwrap();
        files.sort();
        files
    }

    #[tokio::test]
    async fn create_replace_rename_drop() {
        let (catalog, _) = replicas().await;
        let created = catalog.create_view(create("v", "SELECT 1")).await.unwrap();
        assert_eq!(created.version, 1);
        assert_eq!(
            files_of(&catalog, &created).await,
            vec![created.metadata_location.clone()]
        );
        let loaded = catalog.load_view(&name("v")).await.unwrap();
        assert_eq!(loaded.metadata, created.metadata);

        let replaced = catalog
            .commit_view(replace("v", created.metadata.uuid(), "SELECT 2"))
            .await
            .unwrap();
        assert_eq!(replaced.version, 2);
        assert_eq!(sql_of(&replaced), "SELECT 2");
        assert_eq!(replaced.metadata.uuid(), created.metadata.uuid());
        assert_eq!(replaced.metadata.versions().len(), 2);
        assert!(replaced.metadata_location.contains("/metadata/00001-"));
        assert_eq!(files_of(&catalog, &replaced).await.len(), 2);

        catalog.rename_view(&name("v"), &name("w")).await.unwrap();
        assert!(matches!(
            catalog.load_view(&name("v")).await,
            Err(CommitError::ViewNotFound(_))
        ));
        assert_eq!(
            sql_of(&catalog.load_view(&name("w")).await.unwrap()),
            "SELECT 2"
        );
        catalog.drop_view(&name("w")).await.unwrap();
        assert!(matches!(
            catalog.drop_view(&name("w")).await,
            Err(CommitError::ViewNotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_stale_uuid_is_a_conflict_and_writes_nothing() {
        let (catalog, _) = replicas().await;
        let old = catalog.create_view(create("v", "SELECT 1")).await.unwrap();
        catalog.drop_view(&name("v")).await.unwrap();
        let new = catalog.create_view(create("v", "SELECT 2")).await.unwrap();
        let err = catalog
            .commit_view(replace("v", old.metadata.uuid(), "SELECT 3"))
            .await
            .unwrap_err();
        assert!(matches!(err, CommitError::Conflict(_)), "{err:?}");
        assert_eq!(
            files_of(&catalog, &new).await,
            vec![new.metadata_location.clone()]
        );
        assert_eq!(
            catalog
                .load_view(&name("v"))
                .await
                .unwrap()
                .metadata_location,
            new.metadata_location
        );
    }

    #[tokio::test]
    async fn bad_updates_are_invalid_and_write_nothing() {
        let (catalog, _) = replicas().await;
        let view = catalog.create_view(create("v", "SELECT 1")).await.unwrap();
        let updates = [
            ViewUpdate::SetCurrentViewVersion { view_version_id: 7 },
            ViewUpdate::AssignUuid {
                uuid: Uuid::new_v4(),
            },
            ViewUpdate::SetLocation {
                location: "memory://elsewhere/v".into(),
            },
        ];
        for update in updates {
            let change = ViewChange {
                view: name("v"),
                requirements: vec![],
                updates: vec![update.clone()],
            };
            let err = catalog.commit_view(change).await.unwrap_err();
            assert!(
                matches!(err, CommitError::InvalidRequest(_)),
                "{update:?}: {err:?}"
            );
        }
        let mut outside = create("w", "SELECT 1");
        outside.location = Some("memory://elsewhere/w".into());
        let err = catalog.create_view(outside).await.unwrap_err();
        assert!(matches!(err, CommitError::InvalidRequest(_)), "{err:?}");
        assert_eq!(
            files_of(&catalog, &view).await,
            vec![view.metadata_location.clone()]
        );
    }

    /// Replaces from two replicas race on the pointer: every one lands (a loser re-reads and
    /// tries again), and each losing attempt's file is deleted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_replicas_lose_nothing_and_leave_no_files() {
        let (first, second) = replicas().await;
        let (first, second) = (Arc::new(first), Arc::new(second));
        let created = first.create_view(create("v", "SELECT 0")).await.unwrap();
        let uuid = created.metadata.uuid();
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..8 {
            let catalog = if task % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tasks.spawn(async move {
                catalog
                    .commit_view(replace("v", uuid, &format!("SELECT {task}")))
                    .await
                    .map(|view| view.version)
            });
        }
        let mut versions: Vec<i64> = tasks
            .join_all()
            .await
            .into_iter()
            .map(|result| result.unwrap())
            .collect();
        versions.sort();
        assert_eq!(
            versions,
            (2..=9).collect::<Vec<_>>(),
            "one pointer move each"
        );
        let view = first.load_view(&name("v")).await.unwrap();
        assert_eq!(view.version, 9);
        assert_eq!(
            files_of(&first, &view).await.len(),
            9,
            "the create's and one per replace"
        );
    }
}
