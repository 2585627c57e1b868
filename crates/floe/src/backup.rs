//! `floe backup`, `floe restore` and `floe recover`: getting a catalog back after losing it.
//!
//! A backup is a consistent copy of the metadata store (see `floe_store::backup`) written to a
//! folder of its own — `DIR/floe-backup-<time>-<id>/` or the same under an `s3://` (`gs://`,
//! `az://`) prefix — holding the payload and, written last, `manifest.json` with its size and
//! SHA-256: a folder without a manifest is an unfinished backup, and a restore refuses it. While
//! the copy is taken the backup holds the store's backup lease, and maintenance deletes no file
//! (see `floe_commit::Catalog::backup_in_progress`).
//!
//! `floe recover --from-storage` needs no backup: it rebuilds the catalog's tables and views from a
//! warehouse's folders (`floe_maintenance::recover`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use floe_maintenance::recover::{EntryKind, RecoverOptions, RecoverReport, recover_from_storage};
use floe_storage::{StoreOptions, Warehouse};
use floe_store::MetadataStore;
use floe_store::backup::{
    BACKUP_LEASE, Backend, BackupManifest, FORMAT, FORMAT_VERSION, RowCounts,
};
use floe_store::postgres::{Export, ExportedRow, PostgresOptions, PostgresStore};
use floe_store::sqlite::SqliteStore;
use sha2::{Digest, Sha256};

use crate::access::StoreArgs;

