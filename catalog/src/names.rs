//! Namespace and table names as they arrive in URLs.
//!
//! A multi-level namespace travels as one path segment whose levels are joined by the unit
//! separator (0x1F, `%1F` on the wire). Axum has already percent-decoded the segment; this module
//! only splits it. Names stay opaque strings from here on: `floe-storage` is the only place that
//! turns them into paths, and it sanitizes them.

use crate::error::{ApiError, ApiResult};

pub const NAMESPACE_SEPARATOR: char = '\u{1f}';

/// Splits a namespace path parameter into its levels.
pub fn parse_namespace(raw: &str) -> ApiResult<Vec<String>> {
    let levels: Vec<String> = raw.split(NAMESPACE_SEPARATOR).map(str::to_string).collect();
    if levels.iter().any(String::is_empty) {
        return Err(ApiError::bad_request(format!(
            "invalid namespace {raw:?}: empty level"
        )));
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_levels_and_keeps_everything_else() {
        assert_eq!(
            parse_namespace("a\u{1f}b.c/d").unwrap(),
            vec!["a".to_string(), "b.c/d".to_string()]
        );
        assert!(parse_namespace("").is_err());
        assert!(parse_namespace("a\u{1f}").is_err());
    }
}
