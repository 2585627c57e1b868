//! The series the metadata store records, with their descriptions: the one place that names them.
//!
//! Recorded through the `metrics` facade, which costs nothing until a binary installs a
//! recorder (`floe serve` does; see docs/operations.md for every series). The pool's gauges are
//! read when they are scraped ([`record_pool`] with [`crate::MetadataStore::pool_status`]), not
//! kept up to date on every call.

use std::time::Instant;

use metrics::{Unit, describe_gauge, describe_histogram, gauge, histogram};

/// How long an operation waited for a pooled connection (for a transaction, with its `BEGIN`).
pub const ACQUIRE_DURATION: &str = "floe_store_acquire_duration_seconds";
/// Pooled connections, by `state`: `in_use` or `idle`.
pub const CONNECTIONS: &str = "floe_store_connections";
/// The most connections the pool opens.
pub const MAX_CONNECTIONS: &str = "floe_store_max_connections";

/// A connection pool as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

impl PoolStatus {
    pub(crate) fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        let size = pool.size();
        let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
        Self {
            in_use: size - idle,
            idle,
            max: pool.options().get_max_connections(),
        }
    }
}

/// Sets the pool's gauges to `status`.
pub fn record_pool(status: PoolStatus) {
    gauge!(CONNECTIONS, "state" => "in_use").set(status.in_use);
    gauge!(CONNECTIONS, "state" => "idle").set(status.idle);
    gauge!(MAX_CONNECTIONS).set(status.max);
}

/// Records how long getting a connection took, from `since`.
pub(crate) fn acquired(since: Instant) {
    histogram!(ACQUIRE_DURATION).record(since.elapsed().as_secs_f64());
}

pub fn describe() {
    describe_histogram!(
        ACQUIRE_DURATION,
        Unit::Seconds,
        "Wait for a pooled metadata-store connection (for a transaction, with its BEGIN)."
    );
    describe_gauge!(
        CONNECTIONS,
        Unit::Count,
        "Pooled metadata-store connections, by state (in_use, idle)."
    );
    describe_gauge!(
        MAX_CONNECTIONS,
        Unit::Count,
        "The most connections the metadata-store pool opens."
    );
}

#[cfg(test)]
mod tests {
    use crate::MetadataStore;
    use crate::sqlite::SqliteStore;

    #[tokio::test]
    async fn a_pool_reports_its_bound_and_no_connection_in_use_when_idle() {
        let store = SqliteStore::in_memory().await.unwrap();
        // The pool takes a released connection back in a task of its own: wait for it.
        let mut status = store.pool_status().expect("a SQLite store has a pool");
        for _ in 0..500 {
            if status.in_use == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            status = store.pool_status().expect("a SQLite store has a pool");
        }
        assert_eq!(status.max, 1);
        assert_eq!(status.in_use, 0);
        assert_eq!(status.idle, 1);
        let scoped = store.in_warehouse("other").unwrap();
        assert_eq!(
            scoped.pool_status(),
            Some(status),
            "one pool for every warehouse"
        );
    }
}
