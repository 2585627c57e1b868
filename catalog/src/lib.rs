//! Floe's Iceberg REST catalog server: routes, handlers, errors and configuration.
//!
//! # How a request flows
//!
//! ```text
//! HTTP ──► router (this crate) ──► handler: parse, check prefix ──► floe_commit::Catalog
//!                                                                    │  requirements, updates,
//!                                                                    │  metadata file (floe-storage)
//!                                                                    ▼
//!                                          floe_store::MetadataStore::swap_pointers (the commit)
//! ```
//!
//! Handlers are thin: they turn the spec's JSON into calls on [`floe_commit::Catalog`] and its
//! results back into JSON. Errors become the spec's `ErrorModel` in one place, [`error::ApiError`].
//! Cross-cutting concerns are layers around the router: request tracing (one span per request with
//! a request id), the body size limit, [`idempotency`] keys, and the [`limits`] that keep clients
//! and web pages from misusing the server (host check, concurrency limit, timeouts). Outermost,
//! [`telemetry`] gives every request its id, its access-log line and its place in the request
//! series. Table responses carry what a client needs to reach the files without the warehouse's
//! keys, and the sign route signs its S3 requests ([`delegation`]). Outside the REST API,
//! `/health` and `/ready` ([`handlers::health`]) answer load balancers' probes, `/metrics`
//! ([`metrics`]) Prometheus, on the main port or its own, and `/console` serves the web
//! [`console`], a client of these same APIs. While it serves, the server records its
//! [`heartbeat`] in the metadata store, so that every replica can list the others.

pub mod auth;
pub mod config;
pub mod console;
pub mod delegation;
pub mod error;
mod extract;
pub mod handlers;
pub mod heartbeat;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod names;
pub mod telemetry;
pub mod types;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use floe_commit::{Catalog, CommitSettings, Warehouses};
use floe_maintenance::scheduler::{Scheduler, SchedulerOptions};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use config::ServerConfig;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub warehouses: Arc<Warehouses>,
    pub config: Arc<ServerConfig>,
    pub auth: auth::AuthState,
    pub metrics: metrics::MetricsState,
    pub delegation: Arc<delegation::DelegationState>,
}

impl AppState {
    /// The catalog of the warehouse a route's `{prefix}` names; an unknown one is a 404.
    pub async fn catalog(&self, prefix: &str) -> error::ApiResult<Arc<Catalog>> {
        Ok(self.warehouses.catalog(prefix).await?)
    }

    /// The default warehouse's catalog; its store handle serves what is global (idempotency
    /// keys, readiness).
    pub fn default_catalog(&self) -> &Arc<Catalog> {
        self.warehouses.default_catalog()
    }
}

