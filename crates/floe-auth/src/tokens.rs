//! Floe as its own token issuer (the `oauth2` mode): EdDSA-signed JWTs from keys every replica
//! shares through the metadata store.
//!
//! Keys rotate by `kid`: a replica that finds the newest key older than the rotation period adds a
//! new one and signs with it; older keys keep verifying the tokens they signed until those expire,
//! and are deleted well after. A token signed by a key this replica has not seen yet (another
//! replica rotated) makes it re-read the keys, at most once a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use floe_store::{MetadataStore, SigningKeyRecord};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::AuthError;

/// The `iss` and `aud` of the tokens Floe issues.
pub const ISSUER: &str = "floe";

const ALGORITHM: &str = "EdDSA";

/// How often a replica may re-read the signing keys because of an unknown `kid`.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The claims of a Floe token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The principal's name.
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

/// A token just issued.
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: Duration,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

struct KeyRing {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
}

/// Issues and verifies Floe's tokens.
pub struct TokenIssuer {
    store: Arc<dyn MetadataStore>,
    lifetime: Duration,
    rotation: Duration,
    keys: RwLock<Arc<KeyRing>>,
    last_reload: Mutex<Instant>,
}

impl TokenIssuer {
    /// Loads the signing keys, adding one when there is none or the newest is older than
    /// `rotation`. `lifetime` is how long a token lives (at most an hour).
    pub async fn open(
        store: Arc<dyn MetadataStore>,
        lifetime: Duration,
        rotation: Duration,
    ) -> Result<Self, AuthError> {
        let keys = ensure_current_key(store.as_ref(), rotation).await?;
        Ok(Self {
            store,
            lifetime,
            rotation,
            keys: RwLock::new(Arc::new(keys)),
            last_reload: Mutex::new(Instant::now()),
        })
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// A signed token for `principal`.
    pub fn issue(&self, principal: &str) -> Result<IssuedToken, AuthError> {
        let keys = self.ring();
        let now = unix_now();
        let claims = Claims {
            iss: ISSUER.to_string(),
            aud: ISSUER.to_string(),
            sub: principal.to_string(),
            iat: now,
            exp: now + self.lifetime.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.signing_kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &keys.signing)
            .map_err(|err| AuthError::Internal(format!("signing a token: {err}")))?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.lifetime,
        })
    }

    /// The claims of a valid token of ours: signature, issuer, audience and expiry checked.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|err| AuthError::InvalidToken(format!("malformed token: {err}")))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken(format!(
                "tokens of this server are signed with EdDSA, not {:?}",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::InvalidToken("token has no kid".to_string()))?;
        let key =
            match self.ring().verifying.get(&kid).cloned() {
                Some(key) => key,
                None => {
                    self.reload_if_allowed().await?;
                    self.ring().verifying.get(&kid).cloned().ok_or_else(|| {
                        AuthError::InvalidToken(format!("unknown signing key {kid}"))
                    })?
                }
            };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|err| AuthError::InvalidToken(err.to_string()))
    }

    /// Adds a new key if the newest one is past the rotation period, and forgets keys no token
    /// can still need. Run now and then by the server.
    pub async fn rotate_if_due(&self) -> Result<(), AuthError> {
        let keys = ensure_current_key(self.store.as_ref(), self.rotation).await?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        // A key stops signing one rotation period after it was made; tokens it signed live at most
        // `lifetime` more. Twice the period is well past both.
        self.store
            .access()
            .expire_signing_keys(self.rotation * 2 + self.lifetime)
            .await?;
        Ok(())
    }

    fn ring(&self) -> Arc<KeyRing> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn reload_if_allowed(&self) -> Result<(), AuthError> {
        {
            let mut last = self.last_reload.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < KEY_RELOAD_INTERVAL {
                return Ok(());
            }
            *last = Instant::now();
        }
        let records = self.store.access().signing_keys().await?;
        let keys = key_ring(&records)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(())
    }
}

async fn ensure_current_key(
    store: &dyn MetadataStore,
    rotation: Duration,
) -> Result<KeyRing, AuthError> {
    let access = store.access();
    let mut records = access.signing_keys().await?;
    let now_ms = unix_now() as i64 * 1000;
    let newest_is_fresh = records
        .first()
        .is_some_and(|key| now_ms - key.created_at_ms < rotation.as_millis() as i64);
    if !newest_is_fresh {
        let record = new_signing_key()?;
        access.add_signing_key(&record).await?;
        tracing::info!(kid = record.kid, "added a token signing key");
        records = access.signing_keys().await?;
    }
    key_ring(&records)
}

fn new_signing_key() -> Result<SigningKeyRecord, AuthError> {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let private_key = key
        .to_pkcs8_der()
        .map_err(|err| AuthError::Internal(format!("encoding a signing key: {err}")))?
        .as_bytes()
        .to_vec();
    Ok(SigningKeyRecord {
        kid: uuid::Uuid::now_v7().to_string(),
        algorithm: ALGORITHM.to_string(),
        private_key,
        public_key: key.verifying_key().to_bytes().to_vec(),
        created_at_ms: 0,
    })
}

/// Signs with the newest key; verifies with all.
fn key_ring(records: &[SigningKeyRecord]) -> Result<KeyRing, AuthError> {
    let usable: Vec<&SigningKeyRecord> = records
        .iter()
        .filter(|record| record.algorithm == ALGORITHM)
        .collect();
    let newest = usable
        .first()
        .ok_or_else(|| AuthError::Internal("no token signing key in the store".to_string()))?;
    Ok(KeyRing {
        signing_kid: newest.kid.clone(),
        signing: EncodingKey::from_ed_der(&newest.private_key),
        verifying: usable
            .iter()
            .map(|record| {
                (
                    record.kid.clone(),
                    DecodingKey::from_ed_der(&record.public_key),
                )
            })
            .collect(),
    })
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}
