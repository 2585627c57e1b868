//! A summary of the server for the console's server page (described in
//! `catalog/management-api.yaml`):
//!
//! - `GET /management/v1/server`: version, auth mode, metadata store kind, the warehouses, the
//!   maintenance jobs of the last day by outcome, the open scrub findings, and the replicas seen.
//!
//! `replicas` are the servers whose heartbeat ([`crate::heartbeat`]) the store has seen lately, this
//! one marked. The counts come from the store (job records, findings), not from `/metrics`, so
//! every replica answers the same.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use floe_store::JobFilter;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiResult;

/// The most job records the summary reads (newest first) to count the last day's jobs.
const RECENT_JOBS: usize = 1000;
const DAY_MS: i64 = 86_400_000;

pub async fn summary(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let warehouses = state.warehouses.list().await?;
    let store = state.default_catalog().store();
    let jobs = store
        .list_jobs(&JobFilter::default(), RECENT_JOBS)
        .await
        .map_err(floe_commit::CommitError::from)?;
    let since = chrono::Utc::now().timestamp_millis() - DAY_MS;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for job in jobs.iter().filter(|job| job.started_at_ms >= since) {
        *outcomes.entry(job.outcome.clone()).or_default() += 1;
    }
    let open_findings: u64 = store
        .scrub()
        .open_finding_counts(None)
        .await
        .map_err(floe_commit::CommitError::from)?
        .iter()
        .map(|count| count.open)
        .sum();
    let this = crate::idempotency::instance_id();
    let replicas = store
        .replicas()
        .list_replicas(crate::heartbeat::SEEN_WITHIN)
        .await
        .map_err(floe_commit::CommitError::from)?;
    let config = &state.config;
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "auth-mode": state.auth.authorizer.mode().name(),
        "metadata-store": if config.metastore.is_some() { "postgresql" } else { "sqlite" },
        "maintenance-scheduler": config.maintenance,
        "warehouses": warehouses.iter().map(|warehouse| json!({
            "name": warehouse.name,
            "storage-url": warehouse.storage_url,
            "default": warehouse.default,
        })).collect::<Vec<_>>(),
        "jobs-last-day": outcomes,
        "last-job-started-at-ms": jobs.first().map(|job| job.started_at_ms),
        "open-scrub-findings": open_findings,
        "replicas-seen-within-ms": crate::heartbeat::SEEN_WITHIN.as_millis() as u64,
        "replicas": replicas.iter().map(|replica| json!({
            "id": replica.id,
            "address": replica.address,
            "version": replica.version,
            "started-at-ms": replica.started_at_ms,
            "last-seen-ms": replica.last_seen_ms,
            "answered-this-request": replica.id == this,
        })).collect::<Vec<_>>(),
    })))
}
