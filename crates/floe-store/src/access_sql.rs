//! The [`AccessStore`](crate::AccessStore) operations, written once for every backend.
//!
//! Each operation here is the statements it runs and what their results mean; a backend only
//! runs statements on one of its connections ([`AccessConn`]) inside the transaction it chose, and
//! holds what really differs between dialects:
//!
//! - **Placeholders.** The SQL here uses `?`; PostgreSQL numbers them (`$1`, `$2`, ...). No
//!   statement here has a `?` anywhere else, so that rewrite is a plain scan.
//! - **The clock.** [`Arg::Now`] is "now, by the store's clock, in Unix ms": SQLite binds its host's
//!   clock, PostgreSQL writes the server's `statement_timestamp()` in its place.
//! - **Constraint errors.** A statement that breaks a unique or a foreign key constraint comes back
//!   as [`Executed::Duplicate`] or [`Executed::MissingReference`], whatever the database's codes.
//!
//! Every change that can alter a decision bumps the policy version as its *last* statement: the
//! row lock on the version is then held only by transactions about to commit, so concurrent policy
//! changes queue on it without ever waiting on each other in a cycle. A change that changes nothing
//! (granting what is granted, revoking what is not) does not bump it: an unchanged version means an
//! unchanged policy, and a cache never reloads for nothing.

use std::time::Duration;

use async_trait::async_trait;

use crate::access::{
    AuditFilter, AuditRecord, GrantRecord, Policy, PrincipalRecord, RoleAssignment, Securable,
    SigningKeyRecord,
};
use crate::input::{Scope, check_table_name};
use crate::{Result, StoreError};

/// Separates namespace levels in the `namespace` column, as everywhere in the store.
const LEVEL_SEPARATOR: char = '\u{1f}';

/// A value bound to a `?` of a statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    Bytes(&'a [u8]),
    /// The store's clock, in Unix milliseconds (see the module docs).
    Now,
}

/// A statement with one [`Arg`] per `?`, in order.
pub(crate) struct Stmt<'a> {
    pub sql: String,
    pub args: Vec<Arg<'a>>,
}

pub(crate) fn stmt<'a>(sql: impl Into<String>, args: impl Into<Vec<Arg<'a>>>) -> Stmt<'a> {
    Stmt {
        sql: sql.into(),
        args: args.into(),
    }
}

/// The type a fetched column is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Text,
    Int,
    Bytes,
}

/// One fetched column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Int(i64),
    Bytes(Vec<u8>),
}

/// What a changing statement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Executed {
    /// It ran, changing this many rows.
    Rows(u64),
    /// It broke a primary key or unique constraint.
    Duplicate,
    /// It broke a foreign key constraint (a grant or an assignment to a role that does not exist).
    MissingReference,
}

/// A backend's connection, inside whatever transaction the backend opened for the operation.
#[async_trait]
pub(crate) trait AccessConn: Send {
    /// The backend's error: PostgreSQL keeps database errors apart to retry serialization
    /// failures; any [`StoreError`] fails the operation as it is.
    type Error: From<StoreError> + Send;

    async fn execute(&mut self, stmt: &Stmt<'_>) -> Result<Executed, Self::Error>;

    /// The rows of a query, each column read as `columns` says.
    async fn fetch(
        &mut self,
        stmt: &Stmt<'_>,
        columns: &[Col],
    ) -> Result<Vec<Vec<Value>>, Self::Error>;
}

/// The rows of a query, as records.
pub(crate) async fn fetch<C: AccessConn, T>(
    conn: &mut C,
    stmt: Stmt<'_>,
    columns: &[Col],
    record: fn(&mut Fields) -> Result<T>,
) -> Result<Vec<T>, C::Error> {
    let rows = conn.fetch(&stmt, columns).await?;
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        records.push(record(&mut Fields(row.into_iter()))?);
    }
    Ok(records)
}

/// A changing statement's row count; a constraint it breaks is a bug here, so [`StoreError::Internal`].
pub(crate) async fn rows<C: AccessConn>(conn: &mut C, stmt: Stmt<'_>) -> Result<u64, C::Error> {
    match conn.execute(&stmt).await? {
        Executed::Rows(rows) => Ok(rows),
        other => Err(StoreError::Internal(format!("{:?} running {:?}", other, stmt.sql)).into()),
    }
}

/// A fetched row's columns, taken in order.
pub(crate) struct Fields(std::vec::IntoIter<Value>);

