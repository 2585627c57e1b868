//! Floe's management API for warehouses, beside the Iceberg REST API (which has none):
//!
//! - `GET /management/v1/warehouses`: every warehouse, the default first;
//! - `POST /management/v1/warehouses` `{"name", "storage-url", "properties"}`: registers one after
//!   reaching its storage once (400 with the reason if it lies outside the server's allowed
//!   storage roots or cannot be used, 409 if the name is taken);
//! - `GET /management/v1/warehouses/{name}`: one (404 `NoSuchWarehouseException`);
//! - `DELETE /management/v1/warehouses/{name}`: unregisters an empty one (409 while it has
//!   namespaces; the default warehouse cannot be dropped).
//!
//! Secret settings (`s3.secret-access-key`, `s3.session-token`) are stored but always shown as
//! `***`. The API has no authentication of its own yet: expose it only where the REST API may be.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use floe_commit::{NewWarehouse, WarehouseInfo};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path};
use crate::types::{CreateWarehouseRequest, ListWarehousesResponse, WarehouseResponse};

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<ListWarehousesResponse>> {
    let warehouses = state.warehouses.list().await?;
    Ok(Json(ListWarehousesResponse {
        warehouses: warehouses.into_iter().map(response).collect(),
    }))
}

pub async fn create(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateWarehouseRequest>,
) -> ApiResult<(StatusCode, Json<WarehouseResponse>)> {
    // Maintenance defaults may ride along with the storage settings; check them here, where
    // both layers are known.
    floe_maintenance::policy::validate(&request.properties).map_err(ApiError::bad_request)?;
    let created = state
        .warehouses
        .create(NewWarehouse {
            name: request.name,
            storage_url: request.storage_url,
            properties: request.properties,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(response(created))))
}

pub async fn load(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<WarehouseResponse>> {
    Ok(Json(response(state.warehouses.describe(&name).await?)))
}

pub async fn drop(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    state.warehouses.drop_warehouse(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn response(info: WarehouseInfo) -> WarehouseResponse {
    WarehouseResponse {
        prefix: info.name.clone(),
        name: info.name,
        storage_url: info.storage_url,
        properties: info.properties,
        default: info.default,
        created_at_ms: info.created_at_ms,
    }
}
