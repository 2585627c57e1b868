//! Opening a [`Catalog`] from a data dir: the metadata store (embedded SQLite in the data dir, or
//! a shared PostgreSQL database) and the warehouse (by default a directory next to it, else any
//! warehouse URL `floe_storage::Warehouse::open` takes, such as `s3://bucket/prefix`).
//!
//! The server (`floe serve`) and the embedded SQL engine (`floe sql --data-dir`) open the same
//! catalog the same way, so this lives below both of them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use floe_storage::{StoreOptions, Warehouse};
use floe_store::MetadataStore;
use floe_store::postgres::{PostgresOptions, PostgresStore};
use floe_store::sqlite::{SqliteOptions, SqliteStore};

use floe_store::sealed::{Sealer, SecretKey};

use crate::private_files::{Existing, create_private_dir, create_private_file, write_private_file};
use crate::{Catalog, CommitSettings, Warehouses};

/// Where a catalog lives and how to reach it.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Holds `catalog.db` (the embedded metadata store) and `warehouse/` (table files).
    pub data_dir: PathBuf,
    /// The warehouse's name (the REST prefix).
    pub warehouse: String,
    /// Where table files go: `file:///...`, `s3://bucket/prefix` or `memory://name`; `None` for
    /// `data_dir/warehouse`.
    pub warehouse_url: Option<String>,
    /// How to reach a remote warehouse (S3 settings, retries).
    pub store: StoreOptions,
    /// A `postgres://` URL of a shared metadata store; `None` for `data_dir/catalog.db`.
    pub metastore: Option<String>,
    /// Pooled metadata-store connections.
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection.
    pub acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout`; `None` keeps the database's setting.
    pub statement_timeout: Option<Duration>,
    pub settings: CommitSettings,
    /// The key that seals the store's secrets (see `floe_store::sealed`); `None` to find it as
    /// [`secret_key`] says.
    pub secret_key: Option<SecretKey>,
    /// A file holding the secret key in base64 (`--secret-key-file`).
    pub secret_key_file: Option<PathBuf>,
    /// Files holding previous secret keys, which open values but seal none (during a rotation:
    /// see [`previous_secret_keys`]).
    pub previous_secret_key_files: Vec<PathBuf>,
    /// Whether opening the store brings every stored secret under the current key
    /// (`floe_store::secrets`); `floe secrets reseal` turns it off to run and report the pass.
    pub seal_on_open: bool,
}

impl OpenOptions {
    /// Defaults for a catalog in `data_dir` with an embedded store.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            warehouse: "main".to_string(),
            warehouse_url: None,
            store: StoreOptions::default(),
            metastore: None,
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Some(Duration::from_secs(30)),
            settings: CommitSettings::default(),
            secret_key: None,
            secret_key_file: None,
            previous_secret_key_files: Vec::new(),
            seal_on_open: true,
        }
    }

    pub fn catalog_db(&self) -> PathBuf {
        self.data_dir.join("catalog.db")
    }

    pub fn warehouse_dir(&self) -> PathBuf {
        self.data_dir.join("warehouse")
    }

    /// Where the embedded store's generated secret key is kept.
    pub fn secret_key_path(&self) -> PathBuf {
        self.data_dir.join("secret.key")
    }
}

/// The key that seals the store's secrets, from the first of: `options.secret_key`; the
/// environment variable `FLOE_SECRET_KEY` (base64 of 32 bytes); the file
/// `options.secret_key_file`, else the file named by `FLOE_SECRET_KEY_FILE`; and, for the embedded
/// store only, `DATA_DIR/secret.key`, generated (mode 0600) on first use so that a laptop needs no
/// set-up. A shared PostgreSQL store gets no generated key: replicas must share one, so the
/// operator provides it, and until then no secret can be stored.
pub fn secret_key(options: &OpenOptions) -> Result<Option<SecretKey>, String> {
    if let Some(key) = &options.secret_key {
        return Ok(Some(key.clone()));
    }
    if let Some(text) = std::env::var_os("FLOE_SECRET_KEY") {
        let text = text
            .into_string()
            .map_err(|_| "FLOE_SECRET_KEY is not base64 text".to_string())?;
        return SecretKey::from_base64(&text)
            .map(Some)
            .map_err(|err| format!("FLOE_SECRET_KEY: {err}"));
    }
    let file = options
        .secret_key_file
        .clone()
        .or_else(|| std::env::var_os("FLOE_SECRET_KEY_FILE").map(PathBuf::from));
    if let Some(file) = file {
        return read_key_file(&file).map(Some);
    }
    if options.metastore.is_some() {
        return Ok(None);
    }
    let path = options.secret_key_path();
    let (key, text) = SecretKey::generate_base64();
    match write_private_file(&path, format!("{text}\n").as_bytes(), Existing::Keep) {
        Ok(true) => {
            tracing::info!(file = %path.display(), key = key.id(), "generated the key that seals stored secrets");
            Ok(Some(key))
        }
        // Generated earlier, or by another process starting at the same moment.
        Ok(false) => read_key_file(&path).map(Some),
        Err(err) => Err(format!("cannot write {}: {err}", path.display())),
    }
}

/// The previous secret keys (see *Rotation* in `floe_store::sealed`): those in the files
/// `options.previous_secret_key_files`, else in the files `FLOE_PREVIOUS_SECRET_KEY_FILES` names
/// (comma-separated); and the keys in `FLOE_PREVIOUS_SECRET_KEYS` (base64, comma-separated).
pub fn previous_secret_keys(options: &OpenOptions) -> Result<Vec<SecretKey>, String> {
    let mut files = options.previous_secret_key_files.clone();
    if files.is_empty()
        && let Some(list) = std::env::var_os("FLOE_PREVIOUS_SECRET_KEY_FILES")
    {
        let list = list
            .into_string()
            .map_err(|_| "FLOE_PREVIOUS_SECRET_KEY_FILES is not text".to_string())?;
        files = split_list(&list).map(PathBuf::from).collect();
    }
    let mut keys = files
        .iter()
        .map(|file| read_key_file(file))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(list) = std::env::var_os("FLOE_PREVIOUS_SECRET_KEYS") {
        let list = list
            .into_string()
            .map_err(|_| "FLOE_PREVIOUS_SECRET_KEYS is not base64 text".to_string())?;
        for (index, text) in split_list(&list).enumerate() {
            keys.push(
                SecretKey::from_base64(text).map_err(|err| {
                    format!("FLOE_PREVIOUS_SECRET_KEYS, key {}: {err}", index + 1)
                })?,
            );
        }
    }
    Ok(keys)
}

fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// The sealer of the store `options` describe: its secret key and previous keys. Previous keys
/// without a current key are an error: nothing could be re-sealed.
pub fn sealer(options: &OpenOptions) -> Result<Sealer, String> {
    let key = secret_key(options)?;
    let previous = previous_secret_keys(options)?;
    if key.is_none() && !previous.is_empty() {
        return Err(
            "previous secret keys were given but no current one (FLOE_SECRET_KEY, or \
                    --secret-key-file / FLOE_SECRET_KEY_FILE): a rotation needs the new key as \
                    the current one"
                .into(),
        );
    }
    Ok(Sealer::new(key).with_previous(previous))
}

fn read_key_file(path: &Path) -> Result<SecretKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read secret key file {}: {err}", path.display()))?;
    SecretKey::from_base64(&text)
        .map_err(|err| format!("secret key file {}: {err}", path.display()))
}

/// Opens the metadata store (PostgreSQL if `options.metastore` names one, else the embedded SQLite
/// file, created if missing) and the local warehouse, and records the locations of tables created
/// before the store kept them (once: see `locations`). Errors are messages for the operator.
pub async fn open(options: &OpenOptions) -> Result<Catalog, String> {
    let store = open_store(options).await?;
    let warehouse = open_warehouse(options).await?;
    crate::locations::record_missing(&store, &warehouse, &options.store.retry).await;
    Ok(Catalog::with_settings(
        store,
        warehouse,
        options.settings.clone(),
    ))
}

/// Opens the metadata store alone, as [`open`] does (creating the data dir, and with the
/// embedded store `catalog.db`), for tools that need no warehouse (`floe secrets`).
pub async fn open_store(options: &OpenOptions) -> Result<Arc<dyn MetadataStore>, String> {
    create_dir(&options.data_dir)?;
    let sealer = sealer(options)?;
    // With a shared metastore the SQLite file is neither opened nor created.
    let store: Arc<dyn MetadataStore> = match &options.metastore {
        Some(url) => {
            let postgres = PostgresOptions {
                max_connections: options.max_connections,
                acquire_timeout: options.acquire_timeout,
                statement_timeout: options.statement_timeout,
                sealer,
                seal_on_open: options.seal_on_open,
                ..PostgresOptions::default()
            };
            Arc::new(
                PostgresStore::connect(url, &postgres)
                    .await
                    .map_err(|err| format!("cannot open metastore {}: {err}", redacted(url)))?,
            )
        }
        None => {
            let sqlite = SqliteOptions {
                max_connections: options.max_connections,
                acquire_timeout: options.acquire_timeout,
                sealer,
                seal_on_open: options.seal_on_open,
                ..SqliteOptions::default()
            };
            let path = options.catalog_db();
            // SQLite gives its -wal and -shm files the database file's mode.
            create_private_file(&path)
                .map_err(|err| format!("cannot create {}: {err}", path.display()))?;
            Arc::new(
                SqliteStore::open_with(&path, &sqlite)
                    .await
                    .map_err(|err| format!("cannot open {}: {err}", path.display()))?,
            )
        }
    };
    Ok(store)
}

/// Opens the catalog as [`open`] does and hosts it as the default warehouse beside the ones
/// registered in its metadata store.
pub async fn open_warehouses(options: &OpenOptions) -> Result<Warehouses, String> {
    let default = open(options).await?;
    Ok(Warehouses::new(
        default,
        options.store.retry.clone(),
        options.settings.clone(),
    ))
}

/// The catalog of one warehouse of the deployment `options` describes, for tools that work on a
/// data dir or metastore without a server (`floe sql`, `floe maintain`): a registered warehouse
/// by its name, or the default one (named `options.warehouse`) when `name` is `None` or names
/// it. An unknown name is an error listing the warehouses that exist.
pub async fn open_catalog(
    options: &OpenOptions,
    name: Option<&str>,
) -> Result<Arc<Catalog>, String> {
    let warehouses = open_warehouses(options).await?;
    let name = name.unwrap_or(&options.warehouse);
    match warehouses.catalog(name).await {
        Ok(catalog) => Ok(catalog),
        Err(crate::CommitError::WarehouseNotFound(_)) => {
            let known = warehouses
                .list()
                .await
                .map(|all| {
                    all.into_iter()
                        .map(|warehouse| warehouse.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            Err(format!(
                "warehouse {name:?} does not exist; there are: {known}"
            ))
        }
        Err(err) => Err(err.to_string()),
    }
}

/// Opens the warehouse and reaches it once: a missing bucket or refused credentials stop the
/// start with a message, instead of failing every commit later. A store that is only unavailable
/// now (timeouts, 5xx) does not: it may be back before the first request.
async fn open_warehouse(options: &OpenOptions) -> Result<Warehouse, String> {
    let warehouse = match &options.warehouse_url {
        Some(url) => Warehouse::open(&options.warehouse, url, &options.store),
        None => Warehouse::local(&options.warehouse, &options.warehouse_dir()),
    }
    .map_err(|err| err.to_string())?;
    match warehouse.check().await {
        Ok(()) => Ok(warehouse),
        Err(err) if err.is_transient() => {
            tracing::warn!(warehouse = warehouse.root(), error = %err, "the warehouse is unavailable; starting anyway");
            Ok(warehouse)
        }
        Err(err) => Err(format!("cannot use warehouse {}: {err}", warehouse.root())),
    }
}

fn create_dir(dir: &Path) -> Result<(), String> {
    create_private_dir(dir)
        .map_err(|err| format!("cannot create data dir {}: {err}", dir.display()))
}

/// `url` with its password, if any, masked, for messages: the one before the host and a
/// `password` (or `sslpassword`) query parameter. Other parameters, such as `sslmode` and the
/// certificate files, stay: they are what an operator checks.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            // Pair by pair, as written: re-encoding would turn the paths' `/` into `%2F`.
            if let Some(query) = url.query() {
                let masked: Vec<String> = query
                    .split('&')
                    .map(|pair| {
                        let name = url::form_urlencoded::parse(pair.as_bytes())
                            .next()
                            .map(|(name, _)| name.into_owned())
                            .unwrap_or_default();
                        if matches!(name.as_str(), "password" | "sslpassword") {
                            format!("{name}=***")
                        } else {
                            pair.to_string()
                        }
                    })
                    .collect();
                url.set_query(Some(&masked.join("&")));
            }
            url.to_string()
        }
        Err(_) => "(malformed URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        let shown = redacted("postgres://floe:secret@127.0.0.1:5432/floe");
        assert!(!shown.contains("secret"), "{shown}");
        let shown = redacted(
            "postgres://floe@db:5432/floe?pass%77ord=secret&sslmode=verify-full&sslrootcert=/ca.pem",
        );
        assert_eq!(
            shown,
            "postgres://floe@db:5432/floe?password=***&sslmode=verify-full&sslrootcert=/ca.pem"
        );
        assert_eq!(redacted("not a url"), "(malformed URL)");
    }

    #[tokio::test]
    async fn a_fresh_data_dir_opens_empty() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = open(&OpenOptions::new(dir.path().join("data")))
            .await
            .unwrap();
        let page = catalog
            .list_namespaces(None, &floe_store::PageRequest::default())
            .await
            .unwrap();
        assert!(page.items.is_empty());
        assert!(dir.path().join("data/catalog.db").exists());
        assert!(dir.path().join("data/warehouse").is_dir());
    }

    #[tokio::test]
    async fn a_warehouse_url_replaces_the_local_directory() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        let options = OpenOptions {
            warehouse_url: Some(
                url::Url::from_directory_path(&elsewhere)
                    .unwrap()
                    .to_string(),
            ),
            ..OpenOptions::new(dir.path().join("data"))
        };
        let catalog = open(&options).await.unwrap();
        assert!(elsewhere.is_dir());
        assert!(!dir.path().join("data/warehouse").exists());
        assert!(catalog.warehouse().root().ends_with("/elsewhere"));

        let options = OpenOptions {
            warehouse_url: Some("ftp://host/x".into()),
            ..OpenOptions::new(dir.path().join("data"))
        };
        let err = open(&options).await.err().unwrap();
        assert!(err.contains("unsupported warehouse URL scheme"), "{err}");
    }
}
