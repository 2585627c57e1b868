//! `Idempotency-Key` support for mutating requests.
//!
//! A request carrying a key first *claims* it in the metadata store. The first request with a key
//! runs; when it finishes with a final outcome (2xx or 4xx) its response is stored and every retry
//! with the same key gets that response back without running again. A 5xx is not final: the key
//! is released so that a retry runs. A retry that arrives while the first request still runs waits
//! for it, up to a bound, and then gets a 503 to retry later. A key reused for a different request
//! (method, path or body) is a 400.
//!
//! A claim names its owner, this server instance ([`instance_id`]), which renews it while the
//! request runs. If the owner dies (or loses the metadata store) mid-request, its claim stops
//! being renewed, and after `idempotency-takeover-ms` (default 2 minutes) a retry of the same
//! request on any replica takes the claim over and runs — instead of every retry getting a 503
//! until the key expires an hour later. The timeout must exceed the longest pause a live server's
//! renewals may suffer; a takeover of a live owner's claim would run the request twice, which the
//! commit's requirements still make safe for table commits.

use std::sync::LazyLock;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use floe_store::{IdempotencyClaim, StoredResponse};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How long clients may reuse a key (advertised in `/v1/config`).
pub const KEY_LIFETIME_ISO: &str = "PT30M";
/// Keys are kept this long: the advertised lifetime plus a grace period for clock skew.
pub const KEY_RETENTION: Duration = Duration::from_secs(60 * 60);
/// How long a retry waits for the first request with its key to finish.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// This server instance, as the owner of the idempotency keys it claims: one per process.
pub fn instance_id() -> &'static str {
    static INSTANCE: LazyLock<String> = LazyLock::new(|| uuid::Uuid::new_v4().to_string());
    &INSTANCE
}

pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mutating = matches!(
        *request.method(),
        Method::POST | Method::DELETE | Method::PUT
    );
    let key = match request.headers().get(IDEMPOTENCY_KEY) {
        Some(key) if mutating => key,
        _ => return next.run(request).await,
    };
    let key = match key.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= 128 => key.to_string(),
        _ => {
            return ApiError::bad_request("Idempotency-Key must be 1 to 128 visible characters")
                .into_response();
        }
    };

    let (parts, body) = request.into_parts();
    // Read before the key is claimed, so a slow upload cut short leaves no claim behind.
    let deadline = crate::limits::Deadline::of(&parts.extensions, &state.config);
    let read = to_bytes(body, state.config.max_request_bytes);
    let bytes = match tokio::time::timeout_at(deadline, read).await {
        Err(_) => return crate::limits::timed_out(&state.config),
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BadRequestException",
                "request body is larger than the server's limit (max-request-bytes)",
            )
            .into_response();
        }
    };
    let fingerprint = {
        let mut hasher = Sha256::new();
        hasher.update(parts.method.as_str());
        hasher.update([0]);
        hasher.update(parts.uri.to_string());
        hasher.update([0]);
        hasher.update(&bytes);
        hex::encode(hasher.finalize())
    };

    let store = state.default_catalog().store().clone();
    let owner = instance_id();
    let takeover_after = Duration::from_millis(state.config.idempotency_takeover_ms);
    let deadline = tokio::time::Instant::now() + IN_FLIGHT_WAIT;
    loop {
        match store
            .claim_idempotency_key(&key, &fingerprint, owner, takeover_after)
            .await
        {
            Ok(IdempotencyClaim::Claimed) => break,
            Ok(IdempotencyClaim::Completed(stored)) => return replay(stored),
            Ok(IdempotencyClaim::Mismatch) => {
                return ApiError::bad_request(
                    "Idempotency-Key was already used for a different request",
                )
                .into_response();
            }
            Ok(IdempotencyClaim::InFlight) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(IdempotencyClaim::InFlight) => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailableException",
                    "a request with this Idempotency-Key is still running; retry later",
                )
                .into_response();
            }
            Err(err) => return ApiError::from(floe_commit::CommitError::from(err)).into_response(),
        }
    }

    // Renewed for as long as this future lives: also when the connection drops and the request
    // is abandoned mid-way, the claim then ages and is taken over.
    let renewals = AbortOnDrop(tokio::spawn(renew_claim(
        store.clone(),
        key.clone(),
        takeover_after,
    )));
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    drop(renewals);
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(err) => {
            let _ = store.release_idempotency_key(&key, owner).await;
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                format!("cannot read response body: {err}"),
            )
            .into_response();
        }
    };
    let outcome = if parts.status.is_server_error() {
        store.release_idempotency_key(&key, owner).await
    } else {
        let stored = StoredResponse {
            status: parts.status.as_u16(),
            body: body.to_vec(),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        };
        store.complete_idempotency_key(&key, owner, &stored).await
    };
    if let Err(err) = outcome {
        // The request itself finished; only its record did not. A retry will then run again,
        // which requirements make safe for commits, so report the real outcome.
        tracing::warn!(key, error = %err, "could not record idempotency key outcome");
    }
    Response::from_parts(parts, Body::from(body))
}

/// Stops a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Renews this instance's claim of `key` while its request runs, a few times per takeover
/// timeout, so that only a claim whose owner stopped answering is taken over.
async fn renew_claim(
    store: std::sync::Arc<dyn floe_store::MetadataStore>,
    key: String,
    takeover_after: Duration,
) {
    let every = (takeover_after / 4).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(every).await;
        match store.renew_idempotency_claim(&key, instance_id()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    key,
                    "this server's idempotency claim was taken over while its request ran"
                );
                return;
            }
            Err(err) => tracing::warn!(key, error = %err, "could not renew an idempotency claim"),
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    if let Some(value) = stored
        .content_type
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
