//! How to reach a warehouse: the settings `floe serve` reads (its `s3-*` keys) and the object
//! stores built from them.
//!
//! A warehouse URL picks the backend: `file:///dir` is a local directory, `s3://bucket/prefix` is
//! S3 or an S3-compatible server (object_store's `AmazonS3`), `memory://name` is an in-process
//! store for tests. Everything backend-specific stays in this module; the rest of Floe sees an
//! [`ObjectStore`] rooted at the warehouse URL, and the `config` that clients get with every table
//! ([`Warehouse::client_config`]).
//!
//! # S3
//!
//! - **Put-if-absent.** Metadata files are written with `PutMode::Create`, which object_store sends
//!   as `If-None-Match: *` when conditional puts are `S3ConditionalPut::ETagMatch` (set
//!   explicitly here, though it is also 0.13's default). AWS S3, SeaweedFS, MinIO and R2 honour it
//!   atomically; a store that ignores the header would let two writers overwrite each other, so
//!   only such stores may back a warehouse.
//! - **Retries.** object_store retries 5xx, 429, 408 and connection errors itself, with
//!   exponential back-off, up to [`RetryOptions::max_retries`] retries and no new attempt after
//!   [`RetryOptions::retry_timeout`]. Each request is bounded by [`RetryOptions::request_timeout`].
//!   Timed-out requests are retried only when safe (GET, HEAD, and idempotent puts): a
//!   conditional put that timed out is reported, and the commit fails with a retryable 503.
//! - **Credentials.** The server's own default warehouse ([`StoreOptions::use_environment`]) also
//!   reads the `AWS_*` environment variables object_store knows (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...) and the machine's instance credentials,
//!   overridden by explicit settings. A registered warehouse never does: it has exactly the
//!   settings it was registered with, and without keys its requests go unsigned — it must not
//!   borrow the server's identity. Keys never reach clients unless
//!   [`S3Options::share_credentials`] is set.
//! - **Plain HTTP** endpoints are refused unless [`S3Options::allow_http`] is set or the endpoint
//!   is on a loopback address (a test server on this machine).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::{Result, StorageError, Warehouse};

/// Everything needed to open a warehouse besides its URL.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub s3: S3Options,
    pub retry: RetryOptions,
    /// Fill unset settings and credentials from the process environment (`AWS_*`, `GOOGLE_*`,
    /// `AZURE_*`) and the machine's instance credentials. Only for the server's own default
    /// warehouse, which the operator configured; off, the store has only the settings given.
    pub use_environment: bool,
}

/// Settings of an `s3://` warehouse. With [`StoreOptions::use_environment`], unset values fall
/// back to object_store's `AWS_*` environment variables; then to its defaults (region
/// `us-east-1`, AWS endpoints).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:8333`; `None` for AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) instead of virtual-hosted ones
    /// (`bucket.endpoint/key`); most S3-compatible servers need this.
    pub path_style: bool,
    /// Allow a plain-HTTP endpoint that is not on a loopback address.
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Hand the credentials to clients in every table's `config`. Off by default: with it, anyone
    /// who may load a table gets the server's keys.
    pub share_credentials: bool,
    /// How clients may reach a table's files without the warehouse's keys.
    pub delegation: DelegationOptions,
}

/// A way for a client to reach a table's files without holding the warehouse's own keys
/// (the values of the REST header `X-Iceberg-Access-Delegation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessDelegation {
    /// Short-lived credentials from STS `AssumeRole`, down-scoped to the table's prefix.
    VendedCredentials,
    /// The client asks the catalog to sign each object-store request.
    RemoteSigning,
}

impl AccessDelegation {
    pub const ALL: [AccessDelegation; 2] = [Self::VendedCredentials, Self::RemoteSigning];

    /// The name in `X-Iceberg-Access-Delegation` and in warehouse settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VendedCredentials => "vended-credentials",
            Self::RemoteSigning => "remote-signing",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == name.trim())
    }
}