/// How long a backup's lease lasts without renewal: a backup that dies frees maintenance soon.
const LEASE_TTL: Duration = Duration::from_secs(120);

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the backup: a local directory or an s3:// (gs://, az://) URL prefix. The
    /// backup goes into a new folder there, floe-backup-<time>-<id>; its path is printed.
    /// Object-store credentials come from the environment (AWS_*, GOOGLE_*, AZURE_*).
    #[arg(long, value_name = "DIR|URL")]
    to: String,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup folder to restore (a path or a URL, as `floe backup` printed it).
    #[arg(long, value_name = "DIR|URL")]
    from: String,
    /// Replace a catalog that already holds namespaces or tables. The SQLite file being replaced
    /// is kept beside it as catalog.db.before-restore-<time>. Stop every server first.
    #[arg(long)]
    replace_existing: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct RecoverArgs {
    /// Rebuild the catalog's tables and views from this warehouse's folders (its name: `main`,
    /// the data dir's warehouse, or one registered in the metadata store). Tables already in the
    /// catalog are left as they are.
    #[arg(long, value_name = "WAREHOUSE")]
    from_storage: String,
    /// Where two folders spell one name, or two metadata files share the newest version, take
    /// the one updated last (they are listed and skipped otherwise).
    #[arg(long)]
    pick_newest: bool,
    /// Report what would be registered; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The default warehouse's URL, as given to `floe serve --warehouse-url`, when it is not
    /// DIR/warehouse (credentials for s3:// and the like from the environment, as for the server).
    #[arg(long, value_name = "URL")]
    warehouse_url: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

pub fn run_backup(args: BackupArgs) -> Result<(), String> {
    crate::runtime()?.block_on(backup(args))
}

pub fn run_restore(args: RestoreArgs) -> Result<(), String> {
    crate::runtime()?.block_on(restore(args))
}

pub fn run_recover(args: RecoverArgs) -> Result<(), String> {
    crate::runtime()?.block_on(recover(args))
}

/// The two backends, opened concretely: a backup is the one operation that differs by backend.
enum OpenStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl OpenStore {
    fn as_store(&self) -> &dyn MetadataStore {
        match self {
            Self::Sqlite(store) => store,
            Self::Postgres(store) => store,
        }
    }
}

async fn open_store(options: &floe_commit::open::OpenOptions) -> Result<OpenStore, String> {
    match &options.metastore {
        Some(url) => PostgresStore::connect(url, &PostgresOptions::default())
            .await
            .map(OpenStore::Postgres)
            .map_err(|err| format!("cannot open the PostgreSQL metadata store: {err}")),
        None => {
            let path = options.catalog_db();
            if !path.exists() {
                return Err(format!("no catalog in {}", options.data_dir.display()));
            }
            SqliteStore::open(&path)
                .await
                .map(OpenStore::Sqlite)
                .map_err(|err| format!("cannot open {}: {err}", path.display()))
        }
    }
}

/// A folder to read and write backups in: a local directory or an object-store prefix.
fn backup_root(location: &str) -> Result<Warehouse, String> {
    let options = StoreOptions {
        use_environment: true,
        ..StoreOptions::default()
    };
    let opened = if location.contains("://") {
        Warehouse::open("backup", location, &options)
    } else {
        Warehouse::local("backup", Path::new(location))
    };
    opened.map_err(|err| format!("cannot open {location}: {err}"))
}

async fn backup(args: BackupArgs) -> Result<(), String> {
    let options = args.store.options();
    let store = open_store(&options).await?;
    let root = backup_root(&args.to)?;
    let folder = format!(
        "floe-backup-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let holder = format!("backup {folder}");
    // Once the copy is taken every file it names exists; from then on maintenance may delete.
    let (backend, payload_name, payload, schema_version, created_at_ms, rows) =
        holding_backup_lease(store.as_store(), &holder, copy(&store, &options)).await?;

    let manifest = BackupManifest {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        backend,
        schema_version,
        created_at_ms,
        payload: payload_name.to_string(),
        payload_bytes: payload.len() as u64,
        payload_sha256: hex::encode(Sha256::digest(&payload)),
        rows: rows.0.clone(),
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|err| format!("cannot write the manifest: {err}"))?;
    let at = |file: &str| format!("{}/{folder}/{file}", root.root());
    let size = payload.len();
    root.put_new(&at(payload_name), payload)
        .await
        .map_err(|err| format!("cannot write the backup: {err}"))?;
    // Last: a folder with a manifest is a finished backup.
    root.put_new(&at("manifest.json"), Bytes::from(manifest_json))
        .await
        .map_err(|err| format!("cannot write the backup's manifest: {err}"))?;
    println!("backup written to {}/{folder}", root.root());
    println!(
        "  {} store, schema version {schema_version}, {} bytes, {} rows ({} namespaces, {} tables and views)",
        backend_name(backend),
        size,
        rows.total(),
        rows.0.get("namespaces").copied().unwrap_or(0),
        rows.0.get("tables").copied().unwrap_or(0),
    );
    Ok(())
}

type Copied = (Backend, &'static str, Bytes, i64, i64, RowCounts);

async fn copy(
    store: &OpenStore,
    options: &floe_commit::open::OpenOptions,
) -> Result<Copied, String> {
    match store {
        OpenStore::Sqlite(sqlite) => {
            let scratch = options
                .data_dir
                .join(format!(".backup-{}.db", uuid::Uuid::new_v4().simple()));
            let copied = async {
                let created_at_ms = chrono::Utc::now().timestamp_millis();
                let rows = sqlite
                    .backup_into(&scratch)
                    .await
                    .map_err(|err| format!("cannot copy the catalog: {err}"))?;
                let schema_version = sqlite
                    .schema_version()
                    .await
                    .map_err(|err| format!("cannot read the schema version: {err}"))?;
                let bytes = std::fs::read(&scratch)
                    .map_err(|err| format!("cannot read {}: {err}", scratch.display()))?;
                Ok((
                    Backend::Sqlite,
                    "catalog.db",
                    Bytes::from(bytes),
                    schema_version,
                    created_at_ms,
                    rows,
                ))
            }
            .await;
            let _ = std::fs::remove_file(&scratch);
            copied
        }
        OpenStore::Postgres(postgres) => {
            let export = postgres
                .export()
                .await
                .map_err(|err| format!("cannot export the metadata store: {err}"))?;
            let mut rows = RowCounts::default();
            let mut lines = Vec::new();
            for row in &export.rows {
                *rows.0.entry(row.table.clone()).or_default() += 1;
                serde_json::to_writer(&mut lines, row)
                    .map_err(|err| format!("cannot write the export: {err}"))?;
                lines.push(b'\n');
            }
            Ok((
                Backend::Postgres,
                "catalog.jsonl",
                Bytes::from(lines),
                export.schema_version,
                export.created_at_ms,
                rows,
            ))
        }
    }
}

/// Runs `work` while holding the backup lease, renewing it as it goes, then gives it up. A renewal
/// that fails (the store unreachable for a whole lease, another backup taking over) fails the
/// backup: a copy taken without the lease held throughout may name files maintenance deleted.
async fn holding_backup_lease<T>(
    store: &dyn MetadataStore,
    holder: &str,
    work: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    let taken = store
        .try_acquire_lease(BACKUP_LEASE, holder, LEASE_TTL)
        .await
        .map_err(|err| format!("cannot take the backup lease: {err}"))?;
    if !taken {
        return Err(
            "another backup of this metadata store is running; try again when it is done"
                .to_string(),
        );
    }
    let mut work = std::pin::pin!(work);
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            () = tokio::time::sleep(LEASE_TTL / 4) => {
                match store.try_acquire_lease(BACKUP_LEASE, holder, LEASE_TTL).await {
                    Ok(true) => {}
                    Ok(false) => break Err("the backup lost its lease to another backup".to_string()),
                    Err(err) => break Err(format!("cannot renew the backup lease: {err}")),
                }
            }
        }
    };
    if let Err(err) = store.release_lease(BACKUP_LEASE, holder).await {
        eprintln!("warning: could not release the backup lease (it expires on its own): {err}");
    }
    outcome
}

async fn restore(args: RestoreArgs) -> Result<(), String> {
    let options = args.store.options();
    let (root, folder) = split_backup_location(&args.from)?;
    let read = |file: &str| {
        let location = format!("{}/{folder}/{file}", root.root());
        let root = &root;
        async move {
            root.get(&location)
                .await
                .map_err(|err| format!("cannot read {location}: {err}"))
        }
    };
    let manifest: BackupManifest =
        serde_json::from_slice(&read("manifest.json").await.map_err(|err| {
            format!("{err} (a backup folder without manifest.json is unfinished)")
        })?)
        .map_err(|err| format!("manifest.json is not a Floe backup manifest: {err}"))?;
    if manifest.format != FORMAT || manifest.format_version > FORMAT_VERSION {
        return Err(format!(
            "{} is a {} backup, version {}: this Floe reads {FORMAT} up to version {FORMAT_VERSION}",
            args.from, manifest.format, manifest.format_version
        ));
    }
    if manifest.payload.contains('/') || manifest.payload.contains("..") {
        return Err(format!(
            "the manifest names a payload outside its folder: {}",
            manifest.payload
        ));
    }
    let payload = read(&manifest.payload).await?;
    let digest = hex::encode(Sha256::digest(&payload));
    if payload.len() as u64 != manifest.payload_bytes || digest != manifest.payload_sha256 {
        return Err(format!(
            "{} does not match its manifest ({} bytes, SHA-256 {digest}; the manifest says {} \
             bytes, {}): the backup is damaged",
            manifest.payload,
            payload.len(),
            manifest.payload_bytes,
            manifest.payload_sha256
        ));
    }
    let rows = match (manifest.backend, &options.metastore) {
        (Backend::Sqlite, None) => {
            restore_sqlite(&options.data_dir, &payload, args.replace_existing).await?
        }
        (Backend::Postgres, Some(url)) => {
            restore_postgres(url, &manifest, &payload, args.replace_existing).await?
        }
        (Backend::Sqlite, Some(_)) => {
            return Err(
                "this is a backup of an embedded (SQLite) store: restore it into a data \
                        dir (--data-dir), not a PostgreSQL metastore"
                    .to_string(),
            );
        }
        (Backend::Postgres, None) => {
            return Err(
                "this is a backup of a PostgreSQL metadata store: restore it with \
                        --metastore postgres://..."
                    .to_string(),
            );
        }
    };
    println!(
        "restored {} ({} rows: {} namespaces, {} tables and views)",
        args.from,
        rows.total(),
        rows.0.get("namespaces").copied().unwrap_or(0),
        rows.0.get("tables").copied().unwrap_or(0),
    );
    Ok(())
}

/// A backup folder's parent (opened as an object store) and the folder's name.
fn split_backup_location(location: &str) -> Result<(Warehouse, String), String> {
    let trimmed = location.trim_end_matches('/');
    let Some((parent, folder)) = trimmed.rsplit_once('/') else {
        return backup_root(".").map(|root| (root, trimmed.to_string()));
    };
    if folder.is_empty() || folder == ".." || folder == "." {
        return Err(format!("{location} does not name a backup folder"));
    }
    let parent = if parent.is_empty() { "/" } else { parent };
    Ok((backup_root(parent)?, folder.to_string()))
}

async fn restore_sqlite(
    data_dir: &Path,
    payload: &[u8],
    replace: bool,
) -> Result<RowCounts, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|err| format!("cannot create {}: {err}", data_dir.display()))?;
    let target = data_dir.join("catalog.db");
    if target.exists() && !replace {
        return Err(format!(
            "{} already exists: restoring replaces the whole catalog, so it must be asked for \
             (--replace-existing; stop every server on this data dir first)",
            target.display()
        ));
    }
    let staged = data_dir.join(format!(".restore-{}.db", uuid::Uuid::new_v4().simple()));
    std::fs::write(&staged, payload)
        .map_err(|err| format!("cannot write {}: {err}", staged.display()))?;
    let checked = floe_store::sqlite::check_backup_file(&staged).await;
    let (version, _) = match checked {
        Ok(checked) => checked,
        Err(err) => {
            let _ = std::fs::remove_file(&staged);
            return Err(format!("the backup's database is damaged: {err}"));
        }
    };
    if version > floe_store::sqlite::latest_schema_version() {
        let _ = std::fs::remove_file(&staged);
        return Err(format!(
            "the backup was taken by a newer Floe (schema version {version}; this release knows \
             up to {}): restore it with that release",
            floe_store::sqlite::latest_schema_version()
        ));
    }
    if target.exists() {
        let kept = data_dir.join(format!(
            "catalog.db.before-restore-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        std::fs::rename(&target, &kept)
            .map_err(|err| format!("cannot move {} aside: {err}", target.display()))?;
        for suffix in ["-wal", "-shm"] {
            let side = data_dir.join(format!("catalog.db{suffix}"));
            if side.exists() {
                let kept_side = PathBuf::from(format!("{}{suffix}", kept.display()));
                std::fs::rename(&side, &kept_side)
                    .map_err(|err| format!("cannot move {} aside: {err}", side.display()))?;
            }
        }
        println!("the catalog it replaces is kept as {}", kept.display());
    }
    std::fs::rename(&staged, &target)
        .map_err(|err| format!("cannot move the restored catalog into place: {err}"))?;
    // Opening brings an older backup's schema up to date, as it does for any catalog.db.
    let store = SqliteStore::open(&target)
        .await
        .map_err(|err| format!("cannot open the restored catalog: {err}"))?;
    let rows = store
        .row_counts()
        .await
        .map_err(|err| format!("cannot read the restored catalog: {err}"))?;
    store.close().await;
    Ok(rows)
}

async fn restore_postgres(
    url: &str,
    manifest: &BackupManifest,
    payload: &[u8],
    replace: bool,
) -> Result<RowCounts, String> {
    let mut export = Export {
        schema_version: manifest.schema_version,
        created_at_ms: manifest.created_at_ms,
        rows: Vec::new(),
    };
    for (number, line) in payload.split(|byte| *byte == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let row: ExportedRow = serde_json::from_slice(line)
            .map_err(|err| format!("line {} of the backup is not a row: {err}", number + 1))?;
        export.rows.push(row);
    }
    let store = PostgresStore::connect(url, &PostgresOptions::default())
        .await
        .map_err(|err| format!("cannot open the PostgreSQL metadata store: {err}"))?;
    let rows = store
        .import(&export, replace)
        .await
        .map_err(|err| format!("cannot restore: {err}"))?;
    store.close().await;
    Ok(rows)
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    }
}

