//! The PostgreSQL store's backup: every Floe table exported in one snapshot as JSON lines, and
//! imported back in one transaction (see [`crate::backup`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::{Attempt, Mode, PostgresStore};
use crate::backup::{NOT_BACKED_UP, RowCounts};
use crate::{Result, StoreError};

/// One row of an export: the table it belongs to and its columns, as `row_to_json` wrote them.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportedRow {
    pub table: String,
    pub row: serde_json::Value,
}

/// A whole export: the schema version it was taken at and every row, tables in an order that
/// inserts them without breaking a foreign key (referenced tables first; rows by primary key, so
/// a parent namespace comes before its children).
#[derive(Debug, Default)]
pub struct Export {
    pub schema_version: i64,
    pub created_at_ms: i64,
    pub rows: Vec<ExportedRow>,
}

/// How many rows one `INSERT ... json_populate_recordset` carries.
const IMPORT_BATCH: usize = 500;

/// The newest schema version (migration) this release brings a PostgreSQL store to.
pub fn latest_schema_version() -> i64 {
    sqlx::migrate!("./migrations-postgres")
        .iter()
        .map(|migration| migration.version)
        .max()
        .unwrap_or(0)
}

impl PostgresStore {
    /// Every row of every Floe table as of one moment: one `REPEATABLE READ, READ ONLY`
    /// transaction, so writers go on and the export is still consistent across tables.
    pub async fn export(&self) -> Result<Export> {
        self.run(Mode::Snapshot, async |conn| export_in(conn).await)
            .await
    }

    /// Writes `export` into this store in one transaction, replacing what it holds. Refuses a
    /// store at another schema version, and one that holds namespaces or tables unless
    /// `replace_existing`: a restore over a live catalog must be asked for. Returns rows per
    /// table written.
    pub async fn import(&self, export: &Export, replace_existing: bool) -> Result<RowCounts> {
        let mut tx = self.pool.begin().await.map_err(super::db_error)?;
        let written = import_in(&mut tx, export, replace_existing).await;
        match written {
            Ok(counts) => {
                tx.commit().await.map_err(super::db_error)?;
                Ok(counts)
            }
            Err(err) => {
                // Dropping the transaction rolls it back; saying so keeps the intent visible.
                drop(tx);
                Err(err)
            }
        }
    }
}

async fn export_in(conn: &mut PgConnection) -> Attempt<Export> {
    let schema_version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await?;
    let created_at_ms: i64 = sqlx::query_scalar(&format!("SELECT {}", super::NOW_MS))
        .fetch_one(&mut *conn)
        .await?;
    let mut rows = Vec::new();
    for table in tables_in_insert_order(conn).await? {
        let order = primary_key_columns(conn, &table).await?;
        let order_by = if order.is_empty() {
            String::new()
        } else {
            let columns: Vec<String> = order.iter().map(|column| quote(column)).collect();
            format!(" ORDER BY {}", columns.join(", "))
        };
        let lines: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT row_to_json(t)::text FROM {} t{order_by}",
            quote(&table)
        ))
        .fetch_all(&mut *conn)
        .await?;
        for line in lines {
            let row = serde_json::from_str(&line).map_err(|err| {
                StoreError::Internal(format!("exporting {table}: unreadable row: {err}"))
            })?;
            rows.push(ExportedRow {
                table: table.clone(),
                row,
            });
        }
    }
    Ok(Export {
        schema_version,
        created_at_ms,
        rows,
    })
}

