//! The `floe` command: runs the catalog server, runs SQL on its tables (`floe sql`, see `sql.rs`),
//! maintains them (`floe maintain`, see `maintain.rs`), repairs them (`floe repair`, see
//! `repair.rs`), re-seals stored secrets after a key rotation (`floe secrets`, see `secrets.rs`)
//! and shows its configuration.
//!
//! Configuration is layered, lowest precedence first: built-in defaults, a TOML file
//! (`--config`), `FLOE_*` environment variables, command-line flags. `floe config show` prints the
//! result, so what the server will do is never a guess.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use floe_catalog::ServerConfig;

mod access;
mod auth_args;
mod backup;
mod maintain;
mod maintenance;
mod repair;
mod scrub;
mod secrets;
mod sql;
mod telemetry_args;
mod warehouse;

#[derive(Parser)]
#[command(
    name = "floe",
    version,
    about = "Floe: a managed Apache Iceberg table service",
    long_about = "Floe serves Apache Iceberg tables through the Iceberg REST catalog API. \
        With no set-up it keeps its catalog in SQLite and its tables in a local directory \
        (./floe-data); Spark, PyIceberg, DuckDB and iceberg-rust connect to it unchanged."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Iceberg REST catalog server (default: http://127.0.0.1:8181, data in ./floe-data).
    Serve(ConfigArgs),
    /// Run SQL on the tables: against a running server (--catalog URL) or a data dir directly.
    Sql(sql::SqlArgs),
    /// Maintain a table in a data dir: expire snapshots, or remove unreferenced files.
    Maintain(maintain::MaintainArgs),
    /// Repair a table whose files were lost: roll back a missing or corrupt metadata file, or
    /// forget missing data files (dry run unless --apply).
    Repair(repair::RepairArgs),
    /// Create, list, show and drop warehouses (each a prefix with its own storage).
    Warehouse(warehouse::WarehouseArgs),
    /// What the server's automatic maintenance did, and each table's maintenance settings.
    Maintenance(maintenance::MaintenanceArgs),
    /// Check that every file a table references exists with its recorded size (--deep: and
    /// that Parquet footers parse); exits 1 if any finding is open.
    Scrub(scrub::ScrubArgs),
    /// Principals of the oauth2 auth mode: create (prints the secret once), list, delete, rotate.
    Principal(access::PrincipalArgs),
    /// Roles: create, delete, list, assign to and unassign from principals.
    Role(access::RoleArgs),
    /// Grant a privilege on a securable to a role.
    Grant(access::GrantArgs),
    /// Revoke a privilege on a securable from a role.
    Revoke(access::GrantArgs),
    /// The audit log: every mutation and every denied request.
    Audit(access::AuditArgs),
    /// Write a consistent copy of the metadata store to a directory or an s3:// prefix.
    Backup(backup::BackupArgs),
    /// Restore the metadata store from a `floe backup` folder (stop every server first).
    Restore(backup::RestoreArgs),
    /// Rebuild a lost catalog's tables and views from a warehouse's folders alone.
    Recover(backup::RecoverArgs),
    /// The secrets sealed in the metadata store: re-seal them under a new key (key rotation).
    Secrets(secrets::SecretsArgs),
    /// Inspect configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the configuration `floe serve` would use with the same flags, as TOML.
    Show(ConfigArgs),
}

