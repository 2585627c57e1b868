//! `floe serve`'s authentication flags (the `[auth]` table of the config file).

use std::path::PathBuf;

use clap::Args;
use floe_catalog::auth::{AuthConfig, AuthKind};

#[derive(Args, Debug, Default)]
pub struct AuthArgs {
    /// How callers prove who they are: none (everyone may do everything; loopback only), oauth2
    /// (Floe issues tokens to the principals of `floe principal` at /v1/oauth/tokens; clients use
    /// credential=CLIENT_ID:SECRET), or oidc (bearer tokens of an external issuer) [default: none].
    #[arg(long, env = "FLOE_AUTH", value_name = "MODE")]
    auth: Option<AuthKind>,
    /// Allow --auth none on an address that is not loopback: anyone who reaches the port may
    /// read, change and delete every table.
    #[arg(long, env = "FLOE_INSECURE_NO_AUTH")]
    insecure_no_auth: bool,
    /// Lifetime of issued tokens, in seconds, at most 3600 [default: 3600].
    #[arg(long, env = "FLOE_TOKEN_LIFETIME_SECS", value_name = "SECS")]
    token_lifetime_secs: Option<u64>,
    /// oidc: the issuer (`iss`) tokens must carry.
    #[arg(long, env = "FLOE_OIDC_ISSUER", value_name = "URL")]
    oidc_issuer: Option<String>,
    /// oidc: the audience (`aud`) tokens must carry [default: any].
    #[arg(long, env = "FLOE_OIDC_AUDIENCE")]
    oidc_audience: Option<String>,
    /// oidc: URL of the issuer's JWKS (public keys), re-fetched when a token names an unknown kid.
    #[arg(long, env = "FLOE_OIDC_JWKS_URL", value_name = "URL")]
    oidc_jwks_url: Option<String>,
    /// oidc: a file with the issuer's JWKS, instead of a URL.
    #[arg(long, env = "FLOE_OIDC_JWKS_FILE", value_name = "FILE")]
    oidc_jwks_file: Option<PathBuf>,
    /// oidc: the claim that names the principal in grants and the audit log [default: sub].
    #[arg(long, env = "FLOE_OIDC_PRINCIPAL_CLAIM", value_name = "CLAIM")]
    oidc_principal_claim: Option<String>,
    /// Days audit records are kept [default: 90].
    #[arg(long, env = "FLOE_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    audit_retention_days: Option<u64>,
}

impl AuthArgs {
    /// Flags over what the file (or the defaults) said.
    pub fn apply(&self, config: &mut AuthConfig) {
        if let Some(mode) = self.auth {
            config.mode = mode;
        }
        config.insecure_no_auth |= self.insecure_no_auth;
        let set = |target: &mut Option<String>, value: &Option<String>| {
            if value.is_some() {
                target.clone_from(value);
            }
        };
        set(&mut config.oidc_issuer, &self.oidc_issuer);
        set(&mut config.oidc_audience, &self.oidc_audience);
        set(&mut config.oidc_jwks_url, &self.oidc_jwks_url);
        if self.oidc_jwks_file.is_some() {
            config.oidc_jwks_file.clone_from(&self.oidc_jwks_file);
        }
        if let Some(claim) = &self.oidc_principal_claim {
            config.oidc_principal_claim.clone_from(claim);
        }
        if let Some(secs) = self.token_lifetime_secs {
            config.token_lifetime_secs = secs;
        }
        if let Some(days) = self.audit_retention_days {
            config.audit_retention_days = days;
        }
    }
}
