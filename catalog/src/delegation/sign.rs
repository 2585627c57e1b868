//! `POST /v1/{prefix}/namespaces/{namespace}/tables/{table}/sign` (the spec's `signRequest`):
//! signs one S3 request of a client that reaches the table's files through remote signing.
//!
//! The auth layer let the caller in with `read` on the table; whether the request may write is
//! decided here, because only the body says what the request does. Refusals are answered 403
//! (400 when the request cannot be signed at all) and audited as denials with what was asked;
//! allowed signings are counted, not audited: a scan signs one request per file it reads.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use floe_auth::{Privilege, Securable};
use floe_delegation::{DelegationError, SignRequest, TableAccess, TablePrefix};
use floe_storage::AccessDelegation;
use floe_store::TableName;
use metrics::counter;

use crate::AppState;
use crate::auth::{Caller, HandlerAudit};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Path};
use crate::names::parse_namespace;

/// Signing requests, by `outcome`: signed, denied (403) or rejected (400).
pub const SIGN_REQUESTS: &str = "floe_remote_sign_requests_total";

/// The longest description of a refused request kept in the audit log.
const AUDITED_REQUEST_CHARS: usize = 512;

pub async fn sign(
    State(state): State<AppState>,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    caller: Caller,
    JsonBody(request): JsonBody<SignRequest>,
) -> ApiResult<Response> {
    let catalog = state.catalog(&prefix).await?;
    let name = TableName::new(parse_namespace(&namespace)?, table);
    let warehouse = catalog.warehouse();
    let s3 = match warehouse.s3_access() {
        Some(s3)
            if s3
                .delegation
                .allowed
                .contains(&AccessDelegation::RemoteSigning) =>
        {
            s3
        }
        _ => {
            return Ok(refusal(
                DelegationError::NotOffered(format!(
                    "warehouse {prefix} does not offer remote signing"
                )),
                &request,
            ));
        }
    };
    let loaded = catalog.load_table(&name).await?;
    let target = Securable::Table {
        warehouse: prefix,
        namespace: name.namespace.clone(),
        name: name.name.clone(),
    };
    // The one write decision for signed requests: the caller's grants, as the auth layer reads
    // them for every other route. Only the body says whether a request writes, so the route's
    // rule can require no more than `read`.
    let access = if caller.may(Privilege::Write, &target) {
        TableAccess::ReadWrite
    } else {
        TableAccess::Read
    };
    let signed = TablePrefix::of(s3, warehouse.root(), loaded.metadata().location())
        .and_then(|table| floe_delegation::sign(&request, access, &table, s3, SystemTime::now()));
    match signed {
        Ok(signed) => {
            counter!(SIGN_REQUESTS, "outcome" => "signed").increment(1);
            let mut response = Json(signed).into_response();
            // A signature is not to be reused from a cache: a revoked grant must stop the next
            // request.
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response.extensions_mut().insert(HandlerAudit::NotAMutation);
            Ok(response)
        }
        Err(DelegationError::Unavailable(why)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            why,
        )),
        Err(refused) => Ok(refusal(refused, &request)),
    }
}

/// The ErrorModel of a refused signing request, marked for the audit log with what was asked.
fn refusal(err: DelegationError, request: &SignRequest) -> Response {
    let (status, kind, outcome) = match &err {
        DelegationError::Forbidden(_) => (StatusCode::FORBIDDEN, "ForbiddenException", "denied"),
        _ => (StatusCode::BAD_REQUEST, "BadRequestException", "rejected"),
    };
    counter!(SIGN_REQUESTS, "outcome" => outcome).increment(1);
    let mut asked: String = format!("{} {}", request.method, request.uri)
        .chars()
        .take(AUDITED_REQUEST_CHARS)
        .collect();
    asked.retain(|c| !c.is_control());
    let mut response = ApiError::new(status, kind, err.to_string()).into_response();
    response
        .extensions_mut()
        .insert(HandlerAudit::Denied(asked));
    response
}
