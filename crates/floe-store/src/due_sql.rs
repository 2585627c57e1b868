//! The [`DueStore`](crate::DueStore) operations, written once for every backend on the shared
//! statements of [`crate::access_sql`], and the due-row writes of a commit (called inside the
//! backends' pointer-swap transactions).
//!
//! Inside an `UPDATE`, every expression reads the row as it was before the statement, which the
//! counters rely on: `finish` takes the claimed count off and compares what commits added since
//! with the new threshold in one step.

use std::time::Duration;

use crate::access_sql::{AccessConn, Arg, Col, Fields, age_millis, fetch, rows, stmt};
use crate::due::{CommitEvents, DueItem, DueKind, DueOutcome, DueRow};
use crate::input::Scope;
use crate::{Result, StoreError, TableName};

/// `'compaction', 'snapshot-expiry', ...` as a one-column relation, for statements over every kind.
fn kinds_relation() -> String {
    DueKind::ALL
        .iter()
        .map(|kind| format!("SELECT '{}' AS kind", kind.as_str()))
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Sets a row's due time to now unless it is due earlier already; `excluded.due_at` is now.
const DUE_NOW_UNLESS_EARLIER: &str = "CASE WHEN maintenance_due.due_at IS NOT NULL \
     AND maintenance_due.due_at <= excluded.due_at THEN maintenance_due.due_at \
     ELSE excluded.due_at END";

/// The due-row writes of one table's commit, in the commit's transaction. `created`: the commit
/// made the table.
pub(crate) async fn record_commit<C: AccessConn>(
    conn: &mut C,
    namespace_key: &str,
    name: &str,
    events: &CommitEvents,
    created: bool,
) -> Result<(), C::Error> {
    if created || events.reevaluate {
        return all_due_now(conn, namespace_key, name).await;
    }
    let files = i64::try_from(events.added_data_files).unwrap_or(i64::MAX);
    if files > 0 || events.added_delete_files > 0 {
        let deletes = events.added_delete_files > 0;
        count(
            conn,
            namespace_key,
            name,
            DueKind::Compaction,
            files,
            deletes,
        )
        .await?;
    }
    let manifests = i64::try_from(events.added_manifests).unwrap_or(i64::MAX);
    if manifests > 0 {
        count(
            conn,
            namespace_key,
            name,
            DueKind::ManifestRewrite,
            manifests,
            false,
        )
        .await?;
    }
    if let Some(oldest) = events.oldest_snapshot_ms {
        // A row with no due time: at the last run the table kept every snapshot it had. Its oldest
        // snapshot now ages out after the age limit that run wrote.
        rows(
            conn,
            stmt(
                "INSERT INTO maintenance_due (namespace, name, kind, due_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (namespace, name, kind) DO UPDATE SET due_at = \
                 CASE WHEN maintenance_due.due_at IS NULL THEN ? + maintenance_due.period_ms \
                 ELSE maintenance_due.due_at END",
                [
                    Arg::Text(namespace_key),
                    Arg::Text(name),
                    Arg::Text(DueKind::SnapshotExpiry.as_str()),
                    Arg::Now,
                    Arg::Int(oldest),
                ],
            ),
        )
        .await?;
    }
    Ok(())
}

/// Every kind of the table due now, cancelling any claim: whatever a running job decided was
/// decided on what is no longer so.
async fn all_due_now<C: AccessConn>(
    conn: &mut C,
    namespace_key: &str,
    name: &str,
) -> Result<(), C::Error> {
    let values = vec!["(?, ?, ?, ?)"; DueKind::ALL.len()].join(", ");
    let mut args = Vec::with_capacity(4 * DueKind::ALL.len());
    for kind in DueKind::ALL {
        args.extend([
            Arg::Text(namespace_key),
            Arg::Text(name),
            Arg::Text(kind.as_str()),
            Arg::Now,
        ]);
    }
    rows(
        conn,
        stmt(
            format!(
                "INSERT INTO maintenance_due (namespace, name, kind, due_at) VALUES {values} \
                 ON CONFLICT (namespace, name, kind) DO UPDATE SET \
                 due_at = {DUE_NOW_UNLESS_EARLIER}, claim = NULL"
            ),
            args,
        ),
    )
    .await?;
    Ok(())
}

/// Adds `added` to the kind's counter; the job is due now once the counter reaches its threshold,
/// or at once when `force`.
async fn count<C: AccessConn>(
    conn: &mut C,
    namespace_key: &str,
    name: &str,
    kind: DueKind,
    added: i64,
    force: bool,
) -> Result<(), C::Error> {
    rows(
        conn,
        stmt(
            format!(
                "INSERT INTO maintenance_due (namespace, name, kind, due_at, pending) \
                 VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (namespace, name, kind) DO UPDATE SET \
                 pending = maintenance_due.pending + excluded.pending, \
                 due_at = CASE WHEN ? = 1 \
                 OR maintenance_due.pending + excluded.pending >= maintenance_due.threshold \
                 THEN {DUE_NOW_UNLESS_EARLIER} ELSE maintenance_due.due_at END"
            ),
            [
                Arg::Text(namespace_key),
                Arg::Text(name),
                Arg::Text(kind.as_str()),
                Arg::Now,
                Arg::Int(added),
                Arg::Int(i64::from(force)),
            ],
        ),
    )
    .await?;
    Ok(())
}

fn claimed_from(fields: &mut Fields) -> Result<(String, String, String, i64)> {
    Ok((
        fields.text()?,
        fields.text()?,
        fields.text()?,
        fields.int()?,
    ))
}

/// Claims the due rows of the tables of the first `limit` due rows (so up to five times `limit`
/// rows): a table's due jobs go to one claimant, which runs them one after the other instead of
/// two replicas contending for its lease. `lock` follows the subquery: PostgreSQL's `FOR UPDATE SKIP
/// LOCKED`, so that replicas claiming at once take different rows instead of waiting for each
/// other; empty for SQLite, whose writes are serialized anyway.
pub(crate) async fn claim_due<C: AccessConn>(
    conn: &mut C,
    limit: usize,
    hold: Duration,
    lock: &str,
) -> Result<Vec<DueItem>, C::Error> {
    let claim = uuid::Uuid::now_v7().to_string();
    let claimed = fetch(
        conn,
        stmt(
            format!(
                "UPDATE maintenance_due SET due_at = ? + ?, claim = ? \
                 WHERE due_at <= ? AND (namespace, name) IN (SELECT namespace, name \
                 FROM maintenance_due WHERE due_at <= ? ORDER BY due_at LIMIT ?{lock}) \
                 RETURNING namespace, name, kind, pending"
            ),
            [
                Arg::Now,
                Arg::Int(age_millis(hold)),
                Arg::Text(&claim),
                Arg::Now,
                Arg::Now,
                Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
        ),
        &[Col::Text, Col::Text, Col::Text, Col::Int],
        claimed_from,
    )
    .await?;
    let mut items = Vec::with_capacity(claimed.len());
    for (namespace_key, name, kind, pending) in claimed {
        let (warehouse, namespace) = Scope::decode(&namespace_key)?;
        let kind = kind.parse::<DueKind>().map_err(StoreError::Internal)?;
        items.push(DueItem {
            warehouse,
            table: TableName::new(namespace, name),
            kind,
            pending,
            claim: claim.clone(),
        });
    }
    Ok(items)
}

/// The key of a claimed item's namespace.
fn item_key(item: &DueItem) -> Result<String> {
    let scope = match &item.warehouse {
        Some(warehouse) => Scope::warehouse(warehouse)?,
        None => Scope::default(),
    };
    scope.table_key(&item.table)
}

pub(crate) async fn finish_due<C: AccessConn>(
    conn: &mut C,
    item: &DueItem,
    outcome: &DueOutcome,
) -> Result<bool, C::Error> {
    let key = item_key(item)?;
    let threshold = outcome.threshold.max(1);
    let consumed = outcome.consumed.max(0);
    let next = match outcome.next_due_ms {
        Some(_) => "?",
        None => "NULL",
    };
    let mut args = vec![
        Arg::Int(consumed),
        Arg::Int(consumed),
        Arg::Int(threshold),
        Arg::Int(outcome.period_ms.max(0)),
        Arg::Int(consumed),
        Arg::Int(threshold),
        Arg::Now,
    ];
    if let Some(at) = outcome.next_due_ms {
        args.push(Arg::Int(at));
    }
    args.extend([
        Arg::Text(&key),
        Arg::Text(&item.table.name),
        Arg::Text(item.kind.as_str()),
        Arg::Text(&item.claim),
    ]);
    let changed = rows(
        conn,
        stmt(
            format!(
                "UPDATE maintenance_due SET \
                 pending = CASE WHEN pending > ? THEN pending - ? ELSE 0 END, \
                 threshold = ?, period_ms = ?, claim = NULL, \
                 due_at = CASE WHEN pending - ? >= ? THEN ? ELSE {next} END \
                 WHERE namespace = ? AND name = ? AND kind = ? AND claim = ?"
            ),
            args,
        ),
    )
    .await?;
    Ok(changed > 0)
}

pub(crate) async fn postpone_due<C: AccessConn>(
    conn: &mut C,
    item: &DueItem,
    at_ms: i64,
) -> Result<bool, C::Error> {
    let key = item_key(item)?;
    let changed = rows(
        conn,
        stmt(
            "UPDATE maintenance_due SET due_at = ?, claim = NULL \
             WHERE namespace = ? AND name = ? AND kind = ? AND claim = ?",
            [
                Arg::Int(at_ms),
                Arg::Text(&key),
                Arg::Text(&item.table.name),
                Arg::Text(item.kind.as_str()),
                Arg::Text(&item.claim),
            ],
        ),
    )
    .await?;
    Ok(changed > 0)
}

/// Every row of the namespace's tables (`name`: of one table only) due now, claims cancelled.
pub(crate) async fn mark_due<C: AccessConn>(
    conn: &mut C,
    namespace_key: &str,
    name: Option<&str>,
) -> Result<u64, C::Error> {
    let mut args = vec![Arg::Now, Arg::Now, Arg::Text(namespace_key)];
    let only_table = match name {
        Some(name) => {
            args.push(Arg::Text(name));
            " AND name = ?"
        }
        None => "",
    };
    rows(
        conn,
        stmt(
            format!(
                "UPDATE maintenance_due SET claim = NULL, due_at = \
                 CASE WHEN due_at IS NOT NULL AND due_at <= ? THEN due_at ELSE ? END \
                 WHERE namespace = ?{only_table}"
            ),
            args,
        ),
    )
    .await
}

pub(crate) async fn adopt_unscheduled_tables<C: AccessConn>(conn: &mut C) -> Result<u64, C::Error> {
    rows(
        conn,
        stmt(
            format!(
                "INSERT INTO maintenance_due (namespace, name, kind, due_at) \
                 SELECT t.namespace, t.name, k.kind, ? FROM tables t CROSS JOIN ({}) k \
                 WHERE t.kind = 'table' AND NOT EXISTS (SELECT 1 FROM maintenance_due d \
                 WHERE d.namespace = t.namespace AND d.name = t.name AND d.kind = k.kind) \
                 ON CONFLICT (namespace, name, kind) DO NOTHING",
                kinds_relation()
            ),
            [Arg::Now],
        ),
    )
    .await
}

fn text_from(fields: &mut Fields) -> Result<String> {
    fields.text()
}

pub(crate) async fn sync_default_settings<C: AccessConn>(
    conn: &mut C,
    fingerprint: &str,
) -> Result<u64, C::Error> {
    let recorded = fetch(
        conn,
        stmt(
            "SELECT fingerprint FROM maintenance_defaults WHERE scope = 'default'",
            [],
        ),
        &[Col::Text],
        text_from,
    )
    .await?;
    if recorded.first().is_some_and(|known| known == fingerprint) {
        return Ok(0);
    }
    rows(
        conn,
        stmt(
            "INSERT INTO maintenance_defaults (scope, fingerprint) VALUES ('default', ?) \
             ON CONFLICT (scope) DO UPDATE SET fingerprint = excluded.fingerprint",
            [Arg::Text(fingerprint)],
        ),
    )
    .await?;
    if recorded.is_empty() {
        return Ok(0);
    }
    // Registered warehouses' keys start with the separator (see `Scope`); the default's never do.
    let registered = format!("{}%", crate::input::LEVEL_SEPARATOR);
    rows(
        conn,
        stmt(
            "UPDATE maintenance_due SET claim = NULL, due_at = ? WHERE namespace NOT LIKE ?",
            [Arg::Now, Arg::Text(&registered)],
        ),
    )
    .await
}

fn row_from(fields: &mut Fields) -> Result<DueRow> {
    let kind = fields.text()?.parse().map_err(StoreError::Internal)?;
    let due_at = fields.int()?;
    Ok(DueRow {
        kind,
        due_at_ms: (due_at >= 0).then_some(due_at),
        pending: fields.int()?,
        threshold: fields.int()?,
        period_ms: fields.int()?,
        claimed: fields.int()? != 0,
    })
}

pub(crate) async fn due_rows<C: AccessConn>(
    conn: &mut C,
    namespace_key: &str,
    name: &str,
) -> Result<Vec<DueRow>, C::Error> {
    let mut rows = fetch(
        conn,
        stmt(
            "SELECT kind, COALESCE(due_at, -1), pending, threshold, period_ms, \
             CAST(CASE WHEN claim IS NULL THEN 0 ELSE 1 END AS BIGINT) \
             FROM maintenance_due WHERE namespace = ? AND name = ?",
            [Arg::Text(namespace_key), Arg::Text(name)],
        ),
        &[Col::Text, Col::Int, Col::Int, Col::Int, Col::Int, Col::Int],
        row_from,
    )
    .await?;
    rows.sort_by_key(|row| row.kind);
    Ok(rows)
}

fn counts_from(fields: &mut Fields) -> Result<(i64, i64)> {
    Ok((fields.int()?, fields.int()?))
}

pub(crate) async fn count_due<C: AccessConn>(conn: &mut C) -> Result<(u64, u64), C::Error> {
    let counts = fetch(
        conn,
        stmt(
            "SELECT COALESCE(SUM(CASE WHEN due_at <= ? THEN 1 ELSE 0 END), 0), COUNT(*) \
             FROM maintenance_due",
            [Arg::Now],
        ),
        &[Col::Int, Col::Int],
        counts_from,
    )
    .await?;
    let (due, all) = counts.first().copied().unwrap_or_default();
    Ok((
        u64::try_from(due).unwrap_or_default(),
        u64::try_from(all).unwrap_or_default(),
    ))
}
