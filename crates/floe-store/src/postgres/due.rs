//! The due rows in PostgreSQL: the shared operations of [`crate::due_sql`], each one statement in
//! autocommit. Claims lock the rows they take with `FOR UPDATE SKIP LOCKED`, so replicas claiming
//! at once take different rows instead of queueing behind each other.

use std::time::Duration;

use async_trait::async_trait;

use super::{Mode, PostgresStore};
use crate::due::{DueItem, DueOutcome, DueRow, DueStore};
use crate::due_sql as ops;
use crate::{Result, TableName};

#[async_trait]
impl DueStore for PostgresStore {
    async fn claim_due(&self, limit: usize, hold: Duration) -> Result<Vec<DueItem>> {
        self.run(Mode::Autocommit, async |conn| {
            ops::claim_due(conn, limit, hold, " FOR UPDATE SKIP LOCKED").await
        })
        .await
    }

    async fn finish_due(&self, item: &DueItem, outcome: &DueOutcome) -> Result<bool> {
        self.run(Mode::Autocommit, async |conn| {
            ops::finish_due(conn, item, outcome).await
        })
        .await
    }

    async fn postpone_due(&self, item: &DueItem, at_ms: i64) -> Result<bool> {
        self.run(Mode::Autocommit, async |conn| {
            ops::postpone_due(conn, item, at_ms).await
        })
        .await
    }

    async fn mark_namespace_due(&self, namespace: &[String]) -> Result<u64> {
        let key = self.scope.namespace_key(namespace)?;
        self.run(Mode::Autocommit, async |conn| {
            ops::mark_due(conn, &key, None).await
        })
        .await
    }

    async fn mark_table_due(&self, table: &TableName) -> Result<u64> {
        let key = self.scope.table_key(table)?;
        self.run(Mode::Autocommit, async |conn| {
            ops::mark_due(conn, &key, Some(&table.name)).await
        })
        .await
    }

    async fn adopt_unscheduled_tables(&self) -> Result<u64> {
        self.run(Mode::Autocommit, async |conn| {
            ops::adopt_unscheduled_tables(conn).await
        })
        .await
    }

    async fn sync_default_settings(&self, fingerprint: &str) -> Result<u64> {
        self.run(Mode::Write, async |conn| {
            ops::sync_default_settings(conn, fingerprint).await
        })
        .await
    }

    async fn due_rows(&self, table: &TableName) -> Result<Vec<DueRow>> {
        let key = self.scope.table_key(table)?;
        self.run(Mode::Autocommit, async |conn| {
            ops::due_rows(conn, &key, &table.name).await
        })
        .await
    }

    async fn count_due(&self) -> Result<(u64, u64)> {
        self.run(Mode::Autocommit, async |conn| ops::count_due(conn).await)
            .await
    }
}
