//! TPC-H on Floe's tables: `floe sql`'s engine against DuckDB, over the same Iceberg tables.
//!
//! Run with `cargo bench -p floe-benches --bench tpch` (release build; the `floe` binary is built
//! on demand). In one run it:
//!
//! 1. starts a real `floe serve` on a free loopback port (local warehouse);
//! 2. generates the eight TPC-H tables at the scale factor (`tpchgen`, built into Arrow batches
//!    by `tpch/data.rs`) and loads each with `CREATE TABLE tpch.<t> AS SELECT ...` through a
//!    `floe_sql::Session` connected to the server over REST — Floe's normal write path: Parquet
//!    files written by the session, one fast-append commit through the catalog;
//! 3. runs the 22 queries (`tpch/queries/qNN.sql`) in `floe_sql::Session` (DataFusion, what
//!    `floe sql --catalog <server>` runs), then in DuckDB 1.5.5 with its iceberg extension
//!    attached to the same server (`tpch/duckdb_tpch.py`, in a Python venv: see [`python`]);
//! 4. prints, per query, the first run's time and the median of the timed runs in each engine,
//!    their ratio, the row counts, and whether both engines returned the same rows (numbers
//!    compared to within rounding, since the engines type decimal averages and quotients
//!    differently); then the total of the medians and its ratio floe/DuckDB.
//!
//! A query that fails in one engine prints its error and the run goes on.
//!
//! Each query runs once untimed (its rows are the ones compared), then [`runs`] timed times; the
//! engines take turns, never run at once, and each uses every core (DataFusion's
//! `target_partitions` and DuckDB's `threads` both default to the core count).
//!
//! Settings: `FLOE_BENCH_QUICK=1` (scale factor 0.01, one timed run), `FLOE_BENCH_TPCH_SF` (the
//! scale factor; default 1), `FLOE_BENCH_PYTHON` (a Python with duckdb 1.5.5 and the
//! duckdb-extension-{iceberg,avro,httpfs} 1.5.5 wheels), `FLOE_BENCH_TPCH_QUERIES` (a comma
//! list of query numbers to run, e.g. `1,17`), `FLOE_BENCH_TPCH_FLOE_ONLY=1` (no DuckDB: for
//! profiling `floe sql`; the bench prints `profile from here: pid <pid>` once the tables are
//! loaded, so that a profiler can attach to the queries alone — see docs/benchmarks.md).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use datafusion::catalog::{CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::datasource::MemTable;
use floe_sql::Session;
use floe_testkit::FloeServer;
use serde_json::{Value as Json, json};

#[allow(dead_code)]
mod common;
#[path = "tpch/data.rs"]
mod data;

/// The namespace the tables are loaded into.
const NAMESPACE: &str = "tpch";
/// Where the generated batches wait to be loaded: a DataFusion in-memory catalog in the session.
const STAGING: &str = "tpchgen";

/// The longest one query may take in one engine before it counts as failed.
const QUERY_TIMEOUT: Duration = Duration::from_secs(900);

fn main() {
    common::run(bench());
}

fn scale_factor() -> f64 {
    match std::env::var("FLOE_BENCH_TPCH_SF") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("FLOE_BENCH_TPCH_SF={text}: not a number")),
        Err(_) if common::quick() => 0.01,
        Err(_) => 1.0,
    }
}

/// Timed runs of each query, after the untimed first one.
fn runs() -> usize {
    if common::quick() { 1 } else { 3 }
}

async fn bench() {
    let scale = scale_factor();
    let runs = runs();
    let queries = queries(scale);
    let floe_only = std::env::var("FLOE_BENCH_TPCH_FLOE_ONLY").is_ok_and(|v| v == "1");
    let python = if floe_only { PathBuf::new() } else { python() };
    println!(
        "TPC-H, scale factor {scale}: {} queries, 1 untimed + {runs} timed runs each",
        queries.len()
    );

    let server = FloeServer::start();
    let session = Session::connect(&server.uri(), None)
        .await
        .unwrap_or_else(|err| panic!("connect to {}: {err}", server.uri()));
    load(&session, scale).await;

    let partitions = session.context().state().config().target_partitions();
    if floe_only {
        println!("\nprofile from here: pid {}", std::process::id());
        // Time for a profiler to attach before the first query.
        std::thread::sleep(Duration::from_secs(3));
    }
    println!("\nfloe sql (DataFusion, target_partitions {partitions}):");
    session
        .run(&format!(
            "SET datafusion.catalog.default_schema = '{NAMESPACE}'"
        ))
        .await
        .expect("set the default schema");
    let mut floe = Vec::new();
    for (name, sql) in &queries {
        let result = run_floe(&session, name, sql, runs).await;
        result.print_progress();
        floe.push(result);
    }

    if floe_only {
        let total: Duration = floe.iter().filter_map(Outcome::median).sum();
        println!(
            "\nfloe sql total of medians: {:.0} ms",
            total.as_secs_f64() * 1e3
        );
        return;
    }
    let warehouse = prefix(&server).await;
    let duck = run_duckdb(&python, &server.uri(), &warehouse, &queries, runs);

    report(scale, &queries, &floe, &duck);
}

