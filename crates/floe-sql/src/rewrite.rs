//! The small pre-parse that turns the SQL people write for Iceberg into SQL DataFusion parses.
//!
//! DataFusion's (generic) SQL dialect has no time-travel clause and no Iceberg partitioning
//! clause, so before parsing, each statement's tokens are rewritten:
//!
//! - **Time travel.** A table name followed by `FOR VERSION AS OF <id>` / `VERSION AS OF <id>` /
//!   `FOR SYSTEM_VERSION AS OF <id>` becomes the table reference `"name@v<id>"`, and with a
//!   quoted branch or tag name instead of an id (`VERSION AS OF 'audit'`) `"name@ref=audit"`
//!   (a quoted whole number is still a snapshot id); followed by
//!   `FOR SYSTEM_TIME AS OF '<timestamp>'` / `FOR TIMESTAMP AS OF ...` / `TIMESTAMP AS OF ...`
//!   it becomes `"name@ts<epoch-millis>"`. The clause must follow the table name directly (before
//!   any alias). Those two suffixes are also what the schema provider understands when written by
//!   hand (`SELECT * FROM "orders@v123"`). Timestamps without a zone are UTC.
//! - **Partitioning.** `CREATE TABLE ... PARTITIONED BY (col, bucket(16, id), day(ts), ...)` has
//!   its clause removed and returned as [`PartitionTerm`]s; a Spark-style `USING iceberg` is
//!   dropped too.
//!
//! The rewrite works on the tokenizer's output, so string literals, quoted identifiers and
//! comments are never mistaken for clauses, and everything it does not rewrite is kept byte for
//! byte.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use crate::SqlError;

/// One statement, ready for DataFusion's parser.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedStatement {
    pub sql: String,
    /// The `PARTITIONED BY` terms of a `CREATE TABLE`, in order; `None` if it had none.
    pub partitioning: Option<Vec<PartitionTerm>>,
}

/// One term of a `PARTITIONED BY` clause: a transform of a source column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionTerm {
    pub column: String,
    pub transform: iceberg::spec::Transform,
}

/// Splits `sql` into statements at top-level `;` and rewrites each (see the module docs). Empty
/// statements (only whitespace or comments) are dropped.
pub fn prepare(sql: &str) -> Result<Vec<PreparedStatement>, SqlError> {
    let tokens = tokenize(sql)?;
    let offsets = Offsets::new(sql);
    let spanned: Vec<Spanned> = tokens
        .iter()
        .map(|t| Spanned {
            token: t.token.clone(),
            start: offsets.byte(t.span.start),
        })
        .collect();
    // Each statement's text runs to the start of its `;`, or to the end of the input.
    let mut ranges = Vec::new();
    let mut first = 0;
    for (i, token) in spanned.iter().enumerate() {
        if token.token == Token::SemiColon {
            ranges.push((first, i, token.start));
            first = i + 1;
        }
    }
    ranges.push((first, spanned.len(), sql.len()));
    let mut prepared = Vec::new();
    for (first, last, end) in ranges {
        let statement = &spanned[first..last];
        if statement
            .iter()
            .all(|t| matches!(t.token, Token::Whitespace(_)))
        {
            continue;
        }
        prepared.push(rewrite_statement(sql, statement, end)?);
    }
    Ok(prepared)
}

/// Whether `text` holds at least one complete statement and nothing after its last `;` but
/// whitespace: what the interactive shell waits for before running input. Unterminated strings
/// or comments are incomplete.
pub fn is_complete(text: &str) -> bool {
    let Ok(tokens) = tokenize(text) else {
        return false;
    };
    let last = tokens
        .iter()
        .rposition(|t| !matches!(t.token, Token::Whitespace(_)));
    matches!(last, Some(i) if tokens[i].token == Token::SemiColon)
}

fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, SqlError> {
    Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .map_err(|err| SqlError::new(format!("syntax error: {err}")))
}

#[derive(Debug)]
struct Spanned {
    token: Token,
    /// Byte offset of the token's first character.
    start: usize,
}

/// Maps the tokenizer's (line, column) locations, which count characters, to byte offsets.
struct Offsets<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, line_starts }
    }

    fn byte(&self, location: Location) -> usize {
        let Some(&line_start) = self
            .line_starts
            .get(location.line.saturating_sub(1) as usize)
        else {
            return self.text.len();
        };
        let column = location.column.saturating_sub(1) as usize;
        self.text[line_start..]
            .char_indices()
            .nth(column)
            .map(|(i, _)| line_start + i)
            .unwrap_or(self.text.len())
    }
}

