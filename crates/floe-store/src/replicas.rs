//! The replicas serving from one store: every `floe serve` process writes a heartbeat while it
//! runs (its id, address, version, start time; the store's clock stamps when it was last seen),
//! and anyone reading the store sees which replicas are alive.
//!
//! A heartbeat is one upsert on the process's own row, so replicas never contend with each other.
//! A replica that stopped is not removed when it stops (it may have died); it stops being *seen*
//! once its heartbeats stop, and [`ReplicaStore::forget_replicas`] deletes rows not seen for a
//! long time.

use std::time::Duration;

use async_trait::async_trait;

use crate::Result;

/// What a replica writes about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaHeartbeat {
    /// Unique per process (a UUIDv7 made at start).
    pub id: String,
    /// What it listens on, `host:port`.
    pub address: String,
    pub version: String,
    /// When the process started, Unix ms by its own clock.
    pub started_at_ms: i64,
}

/// A replica as the store last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRecord {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_at_ms: i64,
    /// Its last heartbeat, Unix ms by the store's clock.
    pub last_seen_ms: i64,
}

/// The replicas' heartbeats (see the module docs). Every method is one atomic operation.
#[async_trait]
pub trait ReplicaStore: Send + Sync + 'static {
    /// Records that the replica is alive now (inserting its row the first time).
    async fn record_heartbeat(&self, heartbeat: &ReplicaHeartbeat) -> Result<()>;

    /// The replicas seen within `seen_within` of now (by the store's clock), most recently seen
    /// first.
    async fn list_replicas(&self, seen_within: Duration) -> Result<Vec<ReplicaRecord>>;

    /// Deletes the replicas not seen for `older_than`; returns how many.
    async fn forget_replicas(&self, older_than: Duration) -> Result<u64>;
}