/// Every setting, each optional here so that unset flags fall through to the lower layers.
#[derive(Args, Debug, Default)]
struct ConfigArgs {
    /// TOML file with settings (keys as in `floe config show`).
    #[arg(long, env = "FLOE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1]. Only loopback unless you mean to expose it.
    #[arg(long, env = "FLOE_HOST")]
    host: Option<IpAddr>,
    /// Port to listen on [default: 8181]; 0 picks a free port (printed at start).
    #[arg(long, env = "FLOE_PORT")]
    port: Option<u16>,
    /// Directory for catalog.db (the metadata store) and warehouse/ (table files) [default: ./floe-data].
    #[arg(long, env = "FLOE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Metadata store shared by replicas, as a postgres:// URL (password also from PGPASSWORD)
    /// [default: embedded SQLite, DIR/catalog.db].
    #[arg(long, env = "FLOE_METASTORE", value_name = "URL")]
    metastore: Option<String>,
    /// Pooled metadata-store connections per replica [default: 16].
    #[arg(long, env = "FLOE_METASTORE_MAX_CONNECTIONS", value_name = "N")]
    metastore_max_connections: Option<u32>,
    /// Longest wait for a metadata-store connection before a request gets a 503, in ms
    /// [default: 3000].
    #[arg(long, env = "FLOE_METASTORE_ACQUIRE_TIMEOUT_MS", value_name = "MS")]
    metastore_acquire_timeout_ms: Option<u64>,
    /// PostgreSQL statement_timeout for metadata-store statements, in ms; 0 keeps the
    /// database's setting [default: 30000].
    #[arg(long, env = "FLOE_METASTORE_STATEMENT_TIMEOUT_MS", value_name = "MS")]
    metastore_statement_timeout_ms: Option<u64>,
    /// File holding the key (32 bytes, base64) that seals warehouse secrets and token signing keys
    /// in the metadata store. Without it: FLOE_SECRET_KEY (the key itself), else DIR/secret.key,
    /// generated on first use (embedded store only; servers sharing PostgreSQL must share a key).
    #[arg(long, env = "FLOE_SECRET_KEY_FILE", value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
    /// While rotating the secret key: a file holding a previous key, repeatable. Values sealed
    /// with it still open, and are re-sealed with the current key at start; drop it once
    /// `floe secrets reseal` reports 0 left. Keys themselves: FLOE_PREVIOUS_SECRET_KEYS.
    #[arg(
        long = "previous-secret-key-file",
        env = "FLOE_PREVIOUS_SECRET_KEY_FILES",
        value_delimiter = ',',
        value_name = "FILE"
    )]
    previous_secret_key_files: Vec<PathBuf>,
    /// Name of the default warehouse; clients see it as the REST prefix [default: main].
    #[arg(long, env = "FLOE_WAREHOUSE")]
    warehouse: Option<String>,
    /// Largest request body accepted, in bytes [default: 33554432].
    #[arg(long, env = "FLOE_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<usize>,
    /// Close a connection that has not sent a request's complete headers within this many ms;
    /// also how long an idle keep-alive connection stays open [default: 30000].
    #[arg(long, env = "FLOE_HEADER_READ_TIMEOUT_MS", value_name = "MS")]
    header_read_timeout_ms: Option<u64>,
    /// Cut a request (body upload included) short with a 503 after this many ms
    /// [default: 120000].
    #[arg(long, env = "FLOE_REQUEST_TIMEOUT_MS", value_name = "MS")]
    request_timeout_ms: Option<u64>,
    /// A retry takes over the Idempotency-Key of a request whose server stopped renewing its claim
    /// (it died mid-request) this long ago, in ms [default: 120000].
    #[arg(long, env = "FLOE_IDEMPOTENCY_TAKEOVER_MS", value_name = "MS")]
    idempotency_takeover_ms: Option<u64>,
    /// Requests handled at once; more get an immediate 503 with Retry-After [default: 256].
    #[arg(long, env = "FLOE_MAX_CONCURRENT_REQUESTS", value_name = "N")]
    max_concurrent_requests: Option<usize>,
    /// Largest page of a listing for clients that page (pageSize / pageToken); clients that do
    /// not page still get every item [default: 1000].
    #[arg(long, env = "FLOE_MAX_PAGE_SIZE", value_name = "N")]
    max_page_size: Option<usize>,
    /// A host name clients may use to reach a server listening on loopback, besides localhost,
    /// *.localhost, 127.x.x.x and [::1] (others get a 421: DNS-rebinding protection); NAME or
    /// NAME:PORT, repeatable [default: none].
    #[arg(
        long = "allowed-host",
        env = "FLOE_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    allowed_hosts: Vec<String>,
    /// A storage URL under which registered warehouses may keep their files (file:///dir,
    /// s3://bucket/prefix, ...), repeatable. Replaces the default, which is only
    /// file://DIR/warehouse. The default warehouse (--warehouse-url) needs no entry.
    #[arg(
        long = "allowed-storage-root",
        env = "FLOE_ALLOWED_STORAGE_ROOTS",
        value_delimiter = ',',
        value_name = "URL"
    )]
    allowed_storage_roots: Vec<String>,
    /// Attempts a commit gets when concurrent commits keep winning, before a 409 [default: 10].
    #[arg(long, env = "FLOE_COMMIT_MAX_ATTEMPTS")]
    commit_max_attempts: Option<u32>,
    /// Where table files go: s3://bucket/prefix, or file:///dir [default: file://DIR/warehouse].
    #[arg(long, env = "FLOE_WAREHOUSE_URL", value_name = "URL")]
    warehouse_url: Option<String>,
    /// S3 endpoint of an S3-compatible server, e.g. http://127.0.0.1:8333 [default: AWS, or
    /// AWS_ENDPOINT].
    #[arg(long, env = "FLOE_S3_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,
    /// S3 region [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "FLOE_S3_REGION")]
    s3_region: Option<String>,
    /// Path-style S3 requests (endpoint/bucket/key) instead of virtual-hosted ones.
    #[arg(long, env = "FLOE_S3_PATH_STYLE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    s3_path_style: Option<bool>,
    /// Allow a plain-http S3 endpoint that is not on a loopback address.
    #[arg(long, env = "FLOE_S3_ALLOW_HTTP", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    s3_allow_http: Option<bool>,
    /// S3 access key id [default: AWS_ACCESS_KEY_ID].
    #[arg(long, env = "FLOE_S3_ACCESS_KEY_ID", value_name = "KEY")]
    s3_access_key_id: Option<String>,
    /// S3 secret access key [default: AWS_SECRET_ACCESS_KEY].
    #[arg(
        long,
        env = "FLOE_S3_SECRET_ACCESS_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    s3_secret_access_key: Option<String>,
    /// Hand the S3 credentials to clients in every table's config (off: clients bring their own).
    #[arg(long, env = "FLOE_S3_SHARE_CREDENTIALS", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    s3_share_credentials: Option<bool>,
    /// Delegated access clients may get to table files, comma-separated: vended-credentials
    /// (short-lived STS keys for one table; needs --s3-sts-role-arn), remote-signing (Floe signs
    /// each request after checking it). Default: what the warehouse can do. See docs/security.md.
    #[arg(long, env = "FLOE_S3_ACCESS_DELEGATION", value_name = "MODES")]
    s3_access_delegation: Option<String>,
    /// What a client that names no mode (X-Iceberg-Access-Delegation) gets: vended-credentials,
    /// remote-signing or none [default: the first of --s3-access-delegation if given, else
    /// vended-credentials when allowed, else none].
    #[arg(long, env = "FLOE_S3_DEFAULT_ACCESS_DELEGATION", value_name = "MODE")]
    s3_default_access_delegation: Option<String>,
    /// The role STS AssumeRole takes to vend table-scoped credentials (enables vending).
    #[arg(long, env = "FLOE_S3_STS_ROLE_ARN", value_name = "ARN")]
    s3_sts_role_arn: Option<String>,
    /// STS endpoint [default: the S3 endpoint, else AWS's regional STS].
    #[arg(long, env = "FLOE_S3_STS_ENDPOINT", value_name = "URL")]
    s3_sts_endpoint: Option<String>,
    /// Lifetime of vended credentials, 900 to 43200 seconds [default: 3600].
    #[arg(
        long,
        env = "FLOE_S3_CREDENTIALS_DURATION_SECONDS",
        value_name = "SECONDS"
    )]
    s3_credentials_duration_seconds: Option<u64>,
    /// Retries of one S3 request after a transient failure (5xx, 429, timeout) [default: 5].
    #[arg(long, env = "FLOE_S3_MAX_RETRIES", value_name = "N")]
    s3_max_retries: Option<usize>,
    /// No S3 retry starts later than this after the first attempt, in ms [default: 15000].
    #[arg(long, env = "FLOE_S3_RETRY_TIMEOUT_MS", value_name = "MS")]
    s3_retry_timeout_ms: Option<u64>,
    /// Bound on one S3 request, in ms [default: 10000].
    #[arg(long, env = "FLOE_S3_REQUEST_TIMEOUT_MS", value_name = "MS")]
    s3_request_timeout_ms: Option<u64>,
    /// Bound on opening a connection to S3, in ms [default: 3000].
    #[arg(long, env = "FLOE_S3_CONNECT_TIMEOUT_MS", value_name = "MS")]
    s3_connect_timeout_ms: Option<u64>,
    /// Run table maintenance in the background (compaction, snapshot expiry, manifest rewrite,
    /// unreferenced-file removal), by each table's floe.maintenance.* settings [default: true].
    #[arg(long, env = "FLOE_MAINTENANCE", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    maintenance: Option<bool>,
    /// Time between two claims of due maintenance jobs, in ms [default: 300000]. A claim takes
    /// the jobs that commits, settings changes and time made due (one store query when none
    /// is), so a job starts at most this long after it fell due while a slot is free.
    #[arg(long, env = "FLOE_MAINTENANCE_INTERVAL_MS", value_name = "MS")]
    maintenance_interval_ms: Option<u64>,
    /// Tables this replica maintains at once [default: 2].
    #[arg(long, env = "FLOE_MAINTENANCE_CONCURRENCY", value_name = "N")]
    maintenance_concurrency: Option<usize>,
    #[command(flatten)]
    telemetry: telemetry_args::TelemetryArgs,
    #[command(flatten)]
    auth: auth_args::AuthArgs,
}

