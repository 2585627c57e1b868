//! What the metadata store keeps for access control: principals, roles, grants, token-signing keys
//! and the audit log.
//!
//! The store only keeps these records; deciding what a principal may do is `floe-auth`'s job. Two
//! properties matter to it and are promised here:
//!
//! - **One policy version.** Every change that can alter a decision (a grant or revoke, a role
//!   created, deleted, assigned or unassigned, a principal deleted) bumps one global counter in the
//!   same transaction. A change that changes nothing (granting what is granted, assigning again,
//!   revoking or unassigning what is not there) and everything else (principals' creation and
//!   secrets, signing keys, the audit log) leaves it, so an unchanged version means an unchanged
//!   policy. A server caches the whole [`Policy`] and re-reads it only when
//!   [`AccessStore::policy_version`] moved; that one cheap query per second per replica is what lets
//!   a revoke on one replica take effect on every other within a second, whatever the number of
//!   grants or tables.
//! - **One consistent read.** [`AccessStore::load_policy`] reads the version, every grant and every
//!   role assignment in one transaction, so a cached policy is never half of one change.
//!
//! Grants name their target by name (warehouse, namespace path, table or view name), not by an id:
//! a table dropped and created again under the same name gets the grants of the old one. Dropping a
//! securable does not revoke its grants; `floe revoke` does.
//!
//! Client secrets are stored only as password hashes (argon2 PHC strings, made by `floe-auth`).
//! Signing keys are stored with their private half: anyone who can read the metadata store can mint
//! tokens, as anyone who can write it can move pointers. Protect the store accordingly.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::{NamespacePath, Result};

/// A client of the `oauth2` auth mode: it gets tokens with its client id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PrincipalRecord {
    /// Unique; what grants, the audit log and token subjects call it.
    pub name: String,
    /// Unique; what the client sends as `client_id`.
    pub client_id: String,
    /// The client secret's argon2 hash (PHC string), never the secret.
    pub secret_hash: String,
    /// Unix milliseconds, set by the store.
    pub created_at_ms: i64,
}

impl fmt::Debug for PrincipalRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Even a hash of the secret stays out of logs.
        f.debug_struct("PrincipalRecord")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// What a grant applies to. Namespaces nest: a grant on `a` covers `a.b` and everything in both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Securable {
    /// The whole service: every warehouse, and the management API.
    Server,
    Warehouse(String),
    Namespace {
        warehouse: String,
        namespace: NamespacePath,
    },
    Table {
        warehouse: String,
        namespace: NamespacePath,
        name: String,
    },
    View {
        warehouse: String,
        namespace: NamespacePath,
        name: String,
    },
}

/// A privilege granted to a role on a securable. Privileges are plain strings here (`read`,
/// `write`, `create`, `drop`, `maintain`, `manage-grants`, `admin`); `floe-auth` gives them their
/// meaning, so a new one needs no schema change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantRecord {
    pub role: String,
    pub privilege: String,
    pub on: Securable,
}

/// A principal's membership in a role. Principals are named by their principal name, which for the
/// `oidc` mode is a claim of an external token: the principal need not be a [`PrincipalRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleAssignment {
    pub principal: String,
    pub role: String,
}

/// Everything a decision needs, as of one policy version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub version: i64,
    /// Every role, in name order (a role may hold no grant and no member yet).
    pub roles: Vec<String>,
    /// Every grant once, in role order.
    pub grants: Vec<GrantRecord>,
    /// Every assignment once, in principal order.
    pub assignments: Vec<RoleAssignment>,
}

/// A key that signs the tokens of the `oauth2` mode. Replicas share them through the store, so a
/// token one replica issued verifies on every other.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The JWT `kid`: unique.
    pub kid: String,
    /// The JWT `alg`, e.g. `EdDSA`.
    pub algorithm: String,
    /// The private key (PKCS#8 DER).
    pub private_key: Vec<u8>,
    /// The public key (raw, as the algorithm defines it).
    pub public_key: Vec<u8>,
    /// Unix milliseconds, set by the store.
    pub created_at_ms: i64,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// One audited request: a mutation (allowed or not) or a denied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Unique per record; time-ordered (UUIDv7) so that listings are stable.
    pub id: String,
    /// Unix milliseconds, by the recording server's clock.
    pub at_ms: i64,
    /// The principal's name; `anonymous` without auth, `unauthenticated` when no valid token came.
    pub principal: String,
    /// The HTTP method and route template, e.g. `POST /v1/{prefix}/namespaces`.
    pub route: String,
    /// What the request was about, e.g. `main/sales.orders`; empty when nothing in particular.
    pub target: String,
    /// `allowed` (and the response status says how it went), `denied` or `unauthenticated`.
    pub outcome: String,
    /// The response's HTTP status.
    pub status: u16,
    pub request_id: String,
}

