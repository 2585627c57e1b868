//! Secrets at rest: the values the store keeps that would hand out access if its database were
//! copied — a registered warehouse's secret storage settings and the token signing keys — are
//! sealed with AES-256-GCM before they are written and opened when they are read.
//!
//! The seam is the store itself, not its callers: every reader of a warehouse record or a
//! signing key (server, scheduler, CLI, backup) goes through the store, so none of them can
//! forget to seal or open, and none of them ever sees a sealed value.
//!
//! A sealed value is text, `floe-sealed:v1:<key id>:<base64 of nonce and ciphertext>`:
//! - a fresh random 96-bit nonce per value (AES-GCM's nonce must never repeat under one key);
//! - the value's place (`warehouse/<name>/<property>`, `signing-key/<kid>`) as associated data, so
//!   that a sealed value copied into another row does not open;
//! - the key id (the first 8 bytes of the key's SHA-256, in hex) says which key sealed it, so that a
//!   wrong key is reported as such rather than as corruption, and a later key rotation can tell
//!   old values from new ones.
//!
//! Values written before sealing existed stay readable as they are and are sealed when a store
//! opens with a key (see [`crate::secrets`]).
//!
//! # Rotation
//!
//! A [`Sealer`] holds the current key and, during a rotation, previous ones: it seals with the
//! current key only and opens a value with whichever key its id names. Opening a store (and
//! [`crate::SecretStore::reseal_secrets`]) re-seals what a previous key sealed under the current
//! one; once nothing is left under a previous key, that key can go.

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::access::SigningKeyRecord;
use crate::{Result, StoreError, WarehouseRecord};

const PREFIX: &str = "floe-sealed:v1:";
const NONCE_LEN: usize = 12;

/// Warehouse properties whose values are secrets: sealed at rest, never shown.
pub const SECRET_PROPERTIES: &[&str] = &["s3.secret-access-key", "s3.session-token"];

/// Whether a warehouse property's value is a secret.
pub fn is_secret_property(name: &str) -> bool {
    SECRET_PROPERTIES.contains(&name)
}

/// `properties` with secret values replaced by `***`, for listings and logs.
pub fn redact_properties(
    properties: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    properties
        .iter()
        .map(|(name, value)| {
            let shown = if is_secret_property(name) {
                "***"
            } else {
                value.as_str()
            };
            (name.clone(), shown.to_string())
        })
        .collect()
}

/// A 256-bit key that seals the store's secrets. `Debug` shows only its id.
#[derive(Clone)]
pub struct SecretKey {
    cipher: Aes256Gcm,
    id: String,
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self::generate_base64().0
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() != 32 {
            return Err(format!(
                "a secret key is 32 bytes, this one is {} bytes",
                bytes.len()
            ));
        }
        Ok(Self::from_key(*Key::<Aes256Gcm>::from_slice(bytes)))
    }

    /// A key from its base64 text (how `FLOE_SECRET_KEY` and key files hold it); surrounding
    /// whitespace is ignored.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = BASE64.decode(text.trim()).map_err(|_| {
            "a secret key is 32 bytes in base64; this text is not base64".to_string()
        })?;
        Self::from_bytes(&bytes)
    }

    /// A new random key and its base64 text, to write to a key file.
    pub fn generate_base64() -> (Self, String) {
        let key = Aes256Gcm::generate_key(OsRng);
        (Self::from_key(key), BASE64.encode(key))
    }

    fn from_key(key: Key<Aes256Gcm>) -> Self {
        let id = hex::encode(&Sha256::digest(key)[..8]);
        Self {
            cipher: Aes256Gcm::new(&key),
            id,
        }
    }

    /// Which key this is, as sealed values name it; safe to show.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// How a store treats secrets: with a key it seals them; without one it refuses to store a new
/// secret (a store shared by several servers must have the key they all share, and none was
/// given) but still reads values written before sealing existed. Previous keys (see *Rotation*
/// in the module docs) only open.
#[derive(Clone, Debug, Default)]
pub struct Sealer {
    key: Option<Arc<SecretKey>>,
    previous: Arc<[SecretKey]>,
}