async fn import_in(
    conn: &mut PgConnection,
    export: &Export,
    replace_existing: bool,
) -> Result<RowCounts> {
    let db = |err: sqlx::Error| super::db_error(err);
    let schema_version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
    if schema_version != export.schema_version {
        return Err(StoreError::InvalidInput(format!(
            "the backup was taken at schema version {}, this database is at {schema_version}: \
             restore with the Floe release that took the backup, then upgrade",
            export.schema_version
        )));
    }
    let order = tables_in_insert_order(conn).await.map_err(failure)?;
    let known: BTreeSet<&str> = order.iter().map(String::as_str).collect();
    if let Some(unknown) = export
        .rows
        .iter()
        .find(|row| !known.contains(row.table.as_str()))
    {
        return Err(StoreError::InvalidInput(format!(
            "the backup has rows of a table this database does not have: {}",
            unknown.table
        )));
    }
    if !replace_existing {
        let held: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM namespaces) + (SELECT COUNT(*) FROM tables)",
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(db)?;
        if held > 0 {
            return Err(StoreError::InvalidInput(
                "the target metadata store already holds namespaces or tables; restoring \
                 replaces them all, so it must be asked for (--replace-existing)"
                    .to_string(),
            ));
        }
    }
    // Seed rows written by migrations (and everything a replaced catalog held) go first, children
    // before parents.
    for table in order.iter().rev() {
        sqlx::query(&format!("DELETE FROM {}", quote(table)))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
    }
    let mut by_table: BTreeMap<&str, Vec<&serde_json::Value>> = BTreeMap::new();
    for row in &export.rows {
        by_table
            .entry(row.table.as_str())
            .or_default()
            .push(&row.row);
    }
    let mut counts = RowCounts::default();
    for table in &order {
        let Some(rows) = by_table.get(table.as_str()) else {
            counts.0.insert(table.clone(), 0);
            continue;
        };
        for batch in rows.chunks(IMPORT_BATCH) {
            let json = serde_json::to_string(batch)
                .map_err(|err| StoreError::Internal(format!("restoring {table}: {err}")))?;
            sqlx::query(&format!(
                "INSERT INTO {0} SELECT * FROM json_populate_recordset(NULL::{0}, $1::json)",
                quote(table)
            ))
            .bind(json)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        }
        counts.0.insert(table.clone(), rows.len() as u64);
    }
    Ok(counts)
}

fn failure(err: super::Failure) -> StoreError {
    match err {
        super::Failure::Store(err) => err,
        super::Failure::Db(err) => super::db_error(err),
    }
}

/// The store's tables (in the connection's schema), referenced tables before the tables whose
/// foreign keys name them.
async fn tables_in_insert_order(conn: &mut PgConnection) -> Attempt<Vec<String>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind = 'r' ORDER BY c.relname",
    )
    .fetch_all(&mut *conn)
    .await?;
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT child.relname::text, parent.relname::text FROM pg_constraint k \
         JOIN pg_class child ON child.oid = k.conrelid \
         JOIN pg_class parent ON parent.oid = k.confrelid \
         JOIN pg_namespace n ON n.oid = child.relnamespace \
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await?;
    let tables: Vec<String> = tables
        .into_iter()
        .filter(|table| !NOT_BACKED_UP.contains(&table.as_str()))
        .collect();
    Ok(topological(&tables, &edges))
}

/// `tables` ordered so that each comes after every table it references; a table referencing
/// itself (nested namespaces) only needs its rows in primary-key order.
fn topological(tables: &[String], edges: &[(String, String)]) -> Vec<String> {
    let mut placed: Vec<String> = Vec::with_capacity(tables.len());
    let mut left: Vec<&String> = tables.iter().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|table| {
                edges.iter().all(|(child, parent)| {
                    child != *table || parent == *table || placed.contains(parent)
                })
            })
            .collect();
        if ready.is_empty() {
            // A cycle between tables (none exists in Floe's schema): keep the rest in name order
            // and let the insert report the broken reference.
            placed.extend(left.into_iter().cloned());
            break;
        }
        left.retain(|table| !ready.contains(table));
        placed.extend(ready.into_iter().cloned());
    }
    placed
}

async fn primary_key_columns(conn: &mut PgConnection, table: &str) -> Attempt<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
         WHERE i.indisprimary AND c.relname = $1 AND n.nspname = current_schema() \
         ORDER BY array_position(i.indkey::int2[], a.attnum)",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?)
}

/// `name` as a PostgreSQL identifier (names come from the catalog, but quoting costs nothing).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::topological;

    #[test]
    fn referenced_tables_come_first() {
        let tables = ["grants", "namespaces", "roles", "tables"].map(String::from);
        let edges = [
            ("tables", "namespaces"),
            ("namespaces", "namespaces"),
            ("grants", "roles"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        let order = topological(&tables, &edges);
        let at = |name: &str| order.iter().position(|t| t == name);
        assert!(at("namespaces") < at("tables"));
        assert!(at("roles") < at("grants"));
        assert_eq!(order.len(), 4);
    }
}
