//! The one place that turns a bearer token into a principal and answers "may it do this?".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use floe_store::{MetadataStore, Securable, StoreError};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use crate::oidc::OidcVerifier;
use crate::policy::CompiledPolicy;
use crate::tokens::{TokenIssuer, unix_now};
use crate::{ANONYMOUS, POLICY_FRESHNESS, Privilege};

/// How the server knows its callers.
pub enum AuthMode {
    /// Everyone is [`ANONYMOUS`] and may do everything: loopback only.
    None,
    /// Floe issues its own tokens.
    OAuth2(Arc<TokenIssuer>),
    /// Tokens of an external OpenID Connect issuer.
    Oidc(Arc<OidcVerifier>),
}

impl AuthMode {
    pub fn name(&self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::OAuth2(_) => "oauth2",
            AuthMode::Oidc(_) => "oidc",
        }
    }
}

/// Why a request could not be authenticated or decided.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("this request needs a bearer token (Authorization: Bearer ...)")]
    MissingToken,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("authorization is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("auth error: {0}")]
    Internal(String),
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
}

/// A decision older than this without a successful policy check fails closed (503): a replica
/// cut off from the store must not keep honouring grants revoked meanwhile.
const POLICY_STALE_LIMIT: Duration = Duration::from_secs(15);

/// Verified tokens are remembered up to this many; then the memory starts over.
const VERIFIED_TOKENS: usize = 100_000;

/// SHA-256 of a token → its principal and until when (Unix s) it counts as verified.
type VerifiedTokens = HashMap<[u8; 32], (Arc<Principal>, u64)>;

struct CachedPolicy {
    policy: Arc<CompiledPolicy>,
    confirmed_at: Instant,
}

/// Authentication and decisions for one server.
pub struct Authorizer {
    mode: AuthMode,
    store: Arc<dyn MetadataStore>,
    policy: RwLock<CachedPolicy>,
    /// SHA-256 of a token → its principal and expiry (Unix s): a token is verified once, not on
    /// every request.
    verified: Mutex<VerifiedTokens>,
}

impl Authorizer {
    /// Reads the policy once; [`Authorizer::spawn_refresher`] keeps it fresh.
    pub async fn new(
        mode: AuthMode,
        store: Arc<dyn MetadataStore>,
    ) -> Result<Arc<Self>, AuthError> {
        let policy = match mode {
            AuthMode::None => CompiledPolicy::default(),
            _ => CompiledPolicy::compile(&store.access().load_policy().await?),
        };
        Ok(Arc::new(Self {
            mode,
            store,
            policy: RwLock::new(CachedPolicy {
                policy: Arc::new(policy),
                confirmed_at: Instant::now(),
            }),
            verified: Mutex::new(HashMap::new()),
        }))
    }

    pub fn mode(&self) -> &AuthMode {
        &self.mode
    }

    /// Whether requests need a token at all.
    pub fn enabled(&self) -> bool {
        !matches!(self.mode, AuthMode::None)
    }

    /// The principal a request's bearer token names. With auth off, [`ANONYMOUS`] whatever came.
    pub async fn authenticate(&self, bearer: Option<&str>) -> Result<Arc<Principal>, AuthError> {
        let token = match (&self.mode, bearer) {
            (AuthMode::None, _) => {
                return Ok(Arc::new(Principal {
                    name: ANONYMOUS.to_string(),
                }));
            }
            (_, None) => return Err(AuthError::MissingToken),
            (_, Some(token)) => token,
        };
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = unix_now();
        if let Some((principal, expires)) = self.lock_verified().get(&digest)
            && *expires > now
        {
            return Ok(principal.clone());
        }
        let (name, expires) = match &self.mode {
            AuthMode::None => {
                return Ok(Arc::new(Principal {
                    name: ANONYMOUS.to_string(),
                }));
            }
            AuthMode::OAuth2(issuer) => {
                let claims = issuer.verify(token).await?;
                (claims.sub, claims.exp)
            }
            AuthMode::Oidc(verifier) => {
                let identity = verifier.verify(token).await?;
                // Remembered until the token expires, and re-verified at least every minute: the
                // issuer's keys may rotate away meanwhile.
                (identity.principal, identity.expires.min(now + 60))
            }
        };
        let principal = Arc::new(Principal { name });
        let mut verified = self.lock_verified();
        if verified.len() >= VERIFIED_TOKENS {
            verified.clear();
        }
        verified.insert(digest, (principal.clone(), expires));
        Ok(principal)
    }

    /// Whether `principal` may do what needs `privilege` on `target`.
    pub fn decide(
        &self,
        principal: &Principal,
        privilege: Privilege,
        target: &Securable,
    ) -> Result<bool, AuthError> {
        if !self.enabled() {
            return Ok(true);
        }
        Ok(self.policy()?.allows(&principal.name, privilege, target))
    }

    /// Whether `principal` may see that `target` exists (lists are filtered by this).
    pub fn can_see(&self, principal: &Principal, target: &Securable) -> Result<bool, AuthError> {
        if !self.enabled() {
            return Ok(true);
        }
        Ok(self.policy()?.can_see(&principal.name, target))
    }

    /// The policy decisions rest on; an error when it could not be confirmed for too long.
    pub fn policy(&self) -> Result<Arc<CompiledPolicy>, AuthError> {
        let cached = self.policy.read().unwrap_or_else(|e| e.into_inner());
        if cached.confirmed_at.elapsed() > POLICY_STALE_LIMIT {
            return Err(AuthError::Unavailable(
                "the grants could not be read from the metadata store recently".to_string(),
            ));
        }
        Ok(cached.policy.clone())
    }

    /// Re-reads the policy if the store's version moved; one cheap query otherwise.
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let access = self.store.access();
        let version = access.policy_version().await?;
        let current = self
            .policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .policy
            .version();
        let policy = if version == current {
            None
        } else {
            Some(Arc::new(CompiledPolicy::compile(
                &access.load_policy().await?,
            )))
        };
        let mut cached = self.policy.write().unwrap_or_else(|e| e.into_inner());
        if let Some(policy) = policy {
            // Two refreshes may race; never go back to an older version.
            if policy.version() >= cached.policy.version() {
                cached.policy = policy;
            }
        }
        cached.confirmed_at = Instant::now();
        Ok(())
    }

    /// Keeps the policy within [`POLICY_FRESHNESS`] of the store's, for as long as the server runs.
    pub fn spawn_refresher(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        if !self.enabled() {
            return None;
        }
        let this = self.clone();
        Some(tokio::spawn(async move {
            // Half the freshness bound: a change is seen by the next check, at most this long after
            // it committed, plus the check's own time.
            let mut interval = tokio::time::interval(POLICY_FRESHNESS / 4);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if let Err(err) = this.refresh().await {
                    tracing::warn!(error = %err, "could not refresh the grants");
                }
            }
        }))
    }

    fn lock_verified(&self) -> std::sync::MutexGuard<'_, VerifiedTokens> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}
