//! The [`ScrubStore`](crate::ScrubStore) operations, written once for every backend.
//!
//! They run on the same connections and statements as the access-control records
//! ([`crate::access_sql`]): `?` placeholders, [`Arg::Now`] for the store's clock. A problem found
//! again is an upsert on the partial unique index of open findings (`ON CONFLICT ... WHERE
//! resolved_at IS NULL`, which SQLite and PostgreSQL both accept), so two passes recording one
//! table at once never make two open findings of one problem, and never fail on each other.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::access_sql::{
    AccessConn, Arg, Col, Fields, check_name, check_text, delete_older_than, fetch, rows, stmt,
};
use crate::input::{JobRow, Scope, check_table_name};
use crate::scrub::{
    FindingFilter, FindingKind, OpenFindings, ScrubFinding, ScrubPass, ScrubRecorded,
};
use crate::{Result, StoreError, TableName};

/// A table's key columns: warehouse, namespace (as a JSON array, as job records keep it), name.
struct TableColumns {
    warehouse: String,
    namespace: String,
    name: String,
}

impl TableColumns {
    fn of(warehouse: &str, table: &TableName) -> Result<Self> {
        check_name("warehouse name", warehouse)?;
        Ok(Self {
            warehouse: warehouse.to_string(),
            namespace: namespace_column(table)?,
            name: table.name.clone(),
        })
    }

    fn args(&self) -> [Arg<'_>; 3] {
        [
            Arg::Text(&self.warehouse),
            Arg::Text(&self.namespace),
            Arg::Text(&self.name),
        ]
    }
}

/// The table's namespace column, refusing names that break the store's naming rules.
fn namespace_column(table: &TableName) -> Result<String> {
    Scope::default().namespace_key(&table.namespace)?;
    check_table_name(&table.name)?;
    JobRow::namespace_json(&table.namespace)
}

fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt scrub finding ({what}): {err}"))
}

fn decode_table(namespace: &str, name: String) -> Result<TableName> {
    let namespace: Vec<String> =
        serde_json::from_str(namespace).map_err(|err| corrupt("namespace", err))?;
    Ok(TableName::new(namespace, name))
}

const FINDING_COLUMNS: &str = "id, warehouse, namespace, table_name, file, kind, detail, \
     snapshots, found_at, last_seen_at, COALESCE(resolved_at, -1)";
const FINDING_COLS: [Col; 11] = [
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Text,
    Col::Int,
    Col::Int,
    Col::Int,
];

fn finding_from(fields: &mut Fields) -> Result<ScrubFinding> {
    let id = fields.text()?;
    let warehouse = fields.text()?;
    let namespace = fields.text()?;
    let table = decode_table(&namespace, fields.text()?)?;
    let file = fields.text()?;
    let kind = fields
        .text()?
        .parse::<FindingKind>()
        .map_err(|err| corrupt("kind", err))?;
    let detail = fields.text()?;
    let snapshots =
        serde_json::from_str(&fields.text()?).map_err(|err| corrupt("snapshots", err))?;
    let found_at_ms = fields.int()?;
    let last_seen_ms = fields.int()?;
    // Open findings read as -1 (COALESCE): the conversion reads no NULLs.
    let resolved_at_ms = Some(fields.int()?).filter(|at| *at >= 0);
    Ok(ScrubFinding {
        id,
        warehouse,
        table,
        file,
        kind,
        detail,
        snapshots,
        found_at_ms,
        last_seen_ms,
        resolved_at_ms,
    })
}

pub(crate) async fn record_scrub<C: AccessConn>(
    conn: &mut C,
    pass: &ScrubPass,
) -> Result<ScrubRecorded, C::Error> {
    let table = TableColumns::of(&pass.warehouse, &pass.table)?;
    for problem in &pass.problems {
        check_name("file location", &problem.file)?;
        check_text("finding detail", &problem.detail)?;
    }
    // The table's open findings, to tell new problems from known ones and to resolve the rest.
    let open: BTreeMap<(String, String), String> = fetch(
        conn,
        stmt(
            "SELECT file, kind, id FROM scrub_findings WHERE warehouse = ? AND namespace = ? \
             AND table_name = ? AND resolved_at IS NULL",
            table.args(),
        ),
        &[Col::Text, Col::Text, Col::Text],
        |fields| Ok(((fields.text()?, fields.text()?), fields.text()?)),
    )
    .await?
    .into_iter()
    .collect();
    let mut recorded = ScrubRecorded::default();
    let mut found = std::collections::BTreeSet::new();
    for problem in &pass.problems {
        let key = (problem.file.clone(), problem.kind.as_str().to_string());
        if !found.insert(key.clone()) {
            continue;
        }
        if open.contains_key(&key) {
            recorded.still_open += 1;
        } else {
            recorded.opened += 1;
        }
        let snapshots = serde_json::to_string(&problem.snapshots)
            .map_err(|err| StoreError::Internal(format!("encoding snapshot ids: {err}")))?;
        let id = uuid::Uuid::now_v7().to_string();
        let mut args = vec![Arg::Text(&id)];
        args.extend(table.args());
        args.extend([
            Arg::Text(&problem.file),
            Arg::Text(problem.kind.as_str()),
            Arg::Text(&problem.detail),
            Arg::Text(&snapshots),
            Arg::Now,
            Arg::Now,
        ]);
        rows(
            conn,
            stmt(
                "INSERT INTO scrub_findings (id, warehouse, namespace, table_name, file, kind, \
                 detail, snapshots, found_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (warehouse, namespace, table_name, file, kind) \
                 WHERE resolved_at IS NULL DO UPDATE SET detail = excluded.detail, \
                 snapshots = excluded.snapshots, last_seen_at = excluded.last_seen_at",
                args,
            ),
        )
        .await?;
    }
    if !pass.complete {
        return Ok(recorded);
    }
    for ((file, kind), id) in &open {
        let checked = pass.checked.iter().any(|checked| checked.as_str() == kind);
        if checked && !found.contains(&(file.clone(), kind.clone())) {
            recorded.resolved += rows(
                conn,
                stmt(
                    "UPDATE scrub_findings SET resolved_at = ? WHERE id = ? \
                     AND resolved_at IS NULL",
                    [Arg::Now, Arg::Text(id)],
                ),
            )
            .await?;
        }
    }
    Ok(recorded)
}

