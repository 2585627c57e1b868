//! `floe maintain`: table maintenance on a data dir, without a server — snapshot expiry,
//! unreferenced-file removal, compaction (merge-on-read deletes applied) and manifest rewrite
//! (`floe-maintenance`), committed through the same commit engine the server uses, so it is safe
//! to run while servers on the same data dir keep taking commits.
//!
//! Progress goes to stderr: a bar (files and bytes) when stderr is a terminal, a few plain lines
//! otherwise. stdout gets the job's result line and a closing summary line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args};
use floe_maintenance::{
    CompactOptions, DEFAULT_ORPHAN_AGE, ExpireOptions, ManifestRewriteOptions, OrphanOptions,
    Progress, ProgressSink, Strategy, TableName, compact, expire_snapshots, remove_orphan_files,
    rewrite_manifests,
};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("job").required(true).args(["expire_snapshots", "remove_orphans", "compact", "rewrite_manifests"])))]
pub struct MaintainArgs {
    /// The table, as namespace.table (a.b.table for nested namespaces).
    #[arg(value_name = "TABLE")]
    table: String,
    /// Expire snapshots by the table's retention settings, then delete the files only they reach.
    #[arg(long)]
    expire_snapshots: bool,
    /// Delete files under the table's location that its metadata does not reach.
    #[arg(long)]
    remove_orphans: bool,
    /// Rewrite small data files of each partition, and data files with deletes, into files near
    /// the target size with the deletes applied; drop the delete files no data file needs (one
    /// `replace` snapshot).
    #[arg(long)]
    compact: bool,
    /// Rewrite many small data manifests into few, clustered by partition (one `replace`
    /// snapshot; no data changes).
    #[arg(long)]
    rewrite_manifests: bool,
    /// With --rewrite-manifests: the manifest size [default: the table's
    /// commit.manifest.target-size-bytes, else 8 MiB].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    target_manifest_size: Option<u64>,
    /// With --compact: how rows are laid out in the outputs: `binpack` (input order), `sort`
    /// (the table's sort order; identity fields only) or `zorder` (interleaved over
    /// --zorder-by's columns) [default: binpack].
    #[arg(long, value_enum, value_name = "STRATEGY")]
    strategy: Option<CompactStrategy>,
    /// With --strategy zorder: the columns to interleave, e.g. `--zorder-by lat,lon`.
    #[arg(long, value_name = "COLUMNS", value_delimiter = ',')]
    zorder_by: Vec<String>,
    /// With --compact: the output file size [default: the table's write.target-file-size-bytes,
    /// else 512 MiB; 64-512 MiB].
    #[arg(long, value_name = "BYTES")]
    target_file_size: Option<u64>,
    /// With --compact: partial progress, committing after at most BYTES of input (whole bins),
    /// so that a big table keeps what was done if a later chunk fails [default: one commit].
    #[arg(long, value_name = "BYTES")]
    max_commit_bytes: Option<u64>,
    /// Report what would go; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --expire-snapshots: expire snapshots older than this [default: the table's
    /// history.expire.max-snapshot-age-ms, else 5d]. With --remove-orphans: only remove files
    /// older than this [default: 1d; at least 1h]. E.g. 90m, 12h, 7d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    older_than: Option<Duration>,
    /// With --expire-snapshots: keep at least N snapshots per branch [default: the table's
    /// history.expire.min-snapshots-to-keep, else 1].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    retain_last: Option<u32>,
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

/// `--strategy` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CompactStrategy {
    Binpack,
    Sort,
    Zorder,
}

