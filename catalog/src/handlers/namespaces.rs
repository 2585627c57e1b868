use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::names::parse_namespace;
use crate::types::{
    CreateNamespaceRequest, ListNamespacesResponse, NamespaceResponse,
    UpdateNamespacePropertiesRequest, UpdateNamespacePropertiesResponse,
};
use floe_auth::Securable;

pub async fn list(
    State(state): State<AppState>,
    Path(prefix): Path<String>,
    query: QueryParams,
    caller: Caller,
) -> ApiResult<Json<ListNamespacesResponse>> {
    let catalog = state.catalog(&prefix).await?;
    let parent = query.get("parent").map(parse_namespace).transpose()?;
    let mut page = catalog
        .list_namespaces(parent.as_deref(), &query.page(state.config.max_page_size)?)
        .await?;
    page.items.retain(|namespace| {
        caller.can_see(&Securable::Namespace {
            warehouse: prefix.clone(),
            namespace: namespace.clone(),
        })
    });
    Ok(Json(ListNamespacesResponse {
        namespaces: page.items,
        next_page_token: page.next_page_token,
    }))
}

pub async fn create(
    State(state): State<AppState>,
    Path(prefix): Path<String>,
    JsonBody(request): JsonBody<CreateNamespaceRequest>,
) -> ApiResult<Json<NamespaceResponse>> {
    let catalog = state.catalog(&prefix).await?;
    if request.namespace.iter().any(|level| level.is_empty()) || request.namespace.is_empty() {
        return Err(ApiError::bad_request("namespace levels must not be empty"));
    }
    catalog
        .create_namespace(&request.namespace, &request.properties)
        .await?;
    Ok(Json(NamespaceResponse {
        namespace: request.namespace,
        properties: request.properties,
    }))
}

pub async fn load(
    State(state): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
) -> ApiResult<Json<NamespaceResponse>> {
    let catalog = state.catalog(&prefix).await?;
    let namespace = parse_namespace(&namespace)?;
    let properties = catalog.load_namespace(&namespace).await?;
    Ok(Json(NamespaceResponse {
        namespace,
        properties,
    }))
}

pub async fn exists(
    State(state): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let catalog = state.catalog(&prefix).await?;
    let namespace = parse_namespace(&namespace)?;
    catalog.load_namespace(&namespace).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn drop(
    State(state): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let catalog = state.catalog(&prefix).await?;
    let namespace = parse_namespace(&namespace)?;
    catalog.drop_namespace(&namespace).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn update_properties(
    State(state): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
    JsonBody(request): JsonBody<UpdateNamespacePropertiesRequest>,
) -> ApiResult<Json<UpdateNamespacePropertiesResponse>> {
    let catalog = state.catalog(&prefix).await?;
    let namespace = parse_namespace(&namespace)?;
    let change = catalog
        .update_namespace_properties(&namespace, &request.removals, &request.updates)
        .await?;
    Ok(Json(UpdateNamespacePropertiesResponse {
        updated: change.updated,
        removed: change.removed,
        missing: change.missing,
    }))
}