async fn recover(args: RecoverArgs) -> Result<(), String> {
    let mut options = args.store.options();
    options.warehouse_url = args.warehouse_url.clone();
    let catalog: Arc<floe_commit::Catalog> =
        floe_commit::open::open_catalog(&options, Some(&args.from_storage)).await?;
    let report = recover_from_storage(
        &catalog,
        &RecoverOptions {
            dry_run: args.dry_run,
            pick_newest: args.pick_newest,
        },
    )
    .await
    .map_err(|err| format!("recovery failed: {err}"))?;
    print_recovery(&report);
    Ok(())
}

fn print_recovery(report: &RecoverReport) {
    let verb = if report.dry_run {
        "would register"
    } else {
        "registered"
    };
    for entry in &report.recovered {
        let kind = match entry.kind {
            EntryKind::Table => "table",
            EntryKind::View => "view",
        };
        println!(
            "{verb} {kind} {} from {}",
            entry.name, entry.metadata_location
        );
    }
    for ambiguity in &report.ambiguous {
        println!("ambiguous {}: {}", ambiguity.name, ambiguity.why);
        for candidate in &ambiguity.candidates {
            let mark = if ambiguity.chosen.as_deref() == Some(candidate.location.as_str()) {
                " (chosen: --pick-newest)"
            } else {
                ""
            };
            println!(
                "  {} updated {} ms{mark}",
                candidate.metadata_location, candidate.updated_ms
            );
        }
    }
    for (folder, reason) in &report.skipped {
        println!("skipped {folder}: {reason}");
    }
    println!(
        "{} {verb}, {} already in the catalog, {} ambiguous{}, {} skipped",
        report.recovered.len(),
        report.already_present.len(),
        report.ambiguous.len(),
        if report.ambiguous.is_empty() {
            ""
        } else {
            " (listed above; --pick-newest takes the newest)"
        },
        report.skipped.len()
    );
}