/// Which delegation modes an S3 warehouse offers, and how vended credentials are made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelegationOptions {
    /// The modes clients may ask for, in the server's order of preference. Empty: none.
    pub allowed: Vec<AccessDelegation>,
    /// What a client that names no mode gets (`None`: no delegated access).
    pub default: Option<AccessDelegation>,
    /// The role that `AssumeRole` takes for vended credentials (required for vending).
    pub sts_role_arn: Option<String>,
    /// Where STS is: `None` is the S3 endpoint itself (S3-compatible servers serve STS on the
    /// same port), or AWS's regional STS when the warehouse is on AWS.
    pub sts_endpoint: Option<String>,
    /// How long vended credentials last (STS accepts 15 min to 12 h).
    pub credentials_duration: Duration,
}

/// What vended credentials last unless a warehouse says otherwise.
pub const DEFAULT_CREDENTIALS_DURATION: Duration = Duration::from_secs(3600);

impl DelegationOptions {
    /// Reads `s3.sts-role-arn`, `s3.sts-endpoint`, `s3.credentials-duration-seconds`,
    /// `s3.access-delegation` (a comma list; by default vending when a role is set and signing
    /// when the warehouse has keys) and `s3.default-access-delegation` (a mode or `none`; by
    /// default the first mode of `s3.access-delegation` when it is set, else vended credentials when
    /// allowed, else none).
    ///
    /// `has_keys`: whether the warehouse has its own keys (delegation needs them).
    pub fn from_properties(
        properties: &BTreeMap<String, String>,
        has_keys: bool,
    ) -> Result<Self, String> {
        let sts_role_arn = properties.get("s3.sts-role-arn").cloned();
        let credentials_duration = match properties.get("s3.credentials-duration-seconds") {
            None => DEFAULT_CREDENTIALS_DURATION,
            Some(text) => match text.parse::<u64>() {
                Ok(seconds) if (900..=43_200).contains(&seconds) => Duration::from_secs(seconds),
                _ => {
                    return Err(format!(
                        "s3.credentials-duration-seconds is a number of seconds from 900 to \
                         43200, not {text:?}"
                    ));
                }
            },
        };
        let allowed = match properties.get("s3.access-delegation") {
            Some(list) => parse_modes(list)?,
            None => AccessDelegation::ALL
                .into_iter()
                .filter(|mode| match mode {
                    AccessDelegation::VendedCredentials => sts_role_arn.is_some(),
                    AccessDelegation::RemoteSigning => has_keys,
                })
                .collect(),
        };
        if allowed.contains(&AccessDelegation::VendedCredentials) && sts_role_arn.is_none() {
            return Err("vended-credentials needs s3.sts-role-arn (the role STS assumes)".into());
        }
        if !allowed.is_empty() && !has_keys {
            return Err(format!(
                "{} needs the warehouse's own keys (s3.access-key-id, s3.secret-access-key)",
                allowed[0].as_str()
            ));
        }
        let default = match properties
            .get("s3.default-access-delegation")
            .map(String::as_str)
        {
            // Modes the operator listed: the first. Otherwise vended credentials, which work
            // with every client that reads the table config; a client told to sign remotely
            // that cannot would fail, so signing is the default only when the operator says so
            // (clients that can sign ask for it in their header).
            None if properties.contains_key("s3.access-delegation") => allowed.first().copied(),
            None => allowed
                .contains(&AccessDelegation::VendedCredentials)
                .then_some(AccessDelegation::VendedCredentials),
            Some("none") => None,
            Some(name) => {
                let mode = AccessDelegation::parse(name).ok_or_else(|| {
                    format!("s3.default-access-delegation is none, vended-credentials or remote-signing, not {name:?}")
                })?;
                if !allowed.contains(&mode) {
                    return Err(format!(
                        "s3.default-access-delegation {name} is not in s3.access-delegation"
                    ));
                }
                Some(mode)
            }
        };
        Ok(Self {
            allowed,
            default,
            sts_role_arn,
            sts_endpoint: properties.get("s3.sts-endpoint").cloned(),
            credentials_duration,
        })
    }

    /// The mode a client gets: the first mode it asked for (`X-Iceberg-Access-Delegation`, a
    /// comma list) that the warehouse allows; with no header, the warehouse's default.
    pub fn choose(&self, requested: Option<&str>) -> Option<AccessDelegation> {
        match requested {
            None => self.default,
            Some(list) => list
                .split(',')
                .filter_map(AccessDelegation::parse)
                .find(|mode| self.allowed.contains(mode)),
        }
    }
}