impl Fields {
    fn next(&mut self) -> Result<Value> {
        self.0
            .next()
            .ok_or_else(|| StoreError::Internal("a row has fewer columns than asked".into()))
    }

    pub(crate) fn text(&mut self) -> Result<String> {
        match self.next()? {
            Value::Text(text) => Ok(text),
            other => Err(mistyped("text", &other)),
        }
    }

    pub(crate) fn int(&mut self) -> Result<i64> {
        match self.next()? {
            Value::Int(int) => Ok(int),
            other => Err(mistyped("an integer", &other)),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        match self.next()? {
            Value::Bytes(bytes) => Ok(bytes),
            other => Err(mistyped("bytes", &other)),
        }
    }
}

fn mistyped(expected: &str, got: &Value) -> StoreError {
    let got = match got {
        Value::Text(_) => "text",
        Value::Int(_) => "an integer",
        Value::Bytes(_) => "bytes",
    };
    StoreError::Internal(format!("a column holds {got}, not {expected}"))
}

// Input checks: every backend refuses the same things.

/// Names (principals, roles, privileges, kids...) are non-empty and free of U+0000, which
/// PostgreSQL cannot store in text.
pub(crate) fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "a {what} is non-empty without U+0000, not {value:?}"
        )));
    }
    Ok(())
}

/// Free text (an audit record's target) may be empty, but PostgreSQL cannot store U+0000 either.
pub(crate) fn check_text(what: &str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "a {what} contains U+0000: {value:?}"
        )));
    }
    Ok(())
}

fn check_assignment(assignment: &RoleAssignment) -> Result<()> {
    check_name("principal name", &assignment.principal)?;
    check_name("role name", &assignment.role)
}

/// A securable's columns: `kind`, `warehouse`, `namespace`, `name`, with `""` for what it lacks.
struct SecurableColumns<'a> {
    kind: &'static str,
    warehouse: &'a str,
    namespace: String,
    name: &'a str,
}

impl<'a> SecurableColumns<'a> {
    /// The columns of `on`, refusing names that break the store's naming rules.
    fn of(on: &'a Securable) -> Result<Self> {
        let namespace_key = |namespace: &[String]| Scope::default().namespace_key(namespace);
        let columns = match on {
            Securable::Server => Self {
                kind: "server",
                warehouse: "",
                namespace: String::new(),
                name: "",
            },
            Securable::Warehouse(warehouse) => Self {
                kind: "warehouse",
                warehouse,
                namespace: String::new(),
                name: "",
            },
            Securable::Namespace {
                warehouse,
                namespace,
            } => Self {
                kind: "namespace",
                warehouse,
                namespace: namespace_key(namespace)?,
                name: "",
            },
            Securable::Table {
                warehouse,
                namespace,
                name,
            } => {
                check_table_name(name)?;
                Self {
                    kind: "table",
                    warehouse,
                    namespace: namespace_key(namespace)?,
                    name,
                }
            }
            Securable::View {
                warehouse,
                namespace,
                name,
            } => {
                check_table_name(name)?;
                Self {
                    kind: "view",
                    warehouse,
                    namespace: namespace_key(namespace)?,
                    name,
                }
            }
        };
        if !matches!(on, Securable::Server) {
            check_name("warehouse name", columns.warehouse)?;
        }
        Ok(columns)
    }

    fn args(&self) -> [Arg<'_>; 4] {
        [
            Arg::Text(self.kind),
            Arg::Text(self.warehouse),
            Arg::Text(&self.namespace),
            Arg::Text(self.name),
        ]
    }

    /// Reads the columns back; the schema's CHECK allows no other kind.
    fn securable(
        kind: &str,
        warehouse: String,
        namespace: &str,
        name: String,
    ) -> Result<Securable> {
        let namespace = || {
            namespace
                .split(LEVEL_SEPARATOR)
                .map(str::to_string)
                .collect()
        };
        Ok(match kind {
            "server" => Securable::Server,
            "warehouse" => Securable::Warehouse(warehouse),
            "namespace" => Securable::Namespace {
                warehouse,
                namespace: namespace(),
            },
            "table" => Securable::Table {
                warehouse,
                namespace: namespace(),
                name,
            },
            "view" => Securable::View {
                warehouse,
                namespace: namespace(),
                name,
            },
            other => {
                return Err(StoreError::Internal(format!(
                    "a grant has the unknown securable kind {other:?}"
                )));
            }
        })
    }
}

fn check_grant(grant: &GrantRecord) -> Result<SecurableColumns<'_>> {
    check_name("role name", &grant.role)?;
    check_name("privilege", &grant.privilege)?;
    SecurableColumns::of(&grant.on)
}

