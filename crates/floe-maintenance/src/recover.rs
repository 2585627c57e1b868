//! Rebuilding a lost catalog from a warehouse alone (`floe recover --from-storage`).
//!
//! Every table and view Floe creates lives in a folder named after it: one sanitized level per
//! namespace level, then `<name>-<32 hex digits>` (see `floe_storage::Warehouse::new_table_location`),
//! with its metadata files in `metadata/`, named `<version>-<uuid>.metadata.json`. The walk goes down
//! the warehouse one level at a time and stops at each folder that has a `metadata/` folder, so it
//! never lists data files: its cost follows the number of tables. For each such folder it takes the
//! metadata file with the highest version that reads as Iceberg metadata naming that folder as its
//! location, and registers it under the namespace and name the folder spells.
//!
//! What it cannot decide it lists and leaves alone, unless told ([`RecoverOptions::pick_newest`]):
//! two folders that spell one name (a table dropped without purging, then created again), and two
//! metadata files of one version in a folder (two writers raced; the loser's file normally goes,
//! but a crash can leave it). Folders that do not look like Floe's (a client-chosen location) and
//! tables already in the catalog are reported and skipped. Names with characters outside
//! `[A-Za-z0-9_-]` were sanitized into their folder names and come back spelled that way.

use std::collections::BTreeMap;

use floe_commit::{Catalog, CommitError};
use floe_storage::ListedObject;
use floe_store::{StoreError, TableName};
use iceberg::spec::{TableMetadata, ViewMetadata};
use tracing::{info, warn};

use crate::Result;

/// What to do with what cannot be decided, and whether to change anything.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// Report what would be registered; change nothing.
    pub dry_run: bool,
    /// Of several candidates for one name, take the one updated last instead of skipping it.
    pub pick_newest: bool,
}

/// Whether a recovered entry is a table or a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Table,
    View,
}

/// One table or view found in storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundEntry {
    pub kind: EntryKind,
    pub name: TableName,
    /// The folder: the table's or view's location.
    pub location: String,
    pub metadata_location: String,
    /// `last-updated-ms` (tables) or the current version's `timestamp-ms` (views).
    pub updated_ms: i64,
}

/// Several candidates for one name; none was registered unless `pick_newest` chose one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguity {
    pub name: TableName,
    pub why: String,
    pub candidates: Vec<FoundEntry>,
    /// The one registered under `pick_newest`, if any.
    pub chosen: Option<String>,
}

/// What a recovery found and did.
#[derive(Debug, Clone, Default)]
pub struct RecoverReport {
    pub dry_run: bool,
    /// Registered (would be, in a dry run).
    pub recovered: Vec<FoundEntry>,
    /// Already in the catalog at the same location.
    pub already_present: Vec<FoundEntry>,
    pub ambiguous: Vec<Ambiguity>,
    /// Folders or entries left alone, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Namespaces created on the way.
    pub namespaces_created: Vec<Vec<String>>,
}

/// Walks `catalog`'s warehouse and registers every table and view found there that the catalog
/// does not hold. See the module docs.
pub async fn recover_from_storage(
    catalog: &Catalog,
    options: &RecoverOptions,
) -> Result<RecoverReport> {
    let mut report = RecoverReport {
        dry_run: options.dry_run,
        ..RecoverReport::default()
    };
    let mut found: BTreeMap<TableName, Vec<FoundEntry>> = BTreeMap::new();
    let mut pending: Vec<(Vec<String>, Option<String>)> = vec![(Vec::new(), None)];
    let warehouse = catalog.warehouse();
    while let Some((levels, folder)) = pending.pop() {
        let (directories, _) = warehouse.list_children(folder.as_deref()).await?;
        let metadata_dir = directories
            .iter()
            .find(|dir| dir.trim_end_matches('/').ends_with("/metadata"));
        if let (Some(metadata_dir), Some(folder)) = (metadata_dir, folder.as_deref()) {
            match examine_folder(catalog, &levels, folder, metadata_dir).await? {
                Examined::Found(entry) => found.entry(entry.name.clone()).or_default().push(*entry),
                Examined::Tied(ambiguity) => report.ambiguous.push(ambiguity),
                Examined::Skipped(reason) => report.skipped.push((folder.to_string(), reason)),
            }
            continue;
        }
        for dir in directories {
            let dir = dir.trim_end_matches('/').to_string();
            let Some(level) = dir.rsplit('/').next().map(str::to_string) else {
                continue;
            };
            let mut deeper = levels.clone();
            deeper.push(level);
            pending.push((deeper, Some(dir)));
        }
    }

    for (name, mut candidates) in found {
        let entry = if candidates.len() == 1 {
            candidates.pop()
        } else {
            candidates.sort_by_key(|entry| entry.updated_ms);
            let chosen = options
                .pick_newest
                .then(|| candidates.last().cloned())
                .flatten();
            report.ambiguous.push(Ambiguity {
                name: name.clone(),
                why: format!("{} folders spell this name", candidates.len()),
                candidates,
                chosen: chosen.as_ref().map(|entry| entry.location.clone()),
            });
            chosen
        };
        if let Some(entry) = entry {
            register(catalog, entry, options.dry_run, &mut report).await?;
        }
    }
    for ambiguity in &report.ambiguous {
        warn!(name = %ambiguity.name, why = %ambiguity.why, chosen = ?ambiguity.chosen, "ambiguous in storage");
    }
    info!(
        recovered = report.recovered.len(),
        present = report.already_present.len(),
        ambiguous = report.ambiguous.len(),
        skipped = report.skipped.len(),
        dry_run = options.dry_run,
        "recovery from storage"
    );
    Ok(report)
}