/// A replacement of the source bytes `from..to` by `text`.
struct Edit {
    from: usize,
    to: usize,
    text: String,
}

fn rewrite_statement(
    sql: &str,
    tokens: &[Spanned],
    end: usize,
) -> Result<PreparedStatement, SqlError> {
    // Indexes of the tokens that are not whitespace or comments.
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let byte_after = |i: usize| tokens.get(i + 1).map(|t| t.start).unwrap_or(end);
    let mut edits = Vec::new();

    let is_create_table = starts_create_table(tokens, &significant);
    let mut partitioning = None;
    let mut depth = 0i32;
    let mut k = 0;
    while k < significant.len() {
        let i = significant[k];
        match &tokens[i].token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        if is_create_table && depth == 0 {
            if keywords_at(tokens, &significant, k, &["PARTITIONED", "BY"]) {
                if partitioning.is_some() {
                    return Err(SqlError::new("PARTITIONED BY appears twice"));
                }
                let (terms, close) = partition_clause(tokens, &significant, k + 2)?;
                partitioning = Some(terms);
                edits.push(Edit {
                    from: tokens[i].start,
                    to: byte_after(significant[close]),
                    text: " ".into(),
                });
                k = close + 1;
                continue;
            }
            if keywords_at(tokens, &significant, k, &["USING"])
                && word_at(tokens, &significant, k + 1)
                    .is_some_and(|w| w.eq_ignore_ascii_case("iceberg"))
            {
                edits.push(Edit {
                    from: tokens[i].start,
                    to: byte_after(significant[k + 1]),
                    text: " ".into(),
                });
                k += 2;
                continue;
            }
        }
        if let Some((clause, length)) = time_travel_at(tokens, &significant, k)? {
            let name_index = k
                .checked_sub(1)
                .map(|p| significant[p])
                .filter(|&p| matches!(tokens[p].token, Token::Word(_)));
            let Some(name_index) = name_index else {
                return Err(SqlError::new(
                    "a time-travel clause (VERSION AS OF / FOR SYSTEM_TIME AS OF) must directly \
                     follow a table name",
                ));
            };
            let Token::Word(word) = &tokens[name_index].token else {
                unreachable!("checked above")
            };
            // Quoting turns off DataFusion's lower-casing of unquoted names: do it here.
            let name = if word.quote_style.is_some() {
                word.value.clone()
            } else {
                word.value.to_lowercase()
            };
            let reference = format!("{name}@{clause}");
            edits.push(Edit {
                from: tokens[name_index].start,
                to: byte_after(name_index),
                text: quote_ident(&reference),
            });
            let last = significant[k + length - 1];
            edits.push(Edit {
                from: tokens[i].start,
                to: byte_after(last),
                text: " ".into(),
            });
            k += length;
            continue;
        }
        k += 1;
    }

    let start = tokens.first().map(|t| t.start).unwrap_or(end);
    let mut out = String::with_capacity(end - start);
    let mut at = start;
    for edit in edits {
        out.push_str(&sql[at..edit.from]);
        out.push_str(&edit.text);
        at = edit.to;
    }
    out.push_str(&sql[at..end]);
    Ok(PreparedStatement {
        sql: out.trim().to_string(),
        partitioning,
    })
}

/// `CREATE [OR REPLACE] [EXTERNAL] TABLE`
fn starts_create_table(tokens: &[Spanned], significant: &[usize]) -> bool {
    let words: Vec<Keyword> = significant
        .iter()
        .take(5)
        .map(|&i| match &tokens[i].token {
            Token::Word(w) => w.keyword,
            _ => Keyword::NoKeyword,
        })
        .collect();
    let mut rest = words.as_slice();
    let Some((Keyword::CREATE, tail)) = rest.split_first() else {
        return false;
    };
    rest = tail;
    if let [Keyword::OR, Keyword::REPLACE, tail @ ..] = rest {
        rest = tail;
    }
    if let [Keyword::EXTERNAL, tail @ ..] = rest {
        rest = tail;
    }
    matches!(rest.first(), Some(Keyword::TABLE))
}

/// Whether the significant tokens from `k` are the unquoted words `keywords` (upper case).
fn keywords_at(tokens: &[Spanned], significant: &[usize], k: usize, keywords: &[&str]) -> bool {
    keywords.iter().enumerate().all(|(offset, keyword)| {
        significant.get(k + offset).is_some_and(|&i| {
            matches!(&tokens[i].token, Token::Word(w)
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(keyword))
        })
    })
}