pub(crate) async fn resolve_findings<C: AccessConn>(
    conn: &mut C,
    warehouse: &str,
    table: &TableName,
    files: &[String],
) -> Result<u64, C::Error> {
    let table = TableColumns::of(warehouse, table)?;
    let mut resolved = 0;
    for file in files {
        check_name("file location", file)?;
        let mut args = vec![Arg::Now];
        args.extend(table.args());
        args.push(Arg::Text(file));
        resolved += rows(
            conn,
            stmt(
                "UPDATE scrub_findings SET resolved_at = ? WHERE warehouse = ? AND namespace = ? \
                 AND table_name = ? AND file = ? AND resolved_at IS NULL",
                args,
            ),
        )
        .await?;
    }
    Ok(resolved)
}

pub(crate) async fn list_findings<C: AccessConn>(
    conn: &mut C,
    filter: &FindingFilter,
    limit: usize,
) -> Result<Vec<ScrubFinding>, C::Error> {
    let table = match &filter.table {
        Some(table) => Some((namespace_column(table)?, table.name.as_str())),
        None => None,
    };
    // Only the filters asked for, so that each listing can use its index.
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    if let Some(warehouse) = &filter.warehouse {
        check_name("warehouse name", warehouse)?;
        conditions.push("warehouse = ?");
        args.push(Arg::Text(warehouse));
    }
    if let Some((namespace, name)) = &table {
        conditions.push("namespace = ? AND table_name = ?");
        args.push(Arg::Text(namespace));
        args.push(Arg::Text(name));
    }
    if filter.open_only {
        conditions.push("resolved_at IS NULL");
    }
    if let Some(since_ms) = filter.since_ms {
        conditions.push("found_at >= ?");
        args.push(Arg::Int(since_ms));
    }
    let mut sql = format!("SELECT {FINDING_COLUMNS} FROM scrub_findings");
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY found_at DESC, id DESC LIMIT ?");
    args.push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    fetch(conn, stmt(sql, args), &FINDING_COLS, finding_from).await
}

pub(crate) async fn open_finding_counts<C: AccessConn>(
    conn: &mut C,
    warehouse: Option<&str>,
) -> Result<Vec<OpenFindings>, C::Error> {
    let mut sql = String::from(
        "SELECT warehouse, namespace, table_name, COUNT(*) FROM scrub_findings \
         WHERE resolved_at IS NULL",
    );
    let mut args = Vec::new();
    if let Some(warehouse) = warehouse {
        check_name("warehouse name", warehouse)?;
        sql.push_str(" AND warehouse = ?");
        args.push(Arg::Text(warehouse));
    }
    sql.push_str(" GROUP BY warehouse, namespace, table_name");
    let mut counts = fetch(
        conn,
        stmt(sql, args),
        &[Col::Text, Col::Text, Col::Text, Col::Int],
        |fields| {
            let warehouse = fields.text()?;
            let namespace = fields.text()?;
            let table = decode_table(&namespace, fields.text()?)?;
            let open = u64::try_from(fields.int()?).map_err(|err| corrupt("count", err))?;
            Ok(OpenFindings {
                warehouse,
                table,
                open,
            })
        },
    )
    .await?;
    // Sorted here: the namespace column is JSON, whose order is not the names' order.
    counts.sort_by(|a, b| (&a.warehouse, &a.table).cmp(&(&b.warehouse, &b.table)));
    Ok(counts)
}

pub(crate) async fn open_findings_by_kind<C: AccessConn>(
    conn: &mut C,
) -> Result<Vec<(FindingKind, u64)>, C::Error> {
    let sql = "SELECT kind, COUNT(*) FROM scrub_findings WHERE resolved_at IS NULL GROUP BY kind";
    fetch(
        conn,
        stmt(sql.to_string(), Vec::new()),
        &[Col::Text, Col::Int],
        |fields| {
            let kind = fields
                .text()?
                .parse::<FindingKind>()
                .map_err(|err| corrupt("kind", err))?;
            let open = u64::try_from(fields.int()?).map_err(|err| corrupt("count", err))?;
            Ok((kind, open))
        },
    )
    .await
}

pub(crate) async fn expire_findings<C: AccessConn>(
    conn: &mut C,
    older_than: Duration,
) -> Result<u64, C::Error> {
    delete_older_than(
        conn,
        "scrub_findings",
        "resolved_at",
        Some("resolved_at IS NOT NULL"),
        older_than,
    )
    .await
}