// ------------------------------------------------------------------------------------ loading

/// Generates each table and loads it with `CREATE TABLE ... AS SELECT` from the staging catalog.
async fn load(session: &Session, scale: f64) {
    println!("\nload (CREATE TABLE {NAMESPACE}.<t> AS SELECT, over REST):");
    session
        .run(&format!("CREATE SCHEMA {NAMESPACE}"))
        .await
        .expect("create the namespace");
    let staging = Arc::new(MemoryCatalogProvider::new());
    let schema = Arc::new(MemorySchemaProvider::new());
    staging
        .register_schema("sf", schema.clone())
        .expect("staging schema");
    session.context().register_catalog(STAGING, staging);
    let started = Instant::now();
    let mut total_rows = 0;
    for table in data::TABLES {
        let t0 = Instant::now();
        let (arrow_schema, batches) = data::generate(table, scale);
        let generated = t0.elapsed();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let memory = MemTable::try_new(arrow_schema, vec![batches]).expect("staging table");
        datafusion::catalog::SchemaProvider::register_table(
            schema.as_ref(),
            table.to_string(),
            Arc::new(memory),
        )
        .expect("register staging table");
        let t1 = Instant::now();
        session
            .run(&format!(
                "CREATE TABLE {NAMESPACE}.{table} AS SELECT * FROM {STAGING}.sf.{table}"
            ))
            .await
            .unwrap_or_else(|err| panic!("load {table}: {err}"));
        let loaded = t1.elapsed();
        datafusion::catalog::SchemaProvider::deregister_table(schema.as_ref(), table)
            .expect("drop staging table");
        total_rows += rows;
        println!(
            "  {table:<10} {rows:>10} rows   generated in {:>6.2} s   loaded in {:>6.2} s ({:.2} M rows/s)",
            generated.as_secs_f64(),
            loaded.as_secs_f64(),
            rows as f64 / loaded.as_secs_f64() / 1e6,
        );
    }
    println!(
        "  all        {total_rows:>10} rows   {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ------------------------------------------------------------------------------------ queries

/// `(qNN, text)` for the 22 queries, from `tpch/queries/`. Q11's FRACTION is 0.0001 / SF.
fn queries(scale: f64) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tpch/queries");
    let chosen: Vec<u32> = match std::env::var("FLOE_BENCH_TPCH_QUERIES") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("FLOE_BENCH_TPCH_QUERIES={list}: not numbers"))
            })
            .collect(),
        Err(_) => (1..=22).collect(),
    };
    chosen
        .into_iter()
        .map(|n| {
            let name = format!("q{n:02}");
            let path = dir.join(format!("{name}.sql"));
            let mut sql = std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
            if n == 11 && scale != 1.0 {
                let fraction = format!("{:.12}", 0.0001 / scale);
                sql = sql.replace("* 0.0001", &format!("* {fraction}"));
            }
            (name, sql)
        })
        .collect()
}

/// One query's outcome in one engine.
struct Outcome {
    name: String,
    engine: &'static str,
    first: Option<Duration>,
    timed: Vec<Duration>,
    rows: Option<Vec<Vec<Value>>>,
    error: Option<String>,
}

impl Outcome {
    fn failed(name: &str, engine: &'static str, error: String) -> Self {
        Self {
            name: name.to_string(),
            engine,
            first: None,
            timed: Vec::new(),
            rows: None,
            error: Some(error),
        }
    }

    fn median(&self) -> Option<Duration> {
        if self.error.is_some() || self.timed.is_empty() {
            return None;
        }
        let mut sorted = self.timed.clone();
        sorted.sort_unstable();
        Some(sorted[sorted.len() / 2])
    }

    fn print_progress(&self) {
        match (&self.error, self.median(), &self.rows) {
            (Some(error), _, _) => println!("  {} FAILED: {error}", self.name),
            (None, Some(median), Some(rows)) => println!(
                "  {} {:>9.1} ms (first {:.1} ms), {} rows",
                self.name,
                ms(median),
                ms(self.first.unwrap_or_default()),
                rows.len()
            ),
            _ => println!("  {} (no timing)", self.name),
        }
    }
}

