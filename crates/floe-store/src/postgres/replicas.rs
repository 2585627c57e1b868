//! The replicas' heartbeats in PostgreSQL: the shared operations of [`crate::replicas_sql`] on the
//! connections of [`super::access`], each one statement in autocommit (a heartbeat is an upsert
//! on the replica's own row).

use std::time::Duration;

use async_trait::async_trait;

use super::{Mode, PostgresStore};
use crate::Result;
use crate::replicas::{ReplicaHeartbeat, ReplicaRecord, ReplicaStore};
use crate::replicas_sql as ops;

#[async_trait]
impl ReplicaStore for PostgresStore {
    async fn record_heartbeat(&self, heartbeat: &ReplicaHeartbeat) -> Result<()> {
        self.run(Mode::Autocommit, async |conn| {
            ops::record_heartbeat(conn, heartbeat).await
        })
        .await
    }

    async fn list_replicas(&self, seen_within: Duration) -> Result<Vec<ReplicaRecord>> {
        self.run(Mode::Autocommit, async |conn| {
            ops::list_replicas(conn, seen_within).await
        })
        .await
    }

    async fn forget_replicas(&self, older_than: Duration) -> Result<u64> {
        self.run(Mode::Autocommit, async |conn| {
            ops::forget_replicas(conn, older_than).await
        })
        .await
    }
}
