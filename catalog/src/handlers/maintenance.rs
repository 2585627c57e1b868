//! Floe's management API for table maintenance (described in `catalog/management-api.yaml`,
//! served at `/management/v1/openapi.yaml`):
//!
//! - `GET  /management/v1/warehouses/{w}/namespaces/{ns}/tables/{t}/maintenance`: the table's
//!   effective settings, each with where it comes from (default, warehouse, namespace, table);
//! - `POST` on the same path `{"updates": {...}, "removals": [...]}`: sets or removes the table's
//!   `floe.maintenance.*` properties with an ordinary commit (so engines see them too);
//! - `GET`/`POST /management/v1/warehouses/{w}/namespaces/{ns}/maintenance`: the same for a
//!   namespace's defaults (namespace properties);
//! - `GET /management/v1/maintenance/jobs?warehouse=&namespace=&table=&kind=&limit=`: recorded
//!   job runs, newest first, each with the scrub findings its table has open now.
//!
//! Namespaces in paths are encoded as in the Iceberg REST API (levels joined by U+001F).

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use floe_commit::{Catalog, TableChange};
use floe_maintenance::policy::{self, PREFIX};
use floe_store::{JobFilter, JobRecord, Properties, TableName};
use iceberg::TableUpdate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::names::parse_namespace;

/// The longest job listing one request returns.
const MAX_JOBS: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsUpdate {
    #[serde(default)]
    updates: BTreeMap<String, String>,
    #[serde(default)]
    removals: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SettingsResponse {
    /// Every setting, by full property name, with its value and source.
    settings: BTreeMap<String, policy::Setting>,
}

pub async fn table_settings(
    State(state): State<AppState>,
    Path((warehouse, namespace, table)): Path<(String, String, String)>,
) -> ApiResult<Json<SettingsResponse>> {
    let catalog = state.catalog(&warehouse).await?;
    let table = TableName::new(parse_namespace(&namespace)?, table);
    Ok(Json(effective(&state, &catalog, &warehouse, &table).await?))
}

pub async fn update_table_settings(
    State(state): State<AppState>,
    Path((warehouse, namespace, table)): Path<(String, String, String)>,
    JsonBody(request): JsonBody<SettingsUpdate>,
) -> ApiResult<Json<SettingsResponse>> {
    let catalog = state.catalog(&warehouse).await?;
    let table = TableName::new(parse_namespace(&namespace)?, table);
    check_update(&request)?;
    let mut updates = Vec::new();
    if !request.removals.is_empty() {
        updates.push(TableUpdate::RemoveProperties {
            removals: request.removals.clone(),
        });
    }
    if !request.updates.is_empty() {
        updates.push(TableUpdate::SetProperties {
            updates: request.updates.clone().into_iter().collect(),
        });
    }
    // The settings as they would be, checked before anything is committed.
    let loaded = catalog.load_table(&table).await?;
    let mut after: Properties = loaded
        .metadata()
        .properties()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for removal in &request.removals {
        after.remove(removal);
    }
    after.extend(request.updates.clone());
    let namespace = catalog.load_namespace(&table.namespace).await?;
    let warehouse_properties = warehouse_properties(&state, &warehouse).await?;
    policy::resolve(&warehouse_properties, &namespace, &after).map_err(ApiError::bad_request)?;
    if !updates.is_empty() {
        catalog
            .commit_table(TableChange {
                table: table.clone(),
                requirements: Vec::new(),
                updates,
            })
            .await?;
    }
    Ok(Json(effective(&state, &catalog, &warehouse, &table).await?))
}

pub async fn namespace_settings(
    State(state): State<AppState>,
    Path((warehouse, namespace)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let catalog = state.catalog(&warehouse).await?;
    let namespace = parse_namespace(&namespace)?;
    let properties = catalog.load_namespace(&namespace).await?;
    Ok(Json(json!({ "settings": maintenance_only(&properties) })))
}

pub async fn update_namespace_settings(
    State(state): State<AppState>,
    Path((warehouse, namespace)): Path<(String, String)>,
    JsonBody(request): JsonBody<SettingsUpdate>,
) -> ApiResult<Json<Value>> {
    let catalog = state.catalog(&warehouse).await?;
    let namespace = parse_namespace(&namespace)?;
    check_update(&request)?;
    catalog
        .update_namespace_properties(&namespace, &request.removals, &request.updates)
        .await?;
    let properties = catalog.load_namespace(&namespace).await?;
    Ok(Json(json!({ "settings": maintenance_only(&properties) })))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobsResponse {
    jobs: Vec<JobJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct JobJson {
    id: String,
    warehouse: String,
    namespace: Vec<String>,
    table: String,
    kind: String,
    trigger: String,
    started_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at_ms: Option<i64>,
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    stats: BTreeMap<String, String>,
    /// The scrub findings the job's table has open now (not when the job ran).
    open_findings: u64,
}

impl From<JobRecord> for JobJson {
    fn from(job: JobRecord) -> Self {
        Self {
            id: job.id,
            warehouse: job.warehouse,
            namespace: job.table.namespace,
            table: job.table.name,
            kind: job.kind,
            trigger: job.trigger,
            started_at_ms: job.started_at_ms,
            finished_at_ms: job.finished_at_ms,
            outcome: job.outcome,
            error: job.error,
            stats: job.stats,
            open_findings: 0,
        }
    }
}

/// The `namespace` and `table` query parameters of the listing routes: both or neither.
pub(crate) fn table_filter(query: &QueryParams) -> ApiResult<Option<TableName>> {
    match (query.get("namespace"), query.get("table")) {
        (Some(namespace), Some(table)) => Ok(Some(TableName::new(
            parse_namespace(namespace)?,
            table.to_string(),
        ))),
        (None, None) => Ok(None),
        _ => Err(ApiError::bad_request(
            "namespace and table are given together or not at all",
        )),
    }
}

/// The `limit` query parameter of the listing routes: 1 to `max`, 100 when absent.
pub(crate) fn limit_param(query: &QueryParams, max: usize) -> ApiResult<usize> {
    match query.get("limit") {
        None => Ok(100.min(max)),
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=max).contains(limit))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit is a number from 1 to {max}, not {raw:?}"))
            }),
    }
}

