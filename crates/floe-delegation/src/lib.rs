//! Delegated access to a table's files: how a client that may use a table reaches exactly that
//! table's objects without ever holding the warehouse's own keys.
//!
//! Two modes, chosen per request from the client's `X-Iceberg-Access-Delegation` header and the
//! warehouse's settings ([`floe_storage::DelegationOptions::choose`]):
//!
//! - **Vended credentials**: short-lived keys from STS `AssumeRole` with an inline session
//!   policy that allows object reads (and, with the `write` privilege, writes and deletes) under
//!   the table's prefix only, and listing with that prefix only.
//! - **Remote signing**: the client sends each object-store request to the catalog, which checks
//!   that the method fits the caller's privilege and that every key is inside the table, then
//!   signs it (SigV4) with the warehouse's keys.
//!
//! Both start from a [`TablePrefix`]: the one place a table's location becomes a bucket and key
//! prefix, refused when it is not plainly inside the warehouse. The catalog decides who the caller
//! is and which privilege it holds; this crate only turns that decision into scoped access.

mod policy;
mod prefix;
mod sign;
pub mod sts;
mod vend;

pub use policy::session_policy;
pub use prefix::TablePrefix;
pub use sign::{SignRequest, SignedRequest, TableAccess, sign};
pub use sts::TemporaryCredentials;
pub use vend::Vendor;

/// Why delegated access was not given.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    /// The request is outside what the caller may do (a key outside the table, a write with only
    /// read): a 403.
    #[error("{0}")]
    Forbidden(String),
    /// The request is malformed (a bad URL, an unknown method): a 400.
    #[error("{0}")]
    BadRequest(String),
    /// The warehouse does not offer this (not on S3, mode not allowed, no keys): a 400.
    #[error("{0}")]
    NotOffered(String),
    /// STS or the signer could not answer now: a 503 the client may retry.
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = DelegationError> = std::result::Result<T, E>;
