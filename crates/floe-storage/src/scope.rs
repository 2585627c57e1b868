//! The one place that decides which files a table may delete: its own, and no one else's.
//!
//! Every job that deletes table files — purge, snapshot expiry, unreferenced-file removal, the
//! clean-up of a failed compaction, manifest rewrite or commit — deletes through a
//! [`TableScope`]: the warehouse plus the table's location. A scope deletes and lists only
//! locations *strictly inside* that location once both are canonical object-store paths
//! ([`Warehouse::object_path`] resolves `.`, `..` and percent-encoded spellings and refuses
//! anything outside the warehouse). So a table never deletes the warehouse root, a sibling whose
//! name merely starts like its own, another table, or a file its metadata names elsewhere (a
//! registered table's old manifests, a manifest entry pointing into another table): those are
//! left alone, logged at WARN and counted ([`refused_deletes_total`]).
//!
//! On a local warehouse the file system can lead out of a directory through a symbolic link,
//! which object_store's `LocalFileSystem` follows when it lists and when it deletes through a
//! linked directory. A scope therefore lists a local table by its own walk that never descends a
//! link nor reports one, and refuses to delete a path any of whose directories (from the
//! warehouse root down) or the file itself is a link.

use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use object_store::path::Path;
use tracing::warn;

use crate::{ListedObject, Result, StorageError, Warehouse};

/// Deletes refused because the location was outside the table (or reached through a link).
static REFUSED_DELETES: AtomicU64 = AtomicU64::new(0);

/// How many deletes every [`TableScope`] of this process refused so far: a non-zero value means
/// some table's metadata names files outside its location, or a link was planted in one.
pub fn refused_deletes_total() -> u64 {
    REFUSED_DELETES.load(Ordering::Relaxed)
}

/// What [`TableScope::delete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The file is gone (or was already).
    Deleted,
    /// The location is not strictly inside the table, or is reached through a link: untouched.
    OutsideTable,
}

/// A table's files: what may be listed and deleted on behalf of one table.
#[derive(Debug, Clone)]
pub struct TableScope {
    warehouse: Warehouse,
    /// The table location as given, without a trailing slash (for messages).
    location: String,
    /// Its canonical object-store path.
    prefix: Path,
}

impl TableScope {
    /// The scope of the table at `table_location`, which must be inside `warehouse` (and not its
    /// root).
    pub fn new(warehouse: &Warehouse, table_location: &str) -> Result<Self> {
        let location = table_location.trim_end_matches('/').to_string();
        let prefix = warehouse.object_path(&location)?;
        Ok(Self {
            warehouse: warehouse.clone(),
            location,
            prefix,
        })
    }

    /// The table's location, without a trailing slash.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Whether `location` is strictly inside the table's location, compared as canonical
    /// object-store paths. Says nothing of links: [`TableScope::delete`] checks those too.
    pub fn contains(&self, location: &str) -> bool {
        self.warehouse
            .object_path(location)
            .is_ok_and(|path| strictly_under(&path, &self.prefix))
    }

    /// Deletes `location` if it is the table's own file; a file already gone is not an error.
    pub async fn delete(&self, location: &str) -> Result<Deletion> {
        let Some(path) = self.own_path(location) else {
            self.refuse(location, "outside the table's location");
            return Ok(Deletion::OutsideTable);
        };
        if self.through_link(&path) {
            self.refuse(location, "reached through a symbolic link");
            return Ok(Deletion::OutsideTable);
        }
        self.warehouse.delete(location).await?;
        Ok(Deletion::Deleted)
    }

    /// Every file of the table, with size and last-modified time. Never follows a link.
    pub async fn list(&self) -> Result<Vec<ListedObject>> {
        match &self.warehouse.local_root {
            Some(root) => {
                if self.through_link(&self.prefix) {
                    self.refuse(&self.location, "the table's directory is a symbolic link");
                    return Ok(Vec::new());
                }
                let root = root.clone();
                let prefix = self.prefix.clone();
                let base = self.warehouse.root().to_string();
                let location = self.location.clone();
                tokio::task::spawn_blocking(move || list_local(&root, &prefix, &base))
                    .await
                    .map_err(|err| StorageError::InvalidLocation {
                        location: location.clone(),
                        reason: format!("listing stopped: {err}"),
                    })?
                    .map_err(|err| StorageError::InvalidLocation {
                        location,
                        reason: format!("cannot list: {err}"),
                    })
            }
            None => self.warehouse.list_under_with_meta(&self.location).await,
        }
    }