enum Examined {
    Found(Box<FoundEntry>),
    Tied(Ambiguity),
    Skipped(String),
}

/// The newest intact metadata file of one table or view folder.
async fn examine_folder(
    catalog: &Catalog,
    levels: &[String],
    folder: &str,
    metadata_dir: &str,
) -> Result<Examined> {
    let Some(name) = levels.last().and_then(|level| name_of_folder(level)) else {
        return Ok(Examined::Skipped(
            "not a folder Floe named (<name>-<32 hex digits>)".to_string(),
        ));
    };
    if levels.len() < 2 {
        return Ok(Examined::Skipped(
            "a table folder outside any namespace".to_string(),
        ));
    }
    let name = TableName::new(levels[..levels.len() - 1].to_vec(), name);
    let (_, files) = catalog
        .warehouse()
        .list_children(Some(metadata_dir.trim_end_matches('/')))
        .await?;
    let mut versions: BTreeMap<u64, Vec<ListedObject>> = BTreeMap::new();
    for file in files {
        if let Some(version) = version_of(&file.location) {
            versions.entry(version).or_default().push(file);
        }
    }
    let mut unreadable = Vec::new();
    // Newest first; a version whose files are all unreadable falls back to the one before it.
    for (_, files) in versions.into_iter().rev() {
        let mut intact = Vec::new();
        for file in files {
            match read_entry(catalog, &name, folder, &file.location).await {
                Ok(entry) => intact.push(entry),
                Err(reason) => unreadable.push(format!("{}: {reason}", file.location)),
            }
        }
        match intact.len() {
            0 => continue,
            1 => {
                if let Some(entry) = intact.pop() {
                    for problem in &unreadable {
                        warn!(%name, problem, "skipped an unreadable metadata file");
                    }
                    return Ok(Examined::Found(Box::new(entry)));
                }
            }
            _ => {
                intact.sort_by_key(|entry| entry.updated_ms);
                return Ok(Examined::Tied(Ambiguity {
                    name,
                    why: format!(
                        "{} metadata files share the newest version in {folder}",
                        intact.len()
                    ),
                    candidates: intact,
                    chosen: None,
                }));
            }
        }
    }
    Ok(Examined::Skipped(if unreadable.is_empty() {
        "no metadata file".to_string()
    } else {
        format!("no intact metadata file ({})", unreadable.join("; "))
    }))
}

async fn read_entry(
    catalog: &Catalog,
    name: &TableName,
    folder: &str,
    metadata_location: &str,
) -> std::result::Result<FoundEntry, String> {
    let bytes = catalog
        .warehouse()
        .get(metadata_location)
        .await
        .map_err(|err| err.to_string())?;
    let json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|err| format!("not JSON: {err}"))?;
    let (kind, location, updated_ms) = if json.get("view-uuid").is_some() {
        let view: ViewMetadata =
            serde_json::from_value(json).map_err(|err| format!("not view metadata: {err}"))?;
        let updated = view.current_version().timestamp_ms();
        (EntryKind::View, view.location().to_string(), updated)
    } else {
        let table: TableMetadata =
            serde_json::from_value(json).map_err(|err| format!("not table metadata: {err}"))?;
        (
            EntryKind::Table,
            table.location().to_string(),
            table.last_updated_ms(),
        )
    };
    if location.trim_end_matches('/') != folder.trim_end_matches('/') {
        return Err(format!("it names another location, {location}"));
    }
    Ok(FoundEntry {
        kind,
        name: name.clone(),
        location: folder.trim_end_matches('/').to_string(),
        metadata_location: metadata_location.to_string(),
        updated_ms,
    })
}

