//! Floe's identities and grants: who is calling, what they may do, and the record of it.
//!
//! # The model
//!
//! A **principal** is a caller with a name. In the `oauth2` mode Floe is its own token issuer:
//! principals are clients with an id and a secret ([`principals`]), who trade them for a short-lived
//! signed JWT at `POST /v1/oauth/tokens` ([`tokens`]). In the `oidc` mode tokens come from an external
//! issuer and are checked against its JWKS ([`oidc`]); the principal's name is one of their claims.
//! In the `none` mode (loopback only, the quick start) every caller is the `anonymous` principal and
//! may do everything.
//!
//! A **grant** gives a role a [`Privilege`] on a [`Securable`]: the whole server, a warehouse, a
//! namespace (covering the namespaces nested in it and everything inside), a table or a view.
//! Principals hold roles. [`Authorizer::decide`] answers one question — may this principal do
//! this to that — from a [`policy::CompiledPolicy`] held in memory, so a decision costs no store
//! round trip; the policy is re-read when the store's policy version moves, checked at least every
//! [`POLICY_FRESHNESS`], so a revoke on one replica holds on every replica within that time.
//!
//! Every mutation and every denied request is written to the **audit log** ([`audit`]), in the
//! metadata store, by the same decision path in the server.
//!
//! Tokens are checked on every request without a store round trip: the signing keys (ours) or the
//! JWKS (an external issuer's) are held in memory, and a verified token is cached until it expires.

pub mod audit;
mod authorizer;
pub mod oidc;
pub mod policy;
pub mod principals;
mod privilege;
mod securable;
pub mod tokens;

use std::time::Duration;

pub use authorizer::{AuthError, AuthMode, Authorizer, Principal};
pub use floe_store::Securable;
pub use privilege::Privilege;
pub use securable::{format_securable, parse_securable};

/// The longest a decision may rest on a policy older than the store's: a revoke takes effect on
/// every replica within this time, like a table commit.
pub const POLICY_FRESHNESS: Duration = Duration::from_secs(1);

/// The principal of every request when auth is off.
pub const ANONYMOUS: &str = "anonymous";

/// The role that the first `oauth2` start creates, with `admin` on the server.
pub const ADMIN_ROLE: &str = "admin";
