//! Floe's object-store layer: where table files live, and the only code that turns a location into
//! an object-store path.
//!
//! # The model
//!
//! A [`Warehouse`] is a root URL (`file:///srv/floe/warehouse`, `s3://bucket/prefix`) with an
//! [`ObjectStore`] that reaches it ([`Warehouse::open`] builds both from a URL and [`StoreOptions`];
//! see [`options`] for the backends). Iceberg metadata names every file by its full URL, so every
//! location Floe reads, writes or deletes goes through [`Warehouse::object_path`] first, which refuses
//! anything outside the warehouse root. That check is what keeps one table from reading or deleting
//! another warehouse's files, whatever location a client sends.
//!
//! Deleting is narrower still: only a [`TableScope`] (a warehouse and one table's location) deletes,
//! and only files strictly inside that location, never through a symbolic link (see [`scope`]).
//! A table's or view's own location is recorded in its canonical form ([`canonical_location`]):
//! one string per directory, so that the metadata store can tell overlapping locations apart by
//! comparing strings. [`Warehouse::table_location`] checks a client-chosen one.
//!
//! Client-chosen names (namespaces, tables) never become paths directly: [`Warehouse::new_table_location`]
//! turns them into a readable but sanitized directory name with a unique suffix.
//!
//! Metadata files are written with [`PutMode::Create`], so two writers can never overwrite each
//! other's metadata file: the second one gets [`StorageError::AlreadyExists`].
//!
//! # Errors
//!
//! Failures of the store are sorted by what the caller can do about them: a transient one
//! (timeout, 5xx, throttling, lost connection — after the store's own retries, see [`options`]) is
//! [`StorageError::Unavailable`] and worth retrying later; a permanent one (access denied, missing
//! bucket, an operation the store does not support, a request it rejects) is
//! [`StorageError::Refused`], and needs an operator. Both name the warehouse, the operation and the
//! location.
//!
//! Which storage a *registered* warehouse may use at all is the operator's choice:
//! [`AllowedRoots`] (see [`roots`]) bounds it; such warehouses never borrow the server's own
//! environment credentials ([`StoreOptions::use_environment`]).
//!
//! The `testing` module (feature `fault-injection`) wraps any store to inject failures in tests.
//!
//! Every store call is counted and timed by operation, and refused deletes are counted, as the
//! series of [`metrics`].

mod location;
mod metered;
pub mod metrics;
pub mod options;
pub mod roots;
pub mod scope;
#[cfg(feature = "fault-injection")]
pub mod testing;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

pub use location::canonical_location;
pub use options::{
    AccessDelegation, DelegationOptions, RetryOptions, S3Access, S3Options, StoreOptions,
};
pub use roots::AllowedRoots;
pub use scope::{Deletion, TableScope, is_inside_location, refused_deletes_total};

/// Errors from the object-store layer, by what a caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{location} does not exist")]
    NotFound { location: String },
    #[error("{location} already exists")]
    AlreadyExists { location: String },
    /// A location that is not inside this warehouse, or not a valid URL.
    #[error("location {location} is not allowed: {reason}")]
    InvalidLocation { location: String, reason: String },
    /// A transient failure (timeout, 5xx, throttling, lost connection) that outlasted the store's
    /// own retries: worth retrying later.
    #[error("warehouse {warehouse} is unavailable: {operation} of {location} failed: {detail}")]
    Unavailable {
        warehouse: String,
        operation: &'static str,
        location: String,
        /// The store's error with its causes.
        detail: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// A permanent failure: the store refuses the operation (access denied, missing bucket,
    /// unsupported operation, rejected request). Retrying will not help; the configuration must
    /// change.
    #[error("warehouse {warehouse} refused {operation} of {location}: {reason}: {detail}")]
    Refused {
        warehouse: String,
        operation: &'static str,
        location: String,
        reason: &'static str,
        /// The store's error with its causes.
        detail: String,
        #[source]
        source: Box<object_store::Error>,
    },
    /// The warehouse's configuration is unusable (bad URL, bad S3 settings).
    #[error("warehouse {warehouse} is misconfigured: {reason}")]
    Config { warehouse: String, reason: String },
}

