//! Floe's object-store layer: where table files live, and the only code that turns a location into
//! an object-store path.
//!
//! # The model
//!
//! A [`Warehouse`] is a root URL (`file:///srv/floe/warehouse`, later `s3://bucket/prefix`) with an
//! [`ObjectStore`] that reaches it. Iceberg metadata names every file by its full URL, so every
//! location Floe reads, writes or deletes goes through [`Warehouse::object_path`] first, which refuses
//! anything outside the warehouse root. That check is what keeps one table from reading or deleting
//! another warehouse's files, whatever location a client sends.
//!
//! Client-chosen names (namespaces, tables) never become paths directly: [`Warehouse::new_table_location`]
//! turns them into a readable but sanitized directory name with a unique suffix.
//!
//! Metadata files are written with [`PutMode::Create`], so two writers can never overwrite each
//! other's metadata file: the second one gets [`StorageError::AlreadyExists`].

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use url::Url;

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
    #[error("object store error in warehouse {warehouse} during {operation}: {source}")]
    Store {
        warehouse: String,
        operation: &'static str,
        #[source]
        source: object_store::Error,
    },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// One warehouse: a named root location and the object store that reaches it.
#[derive(Debug, Clone)]
pub struct Warehouse {
    name: String,
    /// Always without a trailing slash.
    root: Url,
    store: Arc<dyn ObjectStore>,
    /// The root directory when the warehouse is on the local file system.
    local_root: Option<std::path::PathBuf>,
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
    pub fn new(name: impl Into<String>, mut root: Url, store: Arc<dyn ObjectStore>) -> Self {
        let trimmed = root.path().trim_end_matches('/').to_string();
        root.set_path(&trimmed);
        Self {
            name: name.into(),
            root,
            store,
            local_root: None,
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
            Err(object_store::Error::AlreadyExists { .. }) => Err(StorageError::AlreadyExists {
                location: location.to_string(),
            }),
            Err(source) => Err(self.store_error("put", source)),
        }
    }

    pub async fn get(&self, location: &str) -> Result<Bytes> {
        let path = self.object_path(location)?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::NotFound {
                    location: location.to_string(),
                });
            }
            Err(source) => return Err(self.store_error("get", source)),
        };
        result
            .bytes()
            .await
            .map_err(|source| self.store_error("get", source))
    }

    /// Deletes one file; a file that is already gone is not an error.
    pub async fn delete(&self, location: &str) -> Result<()> {
        let path = self.object_path(location)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(self.store_error("delete", source)),
        }
    }

    /// Deletes every file under the directory `location`; returns how many were deleted.
    pub async fn delete_all_under(&self, location: &str) -> Result<usize> {
        let prefix = self.object_path(location)?;
        let paths = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        let deleted: Vec<Path> = self
            .store
            .delete_stream(paths)
            .try_collect()
            .await
            .map_err(|source| self.store_error("delete", source))?;
        Ok(deleted.len())
    }

    /// Every file under the directory `location`, as full URLs.
    pub async fn list_under(&self, location: &str) -> Result<Vec<String>> {
        let prefix = self.object_path(location)?;
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|source| self.store_error("list", source))?;
        Ok(metas
            .into_iter()
            .map(|meta| format!("{}/{}", self.root(), meta.location))
            .collect())
    }

    /// The underlying store, for readers (e.g. Iceberg's FileIO) that need it.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn store_error(&self, operation: &'static str, source: object_store::Error) -> StorageError {
        StorageError::Store {
            warehouse: self.name.clone(),
            operation,
            source,
        }
    }
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
    async fn delete_all_under_removes_only_that_directory() {
        let dir = tempfile::tempdir().unwrap();
        let wh = warehouse(dir.path());
        let root = wh.root().to_string();
        for file in ["a/1", "a/sub/2", "ab/3"] {
            wh.put_new(&format!("{root}/{file}"), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        assert_eq!(wh.delete_all_under(&format!("{root}/a")).await.unwrap(), 2);
        assert_eq!(wh.list_under(&format!("{root}/ab")).await.unwrap().len(), 1);
        assert!(matches!(
            wh.get(&format!("{root}/a/1")).await,
            Err(StorageError::NotFound { .. })
        ));
    }
}