/// Ages are capped far beyond any retention, so that `now - age` cannot overflow.
pub(crate) fn age_millis(age: Duration) -> i64 {
    i64::try_from(age.as_millis())
        .unwrap_or(i64::MAX)
        .min(1 << 50)
}

/// Deletes the rows of `table` whose `column` (milliseconds since the epoch, by the store's
/// clock) is more than `older_than` ago; `only_if` is a further SQL condition rows must meet to go
/// (e.g. `resolved_at IS NOT NULL`), or `None`. Returns how many went.
pub(crate) async fn delete_older_than<C: AccessConn>(
    conn: &mut C,
    table: &'static str,
    column: &'static str,
    only_if: Option<&'static str>,
    older_than: Duration,
) -> Result<u64, C::Error> {
    let only_if = only_if
        .map(|condition| format!("{condition} AND "))
        .unwrap_or_default();
    rows(
        conn,
        stmt(
            format!("DELETE FROM {table} WHERE {only_if}{column} < ? - ?"),
            [Arg::Now, Arg::Int(age_millis(older_than))],
        ),
    )
    .await
}

async fn bump_policy_version<C: AccessConn>(conn: &mut C) -> Result<(), C::Error> {
    rows(
        conn,
        stmt("UPDATE policy_version SET version = version + 1", []),
    )
    .await?;
    Ok(())
}

// Principals.

const PRINCIPAL_COLUMNS: &str = "name, client_id, secret_hash, created_at";
const PRINCIPAL_COLS: [Col; 4] = [Col::Text, Col::Text, Col::Text, Col::Int];

fn principal_from(fields: &mut Fields) -> Result<PrincipalRecord> {
    Ok(PrincipalRecord {
        name: fields.text()?,
        client_id: fields.text()?,
        secret_hash: fields.text()?,
        created_at_ms: fields.int()?,
    })
}

pub(crate) async fn create_principal<C: AccessConn>(
    conn: &mut C,
    principal: &PrincipalRecord,
) -> Result<(), C::Error> {
    check_name("principal name", &principal.name)?;
    check_name("client id", &principal.client_id)?;
    check_name("secret hash", &principal.secret_hash)?;
    // Not an error on a taken name or client id, so that the transaction can still tell which.
    let inserted = rows(
        conn,
        stmt(
            "INSERT INTO principals (name, client_id, secret_hash, created_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                Arg::Text(&principal.name),
                Arg::Text(&principal.client_id),
                Arg::Text(&principal.secret_hash),
                Arg::Now,
            ],
        ),
    )
    .await?;
    if inserted == 1 {
        return Ok(());
    }
    let taken = conn
        .fetch(
            &stmt(
                "SELECT name FROM principals WHERE name = ?",
                [Arg::Text(&principal.name)],
            ),
            &[Col::Text],
        )
        .await?;
    Err(StoreError::AlreadyExists(if taken.is_empty() {
        format!("client id {:?}", principal.client_id)
    } else {
        format!("principal {}", principal.name)
    })
    .into())
}

pub(crate) async fn principal_by_client_id<C: AccessConn>(
    conn: &mut C,
    client_id: &str,
) -> Result<Option<PrincipalRecord>, C::Error> {
    check_name("client id", client_id)?;
    let found = fetch(
        conn,
        stmt(
            format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE client_id = ?"),
            [Arg::Text(client_id)],
        ),
        &PRINCIPAL_COLS,
        principal_from,
    )
    .await?;
    Ok(found.into_iter().next())
}

pub(crate) async fn list_principals<C: AccessConn>(
    conn: &mut C,
) -> Result<Vec<PrincipalRecord>, C::Error> {
    fetch(
        conn,
        stmt(
            format!("SELECT {PRINCIPAL_COLUMNS} FROM principals ORDER BY name"),
            [],
        ),
        &PRINCIPAL_COLS,
        principal_from,
    )
    .await
}

pub(crate) async fn delete_principal<C: AccessConn>(
    conn: &mut C,
    name: &str,
) -> Result<(), C::Error> {
    check_name("principal name", name)?;
    let deleted = rows(
        conn,
        stmt("DELETE FROM principals WHERE name = ?", [Arg::Text(name)]),
    )
    .await?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("principal {name}")).into());
    }
    rows(
        conn,
        stmt(
            "DELETE FROM role_assignments WHERE principal = ?",
            [Arg::Text(name)],
        ),
    )
    .await?;
    bump_policy_version(conn).await
}