pub fn run(args: MaintainArgs) -> Result<(), String> {
    let table = parse_table(&args.table)?;
    if !args.expire_snapshots && args.retain_last.is_some() {
        return Err("--retain-last only applies to --expire-snapshots".into());
    }
    if !args.compact && args.target_file_size.is_some() {
        return Err("--target-file-size only applies to --compact".into());
    }
    if !args.compact && args.max_commit_bytes.is_some() {
        return Err("--max-commit-bytes only applies to --compact".into());
    }
    if !args.zorder_by.is_empty() && !matches!(args.strategy, Some(CompactStrategy::Zorder)) {
        return Err("--zorder-by only applies to --strategy zorder".into());
    }
    if !args.compact && args.strategy.is_some() {
        return Err("--strategy only applies to --compact".into());
    }
    if !args.rewrite_manifests && args.target_manifest_size.is_some() {
        return Err("--target-manifest-size only applies to --rewrite-manifests".into());
    }
    if (args.compact || args.rewrite_manifests) && args.older_than.is_some() {
        return Err("--older-than only applies to --expire-snapshots and --remove-orphans".into());
    }
    let started = Instant::now();
    let progress = ProgressSink::new(Arc::new(Reporter::new(std::io::stderr().is_terminal())));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    runtime.block_on(async {
        let options = crate::data_dir_options(&args.data_dir, &args.metastore, &args.warehouse);
        if options.metastore.is_none() && !options.catalog_db().exists() {
            return Err(format!("no catalog in {}", options.data_dir.display()));
        }
        let catalog = floe_commit::open::open_catalog(&options, args.warehouse.as_deref()).await?;
        let started_ms = unix_ms();
        let job = run_job(&args, &catalog, &table, progress).await;
        let outcome = match &job {
            Ok((totals, outcome)) => {
                summary(&table, totals, started);
                outcome.as_ref().err().cloned()
            }
            Err(err) => Some(err.clone()),
        };
        if !args.dry_run {
            record(&catalog, &table, &args, started_ms, &job, outcome).await;
        }
        job.and_then(|(_, outcome)| outcome)
    })
}

/// Runs the one job `args` asks for; its totals, and whether it ended with files it could not
/// delete.
async fn run_job(
    args: &MaintainArgs,
    catalog: &floe_commit::Catalog,
    table: &TableName,
    progress: ProgressSink,
) -> Result<(Totals, Result<(), String>), String> {
    {
        let (verb, would) = if args.dry_run {
            ("would delete", "would expire")
        } else {
            ("deleted", "expired")
        };
        if args.compact {
            let options = CompactOptions {
                target_file_size_bytes: args.target_file_size,
                strategy: match args.strategy {
                    Some(CompactStrategy::Sort) => Strategy::Sort,
                    Some(CompactStrategy::Zorder) => Strategy::ZOrder,
                    Some(CompactStrategy::Binpack) | None => Strategy::BinPack,
                },
                zorder_columns: args.zorder_by.clone(),
                max_commit_bytes: args.max_commit_bytes,
                dry_run: args.dry_run,
                progress,
                ..CompactOptions::default()
            };
            let report = compact(catalog, table, &options)
                .await
                .map_err(|err| err.to_string())?;
            let snapshot = match report.snapshot_id {
                Some(id) if report.commits > 1 => {
                    format!("; committed {} snapshots, the last {id}", report.commits)
                }
                Some(id) => format!("; committed snapshot {id}"),
                None if report.dry_run => "; dry run, nothing written".to_string(),
                None => "; nothing to compact".to_string(),
            };
            let deletes = if report.applied_delete_files > 0 || report.removed_delete_files > 0 {
                format!(
                    "; {} delete file(s) applied, {} {}",
                    report.applied_delete_files,
                    report.removed_delete_files,
                    if report.dry_run {
                        "would go"
                    } else {
                        "removed"
                    }
                )
            } else {
                String::new()
            };
            println!(
                "{table}: {} bin(s), target {} bytes; {} file(s), {} bytes in; {} file(s), {} bytes out{deletes}{snapshot}",
                report.bins,
                report.target_file_size_bytes,
                report.input_files,
                report.input_bytes,
                report.output_files,
                report.output_bytes,
            );
            Ok((
                Totals {
                    files_in: report.input_files + report.removed_delete_files,
                    bytes_in: report.input_bytes + report.removed_delete_bytes,
                    files_out: report.output_files,
                    bytes_out: report.output_bytes,
                    snapshots_expired: 0,
                },
                Ok(()),
            ))
        } else if args.rewrite_manifests {
            let options = ManifestRewriteOptions {
                target_size_bytes: args.target_manifest_size,
                dry_run: args.dry_run,
                progress,
            };
            let report = rewrite_manifests(catalog, table, &options)
                .await
                .map_err(|err| err.to_string())?;
            let outcome = match report.snapshot_id {
                Some(id) => format!(
                    "rewrote {} small manifest(s), {} bytes, into {} ({} bytes, {} entries); kept {}; committed snapshot {id}",
                    report.manifests_replaced,
                    report.bytes_replaced,
                    report.manifests_created,
                    report.bytes_created,
                    report.entries,
                    report.manifests_kept
                ),
                None if report.dry_run && report.manifests_replaced > 0 => format!(
                    "would rewrite {} small manifest(s), {} bytes; dry run, nothing written",
                    report.manifests_replaced, report.bytes_replaced
                ),
                None => "nothing to rewrite (fewer than 2 small manifests per partition spec)"
                    .to_string(),
            };
            println!(
                "{table}: {} data manifest(s), target {} bytes; {outcome}",
                report.data_manifests, report.target_size_bytes
            );
            Ok((
                Totals {
                    files_in: report.manifests_replaced,
                    bytes_in: report.bytes_replaced,
                    files_out: report.manifests_created,
                    bytes_out: report.bytes_created,
                    snapshots_expired: 0,
                },
                Ok(()),
            ))
        } else if args.expire_snapshots {
            let options = ExpireOptions {
                older_than: args.older_than,
                retain_last: args.retain_last,
                dry_run: args.dry_run,
                progress,
            };
            let report = expire_snapshots(catalog, table, &options)
                .await
                .map_err(|err| err.to_string())?;
            print_files(args.dry_run, &report.deleted_files);
            println!(
                "{table}: {would} {} snapshot(s){}; {verb} {} file(s), {} bytes",
                report.expired_snapshots.len(),
                refs_note(&report.removed_refs),
                report.deleted_files.len(),
                report.deleted_bytes
            );
            Ok((
                Totals {
                    files_in: report.deleted_files.len(),
                    bytes_in: report.deleted_bytes,
                    snapshots_expired: report.expired_snapshots.len(),
                    ..Totals::default()
                },
                failures(&report.failed_deletes),
            ))
        } else {
            // By hand, one phase: the operator asked for it now (the scheduler marks first).
            let options = OrphanOptions {
                older_than: args.older_than.unwrap_or(DEFAULT_ORPHAN_AGE),
                delete_after_marked: None,
                dry_run: args.dry_run,
                progress,
            };
            let report = remove_orphan_files(catalog, table, &options)
                .await
                .map_err(|err| err.to_string())?;
            print_files(args.dry_run, &report.deleted_files);
            println!(
                "{table}: {} file(s) listed; {verb} {} unreferenced file(s), {} bytes; kept {} younger than {}",
                report.listed,
                report.deleted_files.len(),
                report.deleted_bytes,
                report.too_young,
                show_duration(options.older_than)
            );
            Ok((
                Totals {
                    files_in: report.deleted_files.len(),
                    bytes_in: report.deleted_bytes,
                    ..Totals::default()
                },
                failures(&report.failed_deletes),
            ))
        }
    }
}

