//! The rules for what callers hand the store — names and page tokens — shared by every backend so
//! that they all accept and refuse the same things.

use std::time::Duration;

use crate::{JobRecord, NamespacePath, Page, PageRequest, Result, StoreError, TableName};

/// Joins namespace levels into one key. It is the separator the Iceberg REST API uses between levels,
/// so no REST client can put it inside a level, which keeps the join reversible.
pub(crate) const LEVEL_SEPARATOR: &str = "\u{1f}";

/// Which warehouse a store handle works in, and so how its namespaces are keyed.
///
/// The server's configured (default) warehouse keys a namespace by its joined levels alone, as
/// stores did before there were several warehouses, so existing stores need no data migration.
/// A registered warehouse `w` keys it as `U+001F w U+001F levels`: no joined path starts with the
/// separator (a level is never empty), and a warehouse name never contains it, so keys of different
/// warehouses can never meet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scope(Option<String>);

impl Scope {
    /// The scope of a registered warehouse; `name` must be a valid warehouse name.
    pub fn warehouse(name: &str) -> Result<Self> {
        check_warehouse_name(name)?;
        Ok(Self(Some(name.to_string())))
    }

    /// The value of the `warehouse` column: `None` (SQL NULL) for the default warehouse.
    pub fn column(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The key a namespace is stored under; refuses paths that break the naming rules.
    pub fn namespace_key(&self, namespace: &[String]) -> Result<String> {
        let path = namespace_key(namespace)?;
        Ok(self.prefixed(path))
    }

    /// The key of the namespace's parent, `None` for a top-level one. Expects a valid path.
    pub fn parent_key(&self, namespace: &[String]) -> Option<String> {
        parent_key(namespace).map(|path| self.prefixed(path))
    }

    /// Validates the table's name and returns the key of its namespace.
    pub fn table_key(&self, table: &TableName) -> Result<String> {
        check_table_name(&table.name)?;
        self.namespace_key(&table.namespace)
    }

    /// The warehouse (`None` for the default one) and namespace of a stored namespace key: the
    /// inverse of [`Scope::namespace_key`] over every scope.
    pub fn decode(key: &str) -> Result<(Option<String>, NamespacePath)> {
        let levels = |path: &str| path.split(LEVEL_SEPARATOR).map(str::to_string).collect();
        match key.strip_prefix(LEVEL_SEPARATOR) {
            None => Ok((None, levels(key))),
            Some(rest) => {
                let (warehouse, path) = rest.split_once(LEVEL_SEPARATOR).ok_or_else(|| {
                    StoreError::Internal(format!("corrupt namespace key {key:?}"))
                })?;
                Ok((Some(warehouse.to_string()), levels(path)))
            }
        }
    }

    fn prefixed(&self, path: String) -> String {
        match &self.0 {
            None => path,
            Some(warehouse) => format!("{LEVEL_SEPARATOR}{warehouse}{LEVEL_SEPARATOR}{path}"),
        }
    }
}

/// Warehouse names become the REST prefix in URLs and parts of keys: lowercase ASCII letters,
/// digits, `-` and `_`, starting with a letter or digit, at most 63 characters (as S3 bucket
/// names, which many users will mirror).
pub(crate) fn check_warehouse_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "invalid warehouse name {name:?}: use 1 to 63 lowercase letters, digits, '-' or '_', \
             starting with a letter or digit"
        )))
    }
}

/// A job record's columns that are encoded: its namespace and its stats, as JSON text.
pub(crate) struct JobRow {
    pub namespace: String,
    pub stats: String,
}

impl JobRow {
    pub fn of(job: &JobRecord) -> Result<Self> {
        namespace_key(&job.table.namespace)?;
        check_table_name(&job.table.name)?;
        let stats = serde_json::to_string(&job.stats)
            .map_err(|err| StoreError::Internal(format!("encoding job stats: {err}")))?;
        Ok(Self {
            namespace: Self::namespace_json(&job.table.namespace)?,
            stats,
        })
    }

    pub fn namespace_json(namespace: &[String]) -> Result<String> {
        serde_json::to_string(namespace)
            .map_err(|err| StoreError::Internal(format!("encoding a namespace: {err}")))
    }