fn word_at<'t>(tokens: &'t [Spanned], significant: &[usize], k: usize) -> Option<&'t str> {
    match &tokens[*significant.get(k)?].token {
        Token::Word(w) => Some(w.value.as_str()),
        _ => None,
    }
}

/// What follows `@` in a table reference that reads a branch or tag: `"t@ref=audit"`.
pub const REF_MARKER: &str = "ref=";

/// A time-travel clause starting at significant token `k`: the table suffix it stands for
/// (`v<id>`, `ref=<name>` or `ts<millis>`) and how many significant tokens it spans.
fn time_travel_at(
    tokens: &[Spanned],
    significant: &[usize],
    k: usize,
) -> Result<Option<(String, usize)>, SqlError> {
    let forms: [(&[&str], bool); 6] = [
        (&["FOR", "SYSTEM_TIME", "AS", "OF"], false),
        (&["FOR", "TIMESTAMP", "AS", "OF"], false),
        (&["TIMESTAMP", "AS", "OF"], false),
        (&["FOR", "SYSTEM_VERSION", "AS", "OF"], true),
        (&["FOR", "VERSION", "AS", "OF"], true),
        (&["VERSION", "AS", "OF"], true),
    ];
    let Some((keywords, by_version)) = forms
        .iter()
        .find(|(keywords, _)| keywords_at(tokens, significant, k, keywords))
    else {
        return Ok(None);
    };
    let mut at = k + keywords.len();
    let token = |at: usize| significant.get(at).map(|&i| &tokens[i].token);
    if *by_version {
        let negative = token(at) == Some(&Token::Minus);
        if negative {
            at += 1;
        }
        let id = match token(at) {
            Some(Token::Number(digits, _)) => digits.clone(),
            // A quoted whole number is a snapshot id; any other quoted text names a branch or tag.
            Some(Token::SingleQuotedString(text)) if !negative => {
                if text.trim().parse::<i64>().is_err() {
                    if text.is_empty() {
                        return Err(SqlError::new(
                            "VERSION AS OF '' names no branch or tag; write e.g. \
                             VERSION AS OF 'main' or VERSION AS OF 4242424242",
                        ));
                    }
                    return Ok(Some((format!("{REF_MARKER}{text}"), at + 1 - k)));
                }
                text.clone()
            }
            _ => {
                return Err(SqlError::new(
                    "VERSION AS OF takes a snapshot id or a quoted branch or tag name, e.g. \
                     VERSION AS OF 4242424242 or VERSION AS OF 'audit'",
                ));
            }
        };
        let id: i64 = id.trim().parse().map_err(|_| {
            SqlError::new(format!(
                "VERSION AS OF takes a snapshot id (a whole number), not {id:?}"
            ))
        })?;
        let id = if negative { -id } else { id };
        Ok(Some((format!("v{id}"), at + 1 - k)))
    } else {
        // `TIMESTAMP '...'` is a typed literal: the keyword is optional.
        if keywords_at(tokens, significant, at, &["TIMESTAMP"]) {
            at += 1;
        }
        let millis = match token(at) {
            Some(Token::SingleQuotedString(text)) => parse_timestamp(text)?,
            Some(Token::Number(digits, _)) => digits.parse().map_err(|_| {
                SqlError::new(format!("{digits} is not a timestamp in milliseconds"))
            })?,
            _ => {
                return Err(SqlError::new(
                    "FOR SYSTEM_TIME AS OF takes a timestamp, e.g. \
                     FOR SYSTEM_TIME AS OF '2024-05-01 12:00:00' (UTC unless a zone is given)",
                ));
            }
        };
        Ok(Some((format!("ts{millis}"), at + 1 - k)))
    }
}

/// Milliseconds since the epoch of a timestamp literal: RFC 3339 (`2024-05-01T12:00:00+02:00`),
/// `2024-05-01 12:00:00[.fff][+hh:mm]` or a date (`2024-05-01`); UTC unless a zone is given.
pub fn parse_timestamp(text: &str) -> Result<i64, SqlError> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.timestamp_millis());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(at) = DateTime::parse_from_str(text, format) {
            return Ok(at.timestamp_millis());
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc().timestamp_millis());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight exists");
        return Ok(DateTime::<Utc>::from_naive_utc_and_offset(midnight, Utc).timestamp_millis());
    }
    Err(SqlError::new(format!(
        "cannot read {text:?} as a timestamp; write e.g. '2024-05-01 12:00:00' (UTC), \
         '2024-05-01T12:00:00+02:00' or '2024-05-01'"
    )))
}

