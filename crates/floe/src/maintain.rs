//! `floe maintain`: table maintenance on a data dir, without a server — snapshot expiry,
//! unreferenced-file removal and bin-pack compaction (`floe-maintenance`), committed through the same commit engine the
//! server uses, so it is safe to run while servers on the same data dir keep taking commits.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args};
use floe_maintenance::{
    CompactOptions, DEFAULT_ORPHAN_AGE, ExpireOptions, OrphanOptions, TableName, compact,
    expire_snapshots, remove_orphan_files,
};

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("job").required(true).args(["expire_snapshots", "remove_orphans", "compact"])))]
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
    /// Rewrite small data files of each partition into files near the target size (one
    /// `replace` snapshot). Tables with delete files are refused.
    #[arg(long)]
    compact: bool,
    /// With --compact: the output file size [default: the table's write.target-file-size-bytes,
    /// else 512 MiB; 64-512 MiB].
    #[arg(long, value_name = "BYTES")]
    target_file_size: Option<u64>,
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

pub fn run(args: MaintainArgs) -> Result<(), String> {
    let table = parse_table(&args.table)?;
    if !args.expire_snapshots && args.retain_last.is_some() {
        return Err("--retain-last only applies to --expire-snapshots".into());
    }
    if !args.compact && args.target_file_size.is_some() {
        return Err("--target-file-size only applies to --compact".into());
    }
    if args.compact && args.older_than.is_some() {
        return Err("--older-than does not apply to --compact".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start the async runtime: {err}"))?;
    runtime.block_on(async {
        let options = crate::data_dir_options(&args.data_dir, &args.metastore, &args.warehouse);
        if options.metastore.is_none() && !options.catalog_db().exists() {
            return Err(format!("no catalog in {}", options.data_dir.display()));
        }
        let catalog = floe_commit::open::open(&options).await?;
        let (verb, would) = if args.dry_run {
            ("would delete", "would expire")
        } else {
            ("deleted", "expired")
        };
        if args.compact {
            let options = CompactOptions {
                target_file_size_bytes: args.target_file_size,
                dry_run: args.dry_run,
                ..CompactOptions::default()
            };
            let report = compact(&catalog, &table, &options)
                .await
                .map_err(|err| err.to_string())?;
            let snapshot = match report.snapshot_id {
                Some(id) => format!("; committed snapshot {id}"),
                None if report.dry_run => "; dry run, nothing written".to_string(),
                None => "; nothing to compact".to_string(),
            };
            println!(
                "{table}: {} bin(s), target {} bytes; {} file(s), {} bytes in; {} file(s), {} bytes out{snapshot}",
                report.bins,
                report.target_file_size_bytes,
                report.input_files,
                report.input_bytes,
                report.output_files,
                report.output_bytes,
            );
            Ok(())
        } else if args.expire_snapshots {
            let options = ExpireOptions {
                older_than: args.older_than,
                retain_last: args.retain_last,
                dry_run: args.dry_run,
            };
            let report = expire_snapshots(&catalog, &table, &options)
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
            failures(&report.failed_deletes)
        } else {
            let options = OrphanOptions {
                older_than: args.older_than.unwrap_or(DEFAULT_ORPHAN_AGE),
                dry_run: args.dry_run,
            };
            let report = remove_orphan_files(&catalog, &table, &options)
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
            failures(&report.failed_deletes)
        }
    })
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
fn parse_table(text: &str) -> Result<TableName, String> {
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