async fn register(
    catalog: &Catalog,
    entry: FoundEntry,
    dry_run: bool,
    report: &mut RecoverReport,
) -> Result<()> {
    let existing = match entry.kind {
        EntryKind::Table => catalog.store().load_table(&entry.name).await,
        EntryKind::View => catalog.store().load_view(&entry.name).await,
    };
    match existing {
        Ok(pointer) => {
            let same_folder = pointer
                .metadata_location
                .starts_with(&format!("{}/", entry.location));
            if same_folder {
                report.already_present.push(entry);
            } else {
                report.skipped.push((
                    entry.location.clone(),
                    format!("{} already names another table or view", entry.name),
                ));
            }
            return Ok(());
        }
        Err(StoreError::TableNotFound(_) | StoreError::ViewNotFound(_)) => {}
        Err(err) => return Err(err.into()),
    }
    if dry_run {
        report.recovered.push(entry);
        return Ok(());
    }
    create_namespaces(catalog, &entry.name.namespace, report).await?;
    let registered = match entry.kind {
        EntryKind::Table => catalog
            .register_table(&entry.name, &entry.metadata_location, false)
            .await
            .map(|_| ()),
        EntryKind::View => {
            let location = catalog.warehouse().table_location(&entry.location)?;
            let bytes = catalog.warehouse().get(&entry.metadata_location).await?;
            let checksum = floe_store::FileChecksum::of(&bytes);
            catalog
                .store()
                .create_view(&entry.name, &entry.metadata_location, &checksum, &location)
                .await
                .map(|_| ())
                .map_err(CommitError::from)
        }
    };
    match registered {
        Ok(()) => report.recovered.push(entry),
        // Another table or view already holds the name or the location: the catalog's own
        // checks say which, and nothing was changed.
        Err(err @ (CommitError::AlreadyExists(_) | CommitError::InvalidRequest(_))) => {
            report
                .skipped
                .push((entry.location.clone(), err.to_string()));
        }
        Err(err) => return Err(err.into()),
    }
    Ok(())
}

async fn create_namespaces(
    catalog: &Catalog,
    namespace: &[String],
    report: &mut RecoverReport,
) -> Result<()> {
    for depth in 1..=namespace.len() {
        let level = &namespace[..depth];
        match catalog.create_namespace(level, &Default::default()).await {
            Ok(()) => report.namespaces_created.push(level.to_vec()),
            Err(CommitError::AlreadyExists(_)) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// The name a folder `<name>-<32 hex digits>` spells.
fn name_of_folder(folder: &str) -> Option<String> {
    let (name, suffix) = folder.rsplit_once('-')?;
    let is_suffix = suffix.len() == 32 && suffix.bytes().all(|b| b.is_ascii_hexdigit());
    (is_suffix && !name.is_empty()).then(|| name.to_string())
}

/// The version of a metadata file named `<version>-<uuid>.metadata.json`.
fn version_of(location: &str) -> Option<u64> {
    if !location.ends_with(".metadata.json") {
        return None;
    }
    u64::try_from(floe_commit::metadata_file_version(location)).ok()
}

#[cfg(test)]
mod tests {
    use super::{name_of_folder, version_of};

    #[test]
    fn folder_names_and_versions() {
        assert_eq!(
            name_of_folder("orders-0193a0b2c3d47e5f8a9b0c1d2e3f4a5b").as_deref(),
            Some("orders")
        );
        assert_eq!(
            name_of_folder("my-table-0193a0b2c3d47e5f8a9b0c1d2e3f4a5b").as_deref(),
            Some("my-table")
        );
        assert_eq!(name_of_folder("orders"), None);
        assert_eq!(name_of_folder("orders-xyz"), None);
        assert_eq!(
            version_of("file:///w/t/metadata/00012-6f1c.metadata.json"),
            Some(12)
        );
        assert_eq!(version_of("file:///w/t/metadata/snap-1.avro"), None);
    }
}
