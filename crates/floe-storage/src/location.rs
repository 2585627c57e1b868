//! Canonical table and view locations.
//!
//! The metadata store keeps every table's and view's location and refuses one that equals,
//! contains or lies inside another's (see `floe_store`'s *Locations*). It decides that with plain
//! string comparisons, which are path comparisons only if two spellings of one directory are one
//! string. [`canonical_location`] makes them so, and refuses what it cannot make so: every
//! location Floe records goes through it.
//!
//! A canonical location is `scheme://authority/segment/...`:
//! - the scheme lowercase, the host lowercase where it is a DNS name (`file`, `http`, `https`),
//!   as the URL standard does; bucket and container names keep their case;
//! - no trailing slash, no empty and no `.` segments;
//! - every segment percent-encoded one way: escapes of characters that need none decoded
//!   (`%41` is `A`), the others in uppercase hex (`%c3%a9` is `%C3%A9`, `é` too).
//!
//! Refused, because the object path they name is not what the text says: `..` segments (the
//! store's string compare would not see that `a/b/..` is `a`), percent-encoded `/`, `.`, `\` and
//! NUL, backslashes (which URL parsers turn into `/` for some schemes only), control characters
//! (which they drop silently), a query or fragment, and a password.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use url::Url;

use crate::{Result, StorageError};

/// What a path segment percent-encodes: the URL standard's path set, plus `%` itself (segments are
/// decoded first, so a `%` left is a literal one) and `/` (which would split the segment).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'%')
    .add(b'/');

/// Escapes that would change how a location splits into segments once decoded.
const FORBIDDEN_ESCAPES: [&str; 4] = ["%2f", "%2e", "%5c", "%00"];

/// The canonical form of a table or view location (see the module docs), or
/// [`StorageError::InvalidLocation`] saying why it has none.
pub fn canonical_location(location: &str) -> Result<String> {
    let invalid = |reason: &str| StorageError::InvalidLocation {
        location: location.to_string(),
        reason: reason.to_string(),
    };
    if location.contains('\\') {
        return Err(invalid("backslashes are not allowed"));
    }
    if location.chars().any(char::is_control) {
        return Err(invalid("control characters are not allowed"));
    }
    let lowercase = location.to_ascii_lowercase();
    if let Some(escape) = FORBIDDEN_ESCAPES
        .iter()
        .find(|escape| lowercase.contains(*escape))
    {
        return Err(invalid(&format!(
            "the escape {} (an encoded '/', '.', '\\' or NUL) is not allowed",
            escape.to_ascii_uppercase()
        )));
    }
    let not_a_url = || invalid("a location is a URL such as s3://bucket/path");
    // The URL parser resolves `.` and `..` on its own, so the segments are read from the text:
    // after the authority, or right after the scheme in `file:/dir` (how Hadoop, and so Spark,
    // spells local paths).
    let (_, after_scheme) = location.split_once(':').ok_or_else(not_a_url)?;
    let raw_path = match after_scheme.strip_prefix("//") {
        Some(authority_and_path) => authority_and_path
            .find('/')
            .map_or("", |start| &authority_and_path[start..]),
        None => after_scheme,
    };
    let mut url = Url::parse(location).map_err(|err| invalid(&err.to_string()))?;
    if url.cannot_be_a_base() || !url.has_authority() {
        return Err(not_a_url());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a location has no query ('?') or fragment ('#')"));
    }
    if url.password().is_some() {
        return Err(invalid("a location carries no password"));
    }
    let mut path = String::with_capacity(raw_path.len());
    for segment in raw_path.split('/') {
        match segment {
            "" | "." => continue,
            ".." => return Err(invalid("'..' segments are not allowed")),
            _ => {}
        }
        let decoded = percent_decode_str(segment)
            .decode_utf8()
            .map_err(|_| invalid("a percent-encoded segment is not UTF-8"))?;
        path.push('/');
        path.extend(utf8_percent_encode(&decoded, SEGMENT));
    }
    url.set_path(&path);
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_directory_are_one_string() {
        let cases = [
            ("s3://bucket/wh/t", "s3://bucket/wh/t"),
            ("s3://bucket/wh/t/", "s3://bucket/wh/t"),
            ("s3://bucket/wh//t///", "s3://bucket/wh/t"),
            ("s3://bucket/wh/./t", "s3://bucket/wh/t"),
            ("S3://bucket/wh/t", "s3://bucket/wh/t"),
            ("FILE:///tmp/wh/t", "file:///tmp/wh/t"),
            ("file:/tmp/wh/t", "file:///tmp/wh/t"),
            ("file:/tmp/wh/./t/", "file:///tmp/wh/t"),
            ("https://Example.COM/wh/t", "https://example.com/wh/t"),
            ("s3://bucket/wh/%41b", "s3://bucket/wh/Ab"),
            ("s3://bucket/wh/a b", "s3://bucket/wh/a%20b"),
            ("s3://bucket/wh/a%20b", "s3://bucket/wh/a%20b"),
            ("s3://bucket/wh/%c3%a9", "s3://bucket/wh/%C3%A9"),
            ("s3://bucket/wh/\u{e9}", "s3://bucket/wh/%C3%A9"),
            ("s3://bucket/wh/100%", "s3://bucket/wh/100%25"),
            ("memory://Name/wh", "memory://Name/wh"),
            (
                "abfss://box@acct.dfs.core.windows.net/wh/t",
                "abfss://box@acct.dfs.core.windows.net/wh/t",
            ),
        ];
        for (given, canonical) in cases {
            let got = canonical_location(given).unwrap_or_else(|err| panic!("{given}: {err}"));
            assert_eq!(got, canonical, "{given}");
            assert_eq!(
                canonical_location(&got).unwrap(),
                got,
                "idempotent on {given}"
            );
        }
    }

    #[test]
    fn ambiguous_locations_are_refused() {
        for bad in [
            "s3://bucket/wh/../other",
            "s3://bucket/wh/t/..",
            "s3://bucket/wh/%2e%2e/other",
            "s3://bucket/wh/a%2Fb",
            "s3://bucket/wh/a%2fb",
            "s3://bucket/wh/%2E",
            "s3://bucket/wh/a%5Cb",
            "s3://bucket/wh\\t",
            "s3://bucket/wh/a%00",
            "s3://bucket/wh/a\0",
            "s3://bucket/wh/a\tb",
            "s3://bucket/wh/a\nb",
            "s3://bucket/wh/t?x=1",
            "s3://bucket/wh/t#f",
            "s3://user:secret@bucket/wh/t",
            "s3://bucket/wh/%ff",
            "/local/path",
            "file:/tmp/wh/../t",
            "s3:/bucket/wh",
            "not a url",
            "mailto:someone@example.com",
        ] {
            assert!(
                canonical_location(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