    /// `partial` with its namespace and stats decoded from this row.
    pub fn record(self, mut partial: JobRecord) -> Result<JobRecord> {
        let corrupt = |err: serde_json::Error| {
            StoreError::Internal(format!("corrupt maintenance job record: {err}"))
        };
        partial.table.namespace = serde_json::from_str(&self.namespace).map_err(corrupt)?;
        partial.stats = serde_json::from_str(&self.stats).map_err(corrupt)?;
        Ok(partial)
    }
}

/// The key a namespace is stored under; refuses paths that break the naming rules.
fn namespace_key(namespace: &[String]) -> Result<String> {
    if namespace.is_empty() {
        return Err(StoreError::InvalidInput(
            "a namespace has at least one level".into(),
        ));
    }
    for level in namespace {
        if level.is_empty() {
            return Err(StoreError::InvalidInput(format!(
                "namespace {namespace:?} has an empty level"
            )));
        }
        if level.contains(LEVEL_SEPARATOR) {
            return Err(StoreError::InvalidInput(format!(
                "namespace level {level:?} contains the level separator U+001F"
            )));
        }
        if level.contains('\0') {
            return Err(StoreError::InvalidInput(format!(
                "namespace level {level:?} contains U+0000"
            )));
        }
    }
    Ok(namespace.join(LEVEL_SEPARATOR))
}

fn parent_key(namespace: &[String]) -> Option<String> {
    match namespace.split_last() {
        Some((_, parent)) if !parent.is_empty() => Some(parent.join(LEVEL_SEPARATOR)),
        _ => None,
    }
}

pub(crate) fn check_table_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(StoreError::InvalidInput(
            "a table name is never empty".into(),
        ));
    }
    if name.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "table name {name:?} contains U+0000"
        )));
    }
    Ok(())
}

