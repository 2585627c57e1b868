//! Bearer tokens from an external OpenID Connect issuer (the `oidc` mode), checked against its
//! JWKS: signature, issuer, audience and expiry; the principal is one of the token's claims.
//!
//! The key set is held in memory. A token signed by a `kid` it does not hold (the issuer rotated)
//! makes it fetch the set again, at most once per [`JWKS_RELOAD_INTERVAL`], so a flood of forged
//! kids cannot turn into a flood of fetches.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::AuthError;

pub const JWKS_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Where the issuer's public keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry; `None` accepts any audience.
    pub audience: Option<String>,
    pub jwks: JwksSource,
    /// The claim that names the principal (`sub` by default; e.g. `email`, `preferred_username`).
    pub principal_claim: String,
}

/// Who a verified token names, and until when (Unix seconds, its `exp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    pub principal: String,
    pub expires: u64,
}

pub struct OidcVerifier {
    settings: OidcSettings,
    keys: RwLock<JwkSet>,
    last_fetch: Mutex<Instant>,
    http: reqwest::Client,
}

/// Asymmetric algorithms only: a JWKS holds public keys, and an HMAC "signature" made with a public
/// key proves nothing.
const ACCEPTED: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

impl OidcVerifier {
    /// Fetches the key set once, so that a wrong URL or file fails at start.
    pub async fn open(settings: OidcSettings) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| AuthError::Internal(err.to_string()))?;
        let keys = fetch(&http, &settings.jwks).await?;
        Ok(Self {
            settings,
            keys: RwLock::new(keys),
            last_fetch: Mutex::new(Instant::now()),
            http,
        })
    }

    /// The principal a valid token names, and when the token expires.
    pub async fn verify(&self, token: &str) -> Result<OidcIdentity, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| AuthError::InvalidToken(format!("malformed token: {err}")))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(AuthError::InvalidToken(format!(
                "token algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = match self.key(header.kid.as_deref())? {
            Some(key) => key,
            None => {
                self.reload_if_allowed().await?;
                self.key(header.kid.as_deref())?.ok_or_else(|| {
                    AuthError::InvalidToken(format!(
                        "no key {:?} in the issuer's key set",
                        header.kid.unwrap_or_default()
                    ))
                })?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        match &self.settings.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.leeway = 30;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|err| AuthError::InvalidToken(err.to_string()))?
            .claims;
        let principal = match claims.get(&self.settings.principal_claim) {
            Some(Value::String(name)) if !name.is_empty() && !name.contains('\0') => name.clone(),
            _ => {
                return Err(AuthError::InvalidToken(format!(
                    "token has no string claim {:?} to name its principal",
                    self.settings.principal_claim
                )));
            }
        };
        // NumericDate may carry a fraction; the validation above already required `exp`.
        let expires = claims
            .get("exp")
            .and_then(Value::as_f64)
            .filter(|exp| *exp >= 0.0)
            .ok_or_else(|| AuthError::InvalidToken("token has no numeric exp".to_string()))?
            as u64;
        Ok(OidcIdentity { principal, expires })
    }

    fn key(&self, kid: Option<&str>) -> Result<Option<DecodingKey>, AuthError> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let jwk = match kid {
            Some(kid) => keys.find(kid),
            // Without a kid, only an unambiguous set will do.
            None if keys.keys.len() == 1 => keys.keys.first(),
            None => None,
        };
        jwk.map(|jwk| {
            DecodingKey::from_jwk(jwk).map_err(|err| {
                AuthError::InvalidToken(format!("unusable key in the key set: {err}"))
            })
        })
        .transpose()
    }

    async fn reload_if_allowed(&self) -> Result<(), AuthError> {
        {
            let mut last = self.last_fetch.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < JWKS_RELOAD_INTERVAL {
                return Ok(());
            }
            *last = Instant::now();
        }
        let keys = fetch(&self.http, &self.settings.jwks).await?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }
}

async fn fetch(http: &reqwest::Client, source: &JwksSource) -> Result<JwkSet, AuthError> {
    let text = match source {
        JwksSource::File(path) => tokio::fs::read_to_string(path).await.map_err(|err| {
            AuthError::Unavailable(format!(
                "cannot read the JWKS file {}: {err}",
                path.display()
            ))
        })?,
        JwksSource::Url(url) => http
            .get(url)
            .send()
            .await
            .and_then(|response| response.error_for_status())
            .map_err(|err| AuthError::Unavailable(format!("cannot fetch the JWKS {url}: {err}")))?
            .text()
            .await
            .map_err(|err| AuthError::Unavailable(format!("cannot fetch the JWKS {url}: {err}")))?,
    };
    serde_json::from_str(&text)
        .map_err(|err| AuthError::Unavailable(format!("the JWKS is not a valid key set: {err}")))
}