/// The terms of `PARTITIONED BY ( ... )`, whose `(` is significant token `k`; returns them and
/// the significant index of the closing `)`.
fn partition_clause(
    tokens: &[Spanned],
    significant: &[usize],
    k: usize,
) -> Result<(Vec<PartitionTerm>, usize), SqlError> {
    let token = |at: usize| significant.get(at).map(|&i| &tokens[i].token);
    if token(k) != Some(&Token::LParen) {
        return Err(SqlError::new(
            "PARTITIONED BY takes a list in parentheses, e.g. PARTITIONED BY (region, day(ts))",
        ));
    }
    // Split the list at top-level commas into terms of significant tokens.
    let mut terms = Vec::new();
    let mut current: Vec<&Token> = Vec::new();
    let mut depth = 0;
    let mut at = k + 1;
    loop {
        let Some(t) = token(at) else {
            return Err(SqlError::new(
                "PARTITIONED BY ( ... is missing its closing ')'",
            ));
        };
        match t {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => {
                terms.push(partition_term(&current)?);
                break;
            }
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => {
                terms.push(partition_term(&current)?);
                current.clear();
                at += 1;
                continue;
            }
            _ => {}
        }
        current.push(t);
        at += 1;
    }
    Ok((terms, at))
}

/// `col`, `identity(col)`, `bucket(N, col)`, `truncate(W, col)`, `year(col)` / `years(col)`,
/// `month(s)`, `day(s)`, `hour(s)`, `void(col)`.
fn partition_term(tokens: &[&Token]) -> Result<PartitionTerm, SqlError> {
    use iceberg::spec::Transform;
    let shown = tokens.iter().map(|t| t.to_string()).collect::<String>();
    let bad = || {
        SqlError::new(format!(
            "cannot read partition term {shown:?}; write a column name or one of identity(col), \
             bucket(N, col), truncate(W, col), year(col), month(col), day(col), hour(col)"
        ))
    };
    let column_name = |t: &Token| match t {
        Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
        Token::Word(w) => Some(w.value.to_lowercase()),
        _ => None,
    };
    match tokens {
        [name] => Ok(PartitionTerm {
            column: column_name(name).ok_or_else(bad)?,
            transform: Transform::Identity,
        }),
        [
            Token::Word(function),
            Token::LParen,
            args @ ..,
            Token::RParen,
        ] => {
            let function = function.value.to_lowercase();
            let (number, column) = match args {
                [column] => (None, column_name(column).ok_or_else(bad)?),
                [Token::Number(n, _), Token::Comma, column]
                | [column, Token::Comma, Token::Number(n, _)] => (
                    Some(n.parse::<u32>().map_err(|_| bad())?),
                    column_name(column).ok_or_else(bad)?,
                ),
                _ => return Err(bad()),
            };
            let transform = match (function.as_str(), number) {
                ("identity", None) => Transform::Identity,
                ("bucket", Some(n)) => Transform::Bucket(n),
                ("truncate", Some(w)) => Transform::Truncate(w),
                ("year" | "years", None) => Transform::Year,
                ("month" | "months", None) => Transform::Month,
                ("day" | "days" | "date", None) => Transform::Day,
                ("hour" | "hours" | "date_hour", None) => Transform::Hour,
                ("void", None) => Transform::Void,
                _ => return Err(bad()),
            };
            Ok(PartitionTerm { column, transform })
        }
        _ => Err(bad()),
    }
}