impl ConfigArgs {
    fn resolve(self) -> Result<ServerConfig, String> {
        let mut config = match &self.config {
            Some(path) => read_config_file(path)?,
            None => ServerConfig::default(),
        };
        self.resolve_storage(&mut config);
        self.resolve_limits(&mut config);
        if let Some(host) = self.host {
            config.host = host;
        }
        if let Some(port) = self.port {
            config.port = port;
        }
        if let Some(data_dir) = self.data_dir {
            config.data_dir = data_dir;
        }
        if let Some(metastore) = self.metastore {
            config.metastore = Some(metastore);
        }
        if let Some(file) = self.secret_key_file {
            config.secret_key_file = Some(file);
        }
        if !self.previous_secret_key_files.is_empty() {
            config.previous_secret_key_files = self.previous_secret_key_files;
        }
        if let Some(connections) = self.metastore_max_connections {
            config.metastore_max_connections = connections;
        }
        if let Some(timeout) = self.metastore_acquire_timeout_ms {
            config.metastore_acquire_timeout_ms = timeout;
        }
        if let Some(timeout) = self.metastore_statement_timeout_ms {
            config.metastore_statement_timeout_ms = timeout;
        }
        if let Some(warehouse) = self.warehouse {
            config.warehouse = warehouse;
        }
        if let Some(bytes) = self.max_request_bytes {
            config.max_request_bytes = bytes;
        }
        if let Some(attempts) = self.commit_max_attempts {
            config.commit_max_attempts = attempts;
        }
        config.maintenance = self.maintenance.unwrap_or(config.maintenance);
        config.maintenance_interval_ms = self
            .maintenance_interval_ms
            .unwrap_or(config.maintenance_interval_ms);
        config.maintenance_concurrency = self
            .maintenance_concurrency
            .unwrap_or(config.maintenance_concurrency);
        self.auth.apply(&mut config.auth);
        self.telemetry.apply(&mut config);
        validate(&config)?;
        config.auth.validate(config.host)?;
        Ok(config)
    }
}

