//! The spec's view endpoints: list, create, load, exists, replace, drop, rename. The commit engine
//! (`floe_commit::views`) does the work; these parse and respond.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use floe_commit::{Catalog, CreateView, LoadedView, ViewChange};
use floe_store::ViewName;
use serde_json::json;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::names::parse_namespace;
use crate::types::{CommitViewRequest, CreateViewRequest, ListTablesResponse, RenameTableRequest};
use floe_auth::{Privilege, Securable};

type ViewPath = Path<(String, String, String)>;

/// The catalog of the route's warehouse and the view's name.
async fn view_name(
    state: &AppState,
    (prefix, namespace, view): (String, String, String),
) -> ApiResult<(Arc<Catalog>, ViewName)> {
    let catalog = state.catalog(&prefix).await?;
    Ok((catalog, ViewName::new(parse_namespace(&namespace)?, view)))
}

/// The spec's LoadViewResult, with what the client needs to reach the warehouse's files, built
/// around the metadata file's own bytes (as loadTable's responses are).
fn view_result(catalog: &Catalog, view: &LoadedView) -> Response {
    let config = json!(catalog.warehouse().client_config()).to_string();
    let mut body = Vec::with_capacity(view.json.len() + config.len() + 256);
    body.extend_from_slice(br#"{"metadata-location":"#);
    body.extend_from_slice(json!(view.metadata_location).to_string().as_bytes());
    body.extend_from_slice(br#","config":"#);
    body.extend_from_slice(config.as_bytes());
    body.extend_from_slice(br#","metadata":"#);
    body.extend_from_slice(&view.json);
    body.push(b'}');
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub async fn list(
    State(state): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
    query: QueryParams,
    caller: Caller,
) -> ApiResult<Json<ListTablesResponse>> {
    let catalog = state.catalog(&prefix).await?;
    let namespace = parse_namespace(&namespace)?;
    let mut page = catalog
        .list_views(&namespace, &query.page(state.config.max_page_size)?)
        .await?;
    page.items.retain(|name| {
        caller.may(
            Privilege::Read,
            &Securable::View {
                warehouse: prefix.clone(),
                namespace: namespace.clone(),
                name: name.clone(),
            },
        )
    });
    Ok(Json(ListTablesResponse::of(&namespace, page)))
}

pub async fn create(
    State(state): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
    JsonBody(request): JsonBody<CreateViewRequest>,
) -> ApiResult<Response> {
    let catalog = state.catalog(&prefix).await?;
    let name = ViewName::new(parse_namespace(&namespace)?, request.name);
    let view = catalog
        .create_view(CreateView {
            name,
            location: request.location,
            schema: request.schema,
            view_version: request.view_version,
            properties: request.properties,
        })
        .await?;
    Ok(view_result(&catalog, &view))
}

pub async fn load(State(state): State<AppState>, path: ViewPath) -> ApiResult<Response> {
    let (catalog, name) = view_name(&state, path.0).await?;
    let view = catalog.load_view(&name).await?;
    Ok(view_result(&catalog, &view))
}

pub async fn exists(State(state): State<AppState>, path: ViewPath) -> ApiResult<StatusCode> {
    let (catalog, name) = view_name(&state, path.0).await?;
    catalog.view_pointer(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn replace(
    State(state): State<AppState>,
    path: ViewPath,
    JsonBody(request): JsonBody<CommitViewRequest>,
) -> ApiResult<Response> {
    let (catalog, name) = view_name(&state, path.0).await?;
    if let Some(identifier) = &request.identifier
        && (identifier.namespace != name.namespace || identifier.name != name.name)
    {
        return Err(ApiError::bad_request(format!(
            "the body's identifier {}.{} does not match the URL's view {name}",
            identifier.namespace.join("."),
            identifier.name
        )));
    }
    let view = catalog
        .commit_view(ViewChange {
            view: name,
            requirements: request.requirements,
            updates: request.updates,
        })
        .await?;
    Ok(view_result(&catalog, &view))
}

pub async fn drop(State(state): State<AppState>, path: ViewPath) -> ApiResult<StatusCode> {
    let (catalog, name) = view_name(&state, path.0).await?;
    catalog.drop_view(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rename(
    State(state): State<AppState>,
    Path(prefix): Path<String>,
    JsonBody(request): JsonBody<RenameTableRequest>,
) -> ApiResult<StatusCode> {
    let catalog = state.catalog(&prefix).await?;
    let from = ViewName::new(request.source.namespace, request.source.name);
    let to = ViewName::new(request.destination.namespace, request.destination.name);
    catalog.rename_view(&from, &to).await?;
    Ok(StatusCode::NO_CONTENT)
}