fn parse_modes(list: &str) -> Result<Vec<AccessDelegation>, String> {
    let mut modes = Vec::new();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let mode = AccessDelegation::parse(name).ok_or_else(|| {
            format!(
                "s3.access-delegation lists vended-credentials and remote-signing, not {name:?}"
            )
        })?;
        if !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    Ok(modes)
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |value: &Option<String>| value.as_ref().map(|_| "***");
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("share_credentials", &self.share_credentials)
            .field("delegation", &self.delegation)
            .finish()
    }
}

/// The storage settings of a warehouse registered through the management API, by property name
/// (Iceberg's own client property names, where Iceberg has one).
const S3_PROPERTIES: &[&str] = &[
    "s3.endpoint",
    "s3.region",
    "s3.path-style-access",
    "s3.allow-http",
    "s3.access-key-id",
    "s3.secret-access-key",
    "s3.session-token",
    "s3.share-credentials",
    "s3.sts-role-arn",
    "s3.sts-endpoint",
    "s3.credentials-duration-seconds",
    "s3.access-delegation",
    "s3.default-access-delegation",
];

impl S3Options {
    /// Reads a registered warehouse's settings (`s3.endpoint`, `s3.region`,
    /// `s3.path-style-access`, `s3.allow-http`, `s3.access-key-id`, `s3.secret-access-key`,
    /// `s3.session-token`, `s3.share-credentials`, and the delegation settings of
    /// [`DelegationOptions`]). Unknown names and non-boolean flags are refused,
    /// so that a typo does not silently fall back to a default.
    pub fn from_properties(properties: &BTreeMap<String, String>) -> Result<Self, String> {
        // `floe.*` properties belong to other layers (e.g. `floe.maintenance.*` defaults).
        if let Some(unknown) = properties
            .keys()
            .find(|name| !name.starts_with("floe.") && !S3_PROPERTIES.contains(&name.as_str()))
        {
            return Err(format!(
                "unknown storage setting {unknown:?} (known: {})",
                S3_PROPERTIES.join(", ")
            ));
        }
        let text = |name: &str| properties.get(name).cloned();
        let flag = |name: &str| match properties.get(name).map(String::as_str) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(format!("{name} is true or false, not {other:?}")),
        };
        let has_keys = properties.contains_key("s3.access-key-id")
            && properties.contains_key("s3.secret-access-key");
        Ok(Self {
            delegation: DelegationOptions::from_properties(properties, has_keys)?,
            endpoint: text("s3.endpoint"),
            region: text("s3.region"),
            path_style: flag("s3.path-style-access")?,
            allow_http: flag("s3.allow-http")?,
            access_key_id: text("s3.access-key-id"),
            secret_access_key: text("s3.secret-access-key"),
            session_token: text("s3.session-token"),
            share_credentials: flag("s3.share-credentials")?,
        })
    }
}

/// How hard a remote store is tried before an operation fails (and the request gets a 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOptions {
    /// Retries of one request after transient failures (5xx, 429, timeouts, lost connections).
    pub max_retries: usize,
    /// No new attempt starts later than this after the first one.
    pub retry_timeout: Duration,
    /// First back-off; doubles per retry up to `max_backoff`, with jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Bound on one request, connection included.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for RetryOptions {
    /// Bounded well below what REST clients wait for a response (typically 60 s or more), so a
    /// struggling store answers with a retryable 503 rather than a client-side timeout.
    fn default() -> Self {
        Self {
            max_retries: 5,
            retry_timeout: Duration::from_secs(15),
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

impl RetryOptions {
    fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }
}

impl Warehouse {
    /// Opens the warehouse at `url`: `file:///dir` (created if missing), `s3://bucket[/prefix]`,
    /// `gs://bucket[/prefix]`, `az://container[/prefix]` (or `abfss://container@account...`) or
    /// `memory://name`. Nothing is contacted yet; [`Warehouse::check`] does that.
    pub fn open(name: &str, url: &str, options: &StoreOptions) -> Result<Self> {
        let config_error = |reason: String| StorageError::Config {
            warehouse: name.to_string(),
            reason,
        };
        let parsed = Url::parse(url)
            .map_err(|err| config_error(format!("warehouse URL {url:?} is not a URL: {err}")))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed.to_file_path().map_err(|()| {
                    config_error(format!("{url} is not an absolute local directory"))
                })?;
                Self::local(name, &dir)
            }
            "memory" => Ok(Self::new(name, parsed, Arc::new(InMemory::new()))),
            "s3" | "s3a" => s3_warehouse(name, parsed, options).map_err(config_error),
            "gs" | "az" | "abfs" | "abfss" => {
                cloud_warehouse(name, parsed, options).map_err(config_error)
            }
            other => Err(config_error(format!(
                "unsupported warehouse URL scheme {other:?} in {url} (expected file://, s3://, \
                 gs://, az:// (or abfss://) or memory://)"
            ))),
        }
    }
}

