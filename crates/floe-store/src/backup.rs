//! Backups of the metadata store: what one is, whichever backend took it.
//!
//! A backup is a consistent copy of every record of the store as of one moment: namespaces,
//! pointers, warehouses, the access-control records, maintenance history. The table files the
//! pointers name stay in object storage and are not copied (see docs/operations.md, *Backups*).
//!
//! - **SQLite** copies its file with `VACUUM INTO` ([`crate::sqlite::SqliteStore::backup_into`]):
//!   one read transaction, so the copy is the database as of its start, while writers go on;
//!   the copy is a plain, compacted SQLite file that opens like any catalog.db.
//! - **PostgreSQL** exports every Floe table in one `REPEATABLE READ` transaction as JSON lines
//!   ([`crate::postgres::PostgresStore::export`]): a line per row, `{"table": ..., "row": {...}}`,
//!   rows as PostgreSQL's own `row_to_json` spells them, so that `json_populate_recordset` reads
//!   them back exactly ([`crate::postgres::PostgresStore::import`]), all in one transaction.
//!
//! Both carry the schema version (the newest migration applied): a SQLite copy is brought up to
//! date when it is opened, like any older catalog.db; a PostgreSQL export is restored only into a
//! database at the same schema version, since its rows are shaped by it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The lease a running backup holds: while it is held, maintenance deletes no file, so that every
/// file the backup's pointers reach still exists when the backup is complete.
pub const BACKUP_LEASE: &str = "floe:backup";

/// What [`BackupManifest::format`] says in every Floe metadata backup.
pub const FORMAT: &str = "floe-metadata-backup";

/// The version of the backup layout this release writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Which backend took a backup, and so how its payload is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The description written beside a backup's payload (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: String,
    pub format_version: u32,
    pub backend: Backend,
    /// The newest migration the store had applied.
    pub schema_version: i64,
    /// When the backup's transaction began (Unix ms).
    pub created_at_ms: i64,
    /// The payload's file name, beside the manifest.
    pub payload: String,
    pub payload_bytes: u64,
    /// SHA-256 of the payload, hex: a restore refuses a payload that does not match.
    pub payload_sha256: String,
    /// Rows per table, for the operator (and a check after a restore).
    pub rows: BTreeMap<String, u64>,
}

/// What an export or a restore carried: rows per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowCounts(pub BTreeMap<String, u64>);

impl RowCounts {
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// Tables of the store that a backup does not carry: the migration ledger belongs to the
/// database, and a restore's own migrations write it.
pub(crate) const NOT_BACKED_UP: &[&str] = &["_sqlx_migrations"];
