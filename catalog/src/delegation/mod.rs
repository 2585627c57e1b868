//! Delegated access to a table's files: what a table response tells a client about reaching the
//! files without the warehouse's keys ([`table_config`]), and the route that signs a client's S3
//! requests ([`sign`]).
//!
//! The mode comes from the client's `X-Iceberg-Access-Delegation` header and the warehouse's
//! settings ([`floe_storage::DelegationOptions::choose`]); the checks and the signing themselves
//! are [`floe_delegation`]'s.

pub mod sign;

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use floe_commit::LoadedTable;
use floe_storage::{AccessDelegation, Warehouse};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::auth::Caller;
use crate::error::ApiResult;
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

/// What a loadTable, createTable or registerTable response carries in its `config`: the
/// warehouse's client settings, and, when the client gets delegated access, what that access
/// needs (in place of any shared keys).
pub async fn table_config(
    warehouse: &Warehouse,
    prefix: &str,
    table: &LoadedTable,
    caller: &Caller,
    headers: &HeaderMap,
) -> ApiResult<BTreeMap<String, String>> {
    let mut config = warehouse.client_config().clone();
    let delegated = delegated_config(warehouse, prefix, table, caller, headers).await?;
    if !delegated.is_empty() {
        config.retain(|name, _| !WAREHOUSE_KEYS.contains(&name.as_str()));
        config.extend(delegated);
    }
    Ok(config)
}

/// The settings of the delegation mode this request gets; empty when it gets none (a keyless or
/// `file://` warehouse, a mode the warehouse does not offer, a staged table).
async fn delegated_config(
    warehouse: &Warehouse,
    prefix: &str,
    table: &LoadedTable,
    _caller: &Caller,
    headers: &HeaderMap,
) -> ApiResult<BTreeMap<String, String>> {
    let Some(s3) = warehouse.s3_access() else {
        return Ok(BTreeMap::new());
    };
    // A staged table is not in the catalog until its create commits: the sign route could not
    // find its location to check requests against.
    if table.metadata_location.is_none() {
        return Ok(BTreeMap::new());
    }
    let requested = requested_modes(headers);
    Ok(match s3.delegation.choose(requested.as_deref()) {
        None => BTreeMap::new(),
        Some(AccessDelegation::RemoteSigning) => signing_config(prefix, table),
        // Vended credentials are made by the credential-vending work of issue #11; until it
        // lands here, a client that gets this mode gets no delegated access (the spec lets a
        // server supply none of the requested mechanisms).
        Some(AccessDelegation::VendedCredentials) => BTreeMap::new(),
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

/// Characters kept as they are in a path segment; everything else is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// What Iceberg Java 1.10 (`S3FileIO`) and PyIceberg 0.12 (`FsspecFileIO`) read to sign through
/// the catalog. `s3.signer.endpoint` is relative: both clients resolve it against
/// `s3.signer.uri`, which they default to the catalog URI they were configured with, so it stays
/// right behind proxies and for every name the server is reached by (which the server itself
/// cannot know).
fn signing_config(prefix: &str, table: &LoadedTable) -> BTreeMap<String, String> {
    let namespace = table.name.namespace.join(&NAMESPACE_SEPARATOR.to_string());
    let endpoint = format!(
        "v1/{}/namespaces/{}/tables/{}/sign",
        utf8_percent_encode(prefix, SEGMENT),
        utf8_percent_encode(&namespace, SEGMENT),
        utf8_percent_encode(&table.name.name, SEGMENT),
    );
    BTreeMap::from([
        ("s3.remote-signing-enabled".to_string(), "true".to_string()),
        // PyIceberg's name for its REST signer.
        ("s3.signer".to_string(), "S3V4RestSigner".to_string()),
        ("s3.signer.endpoint".to_string(), endpoint),
    ])
}
