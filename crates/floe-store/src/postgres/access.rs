//! The access-control records in PostgreSQL: the shared operations of [`crate::access_sql`] on a
//! PostgreSQL connection. Changes run in one READ COMMITTED transaction each (the policy version's
//! row lock orders them), [`AccessStore::load_policy`] in one read-only snapshot, and "now" is the
//! database server's clock, as for the rest of the PostgreSQL store.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnection};
use sqlx::{Postgres, Row};

use super::{Failure, Mode, NOW_MS, PostgresStore};
use crate::access::{
    AccessStore, AuditFilter, AuditRecord, GrantRecord, Policy, PrincipalRecord, RoleAssignment,
    SigningKeyRecord,
};
use crate::access_sql::{self as ops, AccessConn, Arg, Col, Executed, Stmt, Value};
use crate::{Result, sealed};

/// The statement in PostgreSQL's dialect: `?` numbered `$1`, `$2`, ..., and [`Arg::Now`] replaced
/// by the server's clock rather than bound.
fn numbered(stmt: &Stmt<'_>) -> String {
    let mut sql = String::with_capacity(stmt.sql.len() + 8 * stmt.args.len());
    let mut args = stmt.args.iter();
    let mut bound = 0;
    for part in stmt.sql.split_inclusive('?') {
        let Some(text) = part.strip_suffix('?') else {
            sql.push_str(part);
            continue;
        };
        sql.push_str(text);
        match args.next() {
            Some(Arg::Now) => sql.push_str(NOW_MS),
            // A `?` without its argument binds nothing: PostgreSQL refuses the statement.
            Some(_) | None => {
                bound += 1;
                sql.push('$');
                sql.push_str(&bound.to_string());
            }
        }
    }
    sql
}

fn query<'q>(sql: &'q str, stmt: &'q Stmt<'_>) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    stmt.args
        .iter()
        .fold(sqlx::query(sql), |query, arg| match *arg {
            Arg::Text(text) => query.bind(text),
            Arg::Int(int) => query.bind(int),
            Arg::Bytes(bytes) => query.bind(bytes),
            Arg::Now => query,
        })
}

#[async_trait]
impl AccessConn for PgConnection {
    type Error = Failure;

    async fn execute(&mut self, stmt: &Stmt<'_>) -> Result<Executed, Failure> {
        let sql = numbered(stmt);
        match query(&sql, stmt).execute(&mut *self).await {
            Ok(done) => Ok(Executed::Rows(done.rows_affected())),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Ok(Executed::Duplicate),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                Ok(Executed::MissingReference)
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn fetch(
        &mut self,
        stmt: &Stmt<'_>,
        columns: &[Col],
    ) -> Result<Vec<Vec<Value>>, Failure> {
        let sql = numbered(stmt);
        let rows = query(&sql, stmt).fetch_all(&mut *self).await?;
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut fields = Vec::with_capacity(columns.len());
            for (index, column) in columns.iter().enumerate() {
                fields.push(match column {
                    Col::Text => Value::Text(row.try_get(index)?),
                    Col::Int => Value::Int(row.try_get(index)?),
                    Col::Bytes => Value::Bytes(row.try_get(index)?),
                });
            }
            values.push(fields);
        }
        Ok(values)
    }
}

#[async_trait]
impl AccessStore for PostgresStore {
    async fn create_principal(&self, principal: &PrincipalRecord) -> Result<()> {
        self.run(Mode::Write, async |conn| {
            ops::create_principal(conn, principal).await
        })
        .await
    }

    async fn principal_by_client_id(&self, client_id: &str) -> Result<Option<PrincipalRecord>> {
        self.run(Mode::Autocommit, async |conn| {
            ops::principal_by_client_id(conn, client_id).await
        })
        .await
    }

    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>> {
        self.run(Mode::Autocommit, async |conn| {
            ops::list_principals(conn).await
        })
        .await
    }

    async fn delete_principal(&self, name: &str) -> Result<()> {
        self.run(Mode::Write, async |conn| {
            ops::delete_principal(conn, name).await
        })
        .await
    }

    async fn set_principal_secret(&self, name: &str, secret_hash: &str) -> Result<()> {
        self.run(Mode::Write, async |conn| {
            ops::set_principal_secret(conn, name, secret_hash).await
        })
        .await
    }

    async fn create_role(&self, name: &str) -> Result<()> {
        self.run(Mode::Write, async |conn| ops::create_role(conn, name).await)
            .await
    }

    async fn delete_role(&self, name: &str) -> Result<()> {
        self.run(Mode::Write, async |conn| ops::delete_role(conn, name).await)
            .await
    }

    async fn assign_role(&self, assignment: &RoleAssignment) -> Result<()> {
        self.run(Mode::Write, async |conn| {
            ops::assign_role(conn, assignment).await
        })
        .await
    }

    async fn unassign_role(&self, assignment: &RoleAssignment) -> Result<bool> {
        self.run(Mode::Write, async |conn| {
            ops::unassign_role(conn, assignment).await
        })
        .await
    }

    async fn grant(&self, grant: &GrantRecord) -> Result<()> {
        self.run(Mode::Write, async |conn| ops::grant(conn, grant).await)
            .await
    }

    async fn revoke(&self, grant: &GrantRecord) -> Result<bool> {
        self.run(Mode::Write, async |conn| ops::revoke(conn, grant).await)
            .await
    }

    async fn policy_version(&self) -> Result<i64> {
        self.run(Mode::Autocommit, async |conn| {
            ops::policy_version(conn).await
        })
        .await
    }

    async fn load_policy(&self) -> Result<Policy> {
        self.run(Mode::Snapshot, async |conn| ops::load_policy(conn).await)
            .await
    }

    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let key = sealed::seal_signing_key(&self.sealer, key)?;
        self.run(Mode::Write, async |conn| {
            ops::add_signing_key(conn, &key).await
        })
        .await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let keys = self
            .run(Mode::Autocommit, async |conn| ops::signing_keys(conn).await)
            .await?;
        sealed::open_signing_keys(&self.sealer, keys)
    }

    async fn expire_signing_keys(&self, older_than: Duration) -> Result<u64> {
        self.run(Mode::Autocommit, async |conn| {
            ops::expire_signing_keys(conn, older_than).await
        })
        .await
    }

    async fn record_audit(&self, records: &[AuditRecord]) -> Result<()> {
        self.run(Mode::Write, async |conn| {
            ops::record_audit(conn, records).await
        })
        .await
    }

    async fn list_audit(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRecord>> {
        self.run(Mode::Autocommit, async |conn| {
            ops::list_audit(conn, filter, limit).await
        })
        .await
    }

    async fn expire_audit(&self, older_than: Duration) -> Result<u64> {
        self.run(Mode::Autocommit, async |conn| {
            ops::expire_audit(conn, older_than).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_and_now_is_the_servers_clock() {
        let stmt = Stmt {
            sql: "DELETE FROM t WHERE a = ? AND b < ? - ? AND c = ?".into(),
            args: vec![Arg::Text("x"), Arg::Now, Arg::Int(5), Arg::Bytes(b"y")],
        };
        assert_eq!(
            numbered(&stmt),
            format!("DELETE FROM t WHERE a = $1 AND b < {NOW_MS} - $2 AND c = $3")
        );
        let none = Stmt {
            sql: "SELECT version FROM policy_version".into(),
            args: Vec::new(),
        };
        assert_eq!(numbered(&none), none.sql);
    }
}
