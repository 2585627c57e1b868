//! TLS to the shared metadata store: which of the metastore URL's TLS settings Floe takes, what
//! each checks, and what an operator reads when a check fails at start-up.
//!
//! The settings are libpq's, in the URL's query (`?sslmode=verify-full&sslrootcert=/etc/ca.pem`)
//! or, as with libpq, in `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY`; sqlx does the
//! TLS, with rustls:
//!
//! - `disable`: never TLS. `prefer` (the default): TLS if the server offers it, its certificate
//!   unchecked. `require`: TLS or no connection, the certificate unchecked — unless `sslrootcert`
//!   is given, which (as in libpq) makes it `verify-ca`.
//! - `verify-ca`: the certificate must chain to a CA in `sslrootcert` or one the system trusts.
//!   The host name should not be checked, but sqlx 0.8 with rustls 0.23.24 and later checks it
//!   all the same (launchbadge/sqlx#3793, fixed in sqlx 0.9), so here it is `verify-full`: stricter
//!   than asked, never weaker, and a name mismatch is explained as such.
//! - `verify-full`: that, and the certificate must name the host the URL names. The only mode
//!   that stops someone on the network path from posing as the database.
//! - `sslcert` / `sslkey`: a client certificate and its key, for servers that ask for one.
//!
//! Anything else that looks like a TLS setting (`sslmode=allow`, which sqlx would quietly treat
//! as `disable`; `sslcrl`, `sslpassword`, `sslsni`, ... which it would ignore) is refused rather
//! than dropped: a TLS setting that does nothing is worse than an error. Named files are read
//! before connecting, so a missing or unreadable one is reported by its name.

use std::path::{Path, PathBuf};

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::{Result, StoreError};

/// The TLS settings the metastore URL (and the `PGSSL*` variables) asked for.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    mode: PgSslMode,
    root_cert: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
}

/// The TLS parameters the URL may carry: libpq's names and sqlx's spellings of them.
const MODE: &[&str] = &["sslmode", "ssl-mode"];
const ROOT_CERT: &[&str] = &["sslrootcert", "ssl-root-cert", "ssl-ca"];
const CLIENT_CERT: &[&str] = &["sslcert", "ssl-cert"];
const CLIENT_KEY: &[&str] = &["sslkey", "ssl-key"];

impl TlsSettings {
    /// Reads the TLS settings of `url` (already parsed by sqlx into `options`), refusing the ones
    /// Floe cannot honour and files it cannot read.
    pub(crate) fn from_url(url: &str, options: &PgConnectOptions) -> Result<Self> {
        let invalid = |message: String| StoreError::InvalidInput(message);
        let parsed = url::Url::parse(url)
            .map_err(|err| invalid(format!("invalid PostgreSQL URL: {err}")))?;
        let mut settings = Self {
            mode: options.get_ssl_mode(),
            root_cert: env_path("PGSSLROOTCERT"),
            client_cert: env_path("PGSSLCERT"),
            client_key: env_path("PGSSLKEY"),
        };
        for (name, value) in parsed.query_pairs() {
            let name = name.as_ref();
            if MODE.contains(&name) {
                if value.eq_ignore_ascii_case("allow") {
                    return Err(invalid(
                        "the metastore URL's sslmode=allow is not supported (it would never use \
                         TLS): use sslmode=verify-full, or disable or prefer"
                            .into(),
                    ));
                }
            } else if ROOT_CERT.contains(&name) {
                settings.root_cert = Some(PathBuf::from(value.as_ref()));
            } else if CLIENT_CERT.contains(&name) {
                settings.client_cert = Some(PathBuf::from(value.as_ref()));
            } else if CLIENT_KEY.contains(&name) {
                settings.client_key = Some(PathBuf::from(value.as_ref()));
            } else if name.starts_with("ssl") {
                return Err(invalid(format!(
                    "the metastore URL's parameter {name} is not supported; the TLS settings \
                     Floe takes are sslmode, sslrootcert, sslcert and sslkey"
                )));
            }
        }
        if matches!(settings.mode, PgSslMode::Allow) {
            return Err(invalid(
                "PGSSLMODE=allow is not supported (it would never use TLS): use verify-full, or \
                 disable or prefer"
                    .into(),
            ));
        }
        if settings.client_cert.is_some() != settings.client_key.is_some() {
            return Err(invalid(
                "the metastore URL gives one of sslcert and sslkey: a client certificate needs \
                 both"
                    .into(),
            ));
        }
        // As libpq does: with a CA to check against, `require` checks.
        if matches!(settings.mode, PgSslMode::Require) && settings.root_cert.is_some() {
            settings.mode = PgSslMode::VerifyCa;
        }
        settings.check_files()?;
        Ok(settings)
    }

