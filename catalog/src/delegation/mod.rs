//! Delegated access to a table's files in the REST API: which mode a client gets and what a
//! table response then carries ([`table_access`]), the spec's `loadCredentials` route
//! ([`vend`]) and the route that signs a client's S3 requests ([`sign`]).
//!
//! The mode comes from the client's `X-Iceberg-Access-Delegation` header and the warehouse's
//! settings ([`floe_storage::DelegationOptions::choose`]); the scoping, the STS calls and the
//! signing themselves are [`floe_delegation`]'s. The auth middleware has already decided that the
//! caller may use the route; this module asks the same authorizer one more question, whether the
//! caller also holds `write` on the table, so that what it hands out never exceeds the caller's
//! grants: vended credentials are read-only without `write`.

pub mod sign;
pub mod vend;

use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use floe_auth::{Privilege, Securable};
use floe_commit::Catalog;
use floe_delegation::{DelegationError, Vendor};
use floe_storage::AccessDelegation;
use floe_store::TableName;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::names::NAMESPACE_SEPARATOR;

/// The request header in which a client lists the delegation modes it supports.
pub const ACCESS_DELEGATION_HEADER: &str = "x-iceberg-access-delegation";

/// The `config` settings that would hand a client the warehouse's own keys
/// (`s3.share-credentials`): never sent along with delegated access, which replaces them.
const WAREHOUSE_KEYS: &[&str] = &[
    "s3.access-key-id",
    "s3.secret-access-key",
    "s3.session-token",
];

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

/// What a table response carries for reaching the table's files: its `config` and its
/// `storage-credentials`.
#[derive(Debug, Default)]
pub struct DelegatedAccess {
    pub config: BTreeMap<String, String>,
    pub storage_credentials: Vec<Value>,
}

/// The table a response is about, as the routes name it.
pub struct TableRef<'a> {
    pub prefix: &'a str,
    pub name: &'a TableName,
    /// The table's `location` (from its metadata).
    pub location: &'a str,
    /// Whether the table is committed (a staged create is not, until its create commits).
    pub committed: bool,
}

/// Characters kept as they are in a path segment; everything else is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

impl TableRef<'_> {
    fn securable(&self) -> Securable {
        Securable::Table {
            warehouse: self.prefix.to_string(),
            namespace: self.name.namespace.clone(),
            name: self.name.name.clone(),
        }
    }

    /// `v1/{prefix}/namespaces/{namespace}/tables/{table}/<leaf>`, encoded as the REST API
    /// encodes it, and relative: clients resolve it against the catalog URI they were configured
    /// with, so it stays right behind proxies and for every name the server is reached by (which
    /// the server itself cannot know).
    pub fn route(&self, leaf: &str) -> String {
        let namespace = self.name.namespace.join(&NAMESPACE_SEPARATOR.to_string());
        format!(
            "v1/{}/namespaces/{}/tables/{}/{leaf}",
            utf8_percent_encode(self.prefix, SEGMENT),
            utf8_percent_encode(&namespace, SEGMENT),
            utf8_percent_encode(&self.name.name, SEGMENT),
        )
    }
}

/// What a loadTable, createTable or registerTable response carries: the warehouse's client
/// settings and, when the client gets delegated access (the first mode of its
/// `X-Iceberg-Access-Delegation` list that the warehouse allows, or without the header the
/// warehouse's default), what that access needs, in place of any shared keys.
pub async fn table_access(
    delegation: &DelegationState,
    catalog: &Catalog,
    caller: &Caller,
    headers: &HeaderMap,
    table: &TableRef<'_>,
) -> ApiResult<DelegatedAccess> {
    let mut config = catalog.warehouse().client_config().clone();
    let delegated = match catalog.warehouse().s3_access() {
        None => DelegatedAccess::default(),
        Some(access) => match access
            .delegation
            .choose(requested_modes(headers).as_deref())
        {
            None => DelegatedAccess::default(),
            Some(AccessDelegation::VendedCredentials) => {
                vend::table_access(delegation, catalog, caller, table).await?
            }
            // The sign route finds a table's location in the catalog: a staged table, not
            // there until its create commits, cannot be signed for yet.
            Some(AccessDelegation::RemoteSigning) if table.committed => DelegatedAccess {
                config: signing_config(table),
                storage_credentials: Vec::new(),
            },
            Some(AccessDelegation::RemoteSigning) => DelegatedAccess::default(),
        },
    };
    if !delegated.config.is_empty() {
        config.retain(|name, _| !WAREHOUSE_KEYS.contains(&name.as_str()));
        config.extend(delegated.config);
    }
    Ok(DelegatedAccess {
        config,
        storage_credentials: delegated.storage_credentials,
    })
}

/// Every `X-Iceberg-Access-Delegation` header's comma list, as one list.
fn requested_modes(headers: &HeaderMap) -> Option<String> {
    let lists: Vec<&str> = headers
        .get_all(ACCESS_DELEGATION_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    (!lists.is_empty()).then(|| lists.join(","))
}

/// What Iceberg Java 1.10 (`S3FileIO`) and PyIceberg 0.12 (`FsspecFileIO`) read to sign through
/// the catalog. `s3.signer.endpoint` is relative: both clients resolve it against
/// `s3.signer.uri`, which they default to the catalog URI they were configured with.
fn signing_config(table: &TableRef<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("s3.remote-signing-enabled".to_string(), "true".to_string()),
        // PyIceberg's name for its REST signer.
        ("s3.signer".to_string(), "S3V4RestSigner".to_string()),
        ("s3.signer.endpoint".to_string(), table.route("sign")),
    ])
}

/// Whether the caller may write the table (and so gets write-scoped access).
fn may_write(caller: &Caller, table: &TableRef<'_>) -> bool {
    caller.may(Privilege::Write, &table.securable())
}

/// The REST error for a delegation failure.
pub fn api_error(err: DelegationError) -> ApiError {
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
