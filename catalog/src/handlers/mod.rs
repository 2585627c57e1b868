//! HTTP handlers: each one parses, calls the catalog, and maps the result. No SQL, no paths here.

pub mod config;
pub mod health;
pub mod namespaces;
pub mod tables;

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Every route carries the warehouse prefix from `/v1/config`; an unknown one is a 404.
pub(crate) fn check_prefix(state: &AppState, prefix: &str) -> ApiResult<()> {
    if prefix == state.catalog.warehouse().name() {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "NoSuchWarehouseException",
            format!("warehouse {prefix:?} does not exist"),
        ))
    }
}