impl StorageError {
    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A file found by [`Warehouse::list_under_with_meta`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Full URL, as [`Warehouse::list_under`] returns it.
    pub location: String,
    /// When the store last wrote it (for a local warehouse, the file's mtime).
    pub last_modified: std::time::SystemTime,
    pub size: u64,
}

/// One warehouse: a named root location and the object store that reaches it.
#[derive(Debug, Clone)]
pub struct Warehouse {
    name: String,
    /// Always without a trailing slash.
    root: Url,
    store: Arc<dyn ObjectStore>,
    /// The root directory when the warehouse is on the local file system.
    local_root: Option<std::path::PathBuf>,
    /// What clients need to reach the files (`s3.endpoint`, ...): every table's REST `config`.
    client_config: BTreeMap<String, String>,
    /// For an S3 warehouse, what acting on clients' behalf needs (keys included).
    s3: Option<Arc<options::S3Access>>,
}

impl Warehouse {
    /// A warehouse in a local directory, created if missing.
    pub fn local(name: impl Into<String>, dir: &std::path::Path) -> Result<Self> {
        let invalid = |reason: String| StorageError::InvalidLocation {
            location: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| invalid(e.to_string()))?;
        let dir = dir.canonicalize().map_err(|e| invalid(e.to_string()))?;
        let root = Url::from_directory_path(&dir)
            .map_err(|()| invalid("not an absolute directory path".into()))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| invalid(e.to_string()))?;
        let mut warehouse = Self::new(name, root, Arc::new(store));
        warehouse.local_root = Some(dir);
        Ok(warehouse)
    }

    /// A warehouse over any object store, rooted at `root` (paths in the store are relative to it).
    /// Every call to the store is counted and timed ([`metrics`]).
    pub fn new(name: impl Into<String>, mut root: Url, store: Arc<dyn ObjectStore>) -> Self {
        let trimmed = root.path().trim_end_matches('/').to_string();
        root.set_path(&trimmed);
        Self {
            name: name.into(),
            root,
            store: Arc::new(metered::MeteredStore::new(store)),
            local_root: None,
            client_config: BTreeMap::new(),
            s3: None,
        }
    }

    /// Sets what [`Warehouse::client_config`] returns.
    pub fn with_client_config(mut self, config: BTreeMap<String, String>) -> Self {
        self.client_config = config;
        self
    }

    /// The settings a client needs to read and write this warehouse's files, as Iceberg FileIO
    /// properties (`s3.endpoint`, `s3.region`, `s3.path-style-access`; keys only when the
    /// warehouse shares them). Empty for local warehouses.
    pub fn client_config(&self) -> &BTreeMap<String, String> {
        &self.client_config
    }

    /// How this warehouse reaches S3, when it is on S3: what vending credentials and signing
    /// requests for clients need.
    pub fn s3_access(&self) -> Option<&options::S3Access> {
        self.s3.as_deref()
    }

