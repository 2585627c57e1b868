//! What a set of snapshots reaches: their manifest lists, the manifests those list, and the data
//! and delete files those manifests name.
//!
//! Files are read through the [`Warehouse`] (so any backend works, and nothing outside the
//! warehouse is ever read) and parsed with Iceberg's own readers. Files are keyed by their
//! object-store path ([`Warehouse::object_path`], the one location→path mapping), so two spellings
//! of one location (`file:/x` and `file:///x`) are one file.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use floe_storage::{StorageError, Warehouse};
use iceberg::spec::{FormatVersion, Manifest, ManifestList, SnapshotRef, TableMetadata};

use crate::{MaintenanceError, Result};

/// A set of files: object path → (location as the metadata spells it, size in bytes if known).
#[derive(Debug, Default, Clone)]
pub(crate) struct FileSet {
    files: BTreeMap<String, (String, u64)>,
}

impl FileSet {
    pub(crate) fn insert(&mut self, warehouse: &Warehouse, location: &str, size: u64) {
        self.files
            .entry(key(warehouse, location))
            .or_insert_with(|| (location.to_string(), size));
    }

    pub(crate) fn contains(&self, warehouse: &Warehouse, location: &str) -> bool {
        self.files.contains_key(&key(warehouse, location))
    }

    /// Files in `self` and not in `other`: (location, size), ordered by path.
    pub(crate) fn minus(&self, other: &FileSet) -> Vec<(String, u64)> {
        self.files
            .iter()
            .filter(|(path, _)| !other.files.contains_key(*path))
            .map(|(_, file)| file.clone())
            .collect()
    }
}

/// The object path of `location`; a location outside the warehouse keeps its own spelling under a
/// prefix no object path has, so it never matches a listed file.
pub(crate) fn key(warehouse: &Warehouse, location: &str) -> String {
    match warehouse.object_path(location) {
        Ok(path) => path.to_string(),
        Err(_) => format!("\u{0}outside:{location}"),
    }
}

/// Which manifest entries count as reaching their file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entries {
    /// Only entries a scan of the snapshot reads (added, existing): what a snapshot needs.
    Live,
    /// Also entries that record a file's removal: the conservative choice for orphan removal.
    All,
}

/// Reads manifest lists and manifests once each, however many snapshots share them.
pub(crate) struct Reader<'a> {
    warehouse: &'a Warehouse,
    version: FormatVersion,
    manifests: HashMap<String, Arc<Manifest>>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(warehouse: &'a Warehouse, metadata: &TableMetadata) -> Self {
        Self {
            warehouse,
            version: metadata.format_version(),
            manifests: HashMap::new(),
        }
    }

    /// Adds to `out` every file `snapshots` reach. With `missing_ok`, a manifest list or manifest
    /// that no longer exists (an earlier run already deleted it) or lies outside the warehouse is
    /// skipped; otherwise it is an error, since what it names is unknown and must not be deleted.
    pub(crate) async fn collect<'s>(
        &mut self,
        snapshots: impl IntoIterator<Item = &'s SnapshotRef>,
        entries: Entries,
        missing_ok: bool,
        out: &mut FileSet,
    ) -> Result<()> {
        for snapshot in snapshots {
            let list_location = snapshot.manifest_list();
            let Some(bytes) = self.read(list_location, missing_ok).await? else {
                continue;
            };
            out.insert(self.warehouse, list_location, bytes.len() as u64);
            let list = ManifestList::parse_with_version(&bytes, self.version)
                .map_err(|err| unreadable(list_location, err))?;
            for manifest_file in list.entries() {
                let path = &manifest_file.manifest_path;
                out.insert(
                    self.warehouse,
                    path,
                    manifest_file.manifest_length.max(0) as u64,
                );
                let Some(manifest) = self.manifest(path, missing_ok).await? else {
                    continue;
                };
                for entry in manifest.entries() {
                    if entries == Entries::All || entry.is_alive() {
                        out.insert(
                            self.warehouse,
                            entry.file_path(),
                            entry.data_file().file_size_in_bytes(),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    async fn manifest(
        &mut self,
        location: &str,
        missing_ok: bool,
    ) -> Result<Option<Arc<Manifest>>> {
        if let Some(manifest) = self.manifests.get(location) {
            return Ok(Some(manifest.clone()));
        }
        let Some(bytes) = self.read(location, missing_ok).await? else {
            return Ok(None);
        };
        let manifest =
            Arc::new(Manifest::parse_avro(&bytes).map_err(|err| unreadable(location, err))?);
        self.manifests
            .insert(location.to_string(), manifest.clone());
        Ok(Some(manifest))
    }

    async fn read(&self, location: &str, missing_ok: bool) -> Result<Option<bytes::Bytes>> {
        match self.warehouse.get(location).await {
            Ok(bytes) => Ok(Some(bytes)),
            // Gone already, or somewhere this warehouse cannot reach: nothing to learn or delete.
            Err(StorageError::NotFound { .. } | StorageError::InvalidLocation { .. })
                if missing_ok =>
            {
                Ok(None)
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Statistics and partition-statistics files `metadata` names for the snapshots `keep` accepts.
pub(crate) fn statistics_files(
    warehouse: &Warehouse,
    metadata: &TableMetadata,
    keep: impl Fn(i64) -> bool,
    out: &mut FileSet,
) {
    for stats in metadata.statistics_iter() {
        if keep(stats.snapshot_id) {
            let size = stats.file_size_in_bytes.max(0) as u64;
            out.insert(warehouse, &stats.statistics_path, size);
        }
    }
    for stats in metadata.partition_statistics_iter() {
        if keep(stats.snapshot_id) {
            let size = stats.file_size_in_bytes.max(0) as u64;
            out.insert(warehouse, &stats.statistics_path, size);
        }
    }
}

fn unreadable(location: &str, err: iceberg::Error) -> MaintenanceError {
    MaintenanceError::Unreadable {
        location: location.to_string(),
        message: err.to_string(),
    }
}
