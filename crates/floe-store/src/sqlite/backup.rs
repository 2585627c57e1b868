//! The SQLite store's backup: a consistent copy of the file, taken while writers go on.

use std::path::Path;

use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

use super::{SqliteStore, db_error};
use crate::backup::{NOT_BACKED_UP, RowCounts};
use crate::{Result, StoreError};

impl SqliteStore {
    /// Writes a consistent copy of the whole database to `dest`, which must not exist. `VACUUM
    /// INTO` reads in one transaction, so the copy is the database as of one moment, and commits
    /// go on meanwhile (WAL). Returns the rows per table in the copy.
    pub async fn backup_into(&self, dest: &Path) -> Result<RowCounts> {
        let dest_text = dest.to_str().ok_or_else(|| {
            StoreError::Internal(format!("backup path {} is not UTF-8", dest.display()))
        })?;
        if dest.exists() {
            return Err(StoreError::Internal(format!(
                "backup destination {} already exists",
                dest.display()
            )));
        }
        sqlx::query("VACUUM INTO ?")
            .bind(dest_text)
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        // Checked as a restore will check it, so that a damaged copy fails now, not then.
        let copy = open_read_only(dest).await?;
        let checked = async {
            check_integrity(&copy).await?;
            row_counts(&copy).await
        }
        .await;
        copy.close().await;
        checked
    }

    /// Runs SQLite's own consistency check over the whole file; `Err` lists what it found.
    pub async fn check_integrity(&self) -> Result<()> {
        check_integrity(&self.pool).await
    }

    /// Rows per table of the store (the migration ledger left out).
    pub async fn row_counts(&self) -> Result<RowCounts> {
        row_counts(&self.pool).await
    }

    /// The newest migration this database has applied.
    pub async fn schema_version(&self) -> Result<i64> {
        schema_version(&self.pool).await
    }
}

/// Runs SQLite's own consistency check over the whole file; `Err` lists what it found.
pub(crate) async fn check_integrity(pool: &SqlitePool) -> Result<()> {
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(pool)
        .await
        .map_err(db_error)?;
    let findings: Vec<String> = rows
        .iter()
        .filter_map(|row| row.try_get::<String, _>(0).ok())
        .filter(|line| line != "ok")
        .collect();
    if findings.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Internal(format!(
            "the database file is damaged: {}",
            findings.join("; ")
        )))
    }
}

/// Rows per table (the migration ledger left out).
async fn row_counts(pool: &SqlitePool) -> Result<RowCounts> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(db_error)?;
    let mut counts = RowCounts::default();
    for table in tables {
        if NOT_BACKED_UP.contains(&table.as_str()) {
            continue;
        }
        // The name comes from the schema itself, quoted as an identifier.
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM \"{}\"",
            table.replace('"', "\"\"")
        ))
        .fetch_one(pool)
        .await
        .map_err(db_error)?;
        counts.0.insert(table, count.max(0) as u64);
    }
    Ok(counts)
}

/// A read-only pool over a SQLite file that is not a live store (a backup): no migration runs.
pub(crate) async fn open_read_only(path: &Path) -> Result<SqlitePool> {
    let connect = SqliteConnectOptions::new().filename(path).read_only(true);
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(connect)
        .await
        .map_err(db_error)
}

/// Checks a backup file before it becomes a store: SQLite's consistency check, and its schema
/// version (a copy newer than this release cannot be opened by it).
pub async fn check_backup_file(path: &Path) -> Result<(i64, RowCounts)> {
    let pool = open_read_only(path).await?;
    let checked = async {
        check_integrity(&pool).await?;
        Ok((schema_version(&pool).await?, row_counts(&pool).await?))
    }
    .await;
    pool.close().await;
    checked
}

async fn schema_version(pool: &SqlitePool) -> Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .map_err(db_error)
}