impl ConfigArgs {
    /// Request limits and what may reach the server, over the file's and the defaults. Lists
    /// given as flags replace the file's.
    fn resolve_limits(&self, config: &mut ServerConfig) {
        config.header_read_timeout_ms = self
            .header_read_timeout_ms
            .unwrap_or(config.header_read_timeout_ms);
        config.request_timeout_ms = self.request_timeout_ms.unwrap_or(config.request_timeout_ms);
        config.idempotency_takeover_ms = self
            .idempotency_takeover_ms
            .unwrap_or(config.idempotency_takeover_ms);
        config.max_concurrent_requests = self
            .max_concurrent_requests
            .unwrap_or(config.max_concurrent_requests);
        config.max_page_size = self.max_page_size.unwrap_or(config.max_page_size);
        if !self.allowed_hosts.is_empty() {
            config.allowed_hosts.clone_from(&self.allowed_hosts);
        }
        if !self.allowed_storage_roots.is_empty() {
            config
                .allowed_storage_roots
                .clone_from(&self.allowed_storage_roots);
        }
    }

    /// The warehouse URL and S3 settings, over the file's and the defaults.
    fn resolve_storage(&self, config: &mut ServerConfig) {
        let set = |target: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                target.clone_from(value);
            }
        };
        set(&mut config.warehouse_url, &self.warehouse_url);
        set(&mut config.s3_endpoint, &self.s3_endpoint);
        set(&mut config.s3_region, &self.s3_region);
        set(&mut config.s3_access_key_id, &self.s3_access_key_id);
        set(&mut config.s3_secret_access_key, &self.s3_secret_access_key);
        config.s3_path_style = self.s3_path_style.unwrap_or(config.s3_path_style);
        config.s3_allow_http = self.s3_allow_http.unwrap_or(config.s3_allow_http);
        config.s3_share_credentials = self
            .s3_share_credentials
            .unwrap_or(config.s3_share_credentials);
        set(&mut config.s3_access_delegation, &self.s3_access_delegation);
        set(
            &mut config.s3_default_access_delegation,
            &self.s3_default_access_delegation,
        );
        set(&mut config.s3_sts_role_arn, &self.s3_sts_role_arn);
        set(&mut config.s3_sts_endpoint, &self.s3_sts_endpoint);
        if self.s3_credentials_duration_seconds.is_some() {
            config.s3_credentials_duration_seconds = self.s3_credentials_duration_seconds;
        }
        config.s3_max_retries = self.s3_max_retries.unwrap_or(config.s3_max_retries);
        config.s3_retry_timeout_ms = self
            .s3_retry_timeout_ms
            .unwrap_or(config.s3_retry_timeout_ms);
        config.s3_request_timeout_ms = self
            .s3_request_timeout_ms
            .unwrap_or(config.s3_request_timeout_ms);
        config.s3_connect_timeout_ms = self
            .s3_connect_timeout_ms
            .unwrap_or(config.s3_connect_timeout_ms);
    }
}