/// Records the run in the metadata store's job history (`floe maintenance history`), as the
/// scheduler records its own; a failure to record is reported, not fatal.
async fn record(
    catalog: &floe_commit::Catalog,
    table: &TableName,
    args: &MaintainArgs,
    started_at_ms: i64,
    job: &Result<(Totals, Result<(), String>), String>,
    error: Option<String>,
) {
    let kind = if args.compact {
        "compaction"
    } else if args.rewrite_manifests {
        "manifest-rewrite"
    } else if args.expire_snapshots {
        "snapshot-expiry"
    } else {
        "orphan-removal"
    };
    let stats = match job {
        Ok((totals, _)) => [
            ("files-in", totals.files_in as u64),
            ("bytes-in", totals.bytes_in),
            ("files-out", totals.files_out as u64),
            ("bytes-out", totals.bytes_out),
            ("snapshots-expired", totals.snapshots_expired as u64),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect(),
        Err(_) => Default::default(),
    };
    let record = floe_store::JobRecord {
        id: uuid::Uuid::now_v7().to_string(),
        warehouse: catalog.warehouse().name().to_string(),
        table: table.clone(),
        kind: kind.to_string(),
        trigger: "manual".to_string(),
        started_at_ms,
        finished_at_ms: Some(unix_ms()),
        outcome: if error.is_some() {
            "failed"
        } else {
            "succeeded"
        }
        .to_string(),
        error,
        stats,
    };
    if let Err(err) = catalog.store().record_job(&record).await {
        eprintln!("floe: could not record the run in the job history: {err}");
    }
}

pub(crate) fn unix_ms() -> i64 {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(millis).unwrap_or(i64::MAX)
}

/// What the closing summary line counts: files and bytes a job read or removed (in) and wrote
/// (out), snapshots it expired.
#[derive(Default)]
struct Totals {
    files_in: usize,
    bytes_in: u64,
    files_out: usize,
    bytes_out: u64,
    snapshots_expired: usize,
}

fn summary(table: &TableName, totals: &Totals, started: Instant) {
    println!(
        "{table}: summary: {} file(s), {} in; {} file(s), {} out; {} snapshot(s) expired; {:.2}s",
        totals.files_in,
        HumanBytes(totals.bytes_in),
        totals.files_out,
        HumanBytes(totals.bytes_out),
        totals.snapshots_expired,
        started.elapsed().as_secs_f64()
    );
}

/// Draws the jobs' progress on stderr: an indicatif bar over the bytes (with files done in its
/// message) on a terminal; otherwise a line when a phase starts, at every tenth of its files,
/// and when it ends — logs and CI output stay short.
struct Reporter {
    terminal: bool,
    bar: Mutex<Option<ProgressBar>>,
    phase: Mutex<String>,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
}

impl Reporter {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            bar: Mutex::new(None),
            phase: Mutex::new(String::new()),
            files_total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
        }
    }

    fn phase(&self) -> String {
        self.phase.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn line(&self) -> String {
        format!(
            "{}: {}/{} file(s), {}/{}",
            self.phase(),
            self.files_done.load(Ordering::Relaxed),
            self.files_total.load(Ordering::Relaxed),
            HumanBytes(self.bytes_done.load(Ordering::Relaxed)),
            HumanBytes(self.bytes_total.load(Ordering::Relaxed)),
        )
    }
}