pub async fn jobs(
    State(state): State<AppState>,
    query: QueryParams,
) -> ApiResult<Json<JobsResponse>> {
    let table = table_filter(&query)?;
    let limit = limit_param(&query, MAX_JOBS)?;
    let filter = JobFilter {
        warehouse: query.get("warehouse").map(str::to_string),
        table,
        kind: query.get("kind").map(str::to_string),
    };
    let store = state.default_catalog().store();
    let jobs = store
        .list_jobs(&filter, limit)
        .await
        .map_err(floe_commit::CommitError::from)?;
    // One grouped query for every table's count, not one per job.
    let open: HashMap<(String, TableName), u64> = store
        .scrub()
        .open_finding_counts(filter.warehouse.as_deref())
        .await
        .map_err(floe_commit::CommitError::from)?
        .into_iter()
        .map(|count| ((count.warehouse, count.table), count.open))
        .collect();
    Ok(Json(JobsResponse {
        jobs: jobs
            .into_iter()
            .map(|job| {
                let open_findings = open
                    .get(&(job.warehouse.clone(), job.table.clone()))
                    .copied()
                    .unwrap_or(0);
                JobJson {
                    open_findings,
                    ..JobJson::from(job)
                }
            })
            .collect(),
    }))
}

/// Only maintenance settings, each known and valid, may be changed here.
fn check_update(request: &SettingsUpdate) -> ApiResult<()> {
    let names = request.updates.keys().chain(&request.removals);
    if let Some(other) = names.into_iter().find(|name| !name.starts_with(PREFIX)) {
        return Err(ApiError::bad_request(format!(
            "{other:?} is not a maintenance setting (they start with {PREFIX:?}); set other \
             properties through the Iceberg REST API"
        )));
    }
    policy::validate(&request.updates).map_err(ApiError::bad_request)?;
    let removals: BTreeMap<String, String> = request
        .removals
        .iter()
        .map(|name| (name.clone(), String::new()))
        .collect();
    // Removing is allowed for known names only, so that a typo is not a silent no-op.
    if let Some(unknown) = removals.keys().find(|name| {
        !policy::KEYS
            .iter()
            .any(|(key, _)| name.strip_prefix(PREFIX) == Some(key))
    }) {
        return Err(ApiError::bad_request(format!(
            "unknown maintenance setting {unknown:?}"
        )));
    }
    Ok(())
}

async fn effective(
    state: &AppState,
    catalog: &Catalog,
    warehouse: &str,
    table: &TableName,
) -> ApiResult<SettingsResponse> {
    let loaded = catalog.load_table(table).await?;
    let properties: Properties = loaded
        .metadata()
        .properties()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let namespace = catalog.load_namespace(&table.namespace).await?;
    let warehouse_properties = warehouse_properties(state, warehouse).await?;
    let resolved = policy::resolve(&warehouse_properties, &namespace, &properties)
        .map_err(ApiError::bad_request)?;
    Ok(SettingsResponse {
        settings: resolved
            .settings
            .into_iter()
            .map(|(key, setting)| (format!("{PREFIX}{key}"), setting))
            .collect(),
    })
}

async fn warehouse_properties(state: &AppState, warehouse: &str) -> ApiResult<Properties> {
    if warehouse == state.warehouses.default_name() {
        return Ok(state.config.maintenance_defaults.clone());
    }
    let store = state.default_catalog().store();
    Ok(store
        .load_warehouse(warehouse)
        .await
        .map_err(floe_commit::CommitError::from)?
        .properties)
}

fn maintenance_only(properties: &Properties) -> BTreeMap<String, String> {
    properties
        .iter()
        .filter(|(name, _)| name.starts_with(PREFIX))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}