impl Sealer {
    pub fn new(key: Option<SecretKey>) -> Self {
        Self {
            key: key.map(Arc::new),
            previous: Arc::new([]),
        }
    }

    /// This sealer, also opening values sealed with `previous` keys (the current key among them,
    /// or one given twice, counts once).
    pub fn with_previous(self, previous: Vec<SecretKey>) -> Self {
        let mut kept: Vec<SecretKey> = Vec::new();
        for key in previous {
            let current = self
                .key
                .as_ref()
                .is_some_and(|current| current.id == key.id);
            if !current && !kept.iter().any(|other| other.id == key.id) {
                kept.push(key);
            }
        }
        Self {
            previous: kept.into(),
            ..self
        }
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// The id of the key new values are sealed with.
    pub fn key_id(&self) -> Option<&str> {
        self.key.as_ref().map(|key| key.id())
    }

    /// The ids of the previous keys, which only open.
    pub fn previous_key_ids(&self) -> Vec<&str> {
        self.previous.iter().map(SecretKey::id).collect()
    }

    /// The key with id `key_id`, current or previous.
    fn key_with_id(&self, key_id: &str) -> Option<&SecretKey> {
        self.key
            .as_deref()
            .filter(|key| key.id == key_id)
            .or_else(|| self.previous.iter().find(|key| key.id == key_id))
    }

    /// Seals `plain`, which belongs at `place` (see the module docs).
    pub fn seal(&self, place: &str, plain: &[u8]) -> Result<String> {
        let key = self.key.as_ref().ok_or_else(|| {
            StoreError::InvalidInput(format!(
                "{place} is a secret and this server has no secret key to seal it with: \
                 give every server that shares this metadata store the same key \
                 (FLOE_SECRET_KEY, or a key file in FLOE_SECRET_KEY_FILE / --secret-key-file)"
            ))
        })?;
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Internal(format!("cannot seal {place}")))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}:{}", key.id, BASE64.encode(bytes)))
    }

    /// Opens a value read from `place`: sealed values are opened, others (written before sealing
    /// existed) are returned as they are.
    pub fn open(&self, place: &str, stored: &str) -> Result<Vec<u8>> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.as_bytes().to_vec());
        };
        let corrupt = || StoreError::Internal(format!("the sealed value of {place} is corrupt"));
        let (key_id, body) = rest.split_once(':').ok_or_else(corrupt)?;
        let key = match (self.key_with_id(key_id), &self.key) {
            (Some(key), _) => key,
            (None, Some(current)) => {
                let previous = match self.previous_key_ids().join(", ") {
                    none if none.is_empty() => String::new(),
                    ids => format!(" (previous keys: {ids})"),
                };
                return Err(StoreError::Internal(format!(
                    "{place} was sealed with secret key {key_id}, but this server has key {}\
                     {previous}: every server sharing this metadata store needs the key that \
                     sealed it, as its key or a previous one (--previous-secret-key-file)",
                    current.id
                )));
            }
            (None, None) => {
                return Err(StoreError::Internal(format!(
                    "{place} was sealed with secret key {key_id}, and this server has no secret \
                     key (FLOE_SECRET_KEY or FLOE_SECRET_KEY_FILE)"
                )));
            }
        };
        let bytes = BASE64.decode(body).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| corrupt())
    }

    /// Opens a text value (see [`Sealer::open`]).
    pub fn open_text(&self, place: &str, stored: &str) -> Result<String> {
        String::from_utf8(self.open(place, stored)?)
            .map_err(|_| StoreError::Internal(format!("the sealed value of {place} is not text")))
    }
}

/// Whether a stored value is sealed (rather than written before sealing existed).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The id of the key that sealed `stored`, if it is a sealed value.
pub fn sealing_key_id(stored: &str) -> Option<&str> {
    stored
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .map(|(key_id, _)| key_id)
}

