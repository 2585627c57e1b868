//! The conformance checks of the replicas' heartbeats ([`crate::ReplicaStore`]), run by
//! [`metadata_store_suite!`](crate::metadata_store_suite) with the others.

use std::sync::Arc;
use std::time::Duration;

use crate::{MetadataStore, ReplicaHeartbeat, StoreError};

fn heartbeat(id: &str, address: &str) -> ReplicaHeartbeat {
    ReplicaHeartbeat {
        id: id.into(),
        address: address.into(),
        version: "0.1.0".into(),
        started_at_ms: 1_000,
    }
}

pub async fn replica_heartbeats_are_listed_and_forgotten(store: Arc<dyn MetadataStore>) {
    let replicas = store.replicas();
    let hour = Duration::from_secs(3600);
    assert!(replicas.list_replicas(hour).await.unwrap().is_empty());

    replicas
        .record_heartbeat(&heartbeat("a", "10.0.0.1:8181"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    replicas
        .record_heartbeat(&heartbeat("b", "10.0.0.2:8181"))
        .await
        .unwrap();
    let seen = replicas.list_replicas(hour).await.unwrap();
    assert_eq!(
        seen.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["b", "a"],
        "most recently seen first"
    );
    assert_eq!(seen[1].address, "10.0.0.1:8181");
    assert_eq!(seen[1].started_at_ms, 1_000);

    // A heartbeat again is the same row, seen later, at its new address.
    tokio::time::sleep(Duration::from_millis(5)).await;
    replicas
        .record_heartbeat(&heartbeat("a", "10.0.0.9:8181"))
        .await
        .unwrap();
    let seen = replicas.list_replicas(hour).await.unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].id.as_str(), seen[0].address.as_str()),
        ("a", "10.0.0.9:8181")
    );
    assert!(seen[0].last_seen_ms >= seen[1].last_seen_ms);

    // Nothing was seen in the future; everything is forgotten once old enough.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        replicas
            .list_replicas(Duration::from_millis(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(replicas.forget_replicas(hour).await.unwrap(), 0);
    assert_eq!(
        replicas
            .forget_replicas(Duration::from_millis(1))
            .await
            .unwrap(),
        2
    );
    assert!(replicas.list_replicas(hour).await.unwrap().is_empty());

    let invalid = replicas.record_heartbeat(&heartbeat("", "x")).await;
    assert!(
        matches!(invalid, Err(StoreError::InvalidInput(_))),
        "{invalid:?}"
    );
}
