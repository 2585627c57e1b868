//! The management API for principals, roles, grants and the audit log
//! (`/management/v1/principals`, `/roles`, `/grants`, `/audit`; catalog/management-api.yaml).
//!
//! The `floe principal / role / grant / revoke / audit` commands do the same on a data dir's
//! store directly; both go through `floe_auth::principals` and the store, so the checks match.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use floe_auth::principals::{create_principal, rotate_secret, validate_principal_name};
use floe_auth::{ADMIN_ROLE, Privilege, Securable, format_securable, parse_securable};
use floe_store::{AccessStore, AuditFilter, GrantRecord, RoleAssignment};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path, QueryParams};

fn access(state: &AppState) -> &dyn AccessStore {
    state.default_catalog().store().access()
}

fn auth_error(err: floe_auth::AuthError) -> ApiError {
    match err {
        floe_auth::AuthError::Store(err) => floe_commit::CommitError::from(err).into(),
        floe_auth::AuthError::InvalidRequest(message) => ApiError::bad_request(message),
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            other.to_string(),
        ),
    }
}

fn store_error(err: floe_store::StoreError) -> ApiError {
    floe_commit::CommitError::from(err).into()
}

/// Makes a change to the grants count on this replica at once (every other one picks it up within
/// a second): a client that grants and then calls must not see the old policy here.
async fn refresh_policy(state: &AppState) {
    if let Err(err) = state.auth.authorizer.refresh().await {
        tracing::warn!(error = %err, "could not re-read the grants after changing them");
    }
}

/// Through the API, the server never loses its last way in: the `admin` role, its `admin` grant
/// on the server and its last member stay. (The operator can still change them with the CLI on
/// the data dir.) A best-effort guard: two administrators removing each other at the same
/// instant can both succeed.
fn keeps_an_administrator(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "ConflictException",
        format!(
            "{}: the server would be left without an administrator (the CLI on the data dir can \
             still do it: floe role / floe revoke)",
            message.into()
        ),
    )
}

async fn is_last_admin(state: &AppState, principal: &str) -> ApiResult<bool> {
    let policy = access(state).load_policy().await.map_err(store_error)?;
    let admins: Vec<&str> = policy
        .assignments
        .iter()
        .filter(|a| a.role == ADMIN_ROLE)
        .map(|a| a.principal.as_str())
        .collect();
    Ok(admins == [principal])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPrincipal {
    name: String,
}

/// Creates a principal; the response is the only place its secret is ever shown.
pub async fn create_principal_route(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<NewPrincipal>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let credential = create_principal(access(&state), &request.name)
        .await
        .map_err(auth_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "name": credential.principal,
            "client-id": credential.client_id,
            "client-secret": credential.client_secret.expose(),
        })),
    ))
}

pub async fn list_principals(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let principals = access(&state)
        .list_principals()
        .await
        .map_err(store_error)?;
    Ok(Json(json!({
        "principals": principals.iter().map(|p| json!({
            "name": p.name,
            "client-id": p.client_id,
            "created-at-ms": p.created_at_ms,
        })).collect::<Vec<_>>()
    })))
}