    /// Reaches the store once (a listing of the root): a missing bucket or wrong credentials
    /// show up here, at start-up, instead of on the first commit.
    pub async fn check(&self) -> Result<()> {
        let root = self.root().to_string();
        match self.store.list_with_delimiter(None).await {
            Ok(_) => Ok(()),
            Err(source) => Err(self.error("list", &root, source)),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The warehouse root URL, without a trailing slash.
    pub fn root(&self) -> &str {
        self.root.as_str().trim_end_matches('/')
    }

    /// A fresh location for a new table: one sanitized directory level per namespace level, then
    /// the sanitized table name with a unique suffix, so that dropping and re-creating a table, or
    /// two names that sanitize alike, never share files.
    pub fn new_table_location(&self, namespace: &[String], table: &str) -> String {
        let mut location = self.root().to_string();
        for level in namespace {
            location.push('/');
            location.push_str(&sanitize(level));
        }
        location.push('/');
        location.push_str(&sanitize(table));
        location.push('-');
        location.push_str(&uuid_suffix());
        location
    }

    /// The object-store path of `location`, which must be inside this warehouse.
    pub fn object_path(&self, location: &str) -> Result<Path> {
        let invalid = |reason: &str| StorageError::InvalidLocation {
            location: location.to_string(),
            reason: reason.to_string(),
        };
        let url = Url::parse(location).map_err(|e| invalid(&e.to_string()))?;
        if url.scheme() != self.root.scheme()
            || url.host_str() != self.root.host_str()
            || url.port() != self.root.port()
        {
            return Err(invalid(&format!(
                "outside warehouse {} ({})",
                self.name,
                self.root()
            )));
        }
        // Url::parse already resolved `.` and `..` segments; what is left must sit under the root.
        let root_path = self.root.path().trim_end_matches('/');
        let relative = url
            .path()
            .strip_prefix(root_path)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|rest| !rest.is_empty())
            .ok_or_else(|| {
                invalid(&format!(
                    "outside warehouse {} ({})",
                    self.name,
                    self.root()
                ))
            })?;
        let path = Path::from_url_path(relative).map_err(|e| invalid(&e.to_string()))?;
        if location.contains("/../") || location.ends_with("/..") {
            return Err(invalid("relative segments are not allowed"));
        }
        Ok(path)
    }

    /// The canonical form of a table's or view's location (see [`canonical_location`]), which
    /// must lie inside this warehouse (and not be its root).
    pub fn table_location(&self, location: &str) -> Result<String> {
        let canonical = canonical_location(location)?;
        self.object_path(&canonical).map_err(|err| match err {
            StorageError::InvalidLocation { reason, .. } => StorageError::InvalidLocation {
                location: location.to_string(),
                reason,
            },
            other => other,
        })?;
        Ok(canonical)
    }

    /// Makes sure the directory `location` exists where directories exist at all (a local
    /// warehouse; object stores have none). Some clients write into a staged table's
    /// `metadata/` directory on the local file system without creating it first.
    pub fn ensure_directory(&self, location: &str) -> Result<()> {
        let path = self.object_path(location)?;
        if let Some(root) = &self.local_root {
            let dir = path
                .parts()
                .fold(root.clone(), |dir, part| dir.join(part.as_ref()));
            std::fs::create_dir_all(&dir).map_err(|err| StorageError::InvalidLocation {
                location: location.to_string(),
                reason: format!("cannot create directory: {err}"),
            })?;
        }
        Ok(())
    }

    /// Whether `location` is inside this warehouse.
    pub fn contains(&self, location: &str) -> bool {
        self.object_path(location).is_ok()
    }

    /// Writes a new file; fails with [`StorageError::AlreadyExists`] if anything is there.
    pub async fn put_new(&self, location: &str, bytes: Bytes) -> Result<()> {
        let path = self.object_path(location)?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
        {
            Ok(_) => Ok(()),
            Err(source) => Err(self.error("put", location, source)),
        }
    }

    pub async fn get(&self, location: &str) -> Result<Bytes> {
        let path = self.object_path(location)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|source| self.error("get", location, source))?;
        result
            .bytes()
            .await
            .map_err(|source| self.error("get", location, source))
    }

    /// The file's size in bytes, from the store's metadata (an S3 `HEAD`, a `stat`): nothing of
    /// the file is read. For checks that a file is still there, whole.
    pub async fn size(&self, location: &str) -> Result<u64> {
        let path = self.object_path(location)?;
        match self.store.head(&path).await {
            Ok(meta) => Ok(meta.size),
            Err(source) => Err(self.error("head", location, source)),
        }
    }

    /// The bytes `range` of the file (one ranged `GET`), e.g. a Parquet footer.
    pub async fn get_range(&self, location: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        let path = self.object_path(location)?;
        self.store
            .get_range(&path, range)
            .await
            .map_err(|source| self.error("get", location, source))
    }

    /// Deletes one file; a file that is already gone is not an error. Only [`TableScope`] calls
    /// it, after checking the file is its table's own.
    pub(crate) async fn delete(&self, location: &str) -> Result<()> {
        let path = self.object_path(location)?;
        match self.store.delete(&path).await {
            Ok(()) => Ok(()),
            Err(source) => match self.error("delete", location, source) {
                StorageError::NotFound { .. } => Ok(()),
                err => Err(err),
            },
        }
    }

    /// Every file under the directory `location`, as full URLs.
    pub async fn list_under(&self, location: &str) -> Result<Vec<String>> {
        Ok(self
            .list_under_with_meta(location)
            .await?
            .into_iter()
            .map(|object| object.location)
            .collect())
    }

