//! What keeps one client, or one web page, from misusing the server: the layers around the
//! router and the connection settings under it.
//!
//! - **Host check** (DNS rebinding). A web page whose name its attacker re-points at 127.0.0.1
//!   can make the browser send requests to a server on loopback, with the page's own name in
//!   `Host`. So when the server listens on a loopback address, `Host` must be a loopback name
//!   (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`, any port) or one the operator allows
//!   (`allowed-hosts`); anything else is a 421. Requests without `Host` (HTTP/1.0) pass.
//! - **Concurrency limit.** At most `max-concurrent-requests` requests are handled at once; one
//!   more gets a 503 with `Retry-After` at once rather than waiting in a queue that only grows
//!   under overload. `/health` is exempt, so that a busy server is not taken for a dead one.
//! - **Request timeout.** A request (its body upload included) that runs longer than
//!   `request-timeout-ms` is cut short with a 503. The deadline is set as the request arrives
//!   ([`Deadline`]); the handler runs inside the idempotency layer, which so sees the 503 and
//!   releases the request's key for a retry, and which bounds its own read of the body by the
//!   same deadline. A commit cut short is either made or not: the pointer swap is one step.
//! - **Header-read timeout** (slowloris). A connection that does not deliver a request's headers
//!   within `header-read-timeout-ms` is closed ([`serve`]); this also bounds how long an idle
//!   keep-alive connection stays open.
//!
//! JSON bodies must be `application/json` (see `extract::JsonBody`), which keeps a web page's
//! plain-text POST from being taken for a request.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Extensions, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::error::ApiError;

/// When a request must be answered by: set as it arrives (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The request's deadline; `request-timeout-ms` from now if no layer set one.
    pub fn of(extensions: &Extensions, config: &ServerConfig) -> Instant {
        extensions
            .get::<Deadline>()
            .map_or_else(|| Instant::now() + config.request_timeout(), |d| d.0)
    }
}

/// The 503 of a request that ran past its deadline.
pub fn timed_out(config: &ServerConfig) -> Response {
    timed_out_error(config).into_response()
}

/// The error of a request that ran past its deadline.
pub fn timed_out_error(config: &ServerConfig) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailableException",
        format!(
            "the request did not complete within {} ms (request-timeout-ms)",
            config.request_timeout_ms
        ),
    )
}

/// The layers that go inside the idempotency layer: the request timeout.
pub fn inner_layers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    config: &Arc<ServerConfig>,
) -> Router<S> {
    let config = config.clone();
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let config = config.clone();
        async move {
            let deadline = Deadline::of(request.extensions(), &config);
            match tokio::time::timeout_at(deadline, next.run(request)).await {
                Ok(response) => response,
                Err(_) => timed_out(&config),
            }
        }
    }))
}

/// The layers that go outside everything but request tracing: the host check, then the
/// concurrency limit, then the request's [`Deadline`].
pub fn outer_layers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    config: &ServerConfig,
) -> Router<S> {
    let timeout = config.request_timeout();
    let router = router.layer(middleware::from_fn(
        move |mut request: Request, next: Next| async move {
            request
                .extensions_mut()
                .insert(Deadline(Instant::now() + timeout));
            next.run(request).await
        },
    ));
    let limit = Limit {
        permits: Arc::new(Semaphore::new(config.max_concurrent_requests.max(1))),
        max: config.max_concurrent_requests.max(1),
    };
    let router = router.layer(middleware::from_fn_with_state(limit, concurrency));
    if config.host.is_loopback() {
        let hosts = Arc::new(AllowedHosts::new(&config.allowed_hosts));
        router.layer(middleware::from_fn_with_state(hosts, host_check))
    } else {
        router
    }
}

#[derive(Clone)]
struct Limit {
    permits: Arc<Semaphore>,
    max: usize,
}

async fn concurrency(State(limit): State<Limit>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    match limit.permits.clone().try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            format!(
                "the server is handling its maximum of {} requests at once \
                 (max-concurrent-requests); retry later",
                limit.max
            ),
        )
        .into_response(),
    }
}

async fn host_check(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    // HTTP/2 and absolute-form requests carry the authority in the URI; HTTP/1.1 in `Host`.
    let named = match request.uri().authority() {
        Some(authority) => Some(Ok(authority.as_str())),
        None => request
            .headers()
            .get(header::HOST)
            .map(|value| value.to_str().map_err(|_| ())),
    };
    match named {
        None => next.run(request).await,
        Some(Ok(host)) if hosts.allows(host) => next.run(request).await,
        Some(_) => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "MisdirectedRequestException",
            "this server on a loopback address answers only to loopback host names and to the \
             hosts its operator allows (allowed-hosts)",
        )
        .into_response(),
    }
}

/// Host names a loopback server answers to, besides the loopback ones.
struct AllowedHosts {
    /// Lowercase host, and the port if the operator named one.
    configured: Vec<(String, Option<u16>)>,
}

impl AllowedHosts {
    fn new(configured: &[String]) -> Self {
        Self {
            configured: configured
                .iter()
                .filter_map(|entry| split_host_port(entry))
                .map(|(host, port)| (normalized(host), port))
                .collect(),
        }
    }

    /// Whether a `Host` value (`name`, `name:port`, `[v6]:port`) may reach this server.
    fn allows(&self, value: &str) -> bool {
        let Some((host, port)) = split_host_port(value) else {
            return false;
        };
        let host = normalized(host);
        is_loopback_name(&host)
            || self.configured.iter().any(|(allowed, allowed_port)| {
                *allowed == host && allowed_port.is_none_or(|p| Some(p) == port)
            })
    }
}

/// Lowercase, without the one trailing dot a fully qualified name may have.
fn normalized(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// `host[:port]` or `[v6][:port]`; `None` when malformed.
fn split_host_port(value: &str) -> Option<(&str, Option<u16>)> {
    let value = value.trim();
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (&value[..inside.len() + 2], port)
    } else {
        match value.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    if host.is_empty() || (host.contains(['/', '@', ' ', ':']) && !host.starts_with('[')) {
        return None;
    }
    let port = match port {
        None => None,
        Some(port) => Some(port.parse::<u16>().ok()?),
    };
    Some((host, port))
}

fn is_loopback_name(host: &str) -> bool {
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    host.parse::<Ipv4Addr>()
        .is_ok_and(|ip| IpAddr::V4(ip).is_loopback())
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets in-flight requests finish.
///
/// hyper's own connection builder rather than `axum::serve`, which does not expose the
/// header-read timeout.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_pass_with_or_without_port() {
        let hosts = AllowedHosts::new(&[]);
        for host in [
            "localhost",
            "localhost:8181",
            "LOCALHOST.",
            "floe.localhost:1",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8181",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8181",
            "localhost.evil.example",
            "128.0.0.1",
            "0.0.0.0",
            "[::2]:80",
            "localhost:notaport",
            "",
            "user@localhost",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
    }

    #[test]
    fn configured_hosts_pass_with_their_port_if_they_name_one() {
        let hosts = AllowedHosts::new(&["Catalog.Internal".into(), "proxy.example:443".into()]);
        assert!(hosts.allows("catalog.internal"));
        assert!(hosts.allows("catalog.internal:8181"));
        assert!(hosts.allows("proxy.example:443"));
        assert!(!hosts.allows("proxy.example:8181"));
        assert!(!hosts.allows("proxy.example"));
        assert!(!hosts.allows("other.internal"));
    }
}
