//! `floe sql`: run SQL against Floe's tables, from `-e`, a file, standard input or an interactive
//! shell.
//!
//! The engine is `floe-sql`; this module only picks the catalog (a running server with
//! `--catalog URL`, else the data dir directly), feeds it statements and prints what comes back,
//! as aligned tables, CSV or JSON (arrow's own writers).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::FormatOptions;
use clap::{Args, ValueEnum};
use floe_sql::{Output, PreparedStatement, Session, SqlError};
use futures::StreamExt;

/// Flags of `floe sql`.
#[derive(Args, Debug)]
#[command(
    long_about = "Run SQL on Floe's tables. With --catalog it talks to a running server over the \
        Iceberg REST API; otherwise it opens the data dir directly (no server needed; the \
        server's data dir is ./floe-data by default). Without -e or -f it reads standard input, \
        or starts an interactive shell at a terminal.\n\n\
        Namespaces are schemas (a nested one is quoted: \"sales.europe\".orders). Time travel: \
        t FOR VERSION AS OF <snapshot-id>, t FOR VERSION AS OF '<branch or tag>', \
        t FOR SYSTEM_TIME AS OF '<timestamp>'. Metadata tables: t$snapshots, t$history, t$refs, \
        t$manifests, t$files (or Spark's t.snapshots, ...). Besides queries and INSERT: \
        INSERT OVERWRITE, DELETE, UPDATE, CREATE/DROP TABLE and SCHEMA, ALTER TABLE ADD/RENAME/DROP \
        COLUMN."
)]
pub struct SqlArgs {
    /// Run these statements (separated by ';') and exit.
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "SQL",
        conflicts_with = "file"
    )]
    execute: Option<String>,
    /// Run the statements in FILE and exit ('-' for standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// How to print rows.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// URL of a running Floe (or any Iceberg REST) catalog, e.g. http://127.0.0.1:8181.
    #[arg(long, value_name = "URL", conflicts_with_all = ["data_dir", "metastore"])]
    catalog: Option<String>,
    /// Data dir to open without a server [default: ./floe-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// With the data dir: the shared PostgreSQL metadata store (postgres:// URL) instead of
    /// DIR/catalog.db.
    #[arg(long, value_name = "URL")]
    metastore: Option<String>,
    /// Warehouse name (the REST prefix): a registered warehouse, or the default one [default:
    /// the server's default; for a data dir, its default warehouse].
    #[arg(long)]
    warehouse: Option<String>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned text tables.
    Table,
    /// CSV with a header line, one block per statement.
    Csv,
    /// One JSON array of row objects per statement.
    Json,
}

/// Runs `floe sql`; `Err` is the message to print.
pub fn run(args: SqlArgs) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    let session = runtime.block_on(open(&args))?;
    let script = match (&args.execute, &args.file) {
        (Some(sql), _) => Some(sql.clone()),
        (None, Some(path)) => Some(read_script(path)?),
        (None, None) if std::io::stdin().is_terminal() => None,
        (None, None) => Some(read_script(Path::new("-"))?),
    };
    match script {
        Some(sql) => runtime.block_on(run_script(&session, &sql, args.format)),
        None => shell(&runtime, &Arc::new(session), args.format),
    }
}

async fn open(args: &SqlArgs) -> Result<Session, String> {
    if let Some(uri) = &args.catalog {
        return Session::connect(uri, args.warehouse.as_deref())
            .await
            .map_err(|err| err.to_string());
    }
    let options = crate::data_dir_options(&args.data_dir, &args.metastore, &None);
    if options.metastore.is_none() && !options.catalog_db().exists() {
        eprintln!(
            "floe sql: no catalog in {} yet; starting an empty one",
            options.data_dir.display()
        );
    }
    Session::open_embedded_warehouse(&options, args.warehouse.as_deref())
        .await
        .map_err(|err| err.to_string())
}

fn read_script(path: &Path) -> Result<String, String> {
    if path == Path::new("-") {
        return std::io::read_to_string(std::io::stdin())
            .map_err(|err| format!("cannot read standard input: {err}"));
    }
    std::fs::read_to_string(path).map_err(|err| format!("cannot read {}: {err}", path.display()))
}

/// Runs every statement in order, printing each result; stops at the first error.
async fn run_script(session: &Session, sql: &str, format: Format) -> Result<(), String> {
    let statements = floe_sql::prepare(sql).map_err(|err| err.to_string())?;
    let count = statements.len();
    for (i, statement) in statements.iter().enumerate() {
        if let Err(err) = run_statement(session, statement, format, false).await {
            return Err(if count > 1 {
                format!("statement {} of {count}: {err}", i + 1)
            } else {
                err.to_string()
            });
        }
    }
    Ok(())
}