/// The longest lease a holder may take in one call.
const MAX_LEASE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Checks a lease request and returns its time to live in milliseconds.
pub(crate) fn lease_ttl_millis(name: &str, holder: &str, ttl: Duration) -> Result<i64> {
    check_lease_names(name, holder)?;
    if ttl < Duration::from_millis(1) || ttl > MAX_LEASE {
        return Err(StoreError::InvalidInput(format!(
            "a lease lasts from 1 ms to {MAX_LEASE:?}, not {ttl:?}"
        )));
    }
    Ok(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// An idempotency-key takeover timeout in ms, capped far beyond any key's retention so that
/// `now - timeout` cannot overflow.
pub(crate) fn takeover_millis(takeover_after: Duration) -> i64 {
    i64::try_from(takeover_after.as_millis())
        .unwrap_or(i64::MAX)
        .min(1 << 50)
}

pub(crate) fn check_lease_names(name: &str, holder: &str) -> Result<()> {
    for (what, value) in [("lease name", name), ("lease holder", holder)] {
        if value.is_empty() || value.contains('\0') {
            return Err(StoreError::InvalidInput(format!(
                "a {what} is non-empty without U+0000, not {value:?}"
            )));
        }
    }
    Ok(())
}

/// A page request turned into a keyset query: items sort by name, and a page starts after the last
/// name of the previous one, so concurrent inserts and deletes never shift items across pages.
pub(crate) struct Keyset {
    /// Names greater than this one; `""` sorts before every (non-empty) name.
    pub after: String,
    /// How many rows to fetch: one more than the page holds, to learn whether another page follows.
    pub limit: i64,
    size: Option<usize>,
}

impl Keyset {
    pub fn new(page: &PageRequest) -> Result<Self> {
        let after = match &page.token {
            None => String::new(),
            Some(token) => hex::decode(token)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .filter(|name| !name.is_empty())
                .ok_or_else(|| {
                    StoreError::InvalidInput(format!("malformed page token {token:?}"))
                })?,
        };
        let limit = match page.size {
            Some(0) => {
                return Err(StoreError::InvalidInput("a page size is at least 1".into()));
            }
            Some(size) => i64::try_from(size).unwrap_or(i64::MAX).saturating_add(1),
            None => i64::MAX,
        };
        Ok(Self {
            after,
            limit,
            size: page.size,
        })
    }

    /// Cuts the fetched rows (in name order, at most `limit`) into a page.
    pub fn page<T>(&self, mut rows: Vec<T>, name: impl Fn(&T) -> &str) -> Page<T> {
        let next_page_token = match self.size {
            Some(size) if rows.len() > size => {
                rows.truncate(size);
                rows.last().map(|last| hex::encode(name(last)))
            }
            _ => None,
        };
        Page {
            items: rows,
            next_page_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(levels: &[&str]) -> Vec<String> {
        levels.iter().map(|level| level.to_string()).collect()
    }

    #[test]
    fn keys_of_distinct_paths_differ() {
        assert_ne!(
            namespace_key(&path(&["a.b"])).unwrap(),
            namespace_key(&path(&["a", "b"])).unwrap()
        );
        assert_eq!(
            parent_key(&path(&["a", "b", "c"])).as_deref(),
            Some("a\u{1f}b")
        );
        assert_eq!(parent_key(&path(&["a"])), None);
    }

    #[test]
    fn warehouses_never_share_keys() {
        let default = Scope::default();
        let sales = Scope::warehouse("sales").unwrap();
        let other = Scope::warehouse("sales-eu").unwrap();
        let keys = [
            default.namespace_key(&path(&["a"])).unwrap(),
            sales.namespace_key(&path(&["a"])).unwrap(),
            other.namespace_key(&path(&["a"])).unwrap(),
            default.namespace_key(&path(&["sales", "a"])).unwrap(),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            sales.parent_key(&path(&["a", "b"])),
            Some("\u{1f}sales\u{1f}a".to_string())
        );
        assert_eq!(sales.parent_key(&path(&["a"])), None);
        for (scope, warehouse) in [(&default, None), (&sales, Some("sales"))] {
            let key = scope.namespace_key(&path(&["a", "b"])).unwrap();
            assert_eq!(
                Scope::decode(&key).unwrap(),
                (warehouse.map(str::to_string), path(&["a", "b"]))
            );
        }
        assert_eq!(default.column(), None);
        assert_eq!(sales.column(), Some("sales"));
    }

    #[test]
    fn warehouse_names_are_checked() {
        for good in ["main", "a", "lake-2026", "x_y", "0day"] {
            assert!(check_warehouse_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "Main",
            "-a",
            "_a",
            "a b",
            "a/b",
            "a.b",
            "a\u{1f}",
            long.as_str(),
        ] {
            assert!(check_warehouse_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn malformed_names_are_refused() {
        for bad in [
            path(&[]),
            path(&["a", ""]),
            path(&["a\u{1f}b"]),
            path(&["a\0"]),
        ] {
            assert!(matches!(
                namespace_key(&bad),
                Err(StoreError::InvalidInput(_))
            ));
        }
        assert!(check_table_name("").is_err());
        assert!(check_table_name("a\0").is_err());
    }

    #[test]
    fn malformed_leases_are_refused() {
        let minute = Duration::from_secs(60);
        assert_eq!(
            lease_ttl_millis("job", "replica-1", minute).unwrap(),
            60_000
        );
        assert!(lease_ttl_millis("", "replica-1", minute).is_err());
        assert!(lease_ttl_millis("job", "", minute).is_err());
        assert!(lease_ttl_millis("job", "a\0", minute).is_err());
        assert!(lease_ttl_millis("job", "replica-1", Duration::ZERO).is_err());
        assert!(lease_ttl_millis("job", "replica-1", Duration::from_micros(999)).is_err());
        assert!(lease_ttl_millis("job", "replica-1", Duration::MAX).is_err());
    }

    #[test]
    fn malformed_page_requests_are_refused() {
        for token in ["zz", "", "ff"] {
            let page = PageRequest {
                token: Some(token.into()),
                size: None,
            };
            assert!(Keyset::new(&page).is_err(), "token {token:?}");
        }
        let page = PageRequest {
            token: None,
            size: Some(0),
        };
        assert!(Keyset::new(&page).is_err());
    }
}