/// Which audit records [`AccessStore::list_audit`] returns; `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only records at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    pub principal: Option<String>,
}

/// The access-control records (see the module docs). Every method is one atomic operation; names
/// are non-empty and free of U+0000 ([`crate::StoreError::InvalidInput`] otherwise).
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// [`crate::StoreError::AlreadyExists`] if the name or the client id is taken.
    /// `created_at_ms` is ignored: the store sets it.
    async fn create_principal(&self, principal: &PrincipalRecord) -> Result<()>;

    /// The principal with this client id, if any.
    async fn principal_by_client_id(&self, client_id: &str) -> Result<Option<PrincipalRecord>>;

    /// Every principal, in name order.
    async fn list_principals(&self) -> Result<Vec<PrincipalRecord>>;

    /// Deletes the principal and its role assignments (bumping the policy version);
    /// [`crate::StoreError::NotFound`] if there is no such principal.
    async fn delete_principal(&self, name: &str) -> Result<()>;

    /// Replaces the principal's secret hash; [`crate::StoreError::NotFound`] if there is no such
    /// principal.
    async fn set_principal_secret(&self, name: &str, secret_hash: &str) -> Result<()>;

    /// [`crate::StoreError::AlreadyExists`] if the role exists.
    async fn create_role(&self, name: &str) -> Result<()>;

    /// Deletes the role with its grants and assignments; [`crate::StoreError::NotFound`] if there
    /// is no such role.
    async fn delete_role(&self, name: &str) -> Result<()>;

    /// Gives `principal` the role; the role must exist ([`crate::StoreError::NotFound`]).
    /// Assigning it again changes nothing.
    async fn assign_role(&self, assignment: &RoleAssignment) -> Result<()>;

    /// Takes the role away; returns whether the principal held it (`false` too when the role does
    /// not exist).
    async fn unassign_role(&self, assignment: &RoleAssignment) -> Result<bool>;

    /// Records a grant; its role must exist ([`crate::StoreError::NotFound`]). Granting it again
    /// changes nothing.
    async fn grant(&self, grant: &GrantRecord) -> Result<()>;

    /// Removes a grant; returns whether it existed (`false` too when the role does not exist).
    async fn revoke(&self, grant: &GrantRecord) -> Result<bool>;

    /// The current policy version: one indexed read, for the freshness check.
    async fn policy_version(&self) -> Result<i64>;

    /// The whole policy, read in one transaction.
    async fn load_policy(&self) -> Result<Policy>;

    /// Adds a signing key; [`crate::StoreError::AlreadyExists`] if the kid is taken.
    /// `created_at_ms` is ignored: the store sets it by its clock, but always later than every
    /// key already there, so that the key added last is the newest.
    async fn add_signing_key(&self, key: &SigningKeyRecord) -> Result<()>;

    /// Every signing key, newest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;

    /// Deletes the signing keys created more than `older_than` ago, except the newest key;
    /// returns how many.
    async fn expire_signing_keys(&self, older_than: Duration) -> Result<u64>;

    /// Appends audit records (a batch, in one transaction: all or none). A record whose id is
    /// already there is skipped, so a batch whose outcome was lost can be sent again. Ids,
    /// principals, routes and outcomes are names; no field holds U+0000.
    async fn record_audit(&self, records: &[AuditRecord]) -> Result<()>;

    /// The most recent records matching `filter`, newest first, at most `limit`.
    async fn list_audit(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRecord>>;

    /// Deletes records older than `older_than` (their `at_ms` against the store's clock); returns
    /// how many.
    async fn expire_audit(&self, older_than: Duration) -> Result<u64>;
}
