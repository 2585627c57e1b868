//! The [`ReplicaStore`](crate::ReplicaStore) operations, written once for every backend, on the
//! connections and statements of the access-control records ([`crate::access_sql`]).

use std::time::Duration;

use crate::Result;
use crate::access_sql::{
    AccessConn, Arg, Col, Fields, age_millis, check_name, delete_older_than, fetch, rows, stmt,
};
use crate::replicas::{ReplicaHeartbeat, ReplicaRecord};

pub(crate) async fn record_heartbeat<C: AccessConn>(
    conn: &mut C,
    heartbeat: &ReplicaHeartbeat,
) -> Result<(), C::Error> {
    check_name("replica id", &heartbeat.id)?;
    check_name("replica address", &heartbeat.address)?;
    check_name("replica version", &heartbeat.version)?;
    rows(
        conn,
        stmt(
            "INSERT INTO replicas (id, address, version, started_at, last_seen_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET address = excluded.address, \
             version = excluded.version, last_seen_at = excluded.last_seen_at",
            [
                Arg::Text(&heartbeat.id),
                Arg::Text(&heartbeat.address),
                Arg::Text(&heartbeat.version),
                Arg::Int(heartbeat.started_at_ms),
                Arg::Now,
            ],
        ),
    )
    .await?;
    Ok(())
}

fn replica_from(fields: &mut Fields) -> Result<ReplicaRecord> {
    Ok(ReplicaRecord {
        id: fields.text()?,
        address: fields.text()?,
        version: fields.text()?,
        started_at_ms: fields.int()?,
        last_seen_ms: fields.int()?,
    })
}

pub(crate) async fn list_replicas<C: AccessConn>(
    conn: &mut C,
    seen_within: Duration,
) -> Result<Vec<ReplicaRecord>, C::Error> {
    fetch(
        conn,
        stmt(
            "SELECT id, address, version, started_at, last_seen_at FROM replicas \
             WHERE last_seen_at >= ? - ? ORDER BY last_seen_at DESC, id",
            [Arg::Now, Arg::Int(age_millis(seen_within))],
        ),
        &[Col::Text, Col::Text, Col::Text, Col::Int, Col::Int],
        replica_from,
    )
    .await
}

pub(crate) async fn forget_replicas<C: AccessConn>(
    conn: &mut C,
    older_than: Duration,
) -> Result<u64, C::Error> {
    delete_older_than(conn, "replicas", "last_seen_at", None, older_than).await
}
