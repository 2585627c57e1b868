use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;

use crate::AppState;
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
    "POST /v1/{prefix}/tables/rename",
    "POST /v1/{prefix}/transactions/commit",
];

pub async fn get_config(State(state): State<AppState>, query: QueryParams) -> Json<CatalogConfig> {
    // One warehouse for now; whatever `warehouse` a client names, it gets this one's prefix.
    if let Some(requested) = query.get("warehouse") {
        tracing::debug!(requested, "client asked for a warehouse");
    }
    let mut overrides = BTreeMap::new();
    overrides.insert(
        "prefix".to_string(),
        state.catalog.warehouse().name().to_string(),
    );
    // Where this warehouse keeps its tables; clients use it for display and defaults only, since
    // every table's location comes from the server.
    overrides.insert(
        "warehouse".to_string(),
        state.catalog.warehouse().root().to_string(),
    );
    Json(CatalogConfig {
        defaults: BTreeMap::new(),
        overrides,
        endpoints: ENDPOINTS.to_vec(),
        idempotency_key_lifetime: crate::idempotency::KEY_LIFETIME_ISO,
    })
}
