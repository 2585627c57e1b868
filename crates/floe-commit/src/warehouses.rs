//! The warehouses one server hosts, each a [`Catalog`] of its own.
//!
//! A server has one *default* warehouse, the one its configuration names (`--warehouse`,
//! `--warehouse-url`), and any number of *registered* ones, created through the management API and
//! recorded in the metadata store with their storage URL and settings (see *Warehouses* in
//! `floe_store`). Clients pick one by name: it is the REST `prefix`.
//!
//! Every replica serves every registered warehouse: a name this process has not opened yet is
//! looked up in the store and opened on first use. Opened warehouses are kept, but each use
//! re-reads the warehouse's record (one primary-key read, like the pointer read of every table
//! load) and reopens it if the record changed — a warehouse dropped and re-created elsewhere with
//! another storage URL must never be written at its old place.
//!
//! Bounds: a registered warehouse's storage URL must lie under one of the operator's allowed
//! storage roots ([`Warehouses::with_allowed_roots`]; none by default), and its object store is
//! built from its own settings only, never from the server's environment credentials.
//!
//! Isolation: a warehouse's tables live under its root ([`Warehouse::contains`] is checked for
//! every location a client names), and no two warehouses' roots may overlap, so that no table
//! location can be inside two warehouses.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use floe_storage::{AllowedRoots, RetryOptions, S3Options, StoreOptions, Warehouse};
use floe_store::{MetadataStore, StoreError, WarehouseRecord};

use crate::{Catalog, CommitError, CommitSettings, Result};

/// What a client asks for when it registers a warehouse.
#[derive(Clone)]
pub struct NewWarehouse {
    pub name: String,
    /// `s3://bucket/prefix`, `file:///absolute/dir` or `memory://name` (tests).
    pub storage_url: String,
    /// Storage settings: `s3.endpoint`, `s3.region`, `s3.path-style-access`, ... (see
    /// [`S3Options::from_properties`]).
    pub properties: BTreeMap<String, String>,
}

/// A warehouse as listings show it: secrets masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseInfo {
    pub name: String,
    /// The warehouse root, as table locations start.
    pub storage_url: String,
    pub properties: BTreeMap<String, String>,
    /// The configured default warehouse (not registered, cannot be dropped).
    pub default: bool,
    /// When it was registered (Unix milliseconds); `None` for the default.
    pub created_at_ms: Option<i64>,
}

struct Opened {
    record: WarehouseRecord,
    catalog: Arc<Catalog>,
}

/// The default warehouse and the registered ones (see the module docs).
pub struct Warehouses {
    default: Arc<Catalog>,
    /// The default warehouse's store handle; warehouse records are global, so it serves them.
    store: Arc<dyn MetadataStore>,
    retry: RetryOptions,
    settings: CommitSettings,
    /// Where new warehouses may keep their files.
    allowed_roots: AllowedRoots,
    opened: RwLock<HashMap<String, Opened>>,
}

impl Warehouses {
    /// Hosts `default` and every warehouse registered in its store. `retry` and `settings` apply
    /// to the registered ones too. No new warehouse can be created until
    /// [`Warehouses::with_allowed_roots`] says where.
    pub fn new(default: Catalog, retry: RetryOptions, settings: CommitSettings) -> Self {
        let store = default.store().clone();
        Self {
            default: Arc::new(default),
            store,
            retry,
            settings,
            allowed_roots: AllowedRoots::default(),
            opened: RwLock::new(HashMap::new()),
        }
    }

    /// Where [`Warehouses::create`] lets new warehouses keep their files. Warehouses registered
    /// before keep working: the bound is checked when one is registered.
    pub fn with_allowed_roots(mut self, roots: AllowedRoots) -> Self {
        self.allowed_roots = roots;
        self
    }

    pub fn default_catalog(&self) -> &Arc<Catalog> {
        &self.default
    }

    pub fn default_name(&self) -> &str {
        self.default.warehouse().name()
    }

    /// The catalog of warehouse `name`, or [`CommitError::WarehouseNotFound`].
    pub async fn catalog(&self, name: &str) -> Result<Arc<Catalog>> {
        if name == self.default_name() {
            return Ok(self.default.clone());
        }
        let record = self.load_record(name).await?;
        if let Some(opened) = self.read_opened().get(name)
            && opened.record == record
        {
            return Ok(opened.catalog.clone());
        }
        let catalog = Arc::new(self.open(&record)?);
        self.write_opened().insert(
            name.to_string(),
            Opened {
                record,
                catalog: catalog.clone(),
            },
        );
        Ok(catalog)
    }

