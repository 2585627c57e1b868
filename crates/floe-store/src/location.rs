//! The overlap check of table and view locations (see *Locations* in the crate docs): the query
//! both backends run, written once, and the reading of its answer. Each backend only spells the
//! bind parameters and runs it inside its write transaction.

use crate::input::Scope;
use crate::kind::Kind;
use crate::{LocationHolder, Result, StoreError, TableName, UnlocatedPointer};

/// Refuses a location the check could not compare as a path: the store takes canonical locations
/// from its callers (`floe_storage::canonical_location`) and checks only what the comparison
/// itself relies on.
pub(crate) fn check_location(location: &str) -> Result<()> {
    let valid = location.contains("://")
        && !location.ends_with('/')
        && !location.contains('\0')
        && !location.contains('\\');
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "location {location:?} is not canonical (a URL without a trailing slash, NUL or \
             backslash)"
        )))
    }
}

/// The query that finds a row, other than the one named, whose location overlaps `location`.
pub(crate) struct OverlapQuery {
    pub sql: String,
    /// The parameters, in the order of their placeholders.
    pub binds: Vec<String>,
}

impl OverlapQuery {
    /// `placeholder(n)` spells the `n`th bind parameter (from 1) in the backend's dialect. The row
    /// `(namespace_key, name)` itself is left out, so that a table moving within its own
    /// directory, or created in this transaction, does not overlap itself.
    pub fn new(
        location: &str,
        namespace_key: &str,
        name: &str,
        placeholder: impl Fn(usize) -> String,
    ) -> Self {
        let mut binds = Vec::new();
        let mut bind = |value: String| {
            binds.push(value);
            placeholder(binds.len())
        };
        // The location itself and every ancestor directory, at `/` boundaries after the scheme.
        let start = location.find("://").map_or(0, |at| at + 3);
        let mut same_or_above: Vec<String> = location
            .match_indices('/')
            .filter(|(at, _)| *at >= start)
            .map(|(at, _)| bind(location[..at].to_string()))
            .collect();
        same_or_above.push(bind(location.to_string()));
        let not_self = format!(
            "NOT (namespace = {} AND name = {})",
            bind(namespace_key.to_string()),
            bind(name.to_string())
        );
        // Everything inside: from `L/` up to `L0`, `0` being the byte after `/`.
        let below_from = bind(format!("{location}/"));
        let below_to = bind(format!("{location}0"));
        let not_self_again = format!(
            "NOT (namespace = {} AND name = {})",
            bind(namespace_key.to_string()),
            bind(name.to_string())
        );
        let sql = format!(
            "SELECT namespace, name, kind, location FROM tables \
             WHERE location IN ({}) AND {not_self} \
             UNION ALL \
             SELECT namespace, name, kind, location FROM tables \
             WHERE location >= {below_from} AND location < {below_to} AND {not_self_again} \
             LIMIT 1",
            same_or_above.join(", ")
        );
        Self { sql, binds }
    }
}

/// The holder a row of the overlap query (or any pointer row) describes.
/// A pointer row without a recorded location, from its columns (both backends' rows).
pub(crate) fn unlocated(
    namespace_key: &str,
    name: String,
    kind: &str,
    metadata_location: String,
) -> Result<UnlocatedPointer> {
    let holder = holder(namespace_key, name, kind, String::new())?;
    Ok(UnlocatedPointer {
        warehouse: holder.warehouse,
        kind: holder.kind,
        name: holder.name,
        metadata_location,
    })
}

pub(crate) fn holder(
    namespace_key: &str,
    name: String,
    kind: &str,
    location: String,
) -> Result<LocationHolder> {
    let (warehouse, namespace) = Scope::decode(namespace_key)?;
    Ok(LocationHolder {
        warehouse,
        kind: Kind::parse(kind)?,
        name: TableName::new(namespace, name),
        location,
    })
}

pub(crate) fn overlap(location: &str, holder: LocationHolder) -> StoreError {
    StoreError::LocationOverlap {
        location: location.to_string(),
        holder: Box::new(holder),
    }
}

/// The error for a table created without a location.
pub(crate) fn missing(table: &TableName) -> StoreError {
    StoreError::InvalidInput(format!(
        "creating table {table} needs its location (PointerSwap::location)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_covers_ancestors_and_descendants() {
        let query = OverlapQuery::new("s3://b/wh/t", "ns", "t", |n| format!("${n}"));
        assert_eq!(
            query.binds,
            [
                "s3://b",
                "s3://b/wh",
                "s3://b/wh/t",
                "ns",
                "t",
                "s3://b/wh/t/",
                "s3://b/wh/t0",
                "ns",
                "t"
            ]
        );
        assert!(query.sql.contains("IN ($1, $2, $3)"), "{}", query.sql);
        assert!(query.sql.contains("location < $7"), "{}", query.sql);
    }

    #[test]
    fn non_canonical_locations_are_refused() {
        assert!(check_location("s3://b/t").is_ok());
        for bad in ["", "s3://b/t/", "/t", "s3://b/t\0", "s3://b\\t"] {
            assert!(check_location(bad).is_err(), "{bad:?}");
        }
    }
}
