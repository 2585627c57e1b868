//! Delegated access to a table's files in the REST API: which mode a client gets, and what a
//! table response then carries (see `floe_delegation` for how access is scoped).
//!
//! The auth middleware has already decided that the caller may use the route; this module asks
//! the same authorizer one more question, whether the caller also holds `write` on the table, so
//! that what it hands out never exceeds the caller's grants: vended credentials are read-only
//! without `write`.

pub mod vend;

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use floe_auth::{Privilege, Securable};
use floe_commit::Catalog;
use floe_delegation::{DelegationError, Vendor};
use floe_storage::AccessDelegation;
use floe_store::TableName;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// The request header in which clients list the delegation modes they support.
pub const ACCESS_DELEGATION_HEADER: &str = "x-iceberg-access-delegation";

/// What delegated access needs across requests: the credential cache.
pub struct DelegationState {
    pub vendor: Vendor,
}

impl DelegationState {
    pub fn new() -> Result<Self, String> {
        Ok(Self {
            vendor: Vendor::new().map_err(|err| err.to_string())?,
        })
    }
}

/// What a table response adds for delegated access: `config` entries and `storage-credentials`.
#[derive(Debug, Default)]
pub struct TableAccess {
    pub config: BTreeMap<String, String>,
    pub storage_credentials: Vec<Value>,
}

/// The table a response is about, as the routes name it.
pub struct TableRef<'a> {
    pub prefix: &'a str,
    pub name: &'a TableName,
    /// The table's `location` (from its metadata).
    pub location: &'a str,
}

impl TableRef<'_> {
    fn securable(&self) -> Securable {
        Securable::Table {
            warehouse: self.prefix.to_string(),
            namespace: self.name.namespace.clone(),
            name: self.name.name.clone(),
        }
    }

    /// `v1/{prefix}/namespaces/{namespace}/tables/{table}/<leaf>`, encoded as the REST API
    /// encodes it and relative to the catalog's base URI, as clients resolve it.
    pub fn route(&self, leaf: &str) -> String {
        use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
        const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let encode = |text: &str| utf8_percent_encode(text, SEGMENT).to_string();
        format!(
            "v1/{}/namespaces/{}/tables/{}/{leaf}",
            encode(self.prefix),
            encode(&self.name.namespace.join("\u{1f}")),
            encode(&self.name.name),
        )
    }
}

/// The delegated access that a table response carries for this caller: the first mode of the
/// client's `X-Iceberg-Access-Delegation` list that the warehouse allows (or, without the header,
/// the warehouse's default). Nothing for warehouses that offer none (local ones, keyless S3).
pub async fn table_access(
    delegation: &DelegationState,
    catalog: &Catalog,
    caller: &Caller,
    headers: &HeaderMap,
    table: &TableRef<'_>,
) -> ApiResult<TableAccess> {
    let Some(access) = catalog.warehouse().s3_access() else {
        return Ok(TableAccess::default());
    };
    let requested = headers
        .get(ACCESS_DELEGATION_HEADER)
        .and_then(|value| value.to_str().ok());
    match access.delegation.choose(requested) {
        None => Ok(TableAccess::default()),
        Some(AccessDelegation::VendedCredentials) => {
            vend::table_access(delegation, catalog, caller, table).await
        }
        // Remote signing is configured by its own module (it needs no call at load time).
        Some(AccessDelegation::RemoteSigning) => Ok(TableAccess::default()),
    }
}

/// Whether the caller may write the table (and so gets write-scoped access).
fn may_write(caller: &Caller, table: &TableRef<'_>) -> bool {
    caller.may(Privilege::Write, &table.securable())
}

/// The REST error for a delegation failure.
pub fn api_error(err: DelegationError) -> ApiError {
    use axum::http::StatusCode;
    match err {
        DelegationError::Forbidden(message) => {
            ApiError::new(StatusCode::FORBIDDEN, "ForbiddenException", message)
        }
        DelegationError::BadRequest(message) | DelegationError::NotOffered(message) => {
            ApiError::bad_request(message)
        }
        DelegationError::Unavailable(message) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            message,
        ),
    }
}
