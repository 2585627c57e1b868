//! Server configuration: one typed struct, its defaults in one place.
//!
//! Values come, in rising precedence, from the defaults below, an optional TOML file, `FLOE_*`
//! environment variables and command-line flags. The `floe` binary does the layering; this module
//! owns the struct and its defaults.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    #[serde(skip_serializing_if = "Option::is_none")]
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
    /// The default warehouse's name; clients see it as the REST `prefix`.
    pub warehouse: String,
    /// Requests with larger bodies are refused before they are read.
    pub max_request_bytes: usize,
    /// How many times a commit that lost a race is re-checked and retried before a 409.
    pub commit_max_attempts: u32,
    /// Memory budget of the parsed-metadata cache, in bytes of metadata JSON (roughly a third of
    /// the memory it takes).
    pub metadata_cache_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8181,
            data_dir: PathBuf::from("floe-data"),
            metastore: None,
            metastore_max_connections: 16,
            metastore_acquire_timeout_ms: 3_000,
            metastore_statement_timeout_ms: 30_000,
            warehouse: "main".to_string(),
            max_request_bytes: 32 * 1024 * 1024,
            commit_max_attempts: 10,
            metadata_cache_bytes: 256 * 1024 * 1024,
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

    /// `None` when the database's own setting applies.
    pub fn metastore_statement_timeout(&self) -> Option<Duration> {
        (self.metastore_statement_timeout_ms > 0)
            .then(|| Duration::from_millis(self.metastore_statement_timeout_ms))
    }
}
