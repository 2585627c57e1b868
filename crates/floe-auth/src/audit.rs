//! The audit log's writer: records go to the metadata store in batches, off the request path.
//!
//! A request hands its record to a bounded queue and goes on; one task per server writes what
//! queued in one transaction, so an audited commit costs a queue push, not a second store round
//! trip. When the queue is full the request waits for room rather than drop a record. Records still
//! queued when the process dies are lost; the server flushes the queue when it stops.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use floe_store::{AuditRecord, MetadataStore};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const QUEUE: usize = 4096;
const BATCH: usize = 256;

/// Where the server sends audit records.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<AuditRecord>,
}

impl AuditLog {
    /// Starts the writer; it ends (after writing everything queued) when every [`AuditLog`] clone
    /// is dropped.
    pub fn start(store: Arc<dyn MetadataStore>) -> (Self, JoinHandle<()>) {
        let (queue, records) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_batches(store, records));
        (Self { queue }, writer)
    }

    pub async fn record(&self, record: AuditRecord) {
        if self.queue.send(record).await.is_err() {
            tracing::error!("the audit log writer has stopped; a record was not written");
        }
    }
}

/// A record with its id and time filled in.
#[allow(clippy::too_many_arguments)]
pub fn new_record(
    principal: &str,
    route: String,
    target: String,
    outcome: &str,
    status: u16,
    request_id: &str,
) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or_default(),
        principal: principal.to_string(),
        route,
        target,
        outcome: outcome.to_string(),
        status,
        request_id: request_id.to_string(),
    }
}

async fn write_batches(store: Arc<dyn MetadataStore>, mut records: mpsc::Receiver<AuditRecord>) {
    let mut batch = Vec::with_capacity(BATCH);
    while records.recv_many(&mut batch, BATCH).await > 0 {
        let mut attempt = 0;
        loop {
            match store.access().record_audit(&batch).await {
                Ok(()) => break,
                Err(err) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %err, records = batch.len(), attempt, "could not write audit records; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(err) => {
                    tracing::error!(error = %err, records = batch.len(), "could not write audit records; they are lost");
                    break;
                }
            }
        }
        batch.clear();
    }
}

/// Deletes audit records older than `retention`, every hour.
pub async fn expire_periodically(store: Arc<dyn MetadataStore>, retention: Duration) {
    let mut interval = tokio::time::interval(Duration::from_secs(3600));
    loop {
        interval.tick().await;
        match store.access().expire_audit(retention).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "expired audit records"),
            Err(err) => tracing::warn!(error = %err, "could not expire audit records"),
        }
    }
}