/// The REST API, with its layers.
pub fn router(state: AppState) -> Router {
    use auth::management as access;
    use handlers::{config, health, maintenance, namespaces, tables, views, warehouses};
    let api = Router::new()
        .route("/health", get(health::health))
        // The web console: static assets; it calls the routes below like any client.
        .route("/console", get(console::index))
        .route("/console/{asset}", get(console::asset))
        .route("/ready", get(health::ready))
        .route("/v1/config", get(config::get_config))
        .route(
            "/management/v1/warehouses",
            get(warehouses::list).post(warehouses::create),
        )
        .route(
            "/management/v1/warehouses/{name}",
            get(warehouses::load).delete(warehouses::drop),
        )
        .route(
            "/management/v1/warehouses/{warehouse}/namespaces/{namespace}/maintenance",
            get(maintenance::namespace_settings).post(maintenance::update_namespace_settings),
        )
        .route(
            "/management/v1/warehouses/{warehouse}/namespaces/{namespace}/tables/{table}/maintenance",
            get(maintenance::table_settings).post(maintenance::update_table_settings),
        )
        .route(
            "/management/v1/warehouses/{warehouse}/sql",
            post(handlers::sql::query),
        )
        .route("/management/v1/server", get(handlers::server::summary))
        .route("/management/v1/maintenance/jobs", get(maintenance::jobs))
        .route("/management/v1/scrub/findings", get(handlers::scrub::findings))
        .route("/management/v1/openapi.yaml", get(management_openapi))
        .route("/v1/oauth/tokens", post(auth::token::issue))
        .route(
            "/management/v1/principals",
            get(access::list_principals).post(access::create_principal_route),
        )
        .route(
            "/management/v1/principals/{principal}",
            axum::routing::delete(access::delete_principal),
        )
        .route(
            "/management/v1/principals/{principal}/rotate-secret",
            post(access::rotate_principal_secret),
        )
        .route(
            "/management/v1/roles",
            get(access::list_roles).post(access::create_role),
        )
        .route("/management/v1/roles/{role}", axum::routing::delete(access::delete_role))
        .route("/management/v1/roles/{role}/principals", post(access::assign_role))
        .route(
            "/management/v1/roles/{role}/principals/{principal}",
            axum::routing::delete(access::unassign_role),
        )
        .route(
            "/management/v1/grants",
            get(access::list_grants).post(access::grant),
        )
        .route("/management/v1/grants/revoke", post(access::revoke))
        .route("/management/v1/audit", get(access::audit))
        .route(
            "/v1/{prefix}/namespaces",
            get(namespaces::list).post(namespaces::create),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}",
            get(namespaces::load)
                .head(namespaces::exists)
                .delete(namespaces::drop),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/properties",
            post(namespaces::update_properties),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables",
            get(tables::list).post(tables::create),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables/{table}",
            get(tables::load)
                .head(tables::exists)
                .post(tables::commit)
                .delete(tables::drop),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
            post(tables::report_metrics),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials",
            get(delegation::vend::load_credentials),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/tables/{table}/sign",
            post(delegation::sign::sign),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/register",
            post(tables::register),
        )
        .route("/v1/{prefix}/tables/rename", post(tables::rename))
        .route(
            "/v1/{prefix}/transactions/commit",
            post(tables::commit_transaction),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/views",
            get(views::list).post(views::create),
        )
        .route(
            "/v1/{prefix}/namespaces/{namespace}/views/{view}",
            get(views::load)
                .head(views::exists)
                .post(views::replace)
                .delete(views::drop),
        )
        .route("/v1/{prefix}/views/rename", post(views::rename));
    // With a metrics port of its own, the main port does not serve it.
    let api = if state.config.metrics_port.is_none() {
        with_metrics_route(api)
    } else {
        api
    }
    .fallback(not_found)
    // After every route: it applies to the routes added so far.
    .method_not_allowed_fallback(method_not_allowed);

    // Layers wrap what was added before them: the request id is set first, then the request is
    // observed (access log, metrics) and traced; the auth middleware decides (and audits) before
    // an idempotency key can replay anything.
    let api = limits::inner_layers(api, &state.config)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ));
    let api = limits::outer_layers(
        api.layer(DefaultBodyLimit::max(state.config.max_request_bytes)),
        &state.config,
    );
    observed(api).with_state(state)
}

/// The router of `--metrics-port`: `/metrics` alone, behind the same auth and host check.
pub fn metrics_router(state: AppState) -> Router {
    let api = with_metrics_route(Router::new())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::middleware,
        ));
    observed(limits::outer_layers(api, &state.config)).with_state(state)
}

/// The one place `/metrics` is routed, for the main router or the metrics port's.
fn with_metrics_route(router: Router<AppState>) -> Router<AppState> {
    router.route("/metrics", get(metrics::scrape))
}

/// The outermost layers of either router: the request's id, then its access-log line and
/// metrics ([`telemetry`]), then its tracing span.
fn observed(router: Router<AppState>) -> Router<AppState> {
    router
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get(auth::REQUEST_ID)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "request",
                    id = %id,
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            }),
        )
        .layer(axum::middleware::from_fn(telemetry::observe))
        .layer(axum::middleware::from_fn(telemetry::request_id))
}

/// The OpenAPI description of Floe's own management API (warehouses, maintenance).
async fn management_openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        include_str!("../management-api.yaml"),
    )
}

