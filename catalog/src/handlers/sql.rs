//! Read-only SQL over a warehouse's tables (described in `catalog/management-api.yaml`):
//!
//! - `POST /management/v1/warehouses/{warehouse}/sql` `{"sql": "...", "max-rows": 1000}`: runs one
//!   query through floe-sql ([`floe_sql::read_only`]: anything but a query is a 400) and returns
//!   `{"columns": [{"name", "type"}], "rows": [[text or null, ...]], "truncated": bool}`.
//!
//! Time travel works as in `floe sql` (`t FOR VERSION AS OF ...`, `"t$snapshots"`). The auth
//! middleware has already checked `read` on every table the query reads (rule `SqlQuery`), from
//! the same text this handler runs. A query runs at most [`QUERY_TIMEOUT`] (and within the
//! server's request timeout), holds at most [`QUERY_MEMORY_BYTES`] in its sorts, joins and
//! aggregations, and returns at most [`MAX_ROWS`] rows.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use floe_sql::{EmbeddedCatalog, Session};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path};

/// The most rows one query returns; more are cut off and `truncated` says so.
pub const MAX_ROWS: usize = 10_000;
const DEFAULT_ROWS: usize = 1_000;
/// The longest a query runs before it is stopped.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);
/// What one query's sorts, joins and aggregations may hold in memory.
pub const QUERY_MEMORY_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QueryRequest {
    sql: String,
    max_rows: Option<usize>,
}

pub async fn query(
    State(state): State<AppState>,
    Path(warehouse): Path<String>,
    JsonBody(request): JsonBody<QueryRequest>,
) -> ApiResult<Json<Value>> {
    let max_rows = match request.max_rows {
        None => DEFAULT_ROWS,
        Some(rows) if (1..=MAX_ROWS).contains(&rows) => rows,
        Some(rows) => {
            return Err(ApiError::bad_request(format!(
                "max-rows is a number from 1 to {MAX_ROWS}, not {rows}"
            )));
        }
    };
    let query = floe_sql::read_only::read_only(&request.sql).map_err(sql_error)?;
    let catalog = state.catalog(&warehouse).await?;
    let session =
        Session::with_memory_limit(Arc::new(EmbeddedCatalog::new(catalog)), QUERY_MEMORY_BYTES)
            .map_err(sql_error)?;
    let rows = tokio::time::timeout(QUERY_TIMEOUT, session.query(&query, max_rows))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                format!(
                    "the query did not finish within {} s and was stopped",
                    QUERY_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(sql_error)?;
    Ok(Json(json!({
        "columns": rows.columns.iter().map(|column| json!({
            "name": column.name,
            "type": column.data_type,
        })).collect::<Vec<_>>(),
        "rows": rows.rows,
        "truncated": rows.truncated,
    })))
}

/// A statement that cannot run is the caller's to fix: its message says why.
pub fn sql_error(err: floe_sql::SqlError) -> ApiError {
    ApiError::bad_request(err.to_string())
}