    /// Every file under the directory `location`, with its size and last-modified time, for jobs
    /// that judge files by age (unreferenced-file removal).
    pub async fn list_under_with_meta(&self, location: &str) -> Result<Vec<ListedObject>> {
        let prefix = self.object_path(location)?;
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|source| self.error("list", location, source))?;
        Ok(metas
            .into_iter()
            .map(|meta| ListedObject {
                location: format!("{}/{}", self.root(), meta.location),
                last_modified: meta.last_modified.into(),
                size: meta.size,
            })
            .collect())
    }

    /// One level of the directory `location` (the warehouse root when `None`): the locations of
    /// the directories in it and the files directly in it. For walks that must not list what
    /// lies deeper (`floe recover` looks for tables' `metadata/` folders, never at their data).
    pub async fn list_children(
        &self,
        location: Option<&str>,
    ) -> Result<(Vec<String>, Vec<ListedObject>)> {
        let prefix = location
            .map(|location| self.object_path(location))
            .transpose()?;
        let at = location.unwrap_or(self.root());
        let listed = self
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|source| self.error("list", at, source))?;
        let directories = listed
            .common_prefixes
            .into_iter()
            .map(|path| format!("{}/{}", self.root(), path))
            .collect();
        let files = listed
            .objects
            .into_iter()
            .map(|meta| ListedObject {
                location: format!("{}/{}", self.root(), meta.location),
                last_modified: meta.last_modified.into(),
                size: meta.size,
            })
            .collect();
        Ok((directories, files))
    }

    /// The underlying store, for readers (e.g. Iceberg's FileIO) that need it.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Sorts a store error into what a caller can act on (see the crate docs).
    fn error(
        &self,
        operation: &'static str,
        location: &str,
        source: object_store::Error,
    ) -> StorageError {
        use object_store::Error as E;
        let detail = error_text(&source);
        let refused = |reason, source| StorageError::Refused {
            warehouse: self.name.clone(),
            operation,
            location: location.to_string(),
            reason,
            detail: detail.clone(),
            source: Box::new(source),
        };
        let status = http_status(&detail);
        match source {
            // S3 answers 404 for a missing bucket as for a missing key; only the body tells.
            E::NotFound { .. } | E::Generic { .. } if detail.contains("NoSuchBucket") => {
                refused("the bucket does not exist", source)
            }
            E::NotFound { .. } => StorageError::NotFound {
                location: location.to_string(),
            },
            E::AlreadyExists { .. } | E::Precondition { .. } => StorageError::AlreadyExists {
                location: location.to_string(),
            },
            E::InvalidPath { .. } => StorageError::InvalidLocation {
                location: location.to_string(),
                reason: detail.clone(),
            },
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                refused(ACCESS_DENIED, source)
            }
            _ if matches!(status, Some(401 | 403)) => refused(ACCESS_DENIED, source),
            E::NotSupported { .. } | E::NotImplemented { .. } => {
                refused("the store does not support this operation", source)
            }
            // 3xx and 4xx will not change on a retry (a redirect means a wrong region); 408 and
            // 429 will, and object_store retries them like 5xx.
            _ if status.is_some_and(|status| {
                (300..500).contains(&status) && status != 408 && status != 429
            }) || detail.contains("incorrectly configured region") =>
            {
                refused("the store rejected the request", source)
            }
            _ => StorageError::Unavailable {
                warehouse: self.name.clone(),
                operation,
                location: location.to_string(),
                detail: detail.clone(),
                source: Box::new(source),
            },
        }
    }
}

const ACCESS_DENIED: &str = "access denied (check the credentials and their permissions)";

/// An error and those of its causes that its message does not already include.
fn error_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        let cause = err.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = err.source();
    }
    text
}