/// `name` as a double-quoted identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use iceberg::spec::Transform;

    use super::*;

    fn one(sql: &str) -> PreparedStatement {
        let mut all = prepare(sql).unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn statements_split_at_top_level_semicolons_only() {
        let all = prepare("select 'a;b' ; -- c;\n select \"x;\" from t;;  ").unwrap();
        let sql: Vec<_> = all.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(sql, ["select 'a;b'", "-- c;\n select \"x;\" from t"]);
    }

    #[test]
    fn plain_sql_is_kept_byte_for_byte() {
        let sql = "SELECT 'it''s', \"Odd \"\"name\"\"\" FROM ns.t /* ünï */ WHERE a = 'ä'";
        assert_eq!(one(sql).sql, sql);
        assert_eq!(one(sql).partitioning, None);
    }

    #[test]
    fn version_as_of_becomes_a_snapshot_reference() {
        assert_eq!(
            one("SELECT * FROM ns.Orders FOR VERSION AS OF 123 o WHERE o.id > 1").sql,
            "SELECT * FROM ns.\"orders@v123\"   o WHERE o.id > 1"
        );
        assert_eq!(
            one("select * from \"Mixed\" version as of 7").sql,
            "select * from \"Mixed@v7\""
        );
        assert_eq!(
            one("select * from t for system_version as of -5").sql,
            "select * from \"t@v-5\""
        );
    }

    #[test]
    fn version_as_of_a_name_becomes_a_ref_reference() {
        assert_eq!(
            one("SELECT * FROM ns.t FOR VERSION AS OF 'audit-2024' WHERE id > 1").sql,
            "SELECT * FROM ns.\"t@ref=audit-2024\"   WHERE id > 1"
        );
        assert_eq!(
            one("select * from t version as of 'Main'").sql,
            "select * from \"t@ref=Main\""
        );
        // A quoted whole number stays a snapshot id.
        assert_eq!(
            one("select * from t version as of '42'").sql,
            "select * from \"t@v42\""
        );
    }

    #[test]
    fn timestamp_as_of_becomes_a_time_reference() {
        let expected = "select * from \"t@ts1714564800000\"";
        for sql in [
            "select * from t FOR SYSTEM_TIME AS OF '2024-05-01 12:00:00'",
            "select * from t FOR SYSTEM_TIME AS OF TIMESTAMP '2024-05-01T12:00:00Z'",
            "select * from t TIMESTAMP AS OF '2024-05-01T14:00:00+02:00'",
            "select * from t FOR TIMESTAMP AS OF 1714564800000",
        ] {
            assert_eq!(one(sql).sql, expected, "{sql}");
        }
    }

    #[test]
    fn clauses_inside_strings_or_comments_are_left_alone() {
        let sql = "select 'x VERSION AS OF 1' from t -- FOR SYSTEM_TIME AS OF 'y'";
        assert_eq!(one(sql).sql, sql);
    }

    #[test]
    fn bad_time_travel_clauses_explain_themselves() {
        let err = prepare("select * from t version as of main").unwrap_err();
        assert!(
            err.to_string().contains("quoted branch or tag name"),
            "{err}"
        );
        let err = prepare("select * from t version as of ''").unwrap_err();
        assert!(err.to_string().contains("names no branch or tag"), "{err}");
        let err = prepare("select * from t for system_time as of 'yesterday'").unwrap_err();
        assert!(err.to_string().contains("as a timestamp"), "{err}");
        let err = prepare("select * from (select 1) version as of 1").unwrap_err();
        assert!(err.to_string().contains("follow a table name"), "{err}");
    }

    #[test]
    fn partitioned_by_is_lifted_out_of_create_table() {
        let prepared = one(
            "CREATE TABLE s.t (id BIGINT, Region VARCHAR, ts TIMESTAMP) USING iceberg \
             PARTITIONED BY (Region, bucket(16, id), days(ts), truncate(\"Region\", 2))",
        );
        assert_eq!(
            prepared.sql,
            "CREATE TABLE s.t (id BIGINT, Region VARCHAR, ts TIMESTAMP)"
        );
        let terms = prepared.partitioning.unwrap();
        let expected = [
            ("region", Transform::Identity),
            ("id", Transform::Bucket(16)),
            ("ts", Transform::Day),
            ("Region", Transform::Truncate(2)),
        ];
        assert_eq!(terms.len(), expected.len());
        for (term, (column, transform)) in terms.iter().zip(expected) {
            assert_eq!(term.column, column);
            assert_eq!(term.transform, transform);
        }
    }

    #[test]
    fn partitioned_by_elsewhere_is_not_touched() {
        let sql = "select partitioned from t";
        assert_eq!(one(sql).sql, sql);
        let err = prepare("create table t (a int) partitioned by (frobnicate(a))").unwrap_err();
        assert!(err.to_string().contains("partition term"), "{err}");
    }

    #[test]
    fn completeness_follows_semicolons_outside_strings() {
        assert!(is_complete("select 1;"));
        assert!(is_complete("select 1;\n  "));
        assert!(!is_complete("select 1"));
        assert!(!is_complete("select ';"));
        assert!(!is_complete("select 1; select 2"));
        assert!(!is_complete(""));
    }

    #[test]
    fn timestamps_read_in_common_spellings() {
        assert_eq!(parse_timestamp("1970-01-01").unwrap(), 0);
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5").unwrap(), 1500);
        assert_eq!(parse_timestamp("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert_eq!(parse_timestamp("1970-01-01 01:00:00+01:00").unwrap(), 0);
    }
}
