use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use floe_commit::{Catalog, CreateTable, LoadedTable, TableChange};
use floe_store::TableName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::auth::Caller;
use crate::delegation::{self, DelegatedAccess, TableRef};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, QueryParams};
use crate::names::parse_namespace;
use crate::types::{
    CommitTableRequest, CommitTransactionRequest, CreateTableRequest, ListTablesResponse,
    RegisterTableRequest, RenameTableRequest,
};
use floe_auth::{Privilege, Securable};

type TablePath = Path<(String, String, String)>;

/// The catalog of the route's warehouse and the table's name.
async fn table_name(
    state: &AppState,
    (prefix, namespace, table): (String, String, String),
) -> ApiResult<(Arc<Catalog>, TableName)> {
    let catalog = state.catalog(&prefix).await?;
    Ok((catalog, TableName::new(parse_namespace(&namespace)?, table)))
}

/// Which snapshots a loadTable response carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SnapshotsMode {
    All,
    /// Only snapshots that a branch or tag points at: small responses for tables with long history.
    Refs,
}

impl SnapshotsMode {
    fn from_query(query: &QueryParams) -> ApiResult<Self> {
        match query.get("snapshots") {
            None | Some("all") => Ok(Self::All),
            Some("refs") => Ok(Self::Refs),
            Some(other) => Err(ApiError::bad_request(format!(
                "snapshots must be \"all\" or \"refs\", not {other:?}"
            ))),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Refs => "refs",
        }
    }
}

