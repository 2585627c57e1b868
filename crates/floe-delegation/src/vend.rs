//! Vended credentials: STS keys down-scoped to one table, cached per (table, privilege).
//!
//! Without the cache every loadTable would call STS (Polaris users measured two calls per
//! loadTable). Credentials are handed out again while at least half of their lifetime is left,
//! so a client always gets keys that last at least half the warehouse's duration, and STS sees
//! about two calls per table and privilege per duration, however many loads there are. Two
//! loads that miss at the same moment may both call STS; the later answer replaces the earlier,
//! and both are valid.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use floe_storage::S3Access;

use crate::policy::session_policy;
use crate::sts::{self, AssumeRole, TemporaryCredentials};
use crate::{DelegationError, Result, TablePrefix};

/// Entries past this count trigger a sweep of expired ones (the cache holds about two entries per
/// table in use, each a few hundred bytes).
const SWEEP_AT: usize = 4096;

/// Hands out table-scoped credentials, calling STS only when the cache has none fresh enough.
pub struct Vendor {
    http: reqwest::Client,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<CacheKey, TemporaryCredentials>,
    sweep_at: usize,
}

/// Everything that makes two vended credentials interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    sts_endpoint: String,
    role_arn: String,
    /// The keys STS is called with: a warehouse re-registered with other keys gets new credentials.
    caller_key_id: String,
    bucket: String,
    key_prefix: String,
    write: bool,
    duration: Duration,
}

impl Vendor {
    pub fn new() -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|err| {
                DelegationError::Unavailable(format!("no HTTP client for STS: {err}"))
            })?;
        Ok(Self {
            http,
            cache: Mutex::new(Cache {
                entries: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        })
    }

    /// Credentials for `table`: reads and listing under its prefix, and with `write` also puts and
    /// deletes there.
    pub async fn credentials(
        &self,
        access: &S3Access,
        table: &TablePrefix,
        write: bool,
    ) -> Result<TemporaryCredentials> {
        let Some(role_arn) = &access.delegation.sts_role_arn else {
            return Err(DelegationError::NotOffered(
                "the warehouse vends no credentials (no s3.sts-role-arn)".into(),
            ));
        };
        let duration = access.delegation.credentials_duration;
        let key = CacheKey {
            sts_endpoint: sts::endpoint(access),
            role_arn: role_arn.clone(),
            caller_key_id: access.access_key_id.clone().unwrap_or_default(),
            bucket: table.bucket.clone(),
            key_prefix: table.key_prefix.clone(),
            write,
            duration,
        };
        if let Some(fresh) = self.cached(&key, duration) {
            metrics::counter!("floe_delegation_vended_total", "cache" => "hit").increment(1);
            return Ok(fresh);
        }
        metrics::counter!("floe_delegation_vended_total", "cache" => "miss").increment(1);
        let policy = session_policy(table, write).to_string();
        let session_name = session_name(table);
        let result = sts::assume_role(
            &self.http,
            access,
            &AssumeRole {
                role_arn,
                session_name: &session_name,
                policy: &policy,
                duration,
            },
        )
        .await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("floe_delegation_sts_calls_total", "outcome" => outcome).increment(1);
        let credentials = result?;
        self.remember(key, credentials.clone());
        Ok(credentials)
    }

    fn cached(&self, key: &CacheKey, duration: Duration) -> Option<TemporaryCredentials> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let credentials = cache.entries.get(key)?;
        let left = credentials
            .expires_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        (left >= duration / 2).then(|| credentials.clone())
    }

    fn remember(&self, key: CacheKey, credentials: TemporaryCredentials) {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if cache.entries.len() >= cache.sweep_at {
            let now = SystemTime::now();
            cache.entries.retain(|_, held| held.expires_at > now);
            cache.sweep_at = (cache.entries.len() * 2).max(SWEEP_AT);
        }
        cache.entries.insert(key, credentials);
    }

    /// How many credentials the cache holds (for tests and metrics).
    pub fn cached_count(&self) -> usize {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.entries.len()
    }
}

/// `floe-<table folder>`: shows in the object store's own logs which table a session was for.
/// STS allows 2–64 characters of `[\w+=,.@-]`.
fn session_name(table: &TablePrefix) -> String {
    let folder = table
        .key_prefix
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let cleaned: String = folder
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(59)
        .collect();
    format!("floe-{cleaned}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_are_what_sts_accepts() {
        let table = TablePrefix {
            bucket: "b".into(),
            key_prefix: format!("wh/ns/{}/", "ä x".repeat(40)),
        };
        let name = session_name(&table);
        assert!(name.starts_with("floe-"));
        assert!(name.len() <= 64);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        );
    }
}