    /// `options` with the mode as [`TlsSettings::from_url`] settled it.
    pub(crate) fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        options.ssl_mode(self.mode)
    }

    fn verifies(&self) -> bool {
        matches!(self.mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull)
    }

    /// Reads every file named, so that a missing or wrong one is reported as such, not as a
    /// failed handshake. Files of modes that do not use them are not read (sqlx does not).
    fn check_files(&self) -> Result<()> {
        if self.verifies()
            && let Some(path) = &self.root_cert
        {
            let text = read(path, "sslrootcert")?;
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(StoreError::InvalidInput(format!(
                    "sslrootcert {} holds no PEM certificate",
                    path.display()
                )));
            }
        }
        if !matches!(self.mode, PgSslMode::Disable)
            && let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key)
        {
            read(cert, "sslcert")?;
            read(key, "sslkey")?;
        }
        Ok(())
    }

    /// The settings in a line for logs and messages: the mode and the files, never a secret.
    pub(crate) fn describe(&self) -> String {
        let mut text = format!("sslmode={}", mode_name(self.mode));
        if self.verifies() {
            match &self.root_cert {
                Some(path) => text.push_str(&format!(", sslrootcert={}", path.display())),
                None => text.push_str(", CAs: the system's"),
            }
        }
        if let Some(cert) = &self.client_cert {
            text.push_str(&format!(", sslcert={}", cert.display()));
        }
        text
    }

    /// Logs what the connection checks, and warns when it does not check who the server is and
    /// the server is not on this machine.
    pub(crate) fn log(&self, options: &PgConnectOptions) {
        let host = options.get_host();
        let local = options.get_socket().is_some()
            || host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if matches!(self.mode, PgSslMode::VerifyFull) || local {
            tracing::info!(host, tls = %self.describe(), "metadata store connection");
        } else {
            tracing::warn!(
                host,
                tls = %self.describe(),
                "the metadata store connection does not verify the server: anyone on the network \
                 path can pose as the database (and, without TLS, read the traffic); use \
                 sslmode=verify-full"
            );
        }
    }

    /// What an operator should read when connecting failed with `err`: the TLS failure spelled
    /// out with the settings that led to it, or `None` when `err` is no TLS failure.
    pub(crate) fn explain(&self, err: &sqlx::Error, options: &PgConnectOptions) -> Option<String> {
        let server = format!("{}:{}", options.get_host(), options.get_port());
        let settings = self.describe();
        if let Some(tls) = rustls_error(err) {
            let why = match tls {
                rustls::Error::InvalidCertificate(cert) => self.certificate_problem(cert, options),
                other => format!("the TLS handshake failed: {other}"),
            };
            return Some(format!(
                "TLS to the metadata store at {server} failed ({settings}): {why}"
            ));
        }
        match err {
            sqlx::Error::Tls(cause) => Some(format!(
                "TLS to the metadata store at {server} failed ({settings}): {cause}{}",
                if cause.to_string().contains("does not support TLS") {
                    " (its ssl setting is off)"
                } else {
                    ""
                }
            )),
            sqlx::Error::Database(db)
                if db.code().as_deref() == Some("28000")
                    && db.message().contains("no encryption") =>
            {
                Some(format!(
                    "the metadata store at {server} refused a connection without TLS ({settings}): \
                     {}; it takes TLS connections only: use sslmode=verify-full",
                    db.message()
                ))
            }
            _ => None,
        }
    }

    fn certificate_problem(
        &self,
        problem: &rustls::CertificateError,
        options: &PgConnectOptions,
    ) -> String {
        use rustls::CertificateError as Problem;
        match problem {
            Problem::UnknownIssuer | Problem::BadSignature => match &self.root_cert {
                Some(path) => format!(
                    "the server's certificate is not signed by the CA in sslrootcert {} (nor by \
                     one the system trusts)",
                    path.display()
                ),
                None => "the server's certificate is not signed by a CA the system trusts: name \
                         the CA's certificate file in sslrootcert"
                    .to_string(),
            },
            Problem::NotValidForName | Problem::NotValidForNameContext { .. } => {
                let names = match problem {
                    Problem::NotValidForNameContext { presented, .. } => {
                        format!(" (it names {})", presented.join(", "))
                    }
                    _ => String::new(),
                };
                let host = options.get_host();
                if matches!(self.mode, PgSslMode::VerifyCa) {
                    format!(
                        "the server's certificate is not valid for the host name {host}{names}: \
                         sslmode=verify-ca should not check the name, but the TLS library of \
                         this build does (sqlx 0.8, launchbadge/sqlx#3793); name the server in \
                         the URL as its certificate does, and then prefer sslmode=verify-full"
                    )
                } else {
                    format!(
                        "the server's certificate is not valid for the host name {host}{names}: \
                         with sslmode=verify-full the URL must name the server as its \
                         certificate does"
                    )
                }
            }
            Problem::Expired | Problem::ExpiredContext { .. } => {
                "the server's certificate has expired".to_string()
            }
            Problem::NotValidYet | Problem::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (is this machine's clock right?)"
                    .to_string()
            }
            other => format!("the server's certificate was refused: {other:?}"),
        }
    }
}