async fn not_found(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::not_found(
        "NotFoundException",
        format!("no such endpoint: {}", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowedException",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Opens the metadata store (PostgreSQL if `config.metastore` names one, else the embedded SQLite
/// file) and the default warehouse that `config` names (`warehouse-url`, by default the data dir's
/// `warehouse/`), with [`floe_commit::open`] (which `floe sql` shares); warehouses registered in
/// the store are opened on first use.
pub async fn open_warehouses(config: &ServerConfig) -> Result<Warehouses, StartError> {
    let settings = CommitSettings {
        max_attempts: config.commit_max_attempts.max(1),
        metadata_cache_bytes: config.metadata_cache_bytes,
        ..CommitSettings::default()
    };
    let store = config.store_options();
    let options = floe_commit::open::OpenOptions {
        data_dir: config.data_dir.clone(),
        warehouse: config.warehouse.clone(),
        warehouse_url: config.warehouse_url.clone(),
        store: store.clone(),
        metastore: config.metastore.clone(),
        max_connections: config.metastore_max_connections,
        acquire_timeout: config.metastore_acquire_timeout(),
        statement_timeout: config.metastore_statement_timeout(),
        settings: settings.clone(),
        secret_key: None,
        secret_key_file: config.secret_key_file.clone(),
        previous_secret_key_files: config.previous_secret_key_files.clone(),
        seal_on_open: true,
    };
    let default = floe_commit::open::open(&options).await?;
    // After opening, which creates the data dir: the default root is resolved on disk.
    let roots = config.allowed_storage_roots()?;
    Ok(Warehouses::new(default, store.retry, settings).with_allowed_roots(roots))
}

/// Runs the server until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    floe_maintenance::policy::validate(&config.maintenance_defaults)
        .map_err(|err| format!("maintenance-defaults: {err}"))?;
    if let Some(other) = config
        .maintenance_defaults
        .keys()
        .find(|name| !name.starts_with(floe_maintenance::policy::PREFIX))
    {
        return Err(
            format!("maintenance-defaults: {other:?} is not a floe.maintenance.* setting").into(),
        );
    }
    config.auth.validate(config.host)?;
    let metrics = metrics::MetricsState {
        handle: metrics::install()?,
        token: config
            .metrics_token_file
            .as_deref()
            .map(metrics::MetricsToken::read)
            .transpose()?
            .map(Arc::new),
    };
    let warehouses = Arc::new(open_warehouses(&config).await?);
    let catalog = warehouses.default_catalog().clone();
    let (auth, auth_tasks) = auth::start(&config, catalog.store().clone()).await?;
    let address = SocketAddr::new(config.host, config.port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|err| format!("cannot listen on {address}: {err}"))?;
    let local = listener.local_addr().map_err(|err| err.to_string())?;
    let metrics_listener = match config.metrics_port {
        Some(port) => {
            let address = SocketAddr::new(config.host, port);
            let listener = TcpListener::bind(address)
                .await
                .map_err(|err| format!("cannot listen on {address} (metrics-port): {err}"))?;
            Some(listener)
        }
        None => None,
    };
    let expiry = tokio::spawn(expire_idempotency_keys(catalog.clone()));
    let heartbeat = heartbeat::start(catalog.store().clone(), heartbeat::this_replica(local)).await;
    let maintenance = config.maintenance.then(|| {
        let options = SchedulerOptions {
            interval: Duration::from_millis(config.maintenance_interval_ms),
            concurrency: config.maintenance_concurrency,
            default_warehouse_properties: config.maintenance_defaults.clone(),
            ..SchedulerOptions::default()
        };
        tokio::spawn(Arc::new(Scheduler::new(warehouses.clone(), options)).run())
    });
    let config = Arc::new(config);
    let state = AppState {
        warehouses,
        config: config.clone(),
        auth,
        metrics,
        delegation: Arc::new(delegation::DelegationState::new()?),
    };
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let metrics_server = match metrics_listener {
        Some(listener) => {
            let address = listener.local_addr().map_err(|err| err.to_string())?;
            tracing::info!(%address, "metrics listening");
            println!("floe metrics listening on {address}");
            let (router, config, shutdown) = (
                metrics_router(state.clone()),
                config.clone(),
                shutdown.clone(),
            );
            Some(tokio::spawn(async move {
                limits::serve(listener, router, &config, shutdown).await;
            }))
        }
        None => None,
    };
    tracing::info!(address = %local, warehouse = catalog.warehouse().root(), "floe catalog listening");
    // Tests and scripts wait for this exact line on stdout.
    println!("floe catalog listening on {local}");
    limits::serve(listener, router(state), &config, shutdown).await;
    if let Some(metrics_server) = metrics_server {
        // It stops on the same signal; its requests are short.
        let _ = metrics_server.await;
    }
    expiry.abort();
    heartbeat.abort();
    auth_tasks.stop().await;
    if let Some(maintenance) = maintenance {
        // A job cut short commits nothing half-way (a commit is one swap); files it wrote but did
        // not commit are unreferenced, and the next orphan removal collects them.
        maintenance.abort();
    }
    tracing::info!("floe catalog stopped");
    Ok(())
}

async fn expire_idempotency_keys(catalog: Arc<Catalog>) {
    let mut interval = tokio::time::interval(Duration::from_secs(300));
    loop {
        interval.tick().await;
        match catalog
            .store()
            .expire_idempotency_keys(idempotency::KEY_RETENTION)
            .await
        {
            Ok(0) => {}
            Ok(expired) => tracing::debug!(expired, "expired idempotency keys"),
            Err(err) => tracing::warn!(error = %err, "could not expire idempotency keys"),
        }
    }
}

/// Why the server could not start or keep serving: a message for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

impl From<String> for StartError {
    fn from(message: String) -> Self {
        Self(message)
    }
}