impl Progress for Reporter {
    fn start(&self, phase: &str, files: u64, bytes: u64) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase.to_string();
        }
        self.files_total.store(files, Ordering::Relaxed);
        self.bytes_total.store(bytes, Ordering::Relaxed);
        self.files_done.store(0, Ordering::Relaxed);
        self.bytes_done.store(0, Ordering::Relaxed);
        if self.terminal {
            let bar = ProgressBar::new(bytes);
            // The template is a constant: it only fails to parse if it is edited wrongly.
            if let Ok(style) = ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} (eta {eta})",
            ) {
                bar.set_style(style);
            }
            bar.set_message(format!("{phase} 0/{files} file(s)"));
            if let Ok(mut slot) = self.bar.lock() {
                *slot = Some(bar);
            }
        } else {
            eprintln!("{}", self.line());
        }
    }

    fn advance(&self, files: u64, bytes: u64) {
        let before = self.files_done.fetch_add(files, Ordering::Relaxed);
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
        let done = before + files;
        let total = self.files_total.load(Ordering::Relaxed).max(1);
        if self.terminal {
            if let Ok(slot) = self.bar.lock()
                && let Some(bar) = slot.as_ref()
            {
                bar.inc(bytes);
                bar.set_message(format!("{} {done}/{total} file(s)", self.phase()));
            }
        } else if before * 10 / total != done * 10 / total && done < total {
            eprintln!("{}", self.line());
        }
    }

    fn finish(&self) {
        if self.terminal {
            if let Ok(mut slot) = self.bar.lock()
                && let Some(bar) = slot.take()
            {
                bar.finish_and_clear();
            }
        } else {
            eprintln!("{} (done)", self.line());
        }
    }
}

fn print_files(dry_run: bool, files: &[String]) {
    if dry_run {
        for file in files {
            println!("  {file}");
        }
    }
}

fn refs_note(refs: &[String]) -> String {
    if refs.is_empty() {
        String::new()
    } else {
        format!(" and removed ref(s) {}", refs.join(", "))
    }
}

fn failures(failed: &[String]) -> Result<(), String> {
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} file(s) could not be deleted (see the log); they are unreferenced and a later run can remove them",
            failed.len()
        ))
    }
}

/// `ns.table`, `a.b.table`: the namespace is everything before the last dot.
pub(crate) fn parse_table(text: &str) -> Result<TableName, String> {
    match text.rsplit_once('.') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() => Ok(TableName::new(
            namespace.split('.').map(str::to_string).collect::<Vec<_>>(),
            name,
        )),
        _ => Err(format!("table {text:?} must be namespace.table")),
    }
}

/// `500ms`, `90s`, `90m`, `12h`, `7d`, `2w`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} needs a unit: ms, s, m, h, d or w"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 12h or 7d"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (ms, s, m, h, d, w)"
            ));
        }
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

fn show_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_tables_parse() {
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("12").is_err());
        assert!(parse_duration("3y").is_err());
        let table = parse_table("a.b.t").unwrap();
        assert_eq!(table.namespace, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(table.name, "t");
        assert!(parse_table("t").is_err());
        assert_eq!(show_duration(Duration::from_secs(86_400)), "1d");
    }
}
