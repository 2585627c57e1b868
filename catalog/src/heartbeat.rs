//! The replica's heartbeat: while `floe serve` runs it records itself in the metadata store
//! ([`floe_store::ReplicaStore`]) every [`INTERVAL`], so that the server page (`GET
//! /management/v1/server`) of any replica lists every replica seen within [`SEEN_WITHIN`].
//!
//! The replica's id is the process's instance id ([`crate::idempotency::instance_id`]), the one
//! that also owns its idempotency claims. A heartbeat that fails is logged and retried at the next
//! beat: a store that cannot take heartbeats cannot take commits either, and `/ready` says so.

use std::sync::Arc;
use std::time::Duration;

use floe_store::{MetadataStore, ReplicaHeartbeat};

/// How often a replica writes its heartbeat.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// A replica counts as alive while its last heartbeat is this recent (three missed beats).
pub const SEEN_WITHIN: Duration = Duration::from_secs(35);
/// Replicas not seen for this long are deleted from the store.
const FORGET_AFTER: Duration = Duration::from_secs(7 * 86_400);

/// This process's heartbeat, listening on `address`.
pub fn this_replica(address: std::net::SocketAddr) -> ReplicaHeartbeat {
    ReplicaHeartbeat {
        id: crate::idempotency::instance_id().to_string(),
        address: address.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at_ms: chrono::Utc::now().timestamp_millis(),
    }
}

/// Writes one heartbeat now (so that a server is listed as soon as it serves), forgets long-gone
/// replicas, then returns the task that goes on beating.
pub async fn start(
    store: Arc<dyn MetadataStore>,
    heartbeat: ReplicaHeartbeat,
) -> tokio::task::JoinHandle<()> {
    beat(store.as_ref(), &heartbeat).await;
    if let Err(err) = store.replicas().forget_replicas(FORGET_AFTER).await {
        tracing::warn!(error = %err, "could not delete old replica heartbeats");
    }
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(INTERVAL);
        interval.tick().await;
        loop {
            interval.tick().await;
            beat(store.as_ref(), &heartbeat).await;
        }
    })
}

async fn beat(store: &dyn MetadataStore, heartbeat: &ReplicaHeartbeat) {
    if let Err(err) = store.replicas().record_heartbeat(heartbeat).await {
        tracing::warn!(error = %err, "could not record this replica's heartbeat");
    }
}