pub(crate) async fn set_principal_secret<C: AccessConn>(
    conn: &mut C,
    name: &str,
    secret_hash: &str,
) -> Result<(), C::Error> {
    check_name("principal name", name)?;
    check_name("secret hash", secret_hash)?;
    let updated = rows(
        conn,
        stmt(
            "UPDATE principals SET secret_hash = ? WHERE name = ?",
            [Arg::Text(secret_hash), Arg::Text(name)],
        ),
    )
    .await?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("principal {name}")).into());
    }
    Ok(())
}

// Roles, assignments and grants.

pub(crate) async fn create_role<C: AccessConn>(conn: &mut C, name: &str) -> Result<(), C::Error> {
    check_name("role name", name)?;
    match conn
        .execute(&stmt(
            "INSERT INTO roles (name) VALUES (?)",
            [Arg::Text(name)],
        ))
        .await?
    {
        Executed::Rows(_) => bump_policy_version(conn).await,
        Executed::Duplicate => Err(StoreError::AlreadyExists(format!("role {name}")).into()),
        Executed::MissingReference => {
            Err(StoreError::Internal("roles reference nothing".into()).into())
        }
    }
}

pub(crate) async fn delete_role<C: AccessConn>(conn: &mut C, name: &str) -> Result<(), C::Error> {
    check_name("role name", name)?;
    // Its grants and assignments go with it (ON DELETE CASCADE).
    let deleted = rows(
        conn,
        stmt("DELETE FROM roles WHERE name = ?", [Arg::Text(name)]),
    )
    .await?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("role {name}")).into());
    }
    bump_policy_version(conn).await
}

/// Bumps the policy version if a change changed something; its role must exist.
async fn apply_change<C: AccessConn>(
    conn: &mut C,
    change: Stmt<'_>,
    role: &str,
) -> Result<bool, C::Error> {
    match conn.execute(&change).await? {
        Executed::Rows(0) => Ok(false),
        Executed::Rows(_) => {
            bump_policy_version(conn).await?;
            Ok(true)
        }
        Executed::MissingReference => Err(StoreError::NotFound(format!("role {role}")).into()),
        Executed::Duplicate => Err(StoreError::Internal(format!(
            "a duplicate despite ON CONFLICT running {:?}",
            change.sql
        ))
        .into()),
    }
}

pub(crate) async fn assign_role<C: AccessConn>(
    conn: &mut C,
    assignment: &RoleAssignment,
) -> Result<(), C::Error> {
    check_assignment(assignment)?;
    let insert = stmt(
        "INSERT INTO role_assignments (principal, role) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [
            Arg::Text(&assignment.principal),
            Arg::Text(&assignment.role),
        ],
    );
    apply_change(conn, insert, &assignment.role).await?;
    Ok(())
}

pub(crate) async fn unassign_role<C: AccessConn>(
    conn: &mut C,
    assignment: &RoleAssignment,
) -> Result<bool, C::Error> {
    check_assignment(assignment)?;
    let delete = stmt(
        "DELETE FROM role_assignments WHERE principal = ? AND role = ?",
        [
            Arg::Text(&assignment.principal),
            Arg::Text(&assignment.role),
        ],
    );
    apply_change(conn, delete, &assignment.role).await
}

pub(crate) async fn grant<C: AccessConn>(
    conn: &mut C,
    grant: &GrantRecord,
) -> Result<(), C::Error> {
    let on = check_grant(grant)?;
    let mut args = vec![Arg::Text(&grant.role), Arg::Text(&grant.privilege)];
    args.extend(on.args());
    let insert = stmt(
        "INSERT INTO grants (role, privilege, kind, warehouse, namespace, name) \
         VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        args,
    );
    apply_change(conn, insert, &grant.role).await?;
    Ok(())
}

pub(crate) async fn revoke<C: AccessConn>(
    conn: &mut C,
    grant: &GrantRecord,
) -> Result<bool, C::Error> {
    let on = check_grant(grant)?;
    let mut args = vec![Arg::Text(&grant.role), Arg::Text(&grant.privilege)];
    args.extend(on.args());
    let delete = stmt(
        "DELETE FROM grants WHERE role = ? AND privilege = ? AND kind = ? AND warehouse = ? \
         AND namespace = ? AND name = ?",
        args,
    );
    apply_change(conn, delete, &grant.role).await
}

