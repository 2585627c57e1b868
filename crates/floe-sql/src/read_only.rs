//! Read-only queries, for callers that must change nothing: the server's SQL route
//! (`POST /management/v1/sql`, used by the web console).
//!
//! Read-only is decided on the parsed statement and its plan, not on the text: [`read_only`]
//! accepts exactly one statement, and only a query (`SELECT`, `WITH`, `VALUES`, set operations);
//! [`Session::query`] plans it and has DataFusion's own [`SQLOptions`] refuse any plan that would
//! define, modify or configure something. Results come back as text cells, at most a row limit
//! of them (the caller says how many), so that a large table cannot fill the server's memory.
//!
//! [`read_only`] also names every table the query reads ([`TableRead`]), from the statement
//! alone, so that a server can check the caller's grants on each before running anything. Table
//! names are resolved as the planner resolves them (unqualified names in [`DEFAULT_SCHEMA`];
//! time travel and `t$files` read the base table `t`). Spark's spelling of metadata tables
//! (`ns.t.files`), which needs the catalog to tell from a real table, is not accepted here, and
//! neither is `information_schema`, which would list tables the caller may not be allowed to see.

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::StreamExt;

use crate::provider::{TableSpec, namespace_of};
use crate::{CATALOG, DEFAULT_SCHEMA, PreparedStatement, Session, SqlError, prepare};

/// A table a query reads (in any version, or one of its metadata tables).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRead {
    pub namespace: Vec<String>,
    pub table: String,
}

/// A query checked to be read-only, and the tables it reads.
#[derive(Debug, Clone)]
pub struct ReadOnlyQuery {
    statement: PreparedStatement,
    pub tables: Vec<TableRead>,
}

/// One column of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The Arrow type, as DataFusion prints it (`Int64`, `Utf8View` for a table's strings, ...).
    pub data_type: String,
}

/// A query's result: its columns, and its first rows as text (`None` for SQL `NULL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRows {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Option<String>>>,
    /// Whether the query had more rows than the limit.
    pub truncated: bool,
}

/// Checks that `sql` is one read-only query and names the tables it reads.
pub fn read_only(sql: &str) -> Result<ReadOnlyQuery, SqlError> {
    let mut statements = prepare(sql)?;
    let statement = match (statements.pop(), statements.is_empty()) {
        (Some(statement), true) => statement,
        (None, _) => return Err(SqlError::new("no statement to run")),
        (Some(_), false) => {
            return Err(SqlError::new(
                "only one statement at a time: remove the statements after the first ';'",
            ));
        }
    };
    if statement.partitioning.is_some() {
        return Err(not_a_query());
    }
    let parsed = parse(&statement.sql)?;
    let (references, _ctes) = resolve_table_references(&parsed, true)?;
    let mut tables = Vec::new();
    for reference in references {
        let resolved = reference.resolve(CATALOG, DEFAULT_SCHEMA);
        if resolved.catalog.as_ref() != CATALOG {
            return Err(SqlError::new(format!(
                "unknown catalog {}: the only catalog is {CATALOG}",
                resolved.catalog
            )));
        }
        if resolved.schema.eq_ignore_ascii_case("information_schema") {
            return Err(SqlError::new(
                "information_schema is not available to read-only queries; list namespaces and \
                 tables through the catalog API",
            ));
        }
        let namespace = namespace_of(&resolved.schema)
            .ok_or_else(|| SqlError::new(format!("{:?} is not a schema name", resolved.schema)))?;
        let read = TableRead {
            namespace: namespace.inner(),
            table: TableSpec::parse(&resolved.table).base.to_string(),
        };
        if !tables.contains(&read) {
            tables.push(read);
        }
    }
    tables.sort();
    Ok(ReadOnlyQuery { statement, tables })
}

fn parse(sql: &str) -> Result<DFStatement, SqlError> {
    let mut parsed = DFParser::parse_sql(sql)?;
    let statement = parsed
        .pop_front()
        .ok_or_else(|| SqlError::new("no statement to run"))?;
    if !parsed.is_empty() {
        return Err(SqlError::new("only one statement at a time"));
    }
    match &statement {
        DFStatement::Statement(inner) if matches!(inner.as_ref(), SqlStatement::Query(_)) => {
            Ok(statement)
        }
        _ => Err(not_a_query()),
    }
}

fn not_a_query() -> SqlError {
    SqlError::new("only queries (SELECT, WITH, VALUES) may run here: this SQL is read-only")
}

impl Session {
    /// Runs a query checked by [`read_only`] and returns at most `max_rows` of its rows. Dropping
    /// the returned future stops the query.
    pub async fn query(
        &self,
        query: &ReadOnlyQuery,
        max_rows: usize,
    ) -> Result<QueryRows, SqlError> {
        let state = self.ctx.state();
        let parsed = parse(&query.statement.sql)?;
        let plan = state.statement_to_plan(parsed).await?;
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|_| not_a_query())?;
        let columns = plan
            .schema()
            .fields()
            .iter()
            .map(|field| Column {
                name: field.name().clone(),
                data_type: field.data_type().to_string(),
            })
            .collect();
        let mut stream = self
            .ctx
            .execute_logical_plan(plan)
            .await?
            .execute_stream()
            .await?;
        let mut rows = Vec::new();
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            append_rows(&batch, max_rows, &mut rows)?;
            if rows.len() >= max_rows {
                // One more row, anywhere after the limit, means there were more.
                truncated = rows.len() > max_rows || next_has_rows(&mut stream).await?;
                rows.truncate(max_rows);
                break;
            }
        }
        Ok(QueryRows {
            columns,
            rows,
            truncated,
        })
    }
}

