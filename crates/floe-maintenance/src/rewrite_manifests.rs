//! Manifest rewrite: many small data manifests (one per append, typically) become a few
//! manifests near the target size, clustered by partition, in a `replace` snapshot that changes
//! no data.
//!
//! # When
//!
//! A table *has many small manifests* when, for one partition spec, at least two of its current
//! snapshot's data manifests are smaller than the target manifest size
//! (`commit.manifest.target-size-bytes`, default 8 MiB as in Iceberg Java). Those manifests are
//! rewritten; larger ones and delete manifests are kept as they are
//! ([`floe_commit::producer::manifests_to_rewrite`]).
//!
//! # How
//!
//! [`floe_commit::producer::produce_manifest_rewrite`] writes the new manifests (entries kept
//! with their snapshot ids and sequence numbers, as `EXISTING`, sorted by partition) and the
//! snapshot; it is committed through [`Catalog::commit`] pinned to the snapshot read. A concurrent
//! commit makes that a conflict. Then, if every manifest it replaced is still in the table's
//! manifest list (a concurrent append only adds one), it is rebased without rewriting anything
//! ([`floe_commit::producer::rebase_manifest_rewrite`]: a new manifest list of the manifests it
//! wrote plus every other current one, e.g. the append's); otherwise its manifests are deleted and
//! it is produced again from the new state. 10 commit attempts in all; a concurrent append's
//! manifest is always kept.

use std::time::Duration;

use floe_commit::producer::{
    DEFAULT_MANIFEST_TARGET_SIZE, MANIFEST_TARGET_SIZE, RewrittenManifests, manifests_to_rewrite,
    produce_manifest_rewrite, rebase_manifest_rewrite,
};
use floe_commit::{Catalog, CommitError};
use floe_storage::TableScope;
use floe_store::TableName;
use iceberg::io::FileIO;
use iceberg::spec::{ManifestContentType, ManifestFile, ManifestList, TableMetadata};
use tracing::{info, warn};

use crate::{MaintenanceError, ProgressSink, Result};

/// Commits refused because a writer moved the table are re-produced this many times.
const MAX_ATTEMPTS: u32 = 10;

/// How to rewrite manifests.
#[derive(Debug, Clone, Default)]
pub struct ManifestRewriteOptions {
    /// Target manifest size, instead of `commit.manifest.target-size-bytes` (else 8 MiB).
    pub target_size_bytes: Option<u64>,
    /// Plan and report; write and commit nothing.
    pub dry_run: bool,
    /// Told how many manifests and bytes are rewritten.
    pub progress: ProgressSink,
}

/// What a run rewrote (or, in a dry run, would have).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestRewriteReport {
    pub dry_run: bool,
    pub target_size_bytes: u64,
    /// Data manifests of the snapshot read.
    pub data_manifests: usize,
    pub manifests_replaced: usize,
    pub bytes_replaced: u64,
    /// Zero in a dry run.
    pub manifests_created: usize,
    pub bytes_created: u64,
    pub manifests_kept: usize,
    /// Data-file entries moved (zero in a dry run).
    pub entries: usize,
    pub snapshot_id: Option<i64>,
    pub attempts: u32,
}

/// Rewrites `table`'s small data manifests; see the module docs.
pub async fn rewrite_manifests(
    catalog: &Catalog,
    table: &TableName,
    options: &ManifestRewriteOptions,
) -> Result<ManifestRewriteReport> {
    crate::with_lease(catalog, table, run(catalog, table, options)).await
}

