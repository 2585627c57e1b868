//! The scrubber's findings in SQLite: the shared operations of [`crate::scrub_sql`] on the
//! connections of [`super::access`], in the store's write transactions (`BEGIN IMMEDIATE`) and
//! read transactions.

use std::time::Duration;

use async_trait::async_trait;

use super::SqliteStore;
use crate::scrub::{
    FindingFilter, FindingKind, OpenFindings, ScrubFinding, ScrubPass, ScrubRecorded, ScrubStore,
};
use crate::scrub_sql as ops;
use crate::{Result, TableName};

#[async_trait]
impl ScrubStore for SqliteStore {
    async fn record_scrub(&self, pass: &ScrubPass) -> Result<ScrubRecorded> {
        self.write(async |conn| ops::record_scrub(conn, pass).await)
            .await
    }

    async fn resolve_findings(
        &self,
        warehouse: &str,
        table: &TableName,
        files: &[String],
    ) -> Result<u64> {
        self.write(async |conn| ops::resolve_findings(conn, warehouse, table, files).await)
            .await
    }

    async fn list_findings(
        &self,
        filter: &FindingFilter,
        limit: usize,
    ) -> Result<Vec<ScrubFinding>> {
        self.read(async |conn| ops::list_findings(conn, filter, limit).await)
            .await
    }

    async fn open_finding_counts(&self, warehouse: Option<&str>) -> Result<Vec<OpenFindings>> {
        self.read(async |conn| ops::open_finding_counts(conn, warehouse).await)
            .await
    }

    async fn open_findings_by_kind(&self) -> Result<Vec<(FindingKind, u64)>> {
        self.read(async |conn| ops::open_findings_by_kind(conn).await)
            .await
    }

    async fn expire_findings(&self, older_than: Duration) -> Result<u64> {
        self.write(async |conn| ops::expire_findings(conn, older_than).await)
            .await
    }
}
