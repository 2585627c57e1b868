//! Server configuration: one typed struct, its defaults in one place.
//!
//! Values come, in rising precedence, from the defaults below, an optional TOML file, `FLOE_*`
//! environment variables and command-line flags. The `floe` binary does the layering; this module
//! owns the struct and its defaults.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::collections::BTreeMap;

use floe_storage::{AllowedRoots, DelegationOptions, RetryOptions, S3Options, StoreOptions};
use serde::{Deserialize, Serialize, Serializer};

/// Everything `floe serve` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// Address to listen on. Loopback by default: exposing a catalog is a deliberate act.
    pub host: IpAddr,
    pub port: u16,
    /// Holds `catalog.db` (the embedded metadata store) and `warehouse/` (table files).
    pub data_dir: PathBuf,
    /// The metadata store: a `postgres://` URL of a database that replicas share, or `None` for
    /// the embedded SQLite file `catalog.db` in `data_dir`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "redacted_url"
    )]
    pub metastore: Option<String>,
    /// Pooled connections to the metadata store, per replica. With PostgreSQL, every replica holds
    /// its own pool: replicas × this must stay below the server's `max_connections`.
    pub metastore_max_connections: u32,
    /// How long a request waits for a pooled metadata-store connection (opening one included)
    /// before it gets a 503. Short, so that a store outage is answered at once with a retryable
    /// error instead of requests piling up.
    pub metastore_acquire_timeout_ms: u64,
    /// PostgreSQL cancels metadata-store statements running longer than this
    /// (`statement_timeout`), and the request gets a 503; 0 keeps the database's own setting.
    pub metastore_statement_timeout_ms: u64,
    /// A file holding the key (32 bytes, base64) that seals the secrets kept in the metadata
    /// store. `None`: `FLOE_SECRET_KEY`, else `FLOE_SECRET_KEY_FILE`, else (embedded store only)
    /// `<data_dir>/secret.key`, generated on first use. Servers sharing a PostgreSQL store must
    /// share this key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_file: Option<PathBuf>,
    /// Files holding previous secret keys, during a rotation: values sealed with them still
    /// open, and are re-sealed with the current key at start. Only the files' names are shown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub previous_secret_key_files: Vec<PathBuf>,
    /// The default warehouse's name; clients see it as the REST `prefix`.
    pub warehouse: String,
    /// Where the warehouse's files live: `s3://bucket/prefix`, `file:///dir`, or (tests only)
    /// `memory://name`. `None` is `file://<data_dir>/warehouse`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warehouse_url: Option<String>,
    /// S3 endpoint for S3-compatible servers (e.g. `http://127.0.0.1:8333`); `None` for AWS (or
    /// `AWS_ENDPOINT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    /// `None`: `AWS_REGION`, else `us-east-1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`); most S3-compatible servers need them.
    pub s3_path_style: bool,
    /// Allow a plain-`http://` endpoint that is not on a loopback address.
    pub s3_allow_http: bool,
    /// `None`: `AWS_ACCESS_KEY_ID` (and the other credential sources object_store reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_access_key_id: Option<String>,
    /// `None`: `AWS_SECRET_ACCESS_KEY`. Never printed by `floe config show`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "redacted")]
    pub s3_secret_access_key: Option<String>,
    /// Hand the S3 credentials to clients in every table's `config`
    /// (`s3.access-key-id`, `s3.secret-access-key`). Off: clients bring their own.
    pub s3_share_credentials: bool,
    /// Delegated access for clients (docs/security.md): the modes clients may get
    /// (`vended-credentials`, `remote-signing`, comma-separated), the default for clients that
    /// name none, the STS role and endpoint for vending, and the vended credentials' lifetime. As
    /// the registered warehouses' `s3.access-delegation`, `s3.default-access-delegation`,
    /// `s3.sts-role-arn`, `s3.sts-endpoint`, `s3.credentials-duration-seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_access_delegation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_default_access_delegation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_sts_role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_sts_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_credentials_duration_seconds: Option<u64>,
    /// Retries of one object-store request after a transient failure (5xx, 429, timeout).
    pub s3_max_retries: usize,
    /// No retry of an object-store request starts later than this after its first attempt.
    pub s3_retry_timeout_ms: u64,
    /// Bound on one object-store request.
    pub s3_request_timeout_ms: u64,
    pub s3_connect_timeout_ms: u64,
    /// Requests with larger bodies are refused before they are read.
    pub max_request_bytes: usize,
    /// A connection that has not sent a request's complete headers this long after it started
    /// sending them is closed (slow clients must not hold connections open for free).
    pub header_read_timeout_ms: u64,
    /// Bound on one request, its body upload included; a request still running then gets a 503
    /// (a commit it was making either happened whole or not at all).
    pub request_timeout_ms: u64,
    /// A request's claim of its `Idempotency-Key` that its server has not renewed for this long
    /// (the server died mid-request) is taken over by a retry, which then runs.
    pub idempotency_takeover_ms: u64,
    /// Requests handled at once; more get a 503 with `Retry-After` at once instead of waiting in
    /// an unbounded queue.
    pub max_concurrent_requests: usize,
    /// Largest page of a listing. A client that asks for pages (`pageSize` or `pageToken`) never
    /// gets more items than this in one; a client that does not page gets every item.
    pub max_page_size: usize,
    /// When the server listens on a loopback address, requests must name it by a loopback name
    /// (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`) or one of these (`Host` header, port
    /// optional), so that a web page cannot reach it through DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Where registered warehouses may keep their files: a warehouse's storage URL must be one of
    /// these URLs or under one (whole path segments; `file://` paths with symlinks resolved).
    /// Empty: only `file://<data-dir>/warehouse`. The default warehouse (`warehouse-url`) is the
    /// operator's own choice and needs no entry.
    pub allowed_storage_roots: Vec<String>,
    /// How many times a commit that lost a race is re-checked and retried before a 409.
    pub commit_max_attempts: u32,
    /// Memory budget of the parsed-metadata cache, in bytes of metadata JSON (roughly a third of
    /// the memory it takes).
    pub metadata_cache_bytes: usize,
    /// Run the maintenance scheduler (compaction, snapshot expiry, manifest rewrite,
    /// unreferenced-file removal by each table's settings). Replicas share the work through
    /// leases, so it may stay on everywhere.
    pub maintenance: bool,
    /// Time between the starts of two maintenance passes over all tables.
    pub maintenance_interval_ms: u64,
    /// Tables maintained at once by this replica.
    pub maintenance_concurrency: usize,
    /// The default warehouse's maintenance defaults, as `floe.maintenance.*` properties
    /// (registered warehouses carry theirs in their own properties). TOML only:
    /// `[maintenance-defaults]` then `"floe.maintenance.compaction.min-input-files" = "10"`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub maintenance_defaults: std::collections::BTreeMap<String, String>,
    /// Serve `/metrics` on this port (same address), and not on the main port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_port: Option<u16>,
    /// A file holding a token that may read `/metrics` as `Authorization: Bearer <token>` when
    /// auth is on, without a principal (a Prometheus scraper's). Only the file's name is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token_file: Option<PathBuf>,
    /// Log lines as `json`, `text`, or `auto`: JSON when stderr is not a terminal.
    pub log_format: LogFormat,
    /// Identities, grants and the audit log (`[auth]` in TOML).
    pub auth: crate::auth::AuthConfig,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (a service's log collector), text when it is.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let retry = RetryOptions::default();
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8181,
            data_dir: PathBuf::from("floe-data"),
            metastore: None,
            metastore_max_connections: 16,
            metastore_acquire_timeout_ms: 3_000,
            metastore_statement_timeout_ms: 30_000,
            secret_key_file: None,
            previous_secret_key_files: Vec::new(),
            warehouse: "main".to_string(),
            warehouse_url: None,
            s3_endpoint: None,
            s3_region: None,
            s3_path_style: false,
            s3_allow_http: false,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_share_credentials: false,
            s3_access_delegation: None,
            s3_default_access_delegation: None,
            s3_sts_role_arn: None,
            s3_sts_endpoint: None,
            s3_credentials_duration_seconds: None,
            s3_max_retries: retry.max_retries,
            s3_retry_timeout_ms: retry.retry_timeout.as_millis() as u64,
            s3_request_timeout_ms: retry.request_timeout.as_millis() as u64,
            s3_connect_timeout_ms: retry.connect_timeout.as_millis() as u64,
            max_request_bytes: 32 * 1024 * 1024,
            header_read_timeout_ms: 30_000,
            request_timeout_ms: 120_000,
            idempotency_takeover_ms: 120_000,
            max_concurrent_requests: 256,
            max_page_size: 1000,
            allowed_hosts: Vec::new(),
            allowed_storage_roots: Vec::new(),
            commit_max_attempts: 10,
            metadata_cache_bytes: 256 * 1024 * 1024,
            maintenance: true,
            maintenance_interval_ms: 300_000,
            maintenance_concurrency: 2,
            maintenance_defaults: std::collections::BTreeMap::new(),
            metrics_port: None,
            metrics_token_file: None,
            log_format: LogFormat::Auto,
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

impl ServerConfig {
    pub fn catalog_db(&self) -> PathBuf {
        self.data_dir.join("catalog.db")
    }

    pub fn warehouse_dir(&self) -> PathBuf {
        self.data_dir.join("warehouse")
    }

    pub fn metastore_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.metastore_acquire_timeout_ms)
    }

    /// The default warehouse's delegated-access settings; an error says which setting cannot work.
    pub fn delegation_options(&self) -> Result<DelegationOptions, String> {
        let mut properties = BTreeMap::new();
        for (name, value) in [
            ("s3.access-delegation", self.s3_access_delegation.clone()),
            (
                "s3.default-access-delegation",
                self.s3_default_access_delegation.clone(),
            ),
            ("s3.sts-role-arn", self.s3_sts_role_arn.clone()),
            ("s3.sts-endpoint", self.s3_sts_endpoint.clone()),
            (
                "s3.credentials-duration-seconds",
                self.s3_credentials_duration_seconds
                    .map(|seconds| seconds.to_string()),
            ),
        ] {
            if let Some(value) = value {
                properties.insert(name.to_string(), value);
            }
        }
        // The default warehouse may sign with the environment's keys too.
        let has_keys = (self.s3_access_key_id.is_some()
            || std::env::var_os("AWS_ACCESS_KEY_ID").is_some())
            && (self.s3_secret_access_key.is_some()
                || std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some());
        let local = self
            .warehouse_url
            .as_deref()
            .is_none_or(|url| !(url.starts_with("s3://") || url.starts_with("s3a://")));
        if local {
            // Only S3 warehouses delegate; elsewhere the settings would silently do nothing.
            return match properties.keys().next() {
                Some(name) => Err(format!("{name} applies to s3:// warehouses only")),
                None => Ok(DelegationOptions::default()),
            };
        }
        DelegationOptions::from_properties(&properties, has_keys)
    }

    /// How the warehouse's object store is reached.
    pub fn store_options(&self) -> StoreOptions {
        let defaults = RetryOptions::default();
        StoreOptions {
            s3: S3Options {
                endpoint: self.s3_endpoint.clone(),
                region: self.s3_region.clone(),
                path_style: self.s3_path_style,
                allow_http: self.s3_allow_http,
                access_key_id: self.s3_access_key_id.clone(),
                secret_access_key: self.s3_secret_access_key.clone(),
                session_token: None,
                share_credentials: self.s3_share_credentials,
                // Checked at start-up (`delegation_options`); a config that was not checked
                // offers clients no delegated access rather than a broken one.
                delegation: self.delegation_options().unwrap_or_default(),
            },
            retry: RetryOptions {
                max_retries: self.s3_max_retries,
                retry_timeout: Duration::from_millis(self.s3_retry_timeout_ms),
                request_timeout: Duration::from_millis(self.s3_request_timeout_ms),
                connect_timeout: Duration::from_millis(self.s3_connect_timeout_ms),
                ..defaults
            },
            // The default warehouse is the operator's: it may use the server's credentials.
            use_environment: true,
        }
    }

    /// Where registered warehouses may keep their files: `allowed-storage-roots`, or the data
    /// dir's `warehouse/` directory when none are configured.
    pub fn allowed_storage_roots(&self) -> Result<AllowedRoots, String> {
        if self.allowed_storage_roots.is_empty() {
            AllowedRoots::local_dir(&self.warehouse_dir())
        } else {
            AllowedRoots::new(&self.allowed_storage_roots)
        }
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// `None` when the database's own setting applies.
    pub fn metastore_statement_timeout(&self) -> Option<Duration> {
        (self.metastore_statement_timeout_ms > 0)
            .then(|| Duration::from_millis(self.metastore_statement_timeout_ms))
    }
}

/// Secrets print as `***`.
/// A URL with its password masked: `floe config show` output gets pasted into tickets.
fn redacted_url<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(url) => serializer.serialize_str(&floe_commit::open::redacted(url)),
        None => serializer.serialize_none(),
    }
}

fn redacted<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => serializer.serialize_str("***"),
        None => serializer.serialize_none(),
    }
}