/// The HTTP status in a store's error, if any. object_store keeps it only in the message of its
/// (private) retry error: `... status code: 400 Bad Request ...`.
fn http_status(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// A directory name safe on every object store and file system: ASCII letters, digits, `_` and `-`
/// survive, everything else becomes `_`, and the result is capped in length. Uniqueness comes
/// from the caller's suffix, not from this function.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn uuid_suffix() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warehouse(dir: &std::path::Path) -> Warehouse {
        Warehouse::local("test", dir).unwrap()
    }

    #[test]
    fn table_locations_are_sanitized_and_unique() {
        let dir = tempfile::tempdir().unwrap();
        let wh = warehouse(dir.path());
        let ns = vec!["../etc".to_string(), "a/b%c d".to_string()];
        let first = wh.new_table_location(&ns, "t\u{e9}..x");
        let second = wh.new_table_location(&ns, "t\u{e9}..x");
        assert_ne!(first, second);
        assert!(first.starts_with(&format!("{}/___etc/a_b_c_d/t___x-", wh.root())));
        assert!(wh.contains(&first));
    }

    #[test]
    fn locations_outside_the_warehouse_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wh = warehouse(dir.path());
        let root = wh.root().to_string();
        for bad in [
            "file:///etc/passwd".to_string(),
            format!("{root}/../escape/file"),
            format!("{root}-sibling/file"),
            root.clone(),
            "s3://bucket/x".to_string(),
            "not a url".to_string(),
        ] {
            assert!(wh.object_path(&bad).is_err(), "{bad} should be refused");
        }
        assert!(
            wh.object_path(&format!("{root}/ns/t/metadata/1.json"))
                .is_ok()
        );
    }

    #[test]
    fn ensure_directory_creates_local_directories_inside_only() {
        let dir = tempfile::tempdir().unwrap();
        let wh = warehouse(dir.path());
        let location = format!("{}/ns/t-1/metadata", wh.root());
        wh.ensure_directory(&location).unwrap();
        assert!(dir.path().join("ns/t-1/metadata").is_dir());
        assert!(wh.ensure_directory("file:///tmp/outside").is_err());
    }

    #[tokio::test]
    async fn put_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let wh = warehouse(dir.path());
        let location = format!("{}/t/metadata/00001.metadata.json", wh.root());
        wh.put_new(&location, Bytes::from_static(b"first"))
            .await
            .unwrap();
        let err = wh
            .put_new(&location, Bytes::from_static(b"second"))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::AlreadyExists { .. }));
        assert_eq!(
            wh.get(&location).await.unwrap(),
            Bytes::from_static(b"first")
        );
    }

    #[tokio::test]
    async fn a_table_scope_deletes_only_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let wh = warehouse(dir.path());
        let root = wh.root().to_string();
        for file in ["a/1", "a/sub/2", "ab/3"] {
            wh.put_new(&format!("{root}/{file}"), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        let scope = TableScope::new(&wh, &format!("{root}/a")).unwrap();
        assert_eq!(scope.delete_all().await.unwrap(), 2);
        assert_eq!(wh.list_under(&format!("{root}/ab")).await.unwrap().len(), 1);
        assert!(matches!(
            wh.get(&format!("{root}/a/1")).await,
            Err(StorageError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn listing_with_meta_gives_sizes_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let wh = warehouse(dir.path());
        let root = wh.root().to_string();
        let before = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
        wh.put_new(&format!("{root}/t/a"), Bytes::from_static(b"abc"))
            .await
            .unwrap();
        wh.put_new(&format!("{root}/u/b"), Bytes::from_static(b"x"))
            .await
            .unwrap();
        let listed = wh.list_under_with_meta(&format!("{root}/t")).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].location, format!("{root}/t/a"));
        assert_eq!(listed[0].size, 3);
        assert!(listed[0].last_modified >= before);
    }

    #[test]
    fn store_errors_are_sorted_into_transient_and_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let wh = warehouse(dir.path());
        let generic = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_string().into(),
        };
        let not_found = |text: &str| object_store::Error::NotFound {
            path: "p".into(),
            source: text.to_string().into(),
        };
        let cases = [
            (
                generic("Server returned non-2xx status code: 503 Service Unavailable"),
                "unavailable",
            ),
            (
                generic("Server returned non-2xx status code: 429 Too Many Requests"),
                "unavailable",
            ),
            (generic("HTTP error: error sending request"), "unavailable"),
            (
                generic("Server returned non-2xx status code: 400 Bad Request: <Error>"),
                "refused",
            ),
            (
                generic(
                    "Received redirect without LOCATION, this normally indicates an incorrectly configured region",
                ),
                "refused",
            ),
            (
                not_found("<Error><Code>NoSuchBucket</Code></Error>"),
                "refused",
            ),
            (
                not_found("<Error><Code>NoSuchKey</Code></Error>"),
                "not found",
            ),
            (
                object_store::Error::PermissionDenied {
                    path: "p".into(),
                    source: "403".into(),
                },
                "refused",
            ),
            (
                generic(
                    "Server returned non-2xx status code: 403 Forbidden: SignatureDoesNotMatch",
                ),
                "refused",
            ),
            (
                generic("list: Server returned non-2xx status code: 404 Not Found: NoSuchBucket"),
                "refused",
            ),
        ];
        for (error, expected) in cases {
            let text = error.to_string();
            let sorted = wh.error("put", "file:///x", error);
            let kind = match &sorted {
                StorageError::Unavailable { .. } => "unavailable",
                StorageError::Refused { .. } => "refused",
                StorageError::NotFound { .. } => "not found",
                _ => "other",
            };
            assert_eq!(kind, expected, "{text} became {sorted}");
            assert_eq!(sorted.is_transient(), expected == "unavailable");
            if kind != "not found" {
                let message = sorted.to_string();
                assert!(
                    message.contains("warehouse test") && message.contains("put of file:///x"),
                    "{message}"
                );
            }
        }
    }
}