pub async fn delete_principal(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if is_last_admin(&state, &name).await? {
        return Err(keeps_an_administrator(format!(
            "{name} is the last member of the admin role"
        )));
    }
    access(&state)
        .delete_principal(&name)
        .await
        .map_err(store_error)?;
    refresh_policy(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rotate_principal_secret(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let credential = rotate_secret(access(&state), &name)
        .await
        .map_err(auth_error)?;
    Ok(Json(json!({
        "name": credential.principal,
        "client-id": credential.client_id,
        "client-secret": credential.client_secret.expose(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    name: String,
}

pub async fn create_role(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<NewRole>,
) -> ApiResult<StatusCode> {
    validate_principal_name(&request.name)
        .map_err(|_| ApiError::bad_request(format!("invalid role name {:?}", request.name)))?;
    access(&state)
        .create_role(&request.name)
        .await
        .map_err(store_error)?;
    refresh_policy(&state).await;
    Ok(StatusCode::CREATED)
}

pub async fn list_roles(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let policy = access(&state).load_policy().await.map_err(store_error)?;
    let roles: Vec<Value> = policy
        .roles
        .iter()
        .map(|role| {
            json!({
                "name": role,
                "principals": policy.assignments.iter().filter(|a| &a.role == role).map(|a| &a.principal).collect::<Vec<_>>(),
                "grants": policy.grants.iter().filter(|g| &g.role == role).map(|g| json!({
                    "privilege": g.privilege,
                    "on": format_securable(&g.on),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({ "roles": roles })))
}

pub async fn delete_role(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    if name == ADMIN_ROLE {
        return Err(keeps_an_administrator("the admin role cannot be deleted"));
    }
    access(&state)
        .delete_role(&name)
        .await
        .map_err(store_error)?;
    refresh_policy(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    principal: String,
}

pub async fn assign_role(
    State(state): State<AppState>,
    Path(role): Path<String>,
    JsonBody(request): JsonBody<Member>,
) -> ApiResult<StatusCode> {
    access(&state)
        .assign_role(&RoleAssignment {
            principal: request.principal,
            role,
        })
        .await
        .map_err(store_error)?;
    refresh_policy(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unassign_role(
    State(state): State<AppState>,
    Path((role, principal)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if role == ADMIN_ROLE && is_last_admin(&state, &principal).await? {
        return Err(keeps_an_administrator(format!(
            "{principal} is the last member of the admin role"
        )));
    }
    let held = access(&state)
        .unassign_role(&RoleAssignment { principal, role })
        .await
        .map_err(store_error)?;
    refresh_policy(&state).await;
    Ok(if held {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    })
}

/// A grant as the API carries it: `{"role", "privilege", "on"}`, where `on` is the text form
/// (`namespace:main:sales`) or an object (`{"type": "namespace", "warehouse": "main",
/// "namespace": ["sales"]}`, for levels that contain dots).
pub struct GrantBody {
    pub role: String,
    pub privilege: Privilege,
    pub on: Securable,
}

impl GrantBody {
    pub fn from_value(body: &Value) -> ApiResult<Self> {
        let text = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad_request(format!("{key} must be a non-empty string")))
        };
        let role = text("role")?;
        let privilege = text("privilege")?
            .parse::<Privilege>()
            .map_err(ApiError::bad_request)?;
        let on = match body.get("on") {
            Some(Value::String(on)) => parse_securable(on).map_err(ApiError::bad_request)?,
            Some(Value::Object(object)) => securable_from_object(object)?,
            _ => return Err(ApiError::bad_request("on must name a securable")),
        };
        Ok(Self {
            role,
            privilege,
            on,
        })
    }

    fn record(self) -> GrantRecord {
        GrantRecord {
            role: self.role,
            privilege: self.privilege.as_str().to_string(),
            on: self.on,
        }
    }
}

fn securable_from_object(object: &serde_json::Map<String, Value>) -> ApiResult<Securable> {
    let invalid = || {
        ApiError::bad_request(
            "on: expected {\"type\": server|warehouse|namespace|table|view, \"warehouse\", \
             \"namespace\": [levels], \"name\"}",
        )
    };
    let string = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let levels = || -> ApiResult<Vec<String>> {
        let levels: Vec<String> = object
            .get("namespace")
            .and_then(Value::as_array)
            .ok_or_else(invalid)?
            .iter()
            .map(|level| level.as_str().filter(|l| !l.is_empty()).map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(invalid)?;
        if levels.is_empty() {
            return Err(invalid());
        }
        Ok(levels)
    };
    let kind = string("type").ok_or_else(invalid)?;
    if kind == "server" {
        return Ok(Securable::Server);
    }
    let warehouse = string("warehouse").ok_or_else(invalid)?;
    Ok(match kind.as_str() {
        "warehouse" => Securable::Warehouse(warehouse),
        "namespace" => Securable::Namespace {
            warehouse,
            namespace: levels()?,
        },
        "table" => Securable::Table {
            warehouse,
            namespace: levels()?,
            name: string("name").ok_or_else(invalid)?,
        },
        "view" => Securable::View {
            warehouse,
            namespace: levels()?,
            name: string("name").ok_or_else(invalid)?,
        },
        _ => return Err(invalid()),
    })
}

pub async fn grant(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<StatusCode> {
    let grant = GrantBody::from_value(&body)?.record();
    access(&state).grant(&grant).await.map_err(store_error)?;
    refresh_policy(&state).await;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn revoke(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<StatusCode> {
    let grant = GrantBody::from_value(&body)?.record();
    if grant.role == ADMIN_ROLE
        && grant.privilege == Privilege::Admin.as_str()
        && grant.on == Securable::Server
    {
        return Err(keeps_an_administrator(
            "the admin role's admin grant on the server cannot be revoked",
        ));
    }
    let existed = access(&state).revoke(&grant).await.map_err(store_error)?;
    refresh_policy(&state).await;
    if existed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "NotFoundException",
            format!(
                "role {} holds no {} on {}",
                grant.role,
                grant.privilege,
                format_securable(&grant.on)
            ),
        ))
    }
}

pub async fn list_grants(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let policy = access(&state).load_policy().await.map_err(store_error)?;
    Ok(Json(json!({
        "policy-version": policy.version,
        "grants": policy.grants.iter().map(|g| json!({
            "role": g.role,
            "privilege": g.privilege,
            "on": format_securable(&g.on),
        })).collect::<Vec<_>>(),
    })))
}

/// `GET /management/v1/audit?since-ms=&principal=&limit=`: newest first.
pub async fn audit(State(state): State<AppState>, query: QueryParams) -> ApiResult<Json<Value>> {
    let since_ms = query
        .get("since-ms")
        .map(|raw| {
            raw.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("since-ms must be an integer, not {raw:?}"))
            })
        })
        .transpose()?;
    let limit = match query.get("limit") {
        None => 100,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=10_000).contains(limit))
            .ok_or_else(|| ApiError::bad_request("limit must be between 1 and 10000"))?,
    };
    let filter = AuditFilter {
        since_ms,
        principal: query.get("principal").map(str::to_string),
    };
    let records = access(&state)
        .list_audit(&filter, limit)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({
        "records": records.iter().map(|r| json!({
            "id": r.id,
            "at-ms": r.at_ms,
            "principal": r.principal,
            "route": r.route,
            "target": r.target,
            "outcome": r.outcome,
            "status": r.status,
            "request-id": r.request_id,
        })).collect::<Vec<_>>()
    })))
}
