//! A table's objects as a bucket and key prefix.

use floe_storage::S3Access;
use url::Url;

use crate::{DelegationError, Result};

/// Where a table's objects are in its bucket: every key under `key_prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePrefix {
    pub bucket: String,
    /// The table location's path in the bucket, with a trailing `/` (so `t1/` never covers
    /// `t10/`).
    pub key_prefix: String,
}

impl TablePrefix {
    /// The prefix of a table at `table_location` in an S3 warehouse rooted at `warehouse_root`.
    /// Refused unless the location is an `s3://` URL in the warehouse's bucket, under its root,
    /// with no `..` segment and none of the characters IAM policies treat as wildcards or
    /// variables (`*`, `?`, `$`): a prefix granted to a client must mean exactly that table.
    pub fn of(access: &S3Access, warehouse_root: &str, table_location: &str) -> Result<Self> {
        let refuse = |why: &str| {
            DelegationError::Forbidden(format!("no delegated access to {table_location}: {why}"))
        };
        let url = Url::parse(table_location).map_err(|_| refuse("not a URL"))?;
        if !matches!(url.scheme(), "s3" | "s3a") || url.host_str() != Some(&access.bucket) {
            return Err(refuse("not in the warehouse's bucket"));
        }
        if !floe_storage::is_inside_location(warehouse_root, table_location)
            || warehouse_root.trim_end_matches('/') == table_location.trim_end_matches('/')
        {
            return Err(refuse("not inside the warehouse"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("a query or fragment"));
        }
        let decoded = percent_encoding::percent_decode_str(url.path())
            .decode_utf8()
            .map_err(|_| refuse("not UTF-8"))?;
        let path = decoded.trim_matches('/');
        if path.is_empty() {
            return Err(refuse("the table would be the whole bucket"));
        }
        if path
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(refuse("empty, `.` or `..` path segment"));
        }
        if path.contains(['*', '?', '$']) || path.chars().any(char::is_control) {
            return Err(refuse(
                "characters that policies read as wildcards or variables",
            ));
        }
        Ok(Self {
            bucket: access.bucket.clone(),
            key_prefix: format!("{path}/"),
        })
    }

    /// Whether `key` (an object key in [`Self::bucket`]) is one of the table's objects.
    pub fn contains_key(&self, key: &str) -> bool {
        key.starts_with(&self.key_prefix)
            && !key
                .split('/')
                .any(|segment| segment == "." || segment == "..")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_storage::DelegationOptions;

    fn access() -> S3Access {
        S3Access {
            bucket: "lake".into(),
            endpoint: None,
            region: "us-east-1".into(),
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            delegation: DelegationOptions::default(),
        }
    }

    fn prefix(location: &str) -> Result<TablePrefix> {
        TablePrefix::of(&access(), "s3://lake/wh", location)
    }

    #[test]
    fn a_table_inside_the_warehouse_is_its_path_with_a_trailing_slash() {
        let table = prefix("s3://lake/wh/sales/orders-1f2e").unwrap();
        assert_eq!(table.bucket, "lake");
        assert_eq!(table.key_prefix, "wh/sales/orders-1f2e/");
        assert!(table.contains_key("wh/sales/orders-1f2e/data/a.parquet"));
        assert!(!table.contains_key("wh/sales/orders-1f2e0/data/a.parquet"));
        assert!(!table.contains_key("wh/sales/orders-1f2e/../other/x"));
        assert!(!table.contains_key("wh/sales/orders-1f2e"));
    }

    #[test]
    fn locations_that_could_mean_more_than_one_table_are_refused() {
        for location in [
            "s3://other/wh/t",
            "s3://lake/elsewhere/t",
            "s3://lake/wh",
            "s3://lake/wh/t/../../x",
            "s3://lake/wh/t*",
            "s3://lake/wh/t%2A",
            "s3://lake/wh/${aws:username}",
            "s3://lake/wh/t?x=1",
            "s3://lake/wh//t",
            "gs://lake/wh/t",
            "not a url",
        ] {
            assert!(
                matches!(prefix(location), Err(DelegationError::Forbidden(_))),
                "{location} was accepted"
            );
        }
    }
}