fn s3_warehouse(name: &str, url: Url, options: &StoreOptions) -> Result<Warehouse, String> {
    let (s3, retry) = (&options.s3, &options.retry);
    let bucket = url
        .host_str()
        .filter(|bucket| !bucket.is_empty())
        .ok_or_else(|| format!("{url} names no bucket (expected s3://bucket/prefix)"))?
        .to_string();
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{url}: an s3:// warehouse URL is s3://bucket/prefix, nothing more"
        ));
    }
    let client = ClientOptions::new()
        .with_timeout(retry.request_timeout)
        .with_connect_timeout(retry.connect_timeout);
    // The default warehouse: the environment first (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    // AWS_REGION, ...), then the explicit settings on top. A registered one: only its settings.
    let keyless = s3.access_key_id.is_none() && s3.secret_access_key.is_none();
    let builder = if options.use_environment {
        AmazonS3Builder::from_env()
    } else {
        // Without keys, object_store would ask the instance metadata service: the server's
        // identity again. Unsigned requests reach public buckets only.
        AmazonS3Builder::new().with_skip_signature(keyless)
    };
    let mut builder = builder
        .with_bucket_name(&bucket)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_virtual_hosted_style_request(!s3.path_style)
        .with_retry(retry.retry_config())
        .with_client_options(client);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &s3.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &s3.session_token {
        builder = builder.with_token(token);
    }
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    if let Some(endpoint) = &endpoint {
        let parsed = Url::parse(endpoint)
            .map_err(|err| format!("S3 endpoint {endpoint:?} is not a URL: {err}"))?;
        if parsed.scheme() == "http" {
            if !(s3.allow_http || is_loopback(&parsed)) {
                return Err(format!(
                    "S3 endpoint {endpoint} is plain HTTP on a non-loopback address: \
                     use https, or allow it explicitly (s3-allow-http)"
                ));
            }
            builder = builder.with_allow_http(true);
        }
    }
    let region = builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .unwrap_or_else(|| "us-east-1".to_string());
    let mut client_config = BTreeMap::new();
    if let Some(endpoint) = &endpoint {
        client_config.insert("s3.endpoint".to_string(), endpoint.clone());
    }
    client_config.insert("s3.region".to_string(), region.clone());
    client_config.insert(
        "s3.path-style-access".to_string(),
        s3.path_style.to_string(),
    );
    // PyIceberg (pyarrow) asks for virtual-hosted requests under this name.
    client_config.insert(
        "s3.force-virtual-addressing".to_string(),
        (!s3.path_style).to_string(),
    );
    if s3.share_credentials {
        for (key, config_key) in [
            ("s3.access-key-id", AmazonS3ConfigKey::AccessKeyId),
            ("s3.secret-access-key", AmazonS3ConfigKey::SecretAccessKey),
            ("s3.session-token", AmazonS3ConfigKey::Token),
        ] {
            if let Some(value) = builder.get_config_value(&config_key) {
                client_config.insert(key.to_string(), value);
            }
        }
    }
    let access = S3Access {
        bucket: bucket.clone(),
        endpoint: endpoint.clone(),
        region: region.clone(),
        path_style: s3.path_style,
        access_key_id: builder.get_config_value(&AmazonS3ConfigKey::AccessKeyId),
        secret_access_key: builder.get_config_value(&AmazonS3ConfigKey::SecretAccessKey),
        session_token: builder.get_config_value(&AmazonS3ConfigKey::Token),
        delegation: s3.delegation.clone(),
    };
    let store = builder
        .build()
        .map_err(|err| format!("cannot configure S3 for {url}: {err}"))?;
    let prefix = url.path().trim_matches('/');
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        Arc::new(store)
    } else {
        let prefix =
            Path::from_url_path(prefix).map_err(|err| format!("invalid prefix in {url}: {err}"))?;
        Arc::new(PrefixStore::new(store, prefix))
    };
    let mut warehouse = Warehouse::new(name, url, store).with_client_config(client_config);
    warehouse.s3 = Some(Arc::new(access));
    Ok(warehouse)
}

