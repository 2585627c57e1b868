//! The access-control records in SQLite: the shared operations of [`crate::access_sql`] on a
//! SQLite connection. Writes run in the store's write transactions (`BEGIN IMMEDIATE`, so they
//! are serialized), reads in read transactions (one snapshot each); "now" is this host's clock, as
//! for the rest of the SQLite store.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Row, Sqlite};

use super::{SqliteStore, db_error, unix_millis};
use crate::access::{
    AccessStore, AuditFilter, AuditRecord, GrantRecord, Policy, PrincipalRecord, RoleAssignment,
    SigningKeyRecord,
};
use crate::access_sql::{self as ops, AccessConn, Arg, Col, Executed, Stmt, Value};
use crate::{Result, StoreError, sealed};

fn query<'q>(
    stmt: &'q Stmt<'_>,
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let now = unix_millis(SystemTime::now());
    stmt.args
        .iter()
        .fold(sqlx::query(&stmt.sql), |query, arg| match *arg {
            Arg::Text(text) => query.bind(text),
            Arg::Int(int) => query.bind(int),
            Arg::Bytes(bytes) => query.bind(bytes),
            Arg::Now => query.bind(now),
        })
}

#[async_trait]
impl AccessConn for SqliteConnection {
    type Error = StoreError;

    async fn execute(&mut self, stmt: &Stmt<'_>) -> Result<Executed> {
        match query(stmt).execute(&mut *self).await {
            Ok(done) => Ok(Executed::Rows(done.rows_affected())),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(Executed::Duplicate),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                Ok(Executed::MissingReference)
            }
            Err(err) => Err(db_error(err)),
        }
    }

    async fn fetch(&mut self, stmt: &Stmt<'_>, columns: &[Col]) -> Result<Vec<Vec<Value>>> {
        let rows = query(stmt).fetch_all(&mut *self).await.map_err(db_error)?;
        rows.iter()
            .map(|row| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(index, column)| {
                        match column {
                            Col::Text => row.try_get(index).map(Value::Text),
                            Col::Int => row.try_get(index).map(Value::Int),
                            Col::Bytes => row.try_get(index).map(Value::Bytes),
                        }
                        .map_err(db_error)
                    })
                    .collect()
            })
            .collect()
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn create_principal(&self, principal: &PrincipalRecord) -> Result<()> {
        self.write(async |conn| ops::create_principal(conn, principal).await)
            .await
    }

    async fn principal_by_client_id(&self, client_id: &str) -> Result<Option<PrincipalRecord>> {
        self.read(async |conn| ops::principal_by_client_id(conn, client_id).await)
            .await
    }

    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>> {
        self.read(async |conn| ops::list_principals(conn).await)
            .await
    }

    async fn delete_principal(&self, name: &str) -> Result<()> {
        self.write(async |conn| ops::delete_principal(conn, name).await)
            .await
    }

    async fn set_principal_secret(&self, name: &str, secret_hash: &str) -> Result<()> {
        self.write(async |conn| ops::set_principal_secret(conn, name, secret_hash).await)
            .await
    }

    async fn create_role(&self, name: &str) -> Result<()> {
        self.write(async |conn| ops::create_role(conn, name).await)
            .await
    }

    async fn delete_role(&self, name: &str) -> Result<()> {
        self.write(async |conn| ops::delete_role(conn, name).await)
            .await
    }

    async fn assign_role(&self, assignment: &RoleAssignment) -> Result<()> {
        self.write(async |conn| ops::assign_role(conn, assignment).await)
            .await
    }

    async fn unassign_role(&self, assignment: &RoleAssignment) -> Result<bool> {
        self.write(async |conn| ops::unassign_role(conn, assignment).await)
            .await
    }

    async fn grant(&self, grant: &GrantRecord) -> Result<()> {
        self.write(async |conn| ops::grant(conn, grant).await).await
    }

    async fn revoke(&self, grant: &GrantRecord) -> Result<bool> {
        self.write(async |conn| ops::revoke(conn, grant).await)
            .await
    }

    async fn policy_version(&self) -> Result<i64> {
        self.read(async |conn| ops::policy_version(conn).await)
            .await
    }

    async fn load_policy(&self) -> Result<Policy> {
        self.read(async |conn| ops::load_policy(conn).await).await
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let key = sealed::seal_signing_key(&self.sealer, key)?;
        self.write(async |conn| ops::add_signing_key(conn, &key).await)
            .await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let keys = self
            .read(async |conn| ops::signing_keys(conn).await)
            .await?;
        sealed::open_signing_keys(&self.sealer, keys)
    }

    async fn expire_signing_keys(&self, older_than: Duration) -> Result<u64> {
        self.write(async |conn| ops::expire_signing_keys(conn, older_than).await)
            .await
    }

    async fn record_audit(&self, records: &[AuditRecord]) -> Result<()> {
        self.write(async |conn| ops::record_audit(conn, records).await)
            .await
    }

    async fn list_audit(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRecord>> {
        self.read(async |conn| ops::list_audit(conn, filter, limit).await)
            .await
    }

    async fn expire_audit(&self, older_than: Duration) -> Result<u64> {
        self.write(async |conn| ops::expire_audit(conn, older_than).await)
            .await
    }
}
