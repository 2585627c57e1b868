//! The replicas' heartbeats in SQLite: the shared operations of [`crate::replicas_sql`] on the
//! connections of [`super::access`].

use std::time::Duration;

use async_trait::async_trait;

use super::SqliteStore;
use crate::Result;
use crate::replicas::{ReplicaHeartbeat, ReplicaRecord, ReplicaStore};
use crate::replicas_sql as ops;

#[async_trait]
impl ReplicaStore for SqliteStore {
    async fn record_heartbeat(&self, heartbeat: &ReplicaHeartbeat) -> Result<()> {
        self.write(async |conn| ops::record_heartbeat(conn, heartbeat).await)
            .await
    }

    async fn list_replicas(&self, seen_within: Duration) -> Result<Vec<ReplicaRecord>> {
        self.read(async |conn| ops::list_replicas(conn, seen_within).await)
            .await
    }

    async fn forget_replicas(&self, older_than: Duration) -> Result<u64> {
        self.write(async |conn| ops::forget_replicas(conn, older_than).await)
            .await
    }
}