#[cfg(all(test, feature = "fault-injection"))]
mod fault_tests {
    use super::*;
    use crate::testing::{Fault, FaultyStore, Op};

    fn faulty() -> (Warehouse, Arc<FaultyStore>) {
        let store = Arc::new(FaultyStore::new(Arc::new(
            object_store::memory::InMemory::new(),
        )));
        let root = Url::parse("memory://faults/wh").unwrap();
        (Warehouse::new("faulty", root, store.clone()), store)
    }

    #[tokio::test]
    async fn the_nth_call_fails_once_and_is_reported_as_transient() {
        let (wh, store) = faulty();
        let location = |n: u32| format!("{}/f{n}", wh.root());
        store.fail_nth(Op::Put, 2, Fault::Unavailable);
        wh.put_new(&location(1), Bytes::from_static(b"1"))
            .await
            .unwrap();
        let err = wh
            .put_new(&location(2), Bytes::from_static(b"2"))
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        wh.put_new(&location(2), Bytes::from_static(b"2"))
            .await
            .unwrap();
        assert_eq!(store.calls(Op::Put), 3);
        assert_eq!(store.injected(), 1);

        store.fail_nth(Op::Get, 1, Fault::Denied);
        let err = wh.get(&location(1)).await.unwrap_err();
        assert!(matches!(err, StorageError::Refused { .. }), "{err}");

        // The write lands, the caller hears of a failure.
        store.fail_nth(Op::Put, 1, Fault::FailAfter);
        assert!(
            wh.put_new(&location(3), Bytes::from_static(b"3"))
                .await
                .is_err()
        );
        assert_eq!(
            wh.get(&location(3)).await.unwrap(),
            Bytes::from_static(b"3")
        );

        store.fail_nth(Op::Delete, 1, Fault::Unavailable);
        assert!(wh.delete(&location(3)).await.is_err());
        wh.delete(&location(3)).await.unwrap();
        assert!(matches!(
            wh.get(&location(3)).await,
            Err(StorageError::NotFound { .. })
        ));

        store.fail_nth(
            Op::Get,
            1,
            Fault::Timeout(std::time::Duration::from_millis(20)),
        );
        let started = std::time::Instant::now();
        assert!(wh.get(&location(1)).await.unwrap_err().is_transient());
        assert!(started.elapsed() >= std::time::Duration::from_millis(20));
    }

    #[tokio::test]
    async fn random_faults_hit_about_the_asked_share_of_calls() {
        let (wh, store) = faulty();
        store.fail_randomly(0.1, 7, Fault::Unavailable);
        let mut failed = 0;
        for n in 0..1000 {
            if wh
                .put_new(&format!("{}/r{n}", wh.root()), Bytes::from_static(b"x"))
                .await
                .is_err()
            {
                failed += 1;
            }
        }
        assert!((50..150).contains(&failed), "{failed} of 1000 failed");
        store.clear();
        wh.check().await.unwrap();
    }
}