fn read_config_file(path: &Path) -> Result<ServerConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("cannot read config file {}: {err}", path.display()))?;
    toml::from_str(&text).map_err(|err| format!("invalid config file {}: {err}", path.display()))
}

fn validate(config: &ServerConfig) -> Result<(), String> {
    config.delegation_options()?;
    let name_ok = !config.warehouse.is_empty()
        && config
            .warehouse
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(format!(
            "warehouse name {:?} must be non-empty ASCII letters, digits, '-' or '_'",
            config.warehouse
        ));
    }
    if let Some(url) = &config.metastore
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        return Err("metastore must be a postgres:// URL".into());
    }
    if config.metastore_max_connections == 0 {
        return Err("metastore-max-connections must be at least 1".into());
    }
    if config.metastore_acquire_timeout_ms == 0 {
        return Err("metastore-acquire-timeout-ms must be at least 1".into());
    }
    if config.s3_request_timeout_ms == 0 || config.s3_connect_timeout_ms == 0 {
        return Err("s3-request-timeout-ms and s3-connect-timeout-ms must be at least 1".into());
    }
    if config.maintenance_interval_ms < 100 || config.maintenance_concurrency == 0 {
        return Err(
            "maintenance-interval-ms must be at least 100 and maintenance-concurrency at least 1"
                .into(),
        );
    }
    if config.max_request_bytes < 1024 {
        return Err("max-request-bytes must be at least 1024".into());
    }
    if config.header_read_timeout_ms == 0 || config.request_timeout_ms == 0 {
        return Err("header-read-timeout-ms and request-timeout-ms must be at least 1".into());
    }
    if config.max_concurrent_requests == 0 || config.max_page_size == 0 {
        return Err("max-concurrent-requests and max-page-size must be at least 1".into());
    }
    config
        .allowed_storage_roots()
        .map_err(|err| format!("allowed-storage-roots: {err}"))?;
    Ok(())
}