async fn run(
    catalog: &Catalog,
    table: &TableName,
    options: &ManifestRewriteOptions,
) -> Result<ManifestRewriteReport> {
    let file_io = catalog.file_io();
    let mut report = ManifestRewriteReport {
        dry_run: options.dry_run,
        ..ManifestRewriteReport::default()
    };
    // Written and not committed yet: rebased over concurrent commits while it can be.
    let mut pending: Option<RewrittenManifests> = None;
    loop {
        let loaded = catalog.load_table(table).await?;
        let metadata = loaded.metadata();
        let scope = TableScope::new(catalog.warehouse(), metadata.location())?;
        if let Some(rewritten) = pending.as_mut() {
            match rebase_manifest_rewrite(metadata, &file_io, rewritten).await {
                Ok(true) => {}
                Ok(false) => {
                    // A manifest it replaced is gone (another rewrite, a compaction): start over.
                    delete_files(&scope, &rewritten.produced.written_files).await;
                    pending = None;
                }
                Err(err) => {
                    delete_files(&scope, &rewritten.produced.written_files).await;
                    return Err(MaintenanceError::Iceberg(format!(
                        "cannot rebase the manifest rewrite of {table}: {err}"
                    )));
                }
            }
        }
        if pending.is_none() {
            let target = target_size(metadata, options)?;
            report.target_size_bytes = target;
            let manifests = current_manifests(metadata, &file_io).await?;
            let chosen = manifests_to_rewrite(&manifests, target);
            report.data_manifests = manifests
                .iter()
                .filter(|m| m.content == ManifestContentType::Data)
                .count();
            report.manifests_replaced = chosen.len();
            report.bytes_replaced = manifests
                .iter()
                .filter(|m| chosen.contains(&m.manifest_path))
                .map(|m| u64::try_from(m.manifest_length).unwrap_or(0))
                .sum();
            report.manifests_kept = manifests.len() - chosen.len();
            if chosen.is_empty() || options.dry_run {
                return Ok(report);
            }
            options.progress.start(
                "rewriting manifests",
                report.manifests_replaced as u64,
                report.bytes_replaced,
            );
            let produced = produce_manifest_rewrite(metadata, &file_io, target).await;
            if let Ok(Some(rewritten)) = &produced {
                options.progress.advance(
                    rewritten.manifests_replaced as u64,
                    rewritten.bytes_replaced,
                );
            }
            options.progress.finish();
            pending = match produced {
                Ok(Some(rewritten)) => Some(rewritten),
                Ok(None) => return Ok(report),
                Err(err) => {
                    return Err(MaintenanceError::Iceberg(format!(
                        "cannot write the rewritten manifests of {table}: {err}"
                    )));
                }
            };
        }
        let Some(rewritten) = pending.as_ref() else {
            continue;
        };
        report.attempts += 1;
        let change = rewritten.produced.clone().into_table_change(table.clone());
        match catalog.commit(vec![change]).await {
            Ok(_) => {
                report.manifests_replaced = rewritten.manifests_replaced;
                report.bytes_replaced = rewritten.bytes_replaced;
                report.manifests_created = rewritten.manifests_created;
                report.bytes_created = rewritten.bytes_created;
                report.manifests_kept = rewritten.manifests_kept;
                report.entries = rewritten.entries;
                report.snapshot_id = Some(rewritten.produced.snapshot_id);
                info!(%table, snapshot_id = rewritten.produced.snapshot_id, replaced = report.manifests_replaced, created = report.manifests_created, attempts = report.attempts, "rewrote manifests");
                return Ok(report);
            }
            Err(CommitError::Conflict(message)) => {
                // Refused, so not applied: its manifest list is unreferenced; the created
                // manifests are kept for the rebase.
                delete_files(&scope, &rewritten.manifest_list_written()).await;
                if report.attempts >= MAX_ATTEMPTS {
                    delete_files(&scope, &rewritten.produced.written_files).await;
                    return Err(MaintenanceError::Conflict(format!(
                        "manifest rewrite of {table} gave up after {} conflicting commits ({message}); nothing was changed",
                        report.attempts
                    )));
                }
                info!(%table, attempt = report.attempts, %message, "the table moved during the manifest rewrite; rebasing");
                tokio::time::sleep(Duration::from_millis(u64::from(report.attempts))).await;
            }
            Err(err) => {
                // The outcome may be unknown: keep the files; orphan removal collects them if
                // nothing references them.
                warn!(%table, error = %err, "manifest rewrite commit failed; its files are left for orphan removal");
                return Err(err.into());
            }
        }
    }
}

fn target_size(metadata: &TableMetadata, options: &ManifestRewriteOptions) -> Result<u64> {
    if let Some(target) = options.target_size_bytes {
        if target == 0 {
            return Err(MaintenanceError::InvalidRequest(
                "the target manifest size must be positive".into(),
            ));
        }
        return Ok(target);
    }
    Ok(metadata
        .properties()
        .get(MANIFEST_TARGET_SIZE)
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(DEFAULT_MANIFEST_TARGET_SIZE))
}

/// The manifests of the current snapshot's manifest list.
async fn current_manifests(
    metadata: &TableMetadata,
    file_io: &FileIO,
) -> Result<Vec<ManifestFile>> {
    let Some(snapshot) = metadata.current_snapshot() else {
        return Ok(Vec::new());
    };
    let unreadable = |err: iceberg::Error| MaintenanceError::Unreadable {
        location: snapshot.manifest_list().to_string(),
        message: err.to_string(),
    };
    let bytes = file_io
        .new_input(snapshot.manifest_list())
        .map_err(unreadable)?
        .read()
        .await
        .map_err(unreadable)?;
    let list =
        ManifestList::parse_with_version(&bytes, metadata.format_version()).map_err(unreadable)?;
    Ok(list.consume_entries().into_iter().collect())
}

/// Deletes files the job wrote and will not commit (inside the table's location only).
async fn delete_files(scope: &TableScope, paths: &[String]) {
    for path in paths {
        if let Err(err) = scope.delete(path).await {
            warn!(path, error = %err, "could not delete an unreferenced file");
        }
    }
}