    /// Deletes every file of the table (a purge); returns how many were deleted.
    pub async fn delete_all(&self) -> Result<usize> {
        let listed = self.list().await?;
        if self.warehouse.local_root.is_some() {
            // Few enough on a local disk to check and delete one by one.
            let mut deleted = 0;
            for object in listed {
                if self.delete(&object.location).await? == Deletion::Deleted {
                    deleted += 1;
                }
            }
            return Ok(deleted);
        }
        let paths: Vec<Path> = listed
            .iter()
            .filter_map(|object| self.own_path(&object.location))
            .collect();
        let store = self.warehouse.store();
        let mut results = store
            .delete_stream(futures::stream::iter(paths.into_iter().map(Ok)).boxed())
            .boxed();
        let mut deleted = 0;
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(source) => {
                    return Err(self.warehouse.error("delete", &self.location, source));
                }
            }
        }
        Ok(deleted)
    }

    /// The object path of `location` when it is strictly inside the table.
    fn own_path(&self, location: &str) -> Option<Path> {
        self.warehouse
            .object_path(location)
            .ok()
            .filter(|path| strictly_under(path, &self.prefix))
    }

    /// Whether, on a local warehouse, any directory from the warehouse root down to `path`, or
    /// `path` itself, is a symbolic link. A component that does not exist ends the walk (nothing
    /// below it exists either); one that cannot be examined counts as a link, to stay safe.
    fn through_link(&self, path: &Path) -> bool {
        let Some(root) = &self.warehouse.local_root else {
            return false;
        };
        let mut current = root.clone();
        for part in path.parts() {
            current.push(part.as_ref());
            match std::fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => return true,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return false,
                Err(_) => return true,
            }
        }
        false
    }

    fn refuse(&self, location: &str, reason: &str) {
        REFUSED_DELETES.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::REFUSED_DELETES).increment(1);
        warn!(
            table_location = %self.location,
            location,
            reason,
            "refusing to touch a file that is not the table's own"
        );
    }
}

/// Whether `path` is strictly below `prefix`, part by part (so `t-sibling/x` is not under `t`).
fn strictly_under(path: &Path, prefix: &Path) -> bool {
    let mut parts = path.parts();
    for expected in prefix.parts() {
        if parts.next() != Some(expected) {
            return false;
        }
    }
    parts.next().is_some()
}