/// The async runtime each data-dir command runs its work on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Runtime::new().map_err(|err| format!("cannot start the async runtime: {err}"))
}

/// How `floe sql --data-dir` and `floe maintain` open a catalog without a server: the same data
/// dir layout and defaults as `floe serve`.
pub(crate) fn data_dir_options(
    data_dir: &Option<PathBuf>,
    metastore: &Option<String>,
    warehouse: &Option<String>,
) -> floe_commit::open::OpenOptions {
    let default = ServerConfig::default();
    let data_dir = data_dir.clone().unwrap_or(default.data_dir);
    let mut options = floe_commit::open::OpenOptions::new(&data_dir);
    options.metastore = metastore.clone();
    if let Some(warehouse) = warehouse {
        options.warehouse = warehouse.clone();
    }
    options
}

/// Logs to stderr, at `FLOE_LOG`'s levels (default `info`), as JSON or text by `format`.
fn init_logging(format: floe_catalog::config::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FLOE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = telemetry_args::json_logs(format);
    // Colour only for people at a terminal; logs redirected to files stay plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(!json && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Installs the SIGTERM / Ctrl-C handlers now and returns a future that resolves on either.
///
/// The handlers must exist before the server announces that it listens: a supervisor (or a test)
/// may send SIGTERM right after that line, and a signal that arrives before its handler is
/// installed takes the default action and kills the process without draining requests.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
            tracing::info!("shutdown requested; finishing in-flight requests");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutdown requested; finishing in-flight requests");
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.resolve().and_then(|config| {
            init_logging(config.log_format);
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|err| format!("cannot start the async runtime: {err}"))?;
            runtime.block_on(async {
                let shutdown = shutdown_signal()
                    .map_err(|err| format!("cannot install signal handlers: {err}"))?;
                floe_catalog::serve(config, shutdown)
                    .await
                    .map_err(|err| err.to_string())
            })
        }),
        Command::Sql(args) => sql::run(args),
        Command::Maintain(args) => {
            init_logging(telemetry_args::log_format_from_env());
            maintain::run(args)
        }
        Command::Repair(args) => {
            init_logging(telemetry_args::log_format_from_env());
            repair::run(args)
        }
        Command::Warehouse(args) => warehouse::run(args),
        Command::Maintenance(args) => maintenance::run(args),
        Command::Scrub(args) => {
            init_logging(telemetry_args::log_format_from_env());
            scrub::run(args)
        }
        Command::Principal(args) => access::run_principal(args),
        Command::Role(args) => access::run_role(args),
        Command::Grant(args) => access::run_grant(args, false),
        Command::Revoke(args) => access::run_grant(args, true),
        Command::Audit(args) => access::run_audit(args),
        Command::Backup(args) => {
            init_logging(telemetry_args::log_format_from_env());
            backup::run_backup(args)
        }
        Command::Restore(args) => {
            init_logging(telemetry_args::log_format_from_env());
            backup::run_restore(args)
        }
        Command::Recover(args) => {
            init_logging(telemetry_args::log_format_from_env());
            backup::run_recover(args)
        }
        Command::Secrets(args) => secrets::run(args),
        Command::Config {
            command: ConfigCommand::Show(args),
        } => args.resolve().and_then(|config| {
            let text = toml::to_string_pretty(&config)
                .map_err(|err| format!("cannot print configuration: {err}"))?;
            print!("{text}");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("floe: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &[&str]) -> Result<ServerConfig, String> {
        let cli =
            Cli::try_parse_from(["floe", "serve"].iter().chain(args)).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Serve(args) => args.resolve(),
            _ => unreachable!("parsed a serve command"),
        }
    }

    #[test]
    fn defaults_are_loopback_and_local() {
        let config = resolve(&[]).unwrap();
        assert_eq!(config, ServerConfig::default());
        assert!(config.host.is_loopback());
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(&file, "port = 9000\nwarehouse = \"lake\"\n").unwrap();
        let file = file.to_str().unwrap();
        let config = resolve(&["--config", file, "--port", "9100"]).unwrap();
        assert_eq!(config.port, 9100, "flag beats file");
        assert_eq!(config.warehouse, "lake", "file beats default");
        assert_eq!(
            config.max_request_bytes,
            ServerConfig::default().max_request_bytes
        );
    }

    #[test]
    fn bad_configuration_is_refused_with_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(&file, "prot = 9000\n").unwrap();
        let err = resolve(&["--config", file.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        let err = resolve(&["--warehouse", "../x"]).unwrap_err();
        assert!(err.contains("warehouse name"), "{err}");
        let err = resolve(&["--metastore", "mysql://db/floe"]).unwrap_err();
        assert!(err.contains("metastore"), "{err}");
    }

    #[test]
    fn metastore_pool_settings_layer_like_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(
            &file,
            "metastore-max-connections = 4\nmetastore-acquire-timeout-ms = 500\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let config = resolve(&["--config", file, "--metastore-acquire-timeout-ms", "750"]).unwrap();
        assert_eq!(config.metastore_max_connections, 4, "file beats default");
        assert_eq!(config.metastore_acquire_timeout_ms, 750, "flag beats file");
        assert_eq!(
            config.metastore_statement_timeout(),
            Some(std::time::Duration::from_secs(30))
        );
        let config = resolve(&["--metastore-statement-timeout-ms", "0"]).unwrap();
        assert_eq!(config.metastore_statement_timeout(), None);
        let err = resolve(&["--metastore-max-connections", "0"]).unwrap_err();
        assert!(err.contains("metastore-max-connections"), "{err}");
        let err = resolve(&["--metastore-acquire-timeout-ms", "0"]).unwrap_err();
        assert!(err.contains("metastore-acquire-timeout-ms"), "{err}");
    }

    #[test]
    fn warehouse_and_s3_settings_layer_like_the_rest() {
        let config = resolve(&[]).unwrap();
        assert_eq!(
            config.warehouse_url, None,
            "the data dir's warehouse by default"
        );
        assert!(!config.s3_share_credentials && !config.s3_path_style);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(
            &file,
            "warehouse-url = \"s3://lake/prod\"\ns3-region = \"eu-west-1\"\n\
             s3-path-style = true\ns3-secret-access-key = \"from-file\"\ns3-max-retries = 2\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let config = resolve(&[
            "--config",
            file,
            "--s3-endpoint",
            "http://127.0.0.1:8333",
            "--s3-region",
            "us-east-1",
            "--s3-share-credentials",
        ])
        .unwrap();
        assert_eq!(config.warehouse_url.as_deref(), Some("s3://lake/prod"));
        assert_eq!(config.s3_endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(
            config.s3_region.as_deref(),
            Some("us-east-1"),
            "flag beats file"
        );
        assert!(config.s3_path_style, "file beats default");
        assert!(config.s3_share_credentials);
        assert_eq!(config.s3_max_retries, 2);
        let options = config.store_options();
        assert_eq!(options.s3.secret_access_key.as_deref(), Some("from-file"));
        assert_eq!(options.retry.max_retries, 2);

        let config = resolve(&["--config", file, "--s3-path-style=false"]).unwrap();
        assert!(!config.s3_path_style, "an explicit false beats the file");

        // `floe config show` never prints the secret.
        let shown = toml::to_string_pretty(&config).unwrap();
        assert!(shown.contains("s3-secret-access-key = \"***\""), "{shown}");
        assert!(!shown.contains("from-file"), "{shown}");
    }

    #[test]
    fn metrics_and_log_flags_override_the_file() {
        use floe_catalog::config::LogFormat;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(
            &file,
            "metrics-port = 9100
log-format = \"text\"
",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let config = resolve(&["--config", file]).unwrap();
        assert_eq!(config.metrics_port, Some(9100));
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.metrics_token_file, None);
        let config = resolve(&[
            "--config",
            file,
            "--metrics-port",
            "9200",
            "--log-format",
            "json",
            "--metrics-token-file",
            "/etc/floe/metrics-token",
        ])
        .unwrap();
        assert_eq!(config.metrics_port, Some(9200));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(
            config.metrics_token_file.as_deref(),
            Some(Path::new("/etc/floe/metrics-token"))
        );
        assert!(resolve(&["--log-format", "yaml"]).is_err());
    }

    #[test]
    fn request_limits_and_allowed_lists_layer_like_the_rest() {
        let defaults = resolve(&[]).unwrap();
        assert!(defaults.allowed_hosts.is_empty() && defaults.allowed_storage_roots.is_empty());
        assert_eq!(defaults.max_page_size, 1000);
        let shown = toml::to_string_pretty(&defaults).unwrap();
        for key in [
            "header-read-timeout-ms",
            "request-timeout-ms",
            "max-concurrent-requests",
            "max-page-size",
            "allowed-hosts",
            "allowed-storage-roots",
        ] {
            assert!(shown.contains(key), "config show prints {key}: {shown}");
        }

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("floe.toml");
        std::fs::write(
            &file,
            "allowed-hosts = [\"catalog.internal\"]\n\
             allowed-storage-roots = [\"s3://lake/tables\"]\nmax-page-size = 50\n",
        )
        .unwrap();
        let file = file.to_str().unwrap();
        let config = resolve(&["--config", file]).unwrap();
        assert_eq!(config.allowed_hosts, ["catalog.internal"]);
        assert_eq!(config.allowed_storage_roots, ["s3://lake/tables"]);
        assert_eq!(config.max_page_size, 50);
        let config = resolve(&[
            "--config",
            file,
            "--allowed-storage-root",
            "s3://a/x",
            "--allowed-storage-root",
            "file:///srv/lakes",
            "--allowed-host",
            "floe.example",
            "--request-timeout-ms",
            "500",
        ])
        .unwrap();
        assert_eq!(
            config.allowed_storage_roots,
            ["s3://a/x", "file:///srv/lakes"],
            "flags replace the file's list"
        );
        assert_eq!(config.allowed_hosts, ["floe.example"]);
        assert_eq!(config.request_timeout_ms, 500);
        let err = resolve(&["--allowed-storage-root", "s3://a/../b"]).unwrap_err();
        assert!(err.contains("allowed-storage-roots"), "{err}");
        let err = resolve(&["--max-concurrent-requests", "0"]).unwrap_err();
        assert!(err.contains("max-concurrent-requests"), "{err}");
    }

    #[test]
    fn previous_secret_key_files_repeat_and_show_as_paths() {
        assert!(resolve(&[]).unwrap().previous_secret_key_files.is_empty());
        let config = resolve(&[
            "--secret-key-file",
            "/etc/floe/new.key",
            "--previous-secret-key-file",
            "/etc/floe/old.key",
            "--previous-secret-key-file",
            "/etc/floe/older.key",
        ])
        .unwrap();
        assert_eq!(
            config.previous_secret_key_files,
            [
                Path::new("/etc/floe/old.key"),
                Path::new("/etc/floe/older.key")
            ]
        );
        let shown = toml::to_string_pretty(&config).unwrap();
        assert!(
            shown.contains("previous-secret-key-files = [")
                && shown.contains("\"/etc/floe/old.key\""),
            "{shown}"
        );
    }

    #[test]
    fn metastore_is_embedded_unless_a_url_is_given() {
        assert_eq!(resolve(&[]).unwrap().metastore, None);
        let url = "postgres://floe@127.0.0.1:5432/floe";
        let config = resolve(&["--metastore", url]).unwrap();
        assert_eq!(config.metastore.as_deref(), Some(url));
    }
}