async fn run_floe(session: &Session, name: &str, sql: &str, runs: usize) -> Outcome {
    let once = || async {
        let started = Instant::now();
        let batches = tokio::time::timeout(QUERY_TIMEOUT, session.run(sql))
            .await
            .map_err(|_| format!("timed out after {} s", QUERY_TIMEOUT.as_secs()))?
            .map_err(|err| err.to_string())?;
        let elapsed = started.elapsed();
        Ok::<_, String>((elapsed, batches.into_iter().flatten().collect::<Vec<_>>()))
    };
    let (first, batches) = match once().await {
        Ok(result) => result,
        Err(error) => return Outcome::failed(name, "floe", error),
    };
    let mut timed = Vec::with_capacity(runs);
    for _ in 0..runs {
        match once().await {
            Ok((elapsed, _)) => timed.push(elapsed),
            Err(error) => return Outcome::failed(name, "floe", error),
        }
    }
    Outcome {
        name: name.to_string(),
        engine: "floe",
        first: Some(first),
        timed,
        rows: Some(rows_of(&batches)),
        error: None,
    }
}

/// Runs every query in DuckDB (one Python process, see `tpch/duckdb_tpch.py`), printing each as
/// it finishes.
fn run_duckdb(
    python: &Path,
    uri: &str,
    warehouse: &str,
    queries: &[(String, String)],
    runs: usize,
) -> Vec<Outcome> {
    let job = tempfile::NamedTempFile::new().expect("job file");
    let body = json!({
        "uri": uri,
        "warehouse": warehouse,
        "namespace": NAMESPACE,
        "runs": runs,
        "queries": queries.iter().map(|(name, sql)| json!({"name": name, "sql": sql})).collect::<Vec<_>>(),
    });
    std::fs::write(job.path(), body.to_string()).expect("write job file");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tpch/duckdb_tpch.py");
    let mut child = Command::new(python)
        .arg(&script)
        .arg(job.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("run {} {}: {err}", python.display(), script.display()));
    let stdout = child.stdout.take().expect("python stdout");
    let mut outcomes: HashMap<String, Outcome> = HashMap::new();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(message) = serde_json::from_str::<Json>(&line) else {
            println!("  (duckdb) {line}");
            continue;
        };
        if let Some(version) = message.get("duckdb") {
            println!(
                "\nDuckDB {} (threads {}):",
                version.as_str().unwrap_or("?"),
                message["threads"]
            );
            continue;
        }
        let outcome = duckdb_outcome(&message);
        outcome.print_progress();
        outcomes.insert(outcome.name.clone(), outcome);
    }
    let status = child.wait().expect("wait for python");
    queries
        .iter()
        .map(|(name, _)| {
            outcomes.remove(name).unwrap_or_else(|| {
                Outcome::failed(
                    name,
                    "duckdb",
                    format!("no result (the DuckDB script exited with {status})"),
                )
            })
        })
        .collect()
}

fn duckdb_outcome(message: &Json) -> Outcome {
    let name = message["name"].as_str().unwrap_or_default();
    if let Some(error) = message["error"].as_str() {
        return Outcome::failed(name, "duckdb", error.to_string());
    }
    let seconds = |value: &Json| Duration::from_secs_f64(value.as_f64().unwrap_or_default());
    Outcome {
        name: name.to_string(),
        engine: "duckdb",
        first: Some(seconds(&message["first"])),
        timed: message["seconds"]
            .as_array()
            .map(|all| all.iter().map(seconds).collect())
            .unwrap_or_default(),
        rows: message["rows"].as_array().map(|rows| {
            rows.iter()
                .map(|row| {
                    row.as_array()
                        .map(|values| values.iter().map(Value::from_json).collect())
                        .unwrap_or_default()
                })
                .collect()
        }),
        error: None,
    }
}

// ------------------------------------------------------------------------------------ results

/// One value of a result row, as both engines' results are compared.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Number(f64),
    Text(String),
}

impl Value {
    fn from_json(value: &Json) -> Self {
        match value {
            Json::Null => Self::Null,
            Json::Number(n) => Self::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => Self::Text(s.clone()),
            other => Self::Text(other.to_string()),
        }
    }

