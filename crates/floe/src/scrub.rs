//! `floe scrub`: checks, on a data dir and without a server, that every file a table references
//! is still there with the size its metadata records (`floe-maintenance`'s scrubber), records the
//! findings in the metadata store as the server's scheduler does, and prints the open ones.
//!
//! The exit status is what scripts need: 0 when the scrubbed tables have no open finding, 1 when
//! they have (or the scrub itself failed).

use std::path::PathBuf;

use clap::Args;
use floe_maintenance::{RateLimits, ScrubOptions, ScrubReport, TableName, scrub_table};
use floe_store::{FindingFilter, ScrubFinding};

use crate::maintain::{parse_table, unix_ms};

#[derive(Args, Debug)]
#[command(
    long_about = "Check that every file a table references is still there, whole: the \
    current metadata file, every manifest list and manifest of every snapshot the table keeps, and \
    every data, delete and statistics file they name (its size against the size the metadata \
    records; nothing of a data file is read). With --deep, also read each Parquet file's footer. \
    Each file is checked once, however many snapshots share it.\n\n\
    Problems are recorded in the metadata store as findings, as the server's scheduled scrub \
    records them: a problem found again stays one finding, and a finding whose file is fine again \
    (restored, or no longer referenced after a repair) is resolved. The open findings of the \
    scrubbed tables are printed; the exit status is 1 if there are any, 0 otherwise.\n\n\
    Safe while servers on the same data dir keep serving: the scrub changes no table. It runs at \
    full speed unless --max-bytes-per-second or --max-requests-per-second slow it down."
)]
pub struct ScrubArgs {
    /// The table, as namespace.table (a.b.table for nested namespaces) [default: every table of
    /// the warehouse].
    #[arg(value_name = "TABLE")]
    table: Option<String>,
    /// Also read every Parquet data and delete file's footer (one or two small ranged reads per
    /// file).
    #[arg(long)]
    deep: bool,
    /// Read at most this many bytes per second from the object store (0: no limit).
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    max_bytes_per_second: u64,
    /// Make at most this many object-store requests (reads and size checks) per second (0: no
    /// limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_requests_per_second: u64,
    /// Data dir holding the catalog [default: ./floe-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// With the data dir: the shared PostgreSQL metadata store (postgres:// URL) instead of
    /// DIR/catalog.db.
    #[arg(long, value_name = "URL")]
    metastore: Option<String>,
    /// Warehouse name [default: main].
    #[arg(long)]
    warehouse: Option<String>,
}

pub fn run(args: ScrubArgs) -> Result<(), String> {
    let table = args.table.as_deref().map(parse_table).transpose()?;
    let runtime = crate::runtime()?;
    runtime.block_on(async {
        let options = crate::data_dir_options(&args.data_dir, &args.metastore, &args.warehouse);
        if options.metastore.is_none() && !options.catalog_db().exists() {
            return Err(format!("no catalog in {}", options.data_dir.display()));
        }
        let catalog = floe_commit::open::open_catalog(&options, args.warehouse.as_deref()).await?;
        let tables = match table {
            Some(table) => vec![table],
            None => floe_maintenance::scheduler::all_tables(&catalog).await,
        };
        let options = ScrubOptions {
            deep: args.deep,
            limits: RateLimits {
                bytes_per_second: args.max_bytes_per_second,
                requests_per_second: args.max_requests_per_second,
            },
            ..ScrubOptions::default()
        };
        let mut failed = Vec::new();
        let mut findings = Vec::new();
        for table in &tables {
            let started_ms = unix_ms();
            let result = scrub_table(&catalog, table, &options).await;
            record(&catalog, table, started_ms, &result).await;
            match result {
                Ok(report) => println!("{}", summary(&report)),
                Err(err) => {
                    eprintln!("{table}: the scrub failed: {err}");
                    failed.push(table.clone());
                }
            }
            findings.extend(open_findings(&catalog, table).await?);
        }
        print_findings(&findings);
        match (findings.len(), failed.len()) {
            (0, 0) => Ok(()),
            (open, 0) => Err(format!(
                "{open} open finding(s): see docs/operations.md (scrub findings) for what each \
                 kind means and what to do"
            )),
            (_, failed) => Err(format!("the scrub of {failed} table(s) failed")),
        }
    })
}

