//! `GET /metrics`: every crate's series in the Prometheus text format, and the series the server
//! itself records (requests, auth decisions), named and described here.
//!
//! The libraries record through the `metrics` facade; the server installs the one recorder of the
//! process ([`install`]) and renders it on each scrape. A few values are read at scrape time
//! rather than kept up to date: the metadata-store pool and the open scrub findings.
//!
//! The route is the main port's, or with `metrics-port` a listener of its own that serves nothing
//! else ([`metrics_router`](crate::metrics_router)). With auth on it needs `admin`, or the
//! metrics token (`metrics-token-file`): a scraper then needs no principal of its own.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;

/// HTTP requests, by `method`, route template (`route`, never the raw path) and `status`.
pub const HTTP_REQUESTS: &str = "floe_http_requests_total";
/// HTTP request latency, by `method` and `route`, until the response's headers.
pub const HTTP_DURATION: &str = "floe_http_request_duration_seconds";
/// Authorization decisions, by `decision`: allowed, denied (403) or unauthenticated (401).
pub const AUTH_DECISIONS: &str = "floe_auth_decisions_total";

/// The `route` of a request no route matched (a 404), so that probes of random paths cannot
/// make a series each.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Histogram buckets, in seconds: from a cached load (sub-millisecond) to a long compaction read.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once: a second server in the same process shares it) and
/// describes every crate's series.
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), BUCKETS)
        .map_err(|err| format!("metrics: {err}"))?
        .install_recorder()
        .map_err(|err| format!("cannot install the metrics recorder: {err}"))?;
    let handle = HANDLE.get_or_init(|| handle).clone();
    describe();
    floe_storage::metrics::describe();
    floe_store::metrics::describe();
    floe_commit::metrics::describe();
    floe_maintenance::metrics::describe();
    // Without this the histograms' buckets grow for as long as the process runs.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests, by method, route template and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by method and route template."
    );
    describe_counter!(
        AUTH_DECISIONS,
        Unit::Count,
        "Authorization decisions, by decision: allowed, denied (403), unauthenticated (401)."
    );
    describe_counter!(
        crate::delegation::sign::SIGN_REQUESTS,
        Unit::Count,
        "Remote signing requests, by outcome: signed, denied (403) or rejected (400)."
    );
    for decision in ["allowed", "denied", "unauthenticated"] {
        counter!(AUTH_DECISIONS, "decision" => decision).increment(0);
    }
}

/// Counts one request: `route` is its template or [`UNMATCHED_ROUTE`].
pub fn http_request(method: &Method, route: &str, status: u16, elapsed: Duration) {
    // Only the methods routes use: anything else would be a series per made-up method.
    let method = match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    };
    let route = route.to_string();
    counter!(
        HTTP_REQUESTS,
        "method" => method,
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    histogram!(HTTP_DURATION, "method" => method, "route" => route).record(elapsed.as_secs_f64());
}

/// Counts one authorization decision.
pub fn auth_decision(decision: &'static str) {
    counter!(AUTH_DECISIONS, "decision" => decision).increment(1);
}

/// The token that may read `/metrics` without a principal; only its digest is kept.
pub struct MetricsToken {
    digest: [u8; 32],
}

impl MetricsToken {
    /// Reads the token from `path` (surrounding whitespace ignored; it must not be empty).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read metrics-token-file {}: {err}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!("metrics-token-file {} is empty", path.display()));
        }
        Ok(Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the token. Compares digests in constant time, so neither the
    /// token's bytes nor its length show in how long a wrong guess takes.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(self.digest.ct_eq(&digest))
    }
}

/// What the metrics route needs: the recorder's handle, and the token if one is configured.
#[derive(Clone)]
pub struct MetricsState {
    pub handle: PrometheusHandle,
    pub token: Option<Arc<MetricsToken>>,
}

/// `GET /metrics`: reads what is read at scrape time, then renders every series.
pub async fn scrape(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.default_catalog().store().clone();
    if let Some(pool) = store.pool_status() {
        floe_store::metrics::record_pool(pool);
    }
    if let Err(err) = floe_maintenance::metrics::record_open_findings(store.as_ref()).await {
        tracing::warn!(error = %err, "metrics: cannot count the open scrub findings");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.handle.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_token_matches_itself_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let token = MetricsToken::read(&path).unwrap();
        assert!(token.matches("s3cret-token"));
        assert!(!token.matches("s3cret-toke"));
        assert!(!token.matches("s3cret-token "));
        assert!(!token.matches(""));
        std::fs::write(&path, "  \n").unwrap();
        assert!(MetricsToken::read(&path).is_err());
    }
}