/// The rustls error behind `err`, if a TLS handshake failed: sqlx passes it on as an I/O error
/// from the handshake, or as its own TLS error.
fn rustls_error(err: &sqlx::Error) -> Option<&rustls::Error> {
    match err {
        sqlx::Error::Io(io) => io.get_ref()?.downcast_ref(),
        sqlx::Error::Tls(cause) => cause.downcast_ref(),
        _ => None,
    }
}

fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn read(path: &Path, setting: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|err| {
        StoreError::InvalidInput(format!("cannot read {setting} {}: {err}", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> Result<TlsSettings> {
        let options: PgConnectOptions = url.parse().unwrap();
        TlsSettings::from_url(url, &options)
    }

    fn message(result: Result<TlsSettings>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn modes_and_files_are_read_from_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let base = "postgres://floe:hunter2@db.internal:5432/floe";
        let full = settings(&format!(
            "{base}?sslmode=verify-full&sslrootcert={}",
            ca.display()
        ))
        .unwrap();
        assert!(matches!(full.mode, PgSslMode::VerifyFull));
        assert_eq!(
            full.describe(),
            format!("sslmode=verify-full, sslrootcert={}", ca.display())
        );
        // As in libpq, `require` with a CA checks the chain.
        let require = settings(&format!(
            "{base}?sslmode=require&sslrootcert={}",
            ca.display()
        ));
        assert!(matches!(require.unwrap().mode, PgSslMode::VerifyCa));
        let plain = settings(&format!("{base}?sslmode=disable")).unwrap();
        assert_eq!(plain.describe(), "sslmode=disable");
        assert!(!plain.describe().contains("hunter2"));
    }

    #[test]
    fn settings_that_would_do_nothing_are_refused() {
        let base = "postgres://floe@db.internal:5432/floe";
        let err = message(settings(&format!("{base}?sslmode=allow")));
        assert!(err.contains("sslmode=allow is not supported"), "{err}");
        let err = message(settings(&format!(
            "{base}?sslmode=verify-full&sslcrl=/x.crl"
        )));
        assert!(err.contains("parameter sslcrl is not supported"), "{err}");
        let err = message(settings(&format!("{base}?sslmode=require&sslcert=/c.pem")));
        assert!(err.contains("needs both"), "{err}");
    }

    #[test]
    fn files_are_checked_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let base = "postgres://floe@db.internal:5432/floe?sslmode=verify-full";
        let missing = dir.path().join("missing.pem");
        let err = message(settings(&format!(
            "{base}&sslrootcert={}",
            missing.display()
        )));
        assert!(
            err.contains("cannot read sslrootcert") && err.contains("missing.pem"),
            "{err}"
        );
        let not_pem = dir.path().join("key.txt");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let err = message(settings(&format!(
            "{base}&sslrootcert={}",
            not_pem.display()
        )));
        assert!(err.contains("holds no PEM certificate"), "{err}");
        // A mode that checks nothing does not read the file (nor does sqlx).
        let prefer = "postgres://floe@db.internal:5432/floe?sslmode=prefer";
        settings(&format!("{prefer}&sslrootcert={}", missing.display())).unwrap();
    }
}