/// The spec's LoadTableResult (with a `config`: what the client needs to reach the table's files,
/// from [`crate::delegation::table_config`]) or CommitTableResponse (`config` = `None`),
/// built around the metadata file's own bytes: re-serializing a long history on every load would
/// dominate its cost.
fn table_body(
    table: &LoadedTable,
    mode: SnapshotsMode,
    access: Option<&DelegatedAccess>,
) -> ApiResult<Vec<u8>> {
    let metadata = match mode {
        SnapshotsMode::All => table.file.json(),
        SnapshotsMode::Refs => table.file.refs_only_json()?,
    };
    let mut body = Vec::with_capacity(metadata.len() + 256);
    body.push(b'{');
    if let Some(location) = &table.metadata_location {
        body.extend_from_slice(br#""metadata-location":"#);
        body.extend_from_slice(json!(location).to_string().as_bytes());
        body.push(b',');
    }
    if let Some(access) = access {
        body.extend_from_slice(br#""config":"#);
        body.extend_from_slice(json!(access.config).to_string().as_bytes());
        body.push(b',');
        if !access.storage_credentials.is_empty() {
            body.extend_from_slice(br#""storage-credentials":"#);
            body.extend_from_slice(json!(access.storage_credentials).to_string().as_bytes());
            body.push(b',');
        }
    }
    body.extend_from_slice(br#""metadata":"#);
    body.extend_from_slice(metadata);
    body.push(b'}');
    Ok(body)
}

/// Distinct per metadata file and per snapshots mode, as the spec asks.
fn etag(metadata_location: &str, mode: SnapshotsMode) -> String {
    let digest = Sha256::digest(format!("{metadata_location}\n{}", mode.as_str()).as_bytes());
    format!("\"{}\"", &hex::encode(digest)[..32])
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// What a table response tells the client about reaching the table's files: the warehouse's
/// settings for clients (empty for local warehouses) and whatever delegated access the caller gets.
async fn client_access(
    state: &AppState,
    catalog: &Catalog,
    caller: &Caller,
    headers: &HeaderMap,
    prefix: &str,
    table: &LoadedTable,
) -> ApiResult<DelegatedAccess> {
    delegation::table_access(
        &state.delegation,
        catalog,
        caller,
        headers,
        &TableRef {
            prefix,
            name: &table.name,
            location: table.metadata().location(),
            committed: table.metadata_location.is_some(),
        },
    )
    .await
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn with_etag(body: Vec<u8>, etag: &str) -> Response {
    let mut response = json_response(body);
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
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
        .list_tables(&namespace, &query.page(state.config.max_page_size)?)
        .await?;
    page.items.retain(|name| {
        caller.may(
            Privilege::Read,
            &Securable::Table {
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
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreateTableRequest>,
) -> ApiResult<Response> {
    let catalog = state.catalog(&prefix).await?;
    let name = TableName::new(parse_namespace(&namespace)?, request.name);
    let table = catalog
        .create_table(CreateTable {
            name,
            location: request.location,
            schema: request.schema,
            partition_spec: request.partition_spec,
            sort_order: request.write_order,
            properties: request.properties,
            stage: request.stage_create,
        })
        .await?;
    let access = client_access(&state, &catalog, &caller, &headers, &prefix, &table).await?;
    let body = table_body(&table, SnapshotsMode::All, Some(&access))?;
    Ok(match &table.metadata_location {
        Some(location) => with_etag(body, &etag(location, SnapshotsMode::All)),
        None => json_response(body),
    })
}

pub async fn load(
    State(state): State<AppState>,
    path: TablePath,
    query: QueryParams,
    caller: Caller,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let prefix = path.0.0.clone();
    let (catalog, name) = table_name(&state, path.0).await?;
    let mode = SnapshotsMode::from_query(&query)?;
    let table = catalog.load_table(&name).await?;
    let location = table.metadata_location.as_deref().unwrap_or_default();
    let tag = etag(location, mode);
    if if_none_match(&headers, &tag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(value) = HeaderValue::from_str(&tag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        return Ok(response);
    }
    let access = client_access(&state, &catalog, &caller, &headers, &prefix, &table).await?;
    Ok(with_etag(table_body(&table, mode, Some(&access))?, &tag))
}

pub async fn exists(State(state): State<AppState>, path: TablePath) -> ApiResult<StatusCode> {
    let (catalog, name) = table_name(&state, path.0).await?;
    catalog.table_pointer(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn commit(
    State(state): State<AppState>,
    path: TablePath,
    JsonBody(request): JsonBody<CommitTableRequest>,
) -> ApiResult<Response> {
    let (catalog, name) = table_name(&state, path.0).await?;
    if let Some(identifier) = &request.identifier
        && (identifier.namespace != name.namespace || identifier.name != name.name)
    {
        return Err(ApiError::bad_request(format!(
            "the body's identifier {}.{} does not match the URL's table {name}",
            identifier.namespace.join("."),
            identifier.name
        )));
    }
    let table = catalog
        .commit_table(TableChange {
            table: name,
            requirements: request.requirements,
            updates: request.updates,
        })
        .await?;
    let location = table.metadata_location.clone().unwrap_or_default();
    Ok(with_etag(
        table_body(&table, SnapshotsMode::All, None)?,
        &etag(&location, SnapshotsMode::All),
    ))
}

pub async fn drop(
    State(state): State<AppState>,
    path: TablePath,
    query: QueryParams,
) -> ApiResult<StatusCode> {
    let (catalog, name) = table_name(&state, path.0).await?;
    let purge = query.flag("purgeRequested")?;
    catalog.drop_table(&name, purge).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn register(
    State(state): State<AppState>,
    Path((prefix, namespace)): Path<(String, String)>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(request): JsonBody<RegisterTableRequest>,
) -> ApiResult<Response> {
    let catalog = state.catalog(&prefix).await?;
    let name = TableName::new(parse_namespace(&namespace)?, request.name);
    let table = catalog
        .register_table(&name, &request.metadata_location, request.overwrite)
        .await?;
    let tag = etag(&request.metadata_location, SnapshotsMode::All);
    let access = client_access(&state, &catalog, &caller, &headers, &prefix, &table).await?;
    Ok(with_etag(
        table_body(&table, SnapshotsMode::All, Some(&access))?,
        &tag,
    ))
}

pub async fn rename(
    State(state): State<AppState>,
    Path(prefix): Path<String>,
    JsonBody(request): JsonBody<RenameTableRequest>,
) -> ApiResult<StatusCode> {
    let catalog = state.catalog(&prefix).await?;
    let from = TableName::new(request.source.namespace, request.source.name);
    let to = TableName::new(request.destination.namespace, request.destination.name);
    catalog.rename_table(&from, &to).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn commit_transaction(
    State(state): State<AppState>,
    Path(prefix): Path<String>,
    JsonBody(request): JsonBody<CommitTransactionRequest>,
) -> ApiResult<StatusCode> {
    let catalog = state.catalog(&prefix).await?;
    let changes = request
        .table_changes
        .into_iter()
        .map(|change| {
            let identifier = change.identifier.ok_or_else(|| {
                ApiError::bad_request("every table change of a transaction needs an identifier")
            })?;
            Ok(TableChange {
                table: TableName::new(identifier.namespace, identifier.name),
                requirements: change.requirements,
                updates: change.updates,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    catalog.commit(changes).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clients report scan and commit metrics here; Floe logs one line per report (table and report
/// type), never the report itself: it carries filter expressions and column statistics, which
/// may hold data values.
pub async fn report_metrics(
    State(state): State<AppState>,
    path: TablePath,
    JsonBody(report): JsonBody<Value>,
) -> ApiResult<StatusCode> {
    // The warehouse must exist; the table need not (a report may follow a drop).
    let (_, name) = table_name(&state, path.0).await?;
    let kind = report
        .get("report-type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    // The type as far as the spec knows it; anything else a client sends stays out of the log.
    let kind = match kind {
        "scan-report" | "commit-report" => kind,
        _ => "other",
    };
    tracing::info!(table = %name, report_type = kind, "client metrics report");
    Ok(StatusCode::NO_CONTENT)
}