/// Runs one statement and prints its result; in the shell also a footer with the row count and
/// the time it took.
async fn run_statement(
    session: &Session,
    statement: &PreparedStatement,
    format: Format,
    footer: bool,
) -> Result<(), SqlError> {
    let started = Instant::now();
    let output = session.execute(statement).await?;
    // Not locked: the statement runs on a task that may move between threads while it streams.
    let mut out = std::io::stdout();
    match output {
        Output::Done(message) => {
            if format == Format::Table {
                let _ = writeln!(out, "{message}");
            } else {
                eprintln!("{message}");
            }
            if footer {
                let _ = writeln!(out, "({})", seconds(started.elapsed()));
            }
        }
        Output::Rows(mut stream) => {
            let schema = stream.schema();
            let rows = match format {
                Format::Table => {
                    let mut batches = Vec::new();
                    while let Some(batch) = stream.next().await {
                        batches.push(batch?);
                    }
                    print_table(&mut out, schema, &batches)?
                }
                Format::Csv => {
                    let mut writer = arrow::csv::WriterBuilder::new()
                        .with_header(true)
                        .build(&mut out);
                    let mut rows = 0;
                    let mut wrote_any = false;
                    while let Some(batch) = stream.next().await {
                        let batch = batch?;
                        rows += batch.num_rows();
                        writer.write(&batch).map_err(output_error)?;
                        wrote_any = true;
                    }
                    if !wrote_any {
                        writer
                            .write(&RecordBatch::new_empty(schema))
                            .map_err(output_error)?;
                    }
                    rows
                }
                Format::Json => {
                    let mut writer = arrow::json::ArrayWriter::new(&mut out);
                    let mut rows = 0;
                    while let Some(batch) = stream.next().await {
                        let batch = batch?;
                        rows += batch.num_rows();
                        writer.write(&batch).map_err(output_error)?;
                    }
                    // Also for no rows: `[]`.
                    writer.finish().map_err(output_error)?;
                    drop(writer);
                    let _ = writeln!(out);
                    rows
                }
            };
            if footer {
                let noun = if rows == 1 { "row" } else { "rows" };
                let _ = writeln!(out, "{rows} {noun} in {}", seconds(started.elapsed()));
            }
        }
    }
    let _ = out.flush();
    Ok(())
}

fn print_table(
    out: &mut impl Write,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<usize, SqlError> {
    let rows = batches.iter().map(RecordBatch::num_rows).sum();
    if schema.fields().is_empty() {
        return Ok(rows);
    }
    let table = if rows == 0 {
        arrow::util::pretty::pretty_format_batches_with_schema(schema, &[])
            .map_err(output_error)?
            .to_string()
    } else {
        let options = FormatOptions::default()
            .with_display_error(true)
            .with_null("NULL");
        arrow::util::pretty::pretty_format_batches_with_options(batches, &options)
            .map_err(output_error)?
            .to_string()
    };
    let _ = writeln!(out, "{table}");
    Ok(rows)
}

fn output_error(err: arrow::error::ArrowError) -> SqlError {
    SqlError::new(format!("cannot print the result: {err}"))
}

fn seconds(elapsed: Duration) -> String {
    format!("{:.3} s", elapsed.as_secs_f64())
}

// ---- the interactive shell

const PROMPT: &str = "floe> ";
const CONTINUATION: &str = "   -> ";
const HELP: &str = "\
Statements end with ';' and may span lines. Ctrl-C cancels a running statement (or clears
the input), Ctrl-D leaves.
  \\d            list schemas and their tables
  \\d TABLE      columns of TABLE
  \\q            quit
  \\?            this help";

