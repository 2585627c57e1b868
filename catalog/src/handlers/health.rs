//! Probes for load balancers and orchestrators; not part of the Iceberg REST API.
//!
//! - `GET /health` (liveness): 200 whenever the process serves HTTP at all. It checks nothing
//!   else, so that an outage of the metadata store never gets healthy replicas restarted.
//! - `GET /ready` (readiness): 200 when the metadata store answers a trivial query within
//!   [`READY_TIMEOUT`], else 503 with `Retry-After` and an `ErrorModel` body, so that traffic
//!   goes to replicas that can serve it.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The longest `/ready` waits for the metadata store. The pool's acquire timeout bounds it too.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    match tokio::time::timeout(READY_TIMEOUT, state.default_catalog().ping()).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            format!("metadata store did not answer within {READY_TIMEOUT:?}"),
        )),
    }
}