async fn next_has_rows(
    stream: &mut datafusion::execution::SendableRecordBatchStream,
) -> Result<bool, SqlError> {
    while let Some(batch) = stream.next().await {
        if batch?.num_rows() > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Appends `batch`'s rows as text, up to one past `max_rows` (to tell that there were more).
fn append_rows(
    batch: &RecordBatch,
    max_rows: usize,
    rows: &mut Vec<Vec<Option<String>>>,
) -> Result<(), SqlError> {
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| SqlError::new(format!("cannot show the result: {err}")))?;
    let wanted = (max_rows + 1)
        .saturating_sub(rows.len())
        .min(batch.num_rows());
    for row in 0..wanted {
        rows.push(
            batch
                .columns()
                .iter()
                .zip(&formatters)
                .map(|(column, formatter)| {
                    (!column.is_null(row)).then(|| formatter.value(row).to_string())
                })
                .collect(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(namespace: &[&str], table: &str) -> TableRead {
        TableRead {
            namespace: namespace.iter().map(|level| level.to_string()).collect(),
            table: table.to_string(),
        }
    }

    #[test]
    fn queries_name_every_table_they_read_in_any_version() {
        let query = read_only(
            "WITH recent AS (SELECT * FROM sales.orders FOR VERSION AS OF 42) \
             SELECT r.id FROM recent r JOIN \"sales.europe\".\"customers$files\" c ON true \
             WHERE r.id IN (SELECT id FROM floe.default.events)",
        )
        .map_err(|err| err.to_string());
        let tables = query.map(|query| query.tables);
        assert_eq!(
            tables,
            Ok(vec![
                read(&["default"], "events"),
                read(&["sales"], "orders"),
                read(&["sales", "europe"], "customers"),
            ])
        );
    }

    #[test]
    fn anything_but_one_query_is_refused() {
        for sql in [
            "INSERT INTO t VALUES (1)",
            "DELETE FROM t",
            "UPDATE t SET a = 1",
            "CREATE TABLE t (a INT)",
            "CREATE TABLE t (a INT) PARTITIONED BY (a)",
            "DROP TABLE t",
            "CREATE SCHEMA s",
            "SET datafusion.catalog.default_schema = 'x'",
            "ALTER TABLE t ADD COLUMN b INT",
            "COPY t TO '/tmp/out.csv'",
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "SELECT 1; DROP TABLE t",
            "",
        ] {
            assert!(read_only(sql).is_err(), "accepted {sql:?}");
        }
    }

    #[test]
    fn information_schema_and_other_catalogs_are_refused() {
        for sql in [
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM floe.information_schema.tables",
            "SELECT * FROM other.sales.orders",
        ] {
            assert!(read_only(sql).is_err(), "accepted {sql:?}");
        }
    }

    #[tokio::test]
    async fn queries_return_text_rows_up_to_the_limit_and_read_past_versions() {
        let dir = tempfile::tempdir().unwrap();
        let options = floe_commit::open::OpenOptions::new(dir.path().join("data"));
        let session = Session::open_embedded(&options).await.unwrap();
        session
            .run(
                "CREATE SCHEMA default; CREATE TABLE t (id BIGINT, label VARCHAR); \
                 INSERT INTO t VALUES (1, 'one'), (2, NULL), (3, 'three'); \
                 INSERT INTO t VALUES (4, 'four'), (5, 'five')",
            )
            .await
            .unwrap();
        let all = read_only("SELECT id, label FROM t ORDER BY id").unwrap();
        let rows = session.query(&all, 10).await.unwrap();
        assert_eq!(rows.columns[0].name, "id");
        assert_eq!(rows.columns[0].data_type, "Int64");
        assert_eq!(rows.rows.len(), 5);
        assert_eq!(rows.rows[1], vec![Some("2".to_string()), None]);
        assert!(!rows.truncated);

        let limited = session.query(&all, 3).await.unwrap();
        assert_eq!(limited.rows.len(), 3);
        assert!(limited.truncated);

        let first =
            read_only("SELECT snapshot_id FROM \"t$history\" ORDER BY made_current_at LIMIT 1")
                .unwrap();
        let snapshot = session.query(&first, 1).await.unwrap().rows[0][0]
            .clone()
            .unwrap();
        let past = read_only(&format!(
            "SELECT count(*) FROM t FOR VERSION AS OF {snapshot}"
        ))
        .unwrap();
        assert_eq!(past.tables, vec![read(&["default"], "t")]);
        assert_eq!(
            session.query(&past, 1).await.unwrap().rows,
            vec![vec![Some("3".to_string())]]
        );
    }
}
