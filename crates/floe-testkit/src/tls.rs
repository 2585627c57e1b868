//! Certificate authorities made on the spot, for servers that tests start with TLS (see
//! [`crate::postgres::TestPostgres::start_with_tls`]).
//!
//! A [`TestCa`] lives only in memory; what it signs is written where a test needs it, each file
//! mode 0600 as a real deployment would keep private keys. Certificates are valid from 1975 to
//! 4096 (rcgen's defaults), so no test depends on the clock.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate authority for tests: its certificate, and the key it signs with.
pub struct TestCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its private key, in PEM.
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A new CA whose certificate names it `name` (its common name, shown in TLS errors).
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names to check");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("generate a CA key");
        let cert_pem = params.self_signed(&key).expect("self-sign the CA").pem();
        Self {
            cert_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate in PEM: what a client trusts (`sslrootcert`).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the CA's certificate to `path` (mode 0600).
    pub fn write_cert(&self, path: &Path) {
        write_private(path, self.cert_pem.as_bytes());
    }

    /// A server certificate for `names` (DNS names, or IP addresses such as `127.0.0.1`), signed
    /// by this CA. A client that checks the server's name accepts only these.
    pub fn issue_server_cert(&self, names: &[&str]) -> IssuedCert {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap_or_else(|err| {
            panic!("a server certificate for {names:?}: {err}");
        });
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, first);
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("generate a server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the server certificate");
        IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A client certificate for the database user `user` (its common name, which PostgreSQL's
    /// `clientcert=verify-full` compares with the user), signed by this CA.
    pub fn issue_client_cert(&self, user: &str) -> IssuedCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names to check");
        params.distinguished_name.push(DnType::CommonName, user);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("generate a client key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the client certificate");
        IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// Writes `bytes` to a new file at `path`, readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|err| panic!("create {}: {err}", path.display()));
    file.write_all(bytes)
        .unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
}