    /// Registers a warehouse after reaching its storage once: a missing bucket, refused
    /// credentials or an overlap with another warehouse fail here, not on the first commit.
    pub async fn create(&self, new: NewWarehouse) -> Result<WarehouseInfo> {
        if new.name == self.default_name() {
            return Err(CommitError::AlreadyExists(format!(
                "warehouse {} already exists (it is this server's default warehouse)",
                new.name
            )));
        }
        let record = WarehouseRecord {
            name: new.name,
            storage_url: new.storage_url,
            properties: new.properties,
            created_at_ms: 0,
        };
        // Name first: it is part of every message below.
        self.store
            .in_warehouse(&record.name)
            .map_err(CommitError::from)?;
        // A taken name is a conflict whatever the rest says (the store's insert decides races).
        match self.store.load_warehouse(&record.name).await {
            Ok(_) => {
                return Err(CommitError::AlreadyExists(format!(
                    "warehouse {} already exists",
                    record.name
                )));
            }
            Err(StoreError::WarehouseNotFound(_)) => {}
            Err(err) => return Err(err.into()),
        }
        // Settings first: a typo is worth naming whatever the URL.
        S3Options::from_properties(&record.properties).map_err(|reason| {
            CommitError::InvalidRequest(format!("warehouse {}: {reason}", record.name))
        })?;
        // Before opening, which creates a local directory (or contacts a remote store).
        self.allowed_roots
            .check(&record.storage_url)
            .map_err(CommitError::InvalidRequest)?;
        // Before opening, and again after, on the canonical root.
        self.check_no_overlap(&record.name, &record.storage_url)
            .await?;
        let warehouse = self.open_storage(&record)?;
        self.check_no_overlap(&record.name, warehouse.root())
            .await?;
        warehouse.check().await.map_err(|err| {
            let message = format!("cannot use the storage of warehouse {}: {err}", record.name);
            if err.is_transient() {
                CommitError::Unavailable(message)
            } else {
                CommitError::InvalidRequest(message)
            }
        })?;
        // The normalized root, so that listings and overlap checks compare like with like.
        let record = WarehouseRecord {
            storage_url: warehouse.root().to_string(),
            ..record
        };
        self.store.create_warehouse(&record).await?;
        tracing::info!(warehouse = %record.name, storage = %record.storage_url, "warehouse created");
        let record = self.load_record(&record.name).await?;
        Ok(info(&record))
    }

    /// The default warehouse, then the registered ones in name order.
    pub async fn list(&self) -> Result<Vec<WarehouseInfo>> {
        let mut all = vec![self.default_info()];
        all.extend(self.store.list_warehouses().await?.iter().map(info));
        Ok(all)
    }

    /// One warehouse's description.
    pub async fn describe(&self, name: &str) -> Result<WarehouseInfo> {
        if name == self.default_name() {
            return Ok(self.default_info());
        }
        Ok(info(&self.load_record(name).await?))
    }

    /// Unregisters an empty warehouse. Its storage is left as it is: files outside any table
    /// (e.g. of tables dropped without purge) are the operator's to remove.
    pub async fn drop_warehouse(&self, name: &str) -> Result<()> {
        if name == self.default_name() {
            return Err(CommitError::InvalidRequest(format!(
                "warehouse {name} is this server's default warehouse, set by its configuration; \
                 it cannot be dropped"
            )));
        }
        self.store.drop_warehouse(name).await?;
        self.write_opened().remove(name);
        tracing::info!(warehouse = name, "warehouse dropped");
        Ok(())
    }

    async fn load_record(&self, name: &str) -> Result<WarehouseRecord> {
        self.store
            .load_warehouse(name)
            .await
            .map_err(|err| match err {
                StoreError::InvalidInput(_) => CommitError::WarehouseNotFound(format!(
                    "warehouse {name:?} does not exist ({err})"
                )),
                other => other.into(),
            })
    }

    fn open(&self, record: &WarehouseRecord) -> Result<Catalog> {
        let warehouse = self.open_storage(record)?;
        let store = self.store.in_warehouse(&record.name)?;
        Ok(Catalog::with_settings(
            store,
            warehouse,
            self.settings.clone(),
        ))
    }

    fn open_storage(&self, record: &WarehouseRecord) -> Result<Warehouse> {
        open_storage(record, &self.retry)
    }

    async fn check_no_overlap(&self, name: &str, root: &str) -> Result<()> {
        let mut others = vec![(
            self.default_name().to_string(),
            self.default.warehouse().root().to_string(),
        )];
        others.extend(
            self.store
                .list_warehouses()
                .await?
                .into_iter()
                .map(|record| (record.name, record.storage_url)),
        );
        match others.into_iter().find(|(_, other)| overlaps(root, other)) {
            Some((other, other_root)) => Err(CommitError::InvalidRequest(format!(
                "warehouse {name} at {root} would overlap warehouse {other} at {other_root}: \
                 a table location must belong to one warehouse only"
            ))),
            None => Ok(()),
        }
    }