pub(crate) async fn policy_version<C: AccessConn>(conn: &mut C) -> Result<i64, C::Error> {
    let versions = fetch(
        conn,
        stmt("SELECT version FROM policy_version", []),
        &[Col::Int],
        |fields| fields.int(),
    )
    .await?;
    match versions.as_slice() {
        [version] => Ok(*version),
        other => Err(StoreError::Internal(format!(
            "the policy version table has {} rows, not one",
            other.len()
        ))
        .into()),
    }
}

/// The whole policy; the backend runs it in one transaction over one snapshot.
pub(crate) async fn load_policy<C: AccessConn>(conn: &mut C) -> Result<Policy, C::Error> {
    let version = policy_version(conn).await?;
    let roles = fetch(
        conn,
        stmt("SELECT name FROM roles ORDER BY name", []),
        &[Col::Text],
        |fields| fields.text(),
    )
    .await?;
    let grants = fetch(
        conn,
        stmt(
            "SELECT role, privilege, kind, warehouse, namespace, name FROM grants \
             ORDER BY role, privilege, kind, warehouse, namespace, name",
            [],
        ),
        &[Col::Text; 6],
        |fields| {
            Ok(GrantRecord {
                role: fields.text()?,
                privilege: fields.text()?,
                on: SecurableColumns::securable(
                    &fields.text()?,
                    fields.text()?,
                    &fields.text()?,
                    fields.text()?,
                )?,
            })
        },
    )
    .await?;
    let assignments = fetch(
        conn,
        stmt(
            "SELECT principal, role FROM role_assignments ORDER BY principal, role",
            [],
        ),
        &[Col::Text; 2],
        |fields| {
            Ok(RoleAssignment {
                principal: fields.text()?,
                role: fields.text()?,
            })
        },
    )
    .await?;
    Ok(Policy {
        version,
        roles,
        grants,
        assignments,
    })
}

// Signing keys.

pub(crate) async fn add_signing_key<C: AccessConn>(
    conn: &mut C,
    key: &SigningKeyRecord,
) -> Result<(), C::Error> {
    check_name("key id", &key.kid)?;
    check_name("signing algorithm", &key.algorithm)?;
    // Created now, or just after the newest key if the clock says otherwise (keys added within
    // one millisecond, a clock stepped back): the last key added is always the newest.
    let insert = stmt(
        "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, created_at) \
         SELECT ?, ?, ?, ?, MAX(candidate) FROM \
         (SELECT ? AS candidate UNION ALL SELECT MAX(created_at) + 1 FROM signing_keys) AS times",
        [
            Arg::Text(&key.kid),
            Arg::Text(&key.algorithm),
            Arg::Bytes(&key.private_key),
            Arg::Bytes(&key.public_key),
            Arg::Now,
        ],
    );
    match conn.execute(&insert).await? {
        Executed::Rows(_) => Ok(()),
        Executed::Duplicate => {
            Err(StoreError::AlreadyExists(format!("signing key {}", key.kid)).into())
        }
        Executed::MissingReference => {
            Err(StoreError::Internal("signing keys reference nothing".into()).into())
        }
    }
}

pub(crate) async fn signing_keys<C: AccessConn>(
    conn: &mut C,
) -> Result<Vec<SigningKeyRecord>, C::Error> {
    fetch(
        conn,
        stmt(
            "SELECT kid, algorithm, private_key, public_key, created_at FROM signing_keys \
             ORDER BY created_at DESC, kid DESC",
            [],
        ),
        &[Col::Text, Col::Text, Col::Bytes, Col::Bytes, Col::Int],
        |fields| {
            Ok(SigningKeyRecord {
                kid: fields.text()?,
                algorithm: fields.text()?,
                private_key: fields.bytes()?,
                public_key: fields.bytes()?,
                created_at_ms: fields.int()?,
            })
        },
    )
    .await
}

pub(crate) async fn expire_signing_keys<C: AccessConn>(
    conn: &mut C,
    older_than: Duration,
) -> Result<u64, C::Error> {
    rows(
        conn,
        stmt(
            "DELETE FROM signing_keys WHERE created_at < ? - ? AND kid <> \
             (SELECT kid FROM signing_keys ORDER BY created_at DESC, kid DESC LIMIT 1)",
            [Arg::Now, Arg::Int(age_millis(older_than))],
        ),
    )
    .await
}

// The audit log.

