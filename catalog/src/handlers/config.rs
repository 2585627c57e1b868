use std::collections::BTreeMap;

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use floe_commit::Catalog;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::types::CatalogConfig;

/// Exactly the operations this server implements, in the spec's notation.
pub const ENDPOINTS: &[&str] = &[
    "GET /v1/{prefix}/namespaces",
    "POST /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "DELETE /v1/{prefix}/namespaces/{namespace}",
    "POST /v1/{prefix}/namespaces/{namespace}/properties",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "POST /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "POST /v1/{prefix}/namespaces/{namespace}/register",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/metrics",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials",
    "POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/sign",
    "POST /v1/{prefix}/tables/rename",
    "POST /v1/{prefix}/transactions/commit",
    "GET /v1/{prefix}/namespaces/{namespace}/views",
    "POST /v1/{prefix}/namespaces/{namespace}/views",
    "GET /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "DELETE /v1/{prefix}/namespaces/{namespace}/views/{view}",
    "POST /v1/{prefix}/views/rename",
];

/// The configuration of the warehouse a client asks for with `?warehouse=`: by name (the prefix)
/// or by storage URL; the default warehouse when it asks for none.
pub async fn get_config(
    State(state): State<AppState>,
    query: QueryParams,
) -> ApiResult<Json<CatalogConfig>> {
    let catalog = match query.get("warehouse").filter(|name| !name.is_empty()) {
        None => state.default_catalog().clone(),
        Some(requested) => find_warehouse(&state, requested).await?,
    };
    let mut overrides = BTreeMap::new();
    overrides.insert("prefix".to_string(), catalog.warehouse().name().to_string());
    // Where this warehouse keeps its tables; clients use it for display and defaults only, since
    // every table's location comes from the server.
    overrides.insert(
        "warehouse".to_string(),
        catalog.warehouse().root().to_string(),
    );
    Ok(Json(CatalogConfig {
        defaults: BTreeMap::new(),
        overrides,
        endpoints: ENDPOINTS.to_vec(),
        idempotency_key_lifetime: crate::idempotency::KEY_LIFETIME_ISO,
    }))
}

async fn find_warehouse(state: &AppState, requested: &str) -> ApiResult<Arc<Catalog>> {
    match state.catalog(requested).await {
        Err(err) if err.status == StatusCode::NOT_FOUND => {}
        found => return found,
    }
    // Engines configured with a storage URL as their warehouse (`s3://bucket/lake`) find it too.
    let warehouses = state.warehouses.list().await?;
    let wanted = requested.trim_end_matches('/');
    match warehouses
        .iter()
        .find(|warehouse| warehouse.storage_url.trim_end_matches('/') == wanted)
    {
        Some(warehouse) => state.catalog(&warehouse.name).await,
        None => Err(ApiError::not_found(
            "NoSuchWarehouseException",
            format!(
                "warehouse {requested:?} does not exist; this server has: {}",
                warehouses
                    .iter()
                    .map(|warehouse| warehouse.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}