    fn default_info(&self) -> WarehouseInfo {
        let warehouse = self.default.warehouse();
        WarehouseInfo {
            name: warehouse.name().to_string(),
            storage_url: warehouse.root().to_string(),
            properties: BTreeMap::new(),
            default: true,
            created_at_ms: None,
        }
    }

    fn read_opened(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Opened>> {
        // A panic while holding the lock cannot leave the map half-written (inserts and removes
        // are single calls), so a poisoned lock is still safe to use.
        self.opened
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_opened(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Opened>> {
        self.opened
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The storage of a registered warehouse, as its record describes it.
pub(crate) fn open_storage(record: &WarehouseRecord, retry: &RetryOptions) -> Result<Warehouse> {
    let s3 = S3Options::from_properties(&record.properties).map_err(|reason| {
        CommitError::InvalidRequest(format!("warehouse {}: {reason}", record.name))
    })?;
    let options = StoreOptions {
        s3,
        retry: retry.clone(),
        // Only the settings it was registered with: the server's own credentials are for the
        // default warehouse, which the operator configured.
        use_environment: false,
    };
    Warehouse::open(&record.name, &record.storage_url, &options)
        .map_err(|err| CommitError::InvalidRequest(err.to_string()))
}

fn info(record: &WarehouseRecord) -> WarehouseInfo {
    WarehouseInfo {
        name: record.name.clone(),
        storage_url: record.storage_url.clone(),
        properties: floe_store::sealed::redact_properties(&record.properties),
        default: false,
        created_at_ms: Some(record.created_at_ms),
    }
}

/// Whether one root is the other or inside it (whole path segments only: `s3://b/lake` and
/// `s3://b/lakehouse` do not overlap).
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('/'), b.trim_end_matches('/'));
    let inside = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_store::sqlite::SqliteStore;

    async fn hosted(dir: &std::path::Path) -> Warehouses {
        let store: Arc<dyn MetadataStore> =
            Arc::new(SqliteStore::open(&dir.join("catalog.db")).await.unwrap());
        let default = Warehouse::local("main", &dir.join("main")).unwrap();
        Warehouses::new(
            Catalog::new(store, default),
            RetryOptions::default(),
            CommitSettings::default(),
        )
        .with_allowed_roots(roots(dir))
    }

    /// The test's directory, and two remote roots so that checks after the roots' are reached.
    fn roots(dir: &std::path::Path) -> AllowedRoots {
        AllowedRoots::new(&[dir_url(dir).as_str(), "s3://bucket", "ftp://host"]).unwrap()
    }

    fn new(name: &str, url: &str) -> NewWarehouse {
        NewWarehouse {
            name: name.into(),
            storage_url: url.into(),
            properties: BTreeMap::new(),
        }
    }

    fn dir_url(dir: &std::path::Path) -> String {
        url::Url::from_directory_path(dir).unwrap().to_string()
    }

    #[test]
    fn overlap_is_by_whole_segments() {
        assert!(overlaps("s3://b/lake", "s3://b/lake"));
        assert!(overlaps("s3://b/lake/eu", "s3://b/lake/"));
        assert!(overlaps("s3://b", "s3://b/lake"));
        assert!(!overlaps("s3://b/lake", "s3://b/lakehouse"));
        assert!(!overlaps("s3://a/lake", "s3://b/lake"));
    }

    #[tokio::test]
    async fn warehouses_are_created_listed_and_served() {
        let dir = tempfile::tempdir().unwrap();
        let warehouses = hosted(dir.path()).await;
        let created = warehouses
            .create(new("archive", &dir_url(&dir.path().join("archive"))))
            .await
            .unwrap();
        assert!(!created.default);
        assert!(created.storage_url.ends_with("/archive"), "{created:?}");
        assert!(dir.path().join("archive").is_dir());

        let names: Vec<(String, bool)> = warehouses
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|info| (info.name, info.default))
            .collect();
        assert_eq!(
            names,
            [("main".to_string(), true), ("archive".to_string(), false)]
        );

        let archive = warehouses.catalog("archive").await.unwrap();
        assert_eq!(archive.warehouse().name(), "archive");
        assert!(Arc::ptr_eq(
            &archive,
            &warehouses.catalog("archive").await.unwrap()
        ));
        assert!(Arc::ptr_eq(
            warehouses.default_catalog(),
            &warehouses.catalog("main").await.unwrap()
        ));
        assert!(matches!(
            warehouses.catalog("nope").await,
            Err(CommitError::WarehouseNotFound(_))
        ));
        assert!(matches!(
            warehouses.catalog("NOPE/..").await,
            Err(CommitError::WarehouseNotFound(_))
        ));
    }

    #[tokio::test]
    async fn bad_warehouses_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let warehouses = hosted(dir.path()).await;
        let cases = [
            (new("main", "memory://x"), "default warehouse"),
            (new("Bad Name", "memory://x"), "invalid warehouse name"),
            (
                new("ftp", "ftp://host/x"),
                "unsupported warehouse URL scheme",
            ),
            (
                new("inside", &dir_url(&dir.path().join("main/inside"))),
                "would overlap warehouse main",
            ),
            (
                NewWarehouse {
                    properties: BTreeMap::from([("s3.endpont".into(), "x".into())]),
                    ..new("typo", "s3://bucket/x")
                },
                "unknown storage setting",
            ),
        ];
        for (request, expected) in cases {
            let name = request.name.clone();
            let err = warehouses.create(request).await.unwrap_err().to_string();
            assert!(err.contains(expected), "{name}: {err}");
        }
        warehouses
            .create(new("lake", &dir_url(&dir.path().join("lake"))))
            .await
            .unwrap();
        for url in [dir.path().join("lake2"), dir.path().join("lake")] {
            let err = warehouses
                .create(new("lake", &dir_url(&url)))
                .await
                .unwrap_err();
            assert!(matches!(err, CommitError::AlreadyExists(_)), "{err}");
        }
        let err = warehouses
            .create(new("lake-eu", &dir_url(&dir.path().join("lake/eu"))))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("overlap warehouse lake"), "{err}");
        assert_eq!(warehouses.list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn warehouses_outside_the_allowed_roots_are_refused_before_anything_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("allowed");
        std::fs::create_dir_all(&allowed).unwrap();
        let warehouses = hosted(dir.path())
            .await
            .with_allowed_roots(AllowedRoots::local_dir(&allowed).unwrap());
        for url in [
            dir_url(&dir.path().join("outside")),
            format!("{}../outside", dir_url(&allowed)),
            "s3://bucket/x".to_string(),
        ] {
            let err = warehouses.create(new("lake", &url)).await.unwrap_err();
            assert!(
                matches!(&err, CommitError::InvalidRequest(message)
                    if message.contains("allowed storage root")
                        && message.contains(allowed.to_str().unwrap())),
                "{url}: {err}"
            );
        }
        assert!(!dir.path().join("outside").exists());
        let created = warehouses
            .create(new("lake", &dir_url(&allowed.join("lake"))))
            .await
            .unwrap();
        assert!(
            created.storage_url.ends_with("/allowed/lake"),
            "{created:?}"
        );
    }

    #[tokio::test]
    async fn a_warehouse_recreated_elsewhere_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let warehouses = hosted(dir.path()).await;
        warehouses
            .create(new("lake", &dir_url(&dir.path().join("one"))))
            .await
            .unwrap();
        let first = warehouses.catalog("lake").await.unwrap();
        assert!(first.warehouse().root().ends_with("/one"));
        // Another replica drops and re-creates it: this one must notice on the next use.
        let other = Warehouses::new(
            Catalog::new(
                warehouses.store.clone(),
                Warehouse::local("main", &dir.path().join("main")).unwrap(),
            ),
            RetryOptions::default(),
            CommitSettings::default(),
        )
        .with_allowed_roots(roots(dir.path()));
        other.drop_warehouse("lake").await.unwrap();
        assert!(matches!(
            warehouses.catalog("lake").await,
            Err(CommitError::WarehouseNotFound(_))
        ));
        other
            .create(new("lake", &dir_url(&dir.path().join("two"))))
            .await
            .unwrap();
        let second = warehouses.catalog("lake").await.unwrap();
        assert!(second.warehouse().root().ends_with("/two"));
    }

    #[tokio::test]
    async fn only_empty_registered_warehouses_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let warehouses = hosted(dir.path()).await;
        assert!(matches!(
            warehouses.drop_warehouse("main").await,
            Err(CommitError::InvalidRequest(_))
        ));
        warehouses
            .create(new("lake", &dir_url(&dir.path().join("lake"))))
            .await
            .unwrap();
        let lake = warehouses.catalog("lake").await.unwrap();
        lake.create_namespace(&["sales".to_string()], &Default::default())
            .await
            .unwrap();
        assert!(matches!(
            warehouses.drop_warehouse("lake").await,
            Err(CommitError::WarehouseNotEmpty(_))
        ));
        lake.drop_namespace(&["sales".to_string()]).await.unwrap();
        warehouses.drop_warehouse("lake").await.unwrap();
        assert!(matches!(
            warehouses.drop_warehouse("lake").await,
            Err(CommitError::WarehouseNotFound(_))
        ));
    }
}