/// How an S3 warehouse is reached, for what acts on clients' behalf (vending credentials and
/// signing requests): resolved settings, the keys included. `Debug` shows no secret.
#[derive(Clone)]
pub struct S3Access {
    pub bucket: String,
    /// The resolved endpoint; `None` for AWS.
    pub endpoint: Option<String>,
    pub region: String,
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub delegation: DelegationOptions,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("delegation", &self.delegation)
            .finish()
    }
}

/// A Google Cloud Storage or Azure Blob Storage warehouse. For the default warehouse, settings
/// and credentials come from object_store's environment variables (`GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_APPLICATION_CREDENTIALS`,
/// `AZURE_STORAGE_ACCOUNT_NAME` / `AZURE_STORAGE_ACCOUNT_KEY`, ..., or instance credentials);
/// both stores honour `PutMode::Create` natively, which metadata files need. Clients get no
/// storage config: they bring their own credentials.
fn cloud_warehouse(name: &str, url: Url, options: &StoreOptions) -> Result<Warehouse, String> {
    let retry = &options.retry;
    // A registered warehouse has no settings for these stores: without the server's
    // environment, its requests go unsigned (public buckets only).
    let own = !options.use_environment;
    use object_store::azure::MicrosoftAzureBuilder;
    use object_store::gcp::GoogleCloudStorageBuilder;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{url}: a warehouse URL has no query or fragment"));
    }
    let client = ClientOptions::new()
        .with_timeout(retry.request_timeout)
        .with_connect_timeout(retry.connect_timeout);
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "gs" => Arc::new(
            (if own {
                GoogleCloudStorageBuilder::new().with_skip_signature(true)
            } else {
                GoogleCloudStorageBuilder::from_env()
            })
            .with_url(url.as_str())
            .with_retry(retry.retry_config())
            .with_client_options(client)
            .build()
            .map_err(|err| format!("cannot configure Google Cloud Storage for {url}: {err}"))?,
        ),
        _ => Arc::new(
            (if own {
                MicrosoftAzureBuilder::new().with_skip_signature(true)
            } else {
                MicrosoftAzureBuilder::from_env()
            })
            .with_url(url.as_str())
            .with_retry(retry.retry_config())
            .with_client_options(client)
            .build()
            .map_err(|err| format!("cannot configure Azure Blob Storage for {url}: {err}"))?,
        ),
    };
    // The bucket or container is the URL's host (for abfss://container@account..., its user);
    // the rest of the path is the warehouse's prefix inside it.
    let prefix = url.path().trim_matches('/');
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        store
    } else {
        let prefix =
            Path::from_url_path(prefix).map_err(|err| format!("invalid prefix in {url}: {err}"))?;
        Arc::new(PrefixStore::new(store, prefix))
    };
    Ok(Warehouse::new(name, url, store))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcs_and_azure_warehouses_open_from_their_urls() {
        let options = StoreOptions::default();
        let gcs = Warehouse::open("g", "gs://bucket/lake/", &options).unwrap();
        assert_eq!(gcs.root(), "gs://bucket/lake");
        assert!(gcs.contains("gs://bucket/lake/ns/t/metadata/00000.metadata.json"));
        assert!(!gcs.contains("gs://other/lake/x"));
        assert!(gcs.client_config().is_empty(), "no credentials handed out");
        // An Azure URL that names its account needs nothing from the environment to be built.
        let azure = Warehouse::open(
            "a",
            "abfss://lake@account.dfs.core.windows.net/tables",
            &options,
        )
        .unwrap();
        assert!(azure.contains("abfss://lake@account.dfs.core.windows.net/tables/ns/t/x"));
        let err = Warehouse::open("a", "gs://bucket/x?y=1", &options)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no query"), "{err}");
    }

    #[test]
    fn registered_warehouse_settings_are_read_and_secrets_hidden() {
        let properties: BTreeMap<String, String> = [
            ("s3.endpoint", "http://127.0.0.1:9000"),
            ("s3.path-style-access", "true"),
            ("s3.access-key-id", "AKID"),
            ("s3.secret-access-key", "SECRET"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s3 = S3Options::from_properties(&properties).unwrap();
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s3.path_style && !s3.allow_http && !s3.share_credentials);
        assert_eq!(s3.secret_access_key.as_deref(), Some("SECRET"));

        let typo = BTreeMap::from([("s3.endpont".to_string(), "x".to_string())]);
        let err = S3Options::from_properties(&typo).unwrap_err();
        assert!(
            err.contains("unknown storage setting \"s3.endpont\""),
            "{err}"
        );
        let bad_flag = BTreeMap::from([("s3.allow-http".to_string(), "yes".to_string())]);
        assert!(S3Options::from_properties(&bad_flag).is_err());
    }

    fn s3(endpoint: &str) -> S3Options {
        S3Options {
            endpoint: Some(endpoint.to_string()),
            region: Some("eu-west-3".into()),
            path_style: true,
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("SECRET".into()),
            ..S3Options::default()
        }
    }

    fn open_s3(url: &str, s3: S3Options) -> Result<Warehouse> {
        Warehouse::open(
            "lake",
            url,
            &StoreOptions {
                s3,
                ..StoreOptions::default()
            },
        )
    }

    #[test]
    fn s3_warehouses_hand_clients_the_endpoint_but_not_the_keys() {
        let wh = open_s3("s3://bucket/some/prefix/", s3("http://127.0.0.1:9000")).unwrap();
        assert_eq!(wh.root(), "s3://bucket/some/prefix");
        let config = wh.client_config();
        assert_eq!(config["s3.endpoint"], "http://127.0.0.1:9000");
        assert_eq!(config["s3.region"], "eu-west-3");
        assert_eq!(config["s3.path-style-access"], "true");
        assert!(!config.contains_key("s3.access-key-id"), "{config:?}");
        assert!(!config.contains_key("s3.secret-access-key"), "{config:?}");
        assert!(!format!("{:?}", s3("x")).contains("SECRET"));

        let shared = S3Options {
            share_credentials: true,
            ..s3("http://127.0.0.1:9000")
        };
        let config = open_s3("s3://bucket", shared)
            .unwrap()
            .client_config()
            .clone();
        assert_eq!(config["s3.access-key-id"], "AKID");
        assert_eq!(config["s3.secret-access-key"], "SECRET");
    }

    #[test]
    fn s3_locations_map_below_the_prefix() {
        let wh = open_s3("s3://bucket/wh", s3("http://localhost:9000")).unwrap();
        assert_eq!(
            wh.object_path("s3://bucket/wh/ns/t/metadata/1.json")
                .unwrap()
                .as_ref(),
            "ns/t/metadata/1.json"
        );
        for bad in [
            "s3://other/wh/ns/t",
            "s3://bucket/whx/t",
            "s3://bucket/t",
            "file:///wh/t",
        ] {
            assert!(wh.object_path(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn plain_http_is_only_for_loopback_unless_allowed() {
        let err = open_s3("s3://bucket", s3("http://10.1.2.3:9000")).unwrap_err();
        assert!(err.to_string().contains("s3-allow-http"), "{err}");
        let allowed = S3Options {
            allow_http: true,
            ..s3("http://10.1.2.3:9000")
        };
        assert!(open_s3("s3://bucket", allowed).is_ok());
        assert!(open_s3("s3://bucket", s3("http://[::1]:9000")).is_ok());
        assert!(open_s3("s3://bucket", s3("https://s3.example.com")).is_ok());
    }

    #[test]
    fn bad_warehouse_urls_are_refused_with_a_message() {
        for (url, expected) in [
            ("ftp://host/x", "unsupported warehouse URL scheme"),
            ("s3:///prefix", "names no bucket"),
            ("not a url", "is not a URL"),
            ("s3://bucket/x?versionId=1", "nothing more"),
        ] {
            let err = open_s3(url, S3Options::default()).unwrap_err();
            assert!(
                matches!(err, StorageError::Config { .. }) && err.to_string().contains(expected),
                "{url}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn memory_warehouses_work_in_process() {
        let wh = Warehouse::open("mem", "memory://test/wh", &StoreOptions::default()).unwrap();
        let location = format!("{}/t/metadata/1.json", wh.root());
        wh.put_new(&location, bytes::Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert_eq!(
            wh.list_under(&format!("{}/t", wh.root())).await.unwrap(),
            [location]
        );
        assert!(wh.client_config().is_empty());
        wh.check().await.unwrap();
    }

    fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    const KEYS: [(&str, &str); 2] = [
        ("s3.access-key-id", "key"),
        ("s3.secret-access-key", "secret"),
    ];

    #[test]
    fn delegation_defaults_follow_what_the_warehouse_can_do() {
        let keyless = S3Options::from_properties(&settings(&[])).unwrap();
        assert!(keyless.delegation.allowed.is_empty());
        assert_eq!(keyless.delegation.choose(Some("vended-credentials")), None);

        let signing = S3Options::from_properties(&settings(&KEYS)).unwrap();
        assert_eq!(
            signing.delegation.allowed,
            [AccessDelegation::RemoteSigning]
        );
        assert_eq!(
            signing.delegation.choose(None),
            None,
            "signing only when asked"
        );
        assert_eq!(
            signing.delegation.choose(Some("remote-signing")),
            Some(AccessDelegation::RemoteSigning)
        );

        let mut both = KEYS.to_vec();
        both.push(("s3.sts-role-arn", "arn:aws:iam::role/vend"));
        let both = S3Options::from_properties(&settings(&both)).unwrap();
        assert_eq!(both.delegation.allowed, AccessDelegation::ALL);
        assert_eq!(
            both.delegation.credentials_duration,
            DEFAULT_CREDENTIALS_DURATION
        );
        // The client's order wins among allowed modes; unknown names are ignored.
        assert_eq!(
            both.delegation
                .choose(Some("magic, remote-signing,vended-credentials")),
            Some(AccessDelegation::RemoteSigning)
        );
        assert_eq!(both.delegation.choose(Some("magic")), None);
        assert_eq!(
            both.delegation.choose(None),
            Some(AccessDelegation::VendedCredentials)
        );
    }

    #[test]
    fn delegation_settings_that_cannot_work_are_refused() {
        let refused = |pairs: &[(&str, &str)]| {
            let mut all = KEYS.to_vec();
            all.extend_from_slice(pairs);
            S3Options::from_properties(&settings(&all)).unwrap_err()
        };
        assert!(
            refused(&[("s3.access-delegation", "vended-credentials")]).contains("sts-role-arn")
        );
        assert!(refused(&[("s3.access-delegation", "shared")]).contains("shared"));
        assert!(
            refused(&[
                ("s3.sts-role-arn", "r"),
                ("s3.credentials-duration-seconds", "60")
            ])
            .contains("900")
        );
        assert!(
            refused(&[
                ("s3.access-delegation", "remote-signing"),
                ("s3.default-access-delegation", "vended-credentials")
            ])
            .contains("not in s3.access-delegation")
        );
        let without_keys = settings(&[("s3.access-delegation", "remote-signing")]);
        assert!(
            S3Options::from_properties(&without_keys)
                .unwrap_err()
                .contains("own keys")
        );
        let none = S3Options::from_properties(&settings(&[
            ("s3.access-key-id", "key"),
            ("s3.secret-access-key", "secret"),
            ("s3.default-access-delegation", "none"),
        ]))
        .unwrap();
        assert_eq!(none.delegation.choose(None), None);
    }
}