pub(crate) async fn record_audit<C: AccessConn>(
    conn: &mut C,
    records: &[AuditRecord],
) -> Result<(), C::Error> {
    for record in records {
        check_name("audit record id", &record.id)?;
        check_name("principal name", &record.principal)?;
        check_name("route", &record.route)?;
        check_name("outcome", &record.outcome)?;
        check_text("target", &record.target)?;
        check_text("request id", &record.request_id)?;
    }
    for record in records {
        // A record already there is skipped: a batch that failed to report its outcome can be
        // sent again.
        rows(
            conn,
            stmt(
                "INSERT INTO audit_log \
                 (id, at_ms, principal, route, target, outcome, status, request_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    Arg::Text(&record.id),
                    Arg::Int(record.at_ms),
                    Arg::Text(&record.principal),
                    Arg::Text(&record.route),
                    Arg::Text(&record.target),
                    Arg::Text(&record.outcome),
                    Arg::Int(i64::from(record.status)),
                    Arg::Text(&record.request_id),
                ],
            ),
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn list_audit<C: AccessConn>(
    conn: &mut C,
    filter: &AuditFilter,
    limit: usize,
) -> Result<Vec<AuditRecord>, C::Error> {
    // Only the filters asked for, so that each listing can use its index.
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    if let Some(principal) = &filter.principal {
        check_name("principal name", principal)?;
        conditions.push("principal = ?");
        args.push(Arg::Text(principal));
    }
    if let Some(since_ms) = filter.since_ms {
        conditions.push("at_ms >= ?");
        args.push(Arg::Int(since_ms));
    }
    let mut sql = String::from(
        "SELECT id, at_ms, principal, route, target, outcome, status, request_id FROM audit_log",
    );
    if !conditions.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY at_ms DESC, id DESC LIMIT ?");
    args.push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
    fetch(
        conn,
        stmt(sql, args),
        &[
            Col::Text,
            Col::Int,
            Col::Text,
            Col::Text,
            Col::Text,
            Col::Text,
            Col::Int,
            Col::Text,
        ],
        |fields| {
            Ok(AuditRecord {
                id: fields.text()?,
                at_ms: fields.int()?,
                principal: fields.text()?,
                route: fields.text()?,
                target: fields.text()?,
                outcome: fields.text()?,
                status: u16::try_from(fields.int()?).map_err(|err| {
                    StoreError::Internal(format!("an audit record's status: {err}"))
                })?,
                request_id: fields.text()?,
            })
        },
    )
    .await
}

pub(crate) async fn expire_audit<C: AccessConn>(
    conn: &mut C,
    older_than: Duration,
) -> Result<u64, C::Error> {
    delete_older_than(conn, "audit_log", "at_ms", None, older_than).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(levels: &[&str]) -> Vec<String> {
        levels.iter().map(|level| level.to_string()).collect()
    }

    #[test]
    fn securables_round_trip_through_their_columns() {
        let securables = [
            Securable::Server,
            Securable::Warehouse("main".into()),
            Securable::Namespace {
                warehouse: "main".into(),
                namespace: levels(&["a", "b", "ç"]),
            },
            Securable::Table {
                warehouse: "main".into(),
                namespace: levels(&["a"]),
                name: "tâble".into(),
            },
            Securable::View {
                warehouse: "lake".into(),
                namespace: levels(&["a", "b"]),
                name: "v".into(),
            },
        ];
        for on in &securables {
            let columns = SecurableColumns::of(on).unwrap();
            let back = SecurableColumns::securable(
                columns.kind,
                columns.warehouse.to_string(),
                &columns.namespace,
                columns.name.to_string(),
            )
            .unwrap();
            assert_eq!(&back, on);
        }
    }

    #[test]
    fn malformed_securables_are_refused() {
        let bad = [
            Securable::Warehouse(String::new()),
            Securable::Warehouse("a\0".into()),
            Securable::Namespace {
                warehouse: "main".into(),
                namespace: Vec::new(),
            },
            Securable::Namespace {
                warehouse: "main".into(),
                namespace: levels(&["a\u{1f}b"]),
            },
            Securable::Table {
                warehouse: "main".into(),
                namespace: levels(&["a"]),
                name: String::new(),
            },
            Securable::View {
                warehouse: String::new(),
                namespace: levels(&["a"]),
                name: "v".into(),
            },
        ];
        for on in &bad {
            assert!(
                matches!(SecurableColumns::of(on), Err(StoreError::InvalidInput(_))),
                "{on:?}"
            );
        }
    }

    #[test]
    fn unknown_kinds_are_corrupt() {
        let err = SecurableColumns::securable("bucket", "w".into(), "", String::new()).unwrap_err();
        assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    }
}