/// Where a warehouse's property lives, as the associated data of its sealed value.
pub(crate) fn warehouse_place(warehouse: &str, property: &str) -> String {
    format!("warehouse/{warehouse}/{property}")
}

/// Where a signing key's private half lives.
pub(crate) fn signing_key_place(kid: &str) -> String {
    format!("signing-key/{kid}")
}

/// `properties` of warehouse `name` with every secret value sealed (already sealed ones kept).
pub(crate) fn seal_properties(
    sealer: &Sealer,
    name: &str,
    properties: &crate::Properties,
) -> Result<crate::Properties> {
    properties
        .iter()
        .map(|(property, value)| {
            let value = if is_secret_property(property) && !is_sealed(value) {
                sealer.seal(&warehouse_place(name, property), value.as_bytes())?
            } else {
                value.clone()
            };
            Ok((property.clone(), value))
        })
        .collect()
}

/// `properties` of warehouse `name` as callers see them: every sealed value opened.
pub(crate) fn open_properties(
    sealer: &Sealer,
    name: &str,
    properties: crate::Properties,
) -> Result<crate::Properties> {
    properties
        .into_iter()
        .map(|(property, value)| {
            let value = if is_sealed(&value) {
                sealer.open_text(&warehouse_place(name, &property), &value)?
            } else {
                value
            };
            Ok((property, value))
        })
        .collect()
}

/// A signing key's private half as stored: sealed, in text.
pub(crate) fn seal_private_key(sealer: &Sealer, kid: &str, private_key: &[u8]) -> Result<Vec<u8>> {
    Ok(sealer
        .seal(&signing_key_place(kid), private_key)?
        .into_bytes())
}

/// A stored private key as callers see it. Keys written before sealing are raw DER bytes, which
/// never start with the sealed prefix (DER starts with 0x30).
pub(crate) fn open_private_key(sealer: &Sealer, kid: &str, stored: Vec<u8>) -> Result<Vec<u8>> {
    match std::str::from_utf8(&stored) {
        Ok(text) if is_sealed(text) => sealer.open(&signing_key_place(kid), text),
        _ => Ok(stored),
    }
}

/// A signing key as it is stored: its private half sealed.
pub(crate) fn seal_signing_key(
    sealer: &Sealer,
    key: &SigningKeyRecord,
) -> Result<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        private_key: seal_private_key(sealer, &key.kid, &key.private_key)?,
        ..key.clone()
    })
}

/// Signing keys as read, their private halves opened.
pub(crate) fn open_signing_keys(
    sealer: &Sealer,
    keys: Vec<SigningKeyRecord>,
) -> Result<Vec<SigningKeyRecord>> {
    keys.into_iter()
        .map(|key| {
            Ok(SigningKeyRecord {
                private_key: open_private_key(sealer, &key.kid, key.private_key.clone())?,
                ..key
            })
        })
        .collect()
}

