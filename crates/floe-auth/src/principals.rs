//! Principals of the `oauth2` mode: their credentials, and the first administrator.
//!
//! A client secret is shown once, when it is made, and stored only as an argon2id hash: a copy of
//! the metadata store gives no one a working credential.

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use floe_store::{
    AccessStore, GrantRecord, PrincipalRecord, RoleAssignment, Securable, StoreError,
};

use crate::{ADMIN_ROLE, AuthError, Privilege};

/// The principal the first `oauth2` start creates.
pub const FIRST_ADMIN: &str = "admin";

/// A client secret in clear text: only ever printed once, to the operator who asked for it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What a client needs to get tokens: PyIceberg's and Spark's `credential` is
/// `client_id:client_secret`.
#[derive(Debug, Clone)]
pub struct Credential {
    pub principal: String,
    pub client_id: String,
    pub client_secret: Secret,
}

impl Credential {
    /// The `credential` property clients take: `client_id:client_secret`.
    pub fn client_credential(&self) -> String {
        format!("{}:{}", self.client_id, self.client_secret.expose())
    }
}

/// Principal names Floe creates: letters, digits and `._@-`, at most 128 characters, so that they
/// read unambiguously in grants, logs and the audit log.
pub fn validate_principal_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidRequest(format!(
            "invalid principal name {name:?}: use 1 to 128 letters, digits, '.', '_', '@' or '-'"
        )))
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes);
    bytes
}

/// An argon2id hash (PHC string) of `secret`, with a fresh salt.
pub fn hash_secret(secret: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>())
        .map_err(|err| AuthError::Internal(format!("salt: {err}")))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| AuthError::Internal(format!("hashing a secret: {err}")))
}

/// Whether `secret` matches `hash` (a PHC string from [`hash_secret`]). A malformed hash matches
/// nothing.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

fn new_credential(principal: &str) -> Credential {
    Credential {
        principal: principal.to_string(),
        // 96 bits of id are plenty to be unique and unguessable; the secret carries 256.
        client_id: format!("floe-{}", hex::encode(random_bytes::<12>())),
        client_secret: Secret(URL_SAFE_NO_PAD.encode(random_bytes::<32>())),
    }
}

/// Creates a principal with a fresh credential.
pub async fn create_principal(
    store: &dyn AccessStore,
    name: &str,
) -> Result<Credential, AuthError> {
    validate_principal_name(name)?;
    let credential = new_credential(name);
    let secret_hash = hash_in_background(credential.client_secret.clone()).await?;
    store
        .create_principal(&PrincipalRecord {
            name: name.to_string(),
            client_id: credential.client_id.clone(),
            secret_hash,
            created_at_ms: 0,
        })
        .await?;
    Ok(credential)
}

/// Gives the principal a new secret; the old one stops working for new tokens at once (tokens
/// already issued run until they expire, at most the token lifetime).
pub async fn rotate_secret(store: &dyn AccessStore, name: &str) -> Result<Credential, AuthError> {
    let existing = store
        .list_principals()
        .await?
        .into_iter()
        .find(|principal| principal.name == name)
        .ok_or_else(|| AuthError::from(StoreError::NotFound(format!("principal {name}"))))?;
    let mut credential = new_credential(name);
    credential.client_id = existing.client_id;
    let secret_hash = hash_in_background(credential.client_secret.clone()).await?;
    store.set_principal_secret(name, &secret_hash).await?;
    Ok(credential)
}

/// Makes `principal` an administrator: the `admin` role (created if missing) with `admin` on the
/// server.
pub async fn make_admin(store: &dyn AccessStore, principal: &str) -> Result<(), AuthError> {
    match store.create_role(ADMIN_ROLE).await {
        Ok(()) | Err(StoreError::AlreadyExists(_)) => {}
        Err(err) => return Err(err.into()),
    }
    store
        .grant(&GrantRecord {
            role: ADMIN_ROLE.to_string(),
            privilege: Privilege::Admin.as_str().to_string(),
            on: Securable::Server,
        })
        .await?;
    store
        .assign_role(&RoleAssignment {
            principal: principal.to_string(),
            role: ADMIN_ROLE.to_string(),
        })
        .await?;
    Ok(())
}

/// On a store with no principal yet, creates the administrator [`FIRST_ADMIN`] and returns its
/// credential; otherwise `None`. Replicas starting together race safely: one creates it, the others
/// find the name taken.
pub async fn bootstrap_admin(store: &dyn AccessStore) -> Result<Option<Credential>, AuthError> {
    if !store.list_principals().await?.is_empty() {
        return Ok(None);
    }
    let credential = match create_principal(store, FIRST_ADMIN).await {
        Ok(credential) => credential,
        Err(AuthError::Store(StoreError::AlreadyExists(_))) => return Ok(None),
        Err(err) => return Err(err),
    };
    make_admin(store, FIRST_ADMIN).await?;
    Ok(Some(credential))
}

/// Checks a client's id and secret; the principal's name if they match.
pub async fn authenticate_client(
    store: &dyn AccessStore,
    client_id: &str,
    client_secret: &str,
) -> Result<Option<String>, AuthError> {
    let Some(principal) = store.principal_by_client_id(client_id).await? else {
        return Ok(None);
    };
    let secret = client_secret.to_string();
    let hash = principal.secret_hash.clone();
    let matches = tokio::task::spawn_blocking(move || verify_secret(&secret, &hash))
        .await
        .map_err(|err| AuthError::Internal(err.to_string()))?;
    Ok(matches.then_some(principal.name))
}

/// argon2 is deliberately slow: it runs off the async workers.
async fn hash_in_background(secret: Secret) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || hash_secret(secret.expose()))
        .await
        .map_err(|err| AuthError::Internal(err.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_secret() {
        let hash = hash_secret("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("s3cret"));
        assert!(verify_secret("s3cret", &hash));
        assert!(!verify_secret("s3cret ", &hash));
        assert!(!verify_secret("s3cret", "not a hash"));
        assert_ne!(hash, hash_secret("s3cret").unwrap(), "salted");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let credential = new_credential("alice");
        let shown = format!("{credential:?}");
        assert!(
            !shown.contains(credential.client_secret.expose()),
            "{shown}"
        );
        assert!(credential.client_credential().starts_with("floe-"));
        assert_eq!(credential.client_credential().matches(':').count(), 1);
    }

    #[test]
    fn principal_names_are_checked() {
        for good in ["alice", "svc.etl-1", "a@b.example"] {
            assert!(validate_principal_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "a:b", "ä", &"x".repeat(129)] {
            assert!(validate_principal_name(bad).is_err(), "{bad}");
        }
    }
}
