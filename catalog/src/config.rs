//! Server configuration: one typed struct, its defaults in one place.
//!
//! Values come, in rising precedence, from the defaults below, an optional TOML file, `FLOE_*`
//! environment variables and command-line flags. The `floe` binary does the layering; this module
//! owns the struct and its defaults.

use std::net::IpAddr;
use std::path::PathBuf;

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
}