/// Every regular file under `root/prefix`, walked without following links: a link (to a file or
/// a directory) is neither reported nor descended.
fn list_local(
    root: &std::path::Path,
    prefix: &Path,
    base: &str,
) -> std::io::Result<Vec<ListedObject>> {
    let start = prefix
        .parts()
        .fold(root.to_path_buf(), |dir, part| dir.join(part.as_ref()));
    let mut out = Vec::new();
    let mut pending = vec![(start, prefix.clone())];
    while let Some((dir, path)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue; // not UTF-8: no location can name it
            };
            let child = path.clone().join(name.as_str());
            if file_type.is_symlink() {
                REFUSED_DELETES.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(crate::metrics::REFUSED_DELETES).increment(1);
                warn!(location = %format!("{base}/{child}"), "not listing a symbolic link in a table's directory");
            } else if file_type.is_dir() {
                pending.push((entry.path(), child));
            } else if file_type.is_file() {
                let meta = entry.metadata()?;
                out.push(ListedObject {
                    location: format!("{base}/{child}"),
                    last_modified: meta.modified()?,
                    size: meta.len(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

/// Whether `location` is strictly inside `table_location`, both canonicalized as URLs (`.`, `..`
/// and their percent-encoded spellings resolved), without any store: for clean-ups that delete
/// through an Iceberg `FileIO` (a client's, say) the files they wrote themselves.
pub fn is_inside_location(table_location: &str, location: &str) -> bool {
    let (Ok(table), Ok(file)) = (
        url::Url::parse(table_location.trim_end_matches('/')),
        url::Url::parse(location),
    ) else {
        return false;
    };
    if table.scheme() != file.scheme()
        || table.host_str() != file.host_str()
        || table.port() != file.port()
        || location.contains("/../")
    {
        return false;
    }
    let (Ok(table), Ok(file)) = (
        Path::from_url_path(table.path()),
        Path::from_url_path(file.path()),
    ) else {
        return false;
    };
    strictly_under(&file, &table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn setup() -> (tempfile::TempDir, Warehouse, TableScope) {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::local("test", &dir.path().join("wh")).unwrap();
        let scope = TableScope::new(&wh, &format!("{}/ns/t", wh.root())).unwrap();
        (dir, wh, scope)
    }

    #[test]
    fn only_paths_strictly_inside_the_table_are_its_own() {
        let (_dir, wh, scope) = setup();
        let root = wh.root();
        assert!(scope.contains(&format!("{root}/ns/t/data/a.parquet")));
        for outside in [
            format!("{root}/ns/t"),
            format!("{root}/ns/t/"),
            format!("{root}/ns/t-sibling/data/a.parquet"),
            format!("{root}/ns/u/data/a.parquet"),
            format!("{root}/ns/t/../u/a.parquet"),
            format!("{root}/ns/t/%2e%2e/u/a.parquet"),
            format!("{root}/ns/t/data/%2E%2E/%2e%2e/../u/a"),
            format!("{root}/ns/a.parquet"),
            "file:///etc/passwd".to_string(),
            "s3://bucket/ns/t/a".to_string(),
        ] {
            assert!(!scope.contains(&outside), "{outside} counted as inside");
        }
        assert!(TableScope::new(&wh, root).is_err(), "the root is no table");
        assert!(TableScope::new(&wh, "file:///elsewhere").is_err());
    }

    #[test]
    fn the_store_free_check_agrees() {
        let table = "s3://bucket/wh/ns/t";
        assert!(is_inside_location(table, "s3://bucket/wh/ns/t/data/x"));
        assert!(is_inside_location(
            "s3://bucket/wh/ns/t/",
            "s3://bucket/wh/ns/t/m/x"
        ));
        for outside in [
            "s3://bucket/wh/ns/t",
            "s3://bucket/wh/ns/t-2/x",
            "s3://other/wh/ns/t/x",
            "s3://bucket/wh/ns/t/../u/x",
            "s3://bucket/wh/ns/t/%2e%2e/u/x",
            "file:///wh/ns/t/x",
            "not a url",
        ] {
            assert!(!is_inside_location(table, outside), "{outside}");
        }
    }

    #[tokio::test]
    async fn deletes_outside_the_table_are_refused_and_counted() {
        let (_dir, wh, scope) = setup();
        let root = wh.root().to_string();
        let other = format!("{root}/ns/u/data/a.parquet");
        let own = format!("{root}/ns/t/data/a.parquet");
        for file in [&other, &own] {
            wh.put_new(file, Bytes::from_static(b"x")).await.unwrap();
        }
        let before = refused_deletes_total();
        assert_eq!(scope.delete(&other).await.unwrap(), Deletion::OutsideTable);
        assert_eq!(
            scope
                .delete(&format!("{root}/ns/t/../u/data/a.parquet"))
                .await
                .unwrap(),
            Deletion::OutsideTable
        );
        assert!(refused_deletes_total() >= before + 2);
        assert_eq!(scope.delete(&own).await.unwrap(), Deletion::Deleted);
        assert_eq!(scope.delete(&own).await.unwrap(), Deletion::Deleted);
        assert!(wh.get(&other).await.is_ok());
        assert!(wh.get(&own).await.is_err());
    }

    #[tokio::test]
    async fn an_object_store_table_is_listed_and_purged_in_bulk_within_its_prefix() {
        let root = url::Url::parse("memory://bucket/wh").unwrap();
        let wh = Warehouse::new(
            "memory",
            root,
            std::sync::Arc::new(object_store::memory::InMemory::new()),
        );
        let root = wh.root().to_string();
        for file in ["ns/t/data/a", "ns/t/metadata/b", "ns/t-2/data/c", "ns/u/d"] {
            wh.put_new(&format!("{root}/{file}"), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        let scope = TableScope::new(&wh, &format!("{root}/ns/t")).unwrap();
        assert_eq!(scope.list().await.unwrap().len(), 2);
        assert_eq!(scope.delete_all().await.unwrap(), 2);
        assert!(scope.list().await.unwrap().is_empty());
        for kept in ["ns/t-2/data/c", "ns/u/d"] {
            assert!(wh.get(&format!("{root}/{kept}")).await.is_ok(), "{kept}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn links_are_neither_listed_nor_followed() {
        let (dir, wh, scope) = setup();
        let root = wh.root().to_string();
        let own = format!("{root}/ns/t/data/a.parquet");
        wh.put_new(&own, Bytes::from_static(b"x")).await.unwrap();
        let foreign = dir.path().join("foreign");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("precious"), b"keep").unwrap();
        let table_dir = dir.path().join("wh/ns/t");
        std::os::unix::fs::symlink(&foreign, table_dir.join("link")).unwrap();
        std::os::unix::fs::symlink(foreign.join("precious"), table_dir.join("file-link")).unwrap();

        let listed: Vec<String> = scope
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.location)
            .collect();
        assert_eq!(listed, vec![own.clone()]);
        assert_eq!(
            scope
                .delete(&format!("{root}/ns/t/link/precious"))
                .await
                .unwrap(),
            Deletion::OutsideTable
        );
        assert_eq!(scope.delete_all().await.unwrap(), 1);
        assert!(foreign.join("precious").exists());
        assert!(!table_dir.join("data/a.parquet").exists());
    }
}