    /// Numbers match to within rounding: DataFusion keeps decimal averages and quotients as
    /// decimals of limited scale, DuckDB makes them doubles.
    fn matches(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => {
                (a - b).abs() <= 1e-4 + 1e-12 * a.abs().max(b.abs())
            }
            (a, b) => a == b,
        }
    }

    fn sort_key(&self) -> String {
        match self {
            Self::Null => String::new(),
            Self::Number(n) => format!("{n:.2}"),
            Self::Text(s) => s.clone(),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Null => write!(f, "NULL"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// Arrow batches as rows of [`Value`]s: numbers (decimals too) as f64, everything else as its
/// text (dates `YYYY-MM-DD`).
fn rows_of(batches: &[RecordBatch]) -> Vec<Vec<Value>> {
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .map(|column| {
                if column.data_type().is_numeric() {
                    let numbers = cast(column, &DataType::Float64).expect("cast to f64");
                    let numbers = numbers.as_primitive::<Float64Type>();
                    (0..numbers.len())
                        .map(|i| match numbers.is_null(i) {
                            true => Value::Null,
                            false => Value::Number(numbers.value(i)),
                        })
                        .collect()
                } else {
                    let text = cast(column, &DataType::Utf8).expect("cast to text");
                    let text = text.as_string::<i32>();
                    (0..text.len())
                        .map(|i| match text.is_null(i) {
                            true => Value::Null,
                            false => Value::Text(text.value(i).to_string()),
                        })
                        .collect()
                }
            })
            .collect();
        for i in 0..batch.num_rows() {
            rows.push(columns.iter().map(|column| column[i].clone()).collect());
        }
    }
    rows
}

/// Whether two results hold the same rows: in the same order, or else in another order (rows
/// that tie on the query's ORDER BY may come in either order).
fn compare(floe: &[Vec<Value>], duck: &[Vec<Value>]) -> String {
    if floe.len() != duck.len() {
        return "row counts differ".to_string();
    }
    let same = |a: &[Vec<Value>], b: &[Vec<Value>]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| x.len() == y.len() && x.iter().zip(y).all(|(u, v)| u.matches(v)))
    };
    if same(floe, duck) {
        return "same".to_string();
    }
    let sorted = |rows: &[Vec<Value>]| {
        let mut rows = rows.to_vec();
        rows.sort_by_cached_key(|row| row.iter().map(Value::sort_key).collect::<Vec<_>>());
        rows
    };
    if same(&sorted(floe), &sorted(duck)) {
        return "same (ties ordered differently)".to_string();
    }
    let (row, a, b) = floe
        .iter()
        .zip(duck)
        .enumerate()
        .find(|(_, (a, b))| {
            a.len() != b.len() || a.iter().zip(b.iter()).any(|(u, v)| !u.matches(v))
        })
        .map(|(i, (a, b))| (i, a, b))
        .expect("a differing row");
    let show = |row: &[Value]| {
        row.iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "DIFFER at row {row}: floe [{}] duckdb [{}]",
        show(a),
        show(b)
    )
}

/// The official answer's row count at SF1 (tpchgen ships the answers of the spec's validation
/// run), to check both engines against.
fn answer_rows(query: usize, scale: f64) -> Option<usize> {
    let answer = tpchgen::q_and_a::QueryAndAnswer::new(query as i32, scale).ok()?;
    Some(
        answer
            .answer()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count()
            - 1,
    )
}