/// Reads statements until Ctrl-D or `\q`, running each when its `;` arrives.
fn shell(
    runtime: &tokio::runtime::Runtime,
    session: &Arc<Session>,
    format: Format,
) -> Result<(), String> {
    use rustyline::error::ReadlineError;
    let mut editor =
        rustyline::DefaultEditor::new().map_err(|err| format!("cannot start the shell: {err}"))?;
    let history = history_file();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    println!("floe sql: statements end with ';'. \\? for help, Ctrl-D to leave.");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() {
            PROMPT
        } else {
            CONTINUATION
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(err) => return Err(format!("cannot read input: {err}")),
        };
        if buffer.is_empty() && line.trim_start().starts_with('\\') {
            let _ = editor.add_history_entry(line.trim());
            match line.trim() {
                "\\q" | "\\quit" => break,
                command => meta_command(runtime, session, command, format),
            }
            continue;
        }
        if !buffer.is_empty() {
            buffer.push('\n');
        }
        buffer.push_str(&line);
        if !floe_sql::is_complete(&buffer) {
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim());
        let text = std::mem::take(&mut buffer);
        match floe_sql::prepare(&text) {
            Ok(statements) => {
                for statement in &statements {
                    if !run_cancellable(runtime, session, statement, format) {
                        break;
                    }
                }
            }
            Err(err) => eprintln!("error: {err}"),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

/// Runs a statement until it ends or Ctrl-C cancels it (which drops the running plan); `false` if
/// it failed or was cancelled, so that the rest of the input is skipped.
fn run_cancellable(
    runtime: &tokio::runtime::Runtime,
    session: &Arc<Session>,
    statement: &PreparedStatement,
    format: Format,
) -> bool {
    // On its own task, so that Ctrl-C is noticed even while the statement keeps a thread busy.
    let session = session.clone();
    let statement = statement.clone();
    let mut running =
        runtime.spawn(async move { run_statement(&session, &statement, format, true).await });
    runtime.block_on(async {
        tokio::select! {
            result = &mut running => match result {
                Ok(Ok(())) => true,
                Ok(Err(err)) => {
                    eprintln!("error: {err}");
                    false
                }
                Err(err) => {
                    eprintln!("error: the statement stopped unexpectedly: {err}");
                    false
                }
            },
            _ = tokio::signal::ctrl_c() => {
                running.abort();
                eprintln!("cancelled");
                false
            }
        }
    })
}

fn meta_command(
    runtime: &tokio::runtime::Runtime,
    session: &Arc<Session>,
    command: &str,
    format: Format,
) {
    let (name, argument) = command
        .split_once(char::is_whitespace)
        .map(|(name, rest)| (name, rest.trim()))
        .unwrap_or((command, ""));
    match (name, argument) {
        ("\\d", "") => {
            if let Err(err) = runtime.block_on(list_tables(session)) {
                eprintln!("error: {err}");
            }
        }
        ("\\d", table) => {
            let sql = format!("DESCRIBE {}", table.trim_end_matches(';'));
            match floe_sql::prepare(&sql) {
                Ok(statements) => {
                    for statement in &statements {
                        run_cancellable(runtime, session, statement, format);
                    }
                }
                Err(err) => eprintln!("error: {err}"),
            }
        }
        ("\\?" | "\\h" | "\\help", _) => println!("{HELP}"),
        _ => eprintln!("unknown command {name}; \\? lists the commands"),
    }
}

/// `\d`: every schema with its tables, as one table.
async fn list_tables(session: &Session) -> Result<(), SqlError> {
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};
    let mut schemas = Vec::new();
    let mut tables = Vec::new();
    for schema in session.namespaces().await? {
        let names = session.tables(&schema).await?;
        if names.is_empty() {
            schemas.push(schema.clone());
            tables.push(String::new());
        }
        for name in names {
            schemas.push(schema.clone());
            tables.push(name);
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("schema", DataType::Utf8, false),
        Field::new("table", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(schemas)),
            Arc::new(StringArray::from(tables)),
        ],
    )
    .map_err(output_error)?;
    let mut out = std::io::stdout().lock();
    let rows = print_table(&mut out, schema, &[batch])?;
    let _ = writeln!(out, "{rows} {}", if rows == 1 { "row" } else { "rows" });
    Ok(())
}

/// `$FLOE_SQL_HISTORY`, else `~/.floe_sql_history`.
fn history_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FLOE_SQL_HISTORY") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".floe_sql_history"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> RecordBatch {
        use arrow::array::{Int64Array, StringArray};
        use std::sync::Arc;
        RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(vec![1, 22])) as _),
            (
                "name",
                Arc::new(StringArray::from(vec![Some("a"), None])) as _,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn tables_are_aligned_and_show_nulls() {
        let mut out = Vec::new();
        let rows = print_table(&mut out, batch().schema(), &[batch()]).unwrap();
        assert_eq!(rows, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "+----+------+\n| id | name |\n+----+------+\n| 1  | a    |\n| 22 | NULL |\n+----+------+\n"
        );
    }

    #[test]
    fn empty_results_still_show_their_columns() {
        let mut out = Vec::new();
        let rows = print_table(&mut out, batch().schema(), &[]).unwrap();
        assert_eq!(rows, 0);
        assert!(String::from_utf8(out).unwrap().contains("| id | name |"));
    }
}
