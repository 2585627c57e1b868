//! `floe repair`: makes a table whose files were lost in storage readable again, on a data dir,
//! without a server (`floe_maintenance::repair`). Each repair prints what it would do and changes
//! nothing unless given `--apply`; an applied repair is written to the audit log under the
//! local operator's name.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use floe_maintenance::TableName;
use floe_maintenance::repair::{
    ForgetReport, RepairOptions, RollbackReport, forget_missing_files, rollback,
};

#[derive(Args, Debug)]
#[command(
    group(ArgGroup::new("repair").required(true).args(["rollback", "forget_missing_files"])),
    after_help = "Run without --apply first: the dry run prints exactly what would change. \
        Both repairs give something up to make the table readable again (the commits after \
        the restored metadata; the rows of the forgotten files), so restore lost files from a \
        backup instead when you can. See docs/operations.md, \"Repairing a table\"."
)]
pub struct RepairArgs {
    /// The table, as namespace.table (a.b.table for nested namespaces).
    #[arg(value_name = "TABLE")]
    table: String,
    /// The current metadata file is missing, unreadable or not valid table metadata: point the
    /// table at the newest intact metadata file in its metadata/ folder. The commits after it are
    /// lost; they are listed. Refused when the current file is intact (see --force).
    #[arg(long)]
    rollback: bool,
    /// Data or delete files of the current snapshot are missing or have the wrong size: commit a
    /// snapshot that removes exactly those entries. Lists the partitions and the rows lost; the
    /// rows a forgotten delete file deleted come back.
    #[arg(long)]
    forget_missing_files: bool,
    /// Make the change. Without it, only print what would be done.
    #[arg(long)]
    apply: bool,
    /// With --rollback: roll back one version even though the current metadata file is intact.
    #[arg(long, requires = "rollback")]
    force: bool,
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

pub fn run(args: RepairArgs) -> Result<(), String> {
    let table = crate::maintain::parse_table(&args.table)?;
    let runtime = crate::runtime()?;
    runtime.block_on(async {
        let options = crate::data_dir_options(&args.data_dir, &args.metastore, &args.warehouse);
        if options.metastore.is_none() && !options.catalog_db().exists() {
            return Err(format!("no catalog in {}", options.data_dir.display()));
        }
        let catalog = floe_commit::open::open_catalog(&options, args.warehouse.as_deref()).await?;
        let repair = RepairOptions {
            apply: args.apply,
            force: args.force,
            ..RepairOptions::default()
        };
        if args.rollback {
            let report = rollback(&catalog, &table, &repair)
                .await
                .map_err(|err| err.to_string())?;
            print_rollback(&table, &report);
        } else {
            let report = forget_missing_files(&catalog, &table, &repair)
                .await
                .map_err(|err| err.to_string())?;
            print_forget(&table, &report);
        }
        Ok(())
    })
}

fn print_rollback(table: &TableName, report: &RollbackReport) {
    let problem = report
        .problem
        .as_deref()
        .unwrap_or("intact (rollback forced)");
    println!("current metadata: {} ({problem})", report.damaged);
    for skipped in &report.skipped {
        println!("passed over: {} ({})", skipped.location, skipped.problem);
    }
    let snapshot = report
        .restored_snapshot_id
        .map_or("none".to_string(), |id| id.to_string());
    println!(
        "{} {table} to: {} (current snapshot {snapshot}, last sequence number {})",
        if report.applied {
            "rolled back"
        } else {
            "would roll back"
        },
        report.restored,
        report.restored_last_sequence_number
    );
    if report.lost_versions.is_empty() {
        println!("commits lost: unknown (metadata file names carry no version numbers)");
    } else {
        let versions: Vec<String> = report.lost_versions.iter().map(i64::to_string).collect();
        println!(
            "commits lost: {} (metadata versions {})",
            report.lost_versions.len(),
            versions.join(", ")
        );
    }
    for lost in &report.lost_snapshots {
        let sequence = lost
            .sequence_number
            .map_or("unknown".to_string(), |n| n.to_string());
        println!(
            "snapshot lost: {} (sequence number {sequence})",
            lost.snapshot_id
        );
    }
    if !report.applied {
        println!("dry run: nothing changed; run again with --apply to roll back");
    }
}

fn print_forget(table: &TableName, report: &ForgetReport) {
    println!(
        "checked {} data and delete files of {table}'s current snapshot{}",
        report.files_checked,
        report
            .inspected_snapshot_id
            .map_or(String::new(), |id| format!(" {id}"))
    );
    if report.missing.is_empty() {
        println!("no file is missing: nothing to repair");
        return;
    }
    for file in &report.missing {
        let found = match file.found_size {
            None => "missing".to_string(),
            Some(size) => format!("{size} bytes instead of {}", file.expected_size),
        };
        let partition = if file.partition.is_empty() {
            String::new()
        } else {
            format!(", partition {}", file.partition)
        };
        println!(
            "{} file {} ({found}{partition}, {} records)",
            file.content, file.location, file.record_count
        );
    }
    for (partition, rows) in report.partitions_affected() {
        let partition = if partition.is_empty() {
            "(unpartitioned)".to_string()
        } else {
            partition
        };
        println!("partition {partition}: {rows} rows lost");
    }
    if report.missing.iter().any(|f| f.content != "data") {
        println!("note: rows deleted by the forgotten delete files become visible again");
    }
    match report.snapshot_id {
        Some(id) => println!(
            "forgot {} file(s), {} rows lost; committed snapshot {id}",
            report.missing.len(),
            report.records_lost()
        ),
        None => println!(
            "dry run: would forget {} file(s), {} rows lost; run again with --apply to commit",
            report.missing.len(),
            report.records_lost()
        ),
    }
}