fn summary(report: &ScrubReport) -> String {
    let outside = if report.outside_warehouse > 0 {
        format!(
            "; {} file(s) outside the warehouse not checked",
            report.outside_warehouse
        )
    } else {
        String::new()
    };
    let incomplete = if report.complete {
        ""
    } else {
        "; stopped short of some files (see the findings)"
    };
    format!(
        "{}: {} snapshot(s), {} file(s) checked{}, {} bytes verified, {} bytes read in {} \
         request(s); {} problem(s): {} new, {} resolved{outside}{incomplete}",
        report.table,
        report.snapshots,
        report.files_checked,
        if report.deep { " (deep)" } else { "" },
        report.bytes_verified,
        report.bytes_read,
        report.requests,
        report.problems.len(),
        report.recorded.opened,
        report.recorded.resolved,
    )
}

async fn open_findings(
    catalog: &floe_commit::Catalog,
    table: &TableName,
) -> Result<Vec<ScrubFinding>, String> {
    let filter = FindingFilter {
        warehouse: Some(catalog.warehouse().name().to_string()),
        table: Some(table.clone()),
        open_only: true,
        since_ms: None,
    };
    catalog
        .store()
        .scrub()
        .list_findings(&filter, 10_000)
        .await
        .map_err(|err| format!("cannot list the findings of {table}: {err}"))
}

/// Recorded as the scheduler's runs are, so that `floe maintenance history` shows it and the
/// scheduler counts it as the table's latest scrub.
async fn record(
    catalog: &floe_commit::Catalog,
    table: &TableName,
    started_at_ms: i64,
    result: &floe_maintenance::Result<ScrubReport>,
) {
    let (outcome, error, stats) = match result {
        Ok(report) => (
            "succeeded",
            None,
            [
                ("files-checked", report.files_checked),
                ("bytes-verified", report.bytes_verified),
                ("bytes-read", report.bytes_read),
                ("requests", report.requests),
                ("deep", u64::from(report.deep)),
                ("findings", report.problems.len() as u64),
                ("findings-new", report.recorded.opened),
                ("findings-resolved", report.recorded.resolved),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        ),
        Err(err) => ("failed", Some(err.to_string()), Default::default()),
    };
    let record = floe_store::JobRecord {
        id: uuid::Uuid::now_v7().to_string(),
        warehouse: catalog.warehouse().name().to_string(),
        table: table.clone(),
        kind: floe_maintenance::scheduler::kind::SCRUB.to_string(),
        trigger: "manual".to_string(),
        started_at_ms,
        finished_at_ms: Some(unix_ms()),
        outcome: outcome.to_string(),
        error,
        stats,
    };
    if let Err(err) = catalog.store().record_job(&record).await {
        eprintln!("warning: could not record the scrub in the job history: {err}");
    }
}

fn print_findings(findings: &[ScrubFinding]) {
    if findings.is_empty() {
        println!("no open findings");
        return;
    }
    let rows: Vec<[String; 6]> = findings
        .iter()
        .map(|finding| {
            [
                crate::maintenance::format_time(finding.found_at_ms),
                finding.table.to_string(),
                finding.kind.to_string(),
                finding.file.clone(),
                snapshots(&finding.snapshots),
                finding.detail.clone(),
            ]
        })
        .collect();
    let header = [
        "found (UTC)",
        "table",
        "kind",
        "file",
        "snapshots",
        "detail",
    ];
    crate::maintenance::print_rows(&header, &rows);
}

/// At most a few ids: a file in a thousand snapshots is said so, not listed.
fn snapshots(ids: &[i64]) -> String {
    const SHOWN: usize = 3;
    let mut text = ids
        .iter()
        .take(SHOWN)
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if ids.len() > SHOWN {
        text.push_str(&format!(" (+{} more)", ids.len() - SHOWN));
    }
    if text.is_empty() {
        text.push('-');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_snapshot_lists_are_cut_short() {
        assert_eq!(snapshots(&[]), "-");
        assert_eq!(snapshots(&[1, 2]), "1,2");
        assert_eq!(snapshots(&[1, 2, 3, 4, 5]), "1,2,3 (+2 more)");
    }
}