/// A warehouse record as read, with its secrets opened.
pub(crate) fn open_record(sealer: &Sealer, record: WarehouseRecord) -> Result<WarehouseRecord> {
    let properties = open_properties(sealer, &record.name, record.properties)?;
    Ok(WarehouseRecord {
        properties,
        ..record
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_at_its_place() {
        let sealer = Sealer::new(Some(SecretKey::generate()));
        let sealed = sealer
            .seal("warehouse/a/s3.secret-access-key", b"hunter2")
            .unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            sealer
                .open("warehouse/a/s3.secret-access-key", &sealed)
                .unwrap(),
            b"hunter2"
        );
        // Moved to another row: refused as corrupt.
        let moved = sealer.open("warehouse/b/s3.secret-access-key", &sealed);
        assert!(matches!(moved, Err(StoreError::Internal(m)) if m.contains("corrupt")));
        // Another key: named as such, without the value.
        let other = Sealer::new(Some(SecretKey::generate()));
        let err = other
            .open("warehouse/a/s3.secret-access-key", &sealed)
            .unwrap_err();
        assert!(
            err.to_string().contains("was sealed with secret key"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"));
        // No key at all.
        let err = Sealer::default()
            .open("warehouse/a/s3.secret-access-key", &sealed)
            .unwrap_err();
        assert!(err.to_string().contains("no secret key"), "{err}");
    }

    #[test]
    fn listings_show_secret_properties_as_stars_and_the_rest_as_is() {
        let properties = std::collections::BTreeMap::from([
            ("s3.access-key-id".to_string(), "AKID".to_string()),
            ("s3.secret-access-key".to_string(), "SECRET".to_string()),
            ("s3.session-token".to_string(), "TOKEN".to_string()),
        ]);
        let shown = redact_properties(&properties);
        assert_eq!(shown["s3.access-key-id"], "AKID");
        assert_eq!(shown["s3.secret-access-key"], "***");
        assert_eq!(shown["s3.session-token"], "***");
    }

    #[test]
    fn previous_keys_open_and_only_the_current_key_seals() {
        let old = SecretKey::generate();
        let new = SecretKey::generate();
        let sealed_before = Sealer::new(Some(old.clone())).seal("p", b"v").unwrap();
        let rotated = Sealer::new(Some(new.clone())).with_previous(vec![old.clone(), new.clone()]);
        assert_eq!(
            rotated.previous_key_ids(),
            vec![old.id()],
            "the current key is not previous"
        );
        assert_eq!(rotated.open("p", &sealed_before).unwrap(), b"v");
        let sealed_now = rotated.seal("p", b"v").unwrap();
        assert_eq!(sealing_key_id(&sealed_now), Some(new.id()));
        assert_eq!(sealing_key_id(&sealed_before), Some(old.id()));
        assert_eq!(sealing_key_id("plain"), None);
        // Without the old key: the error names both keys, never the value.
        let err = Sealer::new(Some(new))
            .open("warehouse/w/s3.secret-access-key", &sealed_before)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(old.id()) && err.contains("warehouse/w/"),
            "{err}"
        );
        assert!(err.contains("--previous-secret-key-file"), "{err}");
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let sealer = Sealer::new(Some(SecretKey::generate()));
        let a = sealer.seal("p", b"same").unwrap();
        let b = sealer.seal("p", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn plain_values_from_before_sealing_still_read() {
        let sealer = Sealer::new(Some(SecretKey::generate()));
        assert_eq!(sealer.open_text("p", "plain").unwrap(), "plain");
        assert_eq!(
            open_private_key(&sealer, "k", vec![0x30, 0x2e, 0x02]).unwrap(),
            vec![0x30, 0x2e, 0x02]
        );
    }

    #[test]
    fn without_a_key_no_secret_is_stored() {
        let err = Sealer::default()
            .seal("warehouse/a/s3.secret-access-key", b"x")
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)));
        assert!(err.to_string().contains("FLOE_SECRET_KEY"), "{err}");
    }

    #[test]
    fn keys_parse_from_base64_and_debug_hides_them() {
        let (key, text) = SecretKey::generate_base64();
        let again = SecretKey::from_base64(&format!("{text}\n")).unwrap();
        assert_eq!(key.id(), again.id());
        assert!(!format!("{key:?}").contains(&text));
        assert!(SecretKey::from_base64("not base64!").is_err());
        assert!(SecretKey::from_bytes(&[0; 16]).is_err());
    }

    #[test]
    fn a_corrupt_sealed_value_is_an_error_not_a_panic() {
        let sealer = Sealer::new(Some(SecretKey::generate()));
        let id = sealer.key.as_ref().unwrap().id.clone();
        for stored in [
            format!("{PREFIX}{id}"),
            format!("{PREFIX}{id}:@@@"),
            format!("{PREFIX}{id}:AAAA"),
        ] {
            assert!(sealer.open("p", &stored).is_err(), "{stored}");
        }
    }
}
