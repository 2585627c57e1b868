//! What the secrets tests store: a warehouse with a secret and a token signing key.

use std::collections::BTreeMap;

use floe_store::WarehouseRecord;
use floe_store::access::SigningKeyRecord;

pub const SECRET: &str = "wJalrXUtnFEMI-very-secret-value";
pub const PRIVATE_KEY: &[u8] = b"\x30\x2e-private-key-DER-bytes-that-must-not-leak";

pub fn warehouse(name: &str) -> WarehouseRecord {
    WarehouseRecord {
        name: name.into(),
        storage_url: format!("s3://bucket/{name}"),
        properties: BTreeMap::from([
            ("s3.access-key-id".to_string(), "AKIDEXAMPLE".to_string()),
            ("s3.secret-access-key".to_string(), SECRET.to_string()),
        ]),
        created_at_ms: 0,
    }
}

pub fn signing_key(kid: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        private_key: PRIVATE_KEY.to_vec(),
        public_key: b"public".to_vec(),
        created_at_ms: 0,
    }
}
