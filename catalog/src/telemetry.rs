//! What every request leaves behind: its id, one access-log line, and its place in the request
//! series ([`crate::metrics`]).
//!
//! - **Request id.** A client's `X-Request-Id` is kept when it is sane (1 to
//!   [`MAX_REQUEST_ID_LEN`] visible ASCII characters), so that its own logs and Floe's meet;
//!   otherwise the server makes one (a UUID). Either way it is set on the request before anything
//!   else sees it (tracing, auth, the audit log) and returned on every response, errors included.
//! - **Access log.** One INFO line per request, target `floe::access`: method, route template,
//!   status, duration, principal and request id. Never the raw path's query, a header or a body:
//!   nothing a secret travels in.
//! - **Metrics.** Requests by method, route template and status, and their latency.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::REQUEST_ID;

/// The longest client request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Who made a request, as the auth layer found it: set on the response for the access log.
#[derive(Debug, Clone)]
pub struct RequestPrincipal(pub String);

/// Whether a client's request id is kept as it is.
fn is_sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The outermost layer: the request's id, on the request and on its response.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let client = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_sane(id))
        .and_then(|id| HeaderValue::from_str(id).ok());
    let id = match client {
        Some(id) => id,
        None => HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("-")),
    };
    request.headers_mut().insert(REQUEST_ID, id.clone());
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// Just inside [`request_id`]: times the request, counts it and writes its access-log line.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(crate::metrics::UNMATCHED_ROUTE, |matched| matched.as_str())
        .to_string();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    crate::metrics::http_request(&method, &route, status, elapsed);
    let principal = response
        .extensions()
        .get::<RequestPrincipal>()
        .map_or("-", |principal| principal.0.as_str());
    tracing::info!(
        target: "floe::access",
        method = %method,
        route = %route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        principal,
        request_id = %id,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_visible_ascii_request_ids_are_kept() {
        assert!(is_sane("3f2b-AB_c.d:e/f"));
        assert!(is_sane(&"x".repeat(MAX_REQUEST_ID_LEN)));
        assert!(!is_sane(""));
        assert!(!is_sane(&"x".repeat(MAX_REQUEST_ID_LEN + 1)));
        assert!(!is_sane("has space"));
        assert!(!is_sane("tab\there"));
        assert!(!is_sane("naïve"));
    }
}
