//! The `[auth]` settings of `floe serve`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How callers prove who they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// No identity: every caller may do everything. Only on a loopback address.
    #[default]
    None,
    /// Floe issues its own tokens to the principals it knows (client id + secret).
    Oauth2,
    /// Bearer tokens of an external OpenID Connect issuer, checked against its JWKS.
    Oidc,
}

/// Everything about identities, grants and the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthConfig {
    pub mode: AuthKind,
    /// Allow `mode = none` on an address that is not loopback (anyone who reaches the port may
    /// do anything).
    pub insecure_no_auth: bool,
    /// Lifetime of the tokens Floe issues, in seconds (at most 3600).
    pub token_lifetime_secs: u64,
    /// A new token-signing key is made when the newest is this old, in days.
    pub signing_key_rotation_days: u64,
    /// `oidc`: the `iss` tokens must carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// `oidc`: the `aud` tokens must carry (any audience when unset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_audience: Option<String>,
    /// `oidc`: URL of the issuer's JWKS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_jwks_url: Option<String>,
    /// `oidc`: a file holding the issuer's JWKS, instead of a URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc_jwks_file: Option<PathBuf>,
    /// `oidc`: the claim naming the principal.
    pub oidc_principal_claim: String,
    /// Audit records older than this are deleted, in days.
    pub audit_retention_days: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            mode: AuthKind::None,
            insecure_no_auth: false,
            token_lifetime_secs: 3600,
            signing_key_rotation_days: 30,
            oidc_issuer: None,
            oidc_audience: None,
            oidc_jwks_url: None,
            oidc_jwks_file: None,
            oidc_principal_claim: "sub".to_string(),
            audit_retention_days: 90,
        }
    }
}

impl AuthConfig {
    /// The checks `floe serve` runs before it binds: a wrong setting is an error at start, not a
    /// surprise on the first request.
    pub fn validate(&self, host: std::net::IpAddr) -> Result<(), String> {
        if self.mode == AuthKind::None && !host.is_loopback() && !self.insecure_no_auth {
            return Err(format!(
                "refusing to serve {host} without authentication: anyone who reaches it could \
                 read, change and delete every table. Use --auth oauth2 (or oidc), listen on \
                 127.0.0.1, or pass --insecure-no-auth if you really mean it"
            ));
        }
        if self.token_lifetime_secs == 0 || self.token_lifetime_secs > 3600 {
            return Err("auth.token-lifetime-secs must be between 1 and 3600".to_string());
        }
        if self.signing_key_rotation_days == 0 || self.audit_retention_days == 0 {
            return Err(
                "auth.signing-key-rotation-days and auth.audit-retention-days must be at least 1"
                    .to_string(),
            );
        }
        if self.mode == AuthKind::Oidc {
            if self.oidc_issuer.is_none() {
                return Err("--auth oidc needs --oidc-issuer".to_string());
            }
            if self.oidc_jwks_url.is_some() == self.oidc_jwks_file.is_some() {
                return Err(
                    "--auth oidc needs exactly one of --oidc-jwks-url and --oidc-jwks-file"
                        .to_string(),
                );
            }
            if self.oidc_principal_claim.is_empty() {
                return Err("auth.oidc-principal-claim must not be empty".to_string());
            }
        }
        Ok(())
    }
}
