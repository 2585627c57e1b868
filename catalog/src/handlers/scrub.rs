//! Floe's management API for the scrubber's findings (described in `catalog/management-api.yaml`):
//!
//! - `GET /management/v1/scrub/findings?warehouse=&namespace=&table=&open=&since=&limit=`: the
//!   recorded findings, most recently found first; `open=true` for open ones only, `since` a Unix
//!   time in milliseconds (found at or after it).
//!
//! Findings name files of any table, so the route needs `maintain` on the whole server (which
//! `admin` implies), as docs/security.md says.

use axum::Json;
use axum::extract::State;
use floe_store::{FindingFilter, ScrubFinding};
use serde::Serialize;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;

/// The longest listing one request returns.
const MAX_FINDINGS: usize = 1000;

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FindingsResponse {
    findings: Vec<FindingJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct FindingJson {
    id: String,
    warehouse: String,
    namespace: Vec<String>,
    table: String,
    file: String,
    kind: String,
    detail: String,
    snapshots: Vec<i64>,
    found_at_ms: i64,
    last_seen_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at_ms: Option<i64>,
    open: bool,
}

impl From<ScrubFinding> for FindingJson {
    fn from(finding: ScrubFinding) -> Self {
        Self {
            open: finding.is_open(),
            id: finding.id,
            warehouse: finding.warehouse,
            namespace: finding.table.namespace,
            table: finding.table.name,
            file: finding.file,
            kind: finding.kind.to_string(),
            detail: finding.detail,
            snapshots: finding.snapshots,
            found_at_ms: finding.found_at_ms,
            last_seen_ms: finding.last_seen_ms,
            resolved_at_ms: finding.resolved_at_ms,
        }
    }
}

pub async fn findings(
    State(state): State<AppState>,
    query: QueryParams,
) -> ApiResult<Json<FindingsResponse>> {
    let table = super::maintenance::table_filter(&query)?;
    let limit = super::maintenance::limit_param(&query, MAX_FINDINGS)?;
    let since_ms = query
        .get("since")
        .map(|raw| {
            raw.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("since is a time in Unix milliseconds, not {raw:?}"))
            })
        })
        .transpose()?;
    let filter = FindingFilter {
        warehouse: query.get("warehouse").map(str::to_string),
        table,
        open_only: query.flag("open")?,
        since_ms,
    };
    let findings = state
        .default_catalog()
        .store()
        .scrub()
        .list_findings(&filter, limit)
        .await
        .map_err(floe_commit::CommitError::from)?;
    Ok(Json(FindingsResponse {
        findings: findings.into_iter().map(FindingJson::from).collect(),
    }))
}