fn report(scale: f64, queries: &[(String, String)], floe: &[Outcome], duck: &[Outcome]) {
    println!(
        "\nTPC-H SF {scale}: median of the timed runs (first run in parentheses), ms; ratio = floe/duckdb"
    );
    println!(
        "{:<5} {:>20} {:>20} {:>7} {:>7} {:>7} {:>6}  results",
        "query", "floe sql", "duckdb", "ratio", "rows", "rows", "spec"
    );
    println!(
        "{:<5} {:>20} {:>20} {:>7} {:>7} {:>7} {:>6}",
        "", "", "", "", "floe", "duckdb", "rows"
    );
    let (mut floe_total, mut duck_total) = (Duration::ZERO, Duration::ZERO);
    let mut ratios = Vec::new();
    let mut failures = Vec::new();
    let mut mismatches = Vec::new();
    for (i, ((name, _), (f, d))) in queries.iter().zip(floe.iter().zip(duck)).enumerate() {
        let time = |o: &Outcome| match (o.median(), o.first) {
            (Some(median), Some(first)) => format!("{:.1} ({:.1})", ms(median), ms(first)),
            _ => "FAILED".to_string(),
        };
        let count = |o: &Outcome| {
            o.rows
                .as_ref()
                .map_or("-".to_string(), |r| r.len().to_string())
        };
        let ratio = match (f.median(), d.median()) {
            (Some(a), Some(b)) => {
                floe_total += a;
                duck_total += b;
                let ratio = a.as_secs_f64() / b.as_secs_f64();
                ratios.push(ratio);
                format!("{ratio:.2}")
            }
            _ => "-".to_string(),
        };
        let expected = answer_rows(i + 1, scale);
        let mut results = match (&f.rows, &d.rows) {
            (Some(a), Some(b)) => compare(a, b),
            _ => "-".to_string(),
        };
        if let Some(expected) = expected {
            for o in [f, d] {
                if let Some(rows) = &o.rows
                    && rows.len() != expected
                {
                    results.push_str(&format!(
                        "; {} has {} rows, the spec's answer {expected}",
                        o.engine,
                        rows.len()
                    ));
                }
            }
        }
        if (!results.starts_with("same") && results != "-") || results.contains("spec") {
            mismatches.push(format!("{name}: {results}"));
        }
        println!(
            "{name:<5} {:>20} {:>20} {ratio:>7} {:>7} {:>7} {:>6}  {results}",
            time(f),
            time(d),
            count(f),
            count(d),
            expected.map_or("-".to_string(), |n| n.to_string()),
        );
        for o in [f, d] {
            if let Some(error) = &o.error {
                failures.push(format!("{name} in {}: {error}", o.engine));
            }
        }
    }
    let both = ratios.len();
    let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / both.max(1) as f64).exp();
    println!(
        "total ({both} queries that ran in both): floe sql {:.2} s, duckdb {:.2} s, ratio floe/duckdb {:.2} (geometric mean of the per-query ratios {:.2})",
        floe_total.as_secs_f64(),
        duck_total.as_secs_f64(),
        floe_total.as_secs_f64() / duck_total.as_secs_f64(),
        geomean,
    );
    if failures.is_empty() {
        println!("failures: none");
    } else {
        println!("failures:");
        for failure in &failures {
            println!("  {failure}");
        }
    }
    if mismatches.is_empty() {
        println!("results: both engines returned the same rows for every query that ran in both");
    } else {
        println!("result differences:");
        for mismatch in &mismatches {
            println!("  {mismatch}");
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

// ------------------------------------------------------------------------------------ setup

/// The warehouse prefix of the server's default warehouse (`/v1/config`'s override), which
/// DuckDB's ATTACH names.
async fn prefix(server: &FloeServer) -> String {
    let config: Json = floe_testkit::http()
        .get(format!("{}/v1/config", server.uri()))
        .send()
        .await
        .expect("GET /v1/config")
        .json()
        .await
        .expect("config JSON");
    config["overrides"]["prefix"]
        .as_str()
        .unwrap_or(floe_testkit::DEFAULT_PREFIX)
        .to_string()
}

/// The DuckDB packages, pinned as in /work/shared/clients.md and tests/compat/requirements.txt.
const DUCKDB_PACKAGES: [&str; 4] = [
    "duckdb==1.5.5",
    "duckdb-extension-iceberg==1.5.5",
    "duckdb-extension-avro==1.5.5",
    "duckdb-extension-httpfs==1.5.5",
];

/// A Python that has DuckDB and its extensions: `$FLOE_BENCH_PYTHON`; else the compat harness's
/// venv (`$FLOE_CACHE_DIR/venv-compat`, default `~/.cache/floe`, built by `scripts/test.sh
/// compat`) if it has them; else a venv of the bench's own, `$FLOE_CACHE_DIR/venv-tpch`, made
/// with `python3 -m venv` and the pinned wheels (like scripts/test.sh's venvs).
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("FLOE_BENCH_PYTHON") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("FLOE_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/floe")
        });
    let has_duckdb = |python: &Path| {
        Command::new(python)
            .args([
                "-c",
                "import duckdb, duckdb_extension_iceberg, duckdb_extension_avro, duckdb_extension_httpfs; \
                 assert duckdb.__version__ == '1.5.5'",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    for venv in ["venv-compat", "venv-tpch"] {
        let python = cache.join(venv).join("bin/python");
        if python.exists() && has_duckdb(&python) {
            return python;
        }
    }
    let venv = cache.join("venv-tpch");
    println!(
        "creating {} with {}",
        venv.display(),
        DUCKDB_PACKAGES.join(" ")
    );
    let status = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status()
        .expect("run python3 -m venv");
    assert!(
        status.success(),
        "python3 -m venv {} failed",
        venv.display()
    );
    let python = venv.join("bin/python");
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
        ])
        .args(DUCKDB_PACKAGES)
        .status()
        .expect("run pip");
    assert!(
        status.success(),
        "pip install into {} failed",
        venv.display()
    );
    python
}
