//! Vended credentials in table responses and the spec's `loadCredentials` route.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use axum::Json;
use axum::extract::State;
use floe_commit::Catalog;
use floe_delegation::{TablePrefix, TemporaryCredentials};
use floe_storage::AccessDelegation;
use serde_json::{Value, json};

use super::{DelegatedAccess, DelegationState, TableRef, api_error, may_write};
use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::Path;
use crate::names::parse_namespace;
use floe_store::TableName;

/// Credentials for the table, scoped to the caller's privilege, as config entries and as the
/// table's one storage credential (Iceberg Java reads the latter, PyIceberg and DuckDB the
/// former). The config also names the route that refreshes them.
///
/// A table whose location credentials cannot be scoped to (a registered table outside the
/// warehouse) gets none, but still loads: its metadata is the catalog's to serve, and the client
/// may hold keys of its own for where its files are.
pub async fn table_access(
    delegation: &DelegationState,
    catalog: &Catalog,
    caller: &Caller,
    table: &TableRef<'_>,
) -> ApiResult<DelegatedAccess> {
    let Some(access) = catalog.warehouse().s3_access() else {
        return Ok(DelegatedAccess::default());
    };
    let prefix = match TablePrefix::of(access, catalog.warehouse().root(), table.location) {
        Ok(prefix) => prefix,
        Err(refused) => {
            tracing::debug!(table = %table.name, %refused, "no vended credentials");
            return Ok(DelegatedAccess::default());
        }
    };
    let credentials = delegation
        .vendor
        .credentials(access, &prefix, may_write(caller, table))
        .await
        .map_err(api_error)?;
    let mut config = credential_config(&credentials);
    config.insert(
        "client.refresh-credentials-endpoint".to_string(),
        table.route("credentials"),
    );
    config.insert(
        "client.refresh-credentials-enabled".to_string(),
        "true".to_string(),
    );
    Ok(DelegatedAccess {
        storage_credentials: vec![storage_credential(table.location, &credentials)],
        config,
    })
}

async fn vend(
    delegation: &DelegationState,
    catalog: &Catalog,
    caller: &Caller,
    table: &TableRef<'_>,
) -> ApiResult<TemporaryCredentials> {
    let warehouse = catalog.warehouse();
    let access = warehouse.s3_access().ok_or_else(|| {
        api_error(floe_delegation::DelegationError::NotOffered(
            "not on S3".into(),
        ))
    })?;
    let prefix = TablePrefix::of(access, warehouse.root(), table.location).map_err(api_error)?;
    delegation
        .vendor
        .credentials(access, &prefix, may_write(caller, table))
        .await
        .map_err(api_error)
}

fn credential_config(credentials: &TemporaryCredentials) -> BTreeMap<String, String> {
    let expires_ms = credentials
        .expires_at
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis())
        .unwrap_or_default();
    BTreeMap::from([
        (
            "s3.access-key-id".to_string(),
            credentials.access_key_id.clone(),
        ),
        (
            "s3.secret-access-key".to_string(),
            credentials.secret_access_key.clone(),
        ),
        (
            "s3.session-token".to_string(),
            credentials.session_token.clone(),
        ),
        (
            "s3.session-token-expires-at-ms".to_string(),
            expires_ms.to_string(),
        ),
    ])
}

fn storage_credential(location: &str, credentials: &TemporaryCredentials) -> Value {
    json!({
        "prefix": location.trim_end_matches('/'),
        "config": credential_config(credentials),
    })
}

/// `GET /v1/{prefix}/namespaces/{namespace}/tables/{table}/credentials` (spec `loadCredentials`):
/// fresh (or cached) credentials for the table. A warehouse that vends none answers an empty list,
/// as the spec allows: the client then uses what it has.
pub async fn load_credentials(
    State(state): State<AppState>,
    Path((prefix, namespace, table)): Path<(String, String, String)>,
    caller: Caller,
) -> ApiResult<Json<Value>> {
    let catalog = state.catalog(&prefix).await?;
    let name = TableName::new(parse_namespace(&namespace)?, table);
    let loaded = catalog.load_table(&name).await?;
    let vends = catalog.warehouse().s3_access().is_some_and(|access| {
        access
            .delegation
            .allowed
            .contains(&AccessDelegation::VendedCredentials)
    });
    if !vends {
        return Ok(Json(json!({"storage-credentials": []})));
    }
    let location = loaded.metadata().location().to_string();
    let table = TableRef {
        prefix: &prefix,
        name: &name,
        location: &location,
        committed: true,
    };
    let credentials = vend(&state.delegation, &catalog, &caller, &table).await?;
    Ok(Json(json!({
        "storage-credentials": [storage_credential(&location, &credentials)],
    })))
}
