//! `floe maintain` on a stopped server's data dir: snapshot expiry deletes exactly the files only
//! expired snapshots reached, the table still reads through the server, and unreferenced-file
//! removal keeps everything the table references.

use std::collections::BTreeSet;
use std::process::Command;

use iceberg::Catalog;

use crate::support::*;

fn maintain(server: &FloeServer, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(floe_testkit::floe_binary())
        .arg("maintain")
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .expect("run floe maintain");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn warehouse_files(server: &FloeServer) -> BTreeSet<std::path::PathBuf> {
    files_under(&server.warehouse_dir()).into_iter().collect()
}

#[tokio::test]
async fn floe_maintain_expires_snapshots_and_their_files_on_a_data_dir() {
    let mut server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    let table = create_table(&catalog, &namespace, "t").await;
    let ident = ident(&namespace, "t");
    let first = append(&catalog, &table, &[1, 2]).await.unwrap();
    let second = append(&catalog, &first, &[3]).await.unwrap();
    let third = append(&catalog, &second, &[4]).await.unwrap();
    let metadata = third.metadata();
    let manifest_list = |table: &iceberg::table::Table| {
        let location = table.metadata().current_snapshot().unwrap().manifest_list();
        url::Url::parse(location).unwrap().to_file_path().unwrap()
    };
    // Fast appends keep earlier manifests: only the first two manifest lists become unreachable.
    let expected = BTreeSet::from([manifest_list(&first), manifest_list(&second)]);
    let current = metadata.current_snapshot_id();
    assert!(server.stop());
    std::thread::sleep(std::time::Duration::from_millis(5));

    let before = warehouse_files(&server);
    let (ok, stdout, stderr) = maintain(
        &server,
        &[
            "ns.t",
            "--expire-snapshots",
            "--older-than",
            "0s",
            "--dry-run",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("would expire 2 snapshot(s); would delete 2 file(s)"),
        "{stdout}"
    );
    assert_eq!(
        warehouse_files(&server),
        before,
        "a dry run deletes nothing"
    );

    let (ok, stdout, stderr) = maintain(
        &server,
        &["ns.t", "--expire-snapshots", "--older-than", "0s"],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("expired 2 snapshot(s); deleted 2 file(s)"),
        "{stdout}"
    );
    let after = warehouse_files(&server);
    let deleted: BTreeSet<_> = before.difference(&after).cloned().collect();
    assert_eq!(deleted, expected);

    // Everything else stays, even with every file older than the floor asked for.
    let (ok, stdout, stderr) =
        maintain(&server, &["ns.t", "--remove-orphans", "--older-than", "1h"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("deleted 0 unreferenced file(s)"),
        "{stdout}"
    );
    assert_eq!(warehouse_files(&server), after);
    let (ok, _, stderr) = maintain(
        &server,
        &["ns.t", "--remove-orphans", "--older-than", "30m"],
    );
    assert!(!ok && stderr.contains("refusing"), "{stderr}");

    server.restart();
    let catalog = rest_catalog(&server).await;
    let table = catalog.load_table(&ident).await.unwrap();
    assert_eq!(table.metadata().snapshots().len(), 1);
    assert_eq!(table.metadata().current_snapshot_id(), current);
    assert_eq!(read_ids(&table).await, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn floe_maintain_compacts_small_files_on_a_data_dir() {
    let mut server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    let mut table = create_table(&catalog, &namespace, "t").await;
    let ident = ident(&namespace, "t");
    for id in 0..8 {
        table = append(&catalog, &table, &[id * 2, id * 2 + 1])
            .await
            .unwrap();
    }
    let before = table.metadata().current_snapshot_id().unwrap();
    assert!(server.stop());

    let files = warehouse_files(&server);
    let (ok, stdout, stderr) = maintain(&server, &["ns.t", "--compact", "--dry-run"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("1 bin(s), target 536870912 bytes; 8 file(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("dry run, nothing written"), "{stdout}");
    assert_eq!(warehouse_files(&server), files, "a dry run writes nothing");

    let (ok, _, stderr) = maintain(
        &server,
        &["ns.t", "--compact", "--target-file-size", "1000"],
    );
    assert!(!ok && stderr.contains("must be within"), "{stderr}");

    let (ok, stdout, stderr) = maintain(
        &server,
        &["ns.t", "--compact", "--target-file-size", "67108864"],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("1 bin(s), target 67108864 bytes; 8 file(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("; 1 file(s), "), "{stdout}");
    assert!(stdout.contains("committed snapshot"), "{stdout}");

    server.restart();
    let catalog = rest_catalog(&server).await;
    let table = catalog.load_table(&ident).await.unwrap();
    let mut ids = read_ids(&table).await;
    ids.sort();
    assert_eq!(ids, (0..16).collect::<Vec<_>>());
    let tasks: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
        table.scan().build().unwrap().plan_files().await.unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(tasks.len(), 1);
    let compacted = table.metadata().current_snapshot().unwrap();
    assert_eq!(compacted.parent_snapshot_id(), Some(before));
    assert_eq!(
        compacted.summary().operation,
        iceberg::spec::Operation::Replace
    );
    // The pre-compaction snapshot still reads the same rows.
    let old = table
        .scan()
        .snapshot_id(before)
        .select(["id"])
        .build()
        .unwrap();
    let batches: Vec<arrow_array::RecordBatch> =
        futures::TryStreamExt::try_collect(old.to_arrow().await.unwrap())
            .await
            .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 16);

    // The run by hand is in the job history (the refused one too; the dry run is not).
    let (ok, out, err) = floe(&[
        "maintenance",
        "history",
        "--table",
        "ns.t",
        "--json",
        "--catalog",
        &server.uri(),
    ]);
    assert!(ok, "{err}");
    let jobs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[0]["trigger"], "manual");
    assert_eq!(jobs[0]["kind"], "compaction");
    assert_eq!(jobs[0]["outcome"], "succeeded");
    assert_eq!(jobs[0]["stats"]["files-in"], "8");
    assert_eq!(jobs[0]["stats"]["files-out"], "1");
    assert_eq!(jobs[1]["outcome"], "failed");
    assert!(
        jobs[1]["error"]
            .as_str()
            .unwrap()
            .contains("must be within"),
        "{jobs:?}"
    );
}

#[tokio::test]
async fn floe_maintain_rewrites_manifests_with_progress_and_a_summary() {
    let mut server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    let mut table = create_table(&catalog, &namespace, "t").await;
    let ident = ident(&namespace, "t");
    for id in 0..8 {
        table = append(&catalog, &table, &[id * 2, id * 2 + 1])
            .await
            .unwrap();
    }
    let before = table.metadata().current_snapshot_id().unwrap();
    assert!(server.stop());

    let (ok, _, stderr) = maintain(
        &server,
        &["ns.t", "--compact", "--target-manifest-size", "1000"],
    );
    assert!(
        !ok && stderr.contains("only applies to --rewrite-manifests"),
        "{stderr}"
    );

    let files = warehouse_files(&server);
    let (ok, stdout, stderr) = maintain(&server, &["ns.t", "--rewrite-manifests", "--dry-run"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(
            "8 data manifest(s), target 8388608 bytes; would rewrite 8 small manifest(s)"
        ),
        "{stdout}"
    );
    assert_eq!(warehouse_files(&server), files, "a dry run writes nothing");

    let (ok, stdout, stderr) = maintain(&server, &["ns.t", "--rewrite-manifests"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rewrote 8 small manifest(s)"), "{stdout}");
    assert!(stdout.contains("into 1 ("), "{stdout}");
    assert!(stdout.contains("8 entries"), "{stdout}");
    assert!(
        stdout.contains("ns.t: summary: 8 file(s), ") && stdout.contains("; 1 file(s), "),
        "{stdout}"
    );
    assert!(stdout.contains("0 snapshot(s) expired"), "{stdout}");
    // Not a terminal: progress as plain lines on stderr, no bar.
    assert!(
        stderr.contains("rewriting manifests: 0/8 file(s)")
            && stderr.contains("rewriting manifests: 8/8 file(s)"),
        "{stderr}"
    );

    // The sort strategy needs a sort order, which this table has not.
    let (ok, _, stderr) = maintain(&server, &["ns.t", "--compact", "--strategy", "sort"]);
    assert!(!ok && stderr.contains("has no sort order"), "{stderr}");
    let (ok, _, stderr) = maintain(
        &server,
        &["ns.t", "--rewrite-manifests", "--strategy", "sort"],
    );
    assert!(
        !ok && stderr.contains("only applies to --compact"),
        "{stderr}"
    );

    // On a terminal (a pseudo-terminal from util-linux's script(1)) compaction draws a bar
    // instead of plain lines, and still ends with its summary.
    let command = format!(
        "exec {} maintain ns.t --compact --target-file-size 67108864 --data-dir {}",
        floe_testkit::floe_binary().display(),
        server.data_dir().display()
    );
    let output = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("TERM", "xterm")
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script(1)");
    let terminal = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{terminal}");
    assert!(
        terminal.contains("compacting 0/8 file(s) ["),
        "{terminal:?}"
    );
    assert!(
        terminal.contains("\u{1b}[2K"),
        "the bar is redrawn in place: {terminal:?}"
    );
    assert!(
        !terminal.contains("compacting: "),
        "no plain lines: {terminal:?}"
    );
    assert!(
        terminal.contains("ns.t: summary: 8 file(s), "),
        "{terminal:?}"
    );

    server.restart();
    let catalog = rest_catalog(&server).await;
    let table = catalog.load_table(&ident).await.unwrap();
    let mut ids = read_ids(&table).await;
    ids.sort();
    assert_eq!(ids, (0..16).collect::<Vec<_>>());
    let snapshots: Vec<_> = table.metadata().snapshots().collect();
    assert_eq!(
        snapshots.len(),
        10,
        "8 appends, the manifest rewrite, the compaction"
    );
    // Time travel to before the rewrite still reads every row.
    let old = table
        .scan()
        .snapshot_id(before)
        .select(["id"])
        .build()
        .unwrap();
    let batches: Vec<arrow_array::RecordBatch> =
        futures::TryStreamExt::try_collect(old.to_arrow().await.unwrap())
            .await
            .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 16);
}

/// `floe maintain --remove-orphans` on a table with `gc.enabled=false` refuses with a clear
/// message and deletes nothing.
#[tokio::test]
async fn floe_maintain_refuses_orphan_removal_when_gc_is_disabled() {
    let mut server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    let ident = create_table_with(&catalog, &namespace, "t", &[("gc.enabled", "false")]).await;
    let table = catalog.load_table(&ident).await.unwrap();
    append(&catalog, &table, &[1]).await.unwrap();
    assert!(server.stop());
    let before = warehouse_files(&server);

    let (ok, stdout, stderr) = maintain(&server, &["ns.t", "--remove-orphans"]);
    assert!(!ok, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("GC is disabled"), "stderr: {stderr}");
    assert!(stderr.contains("gc.enabled"), "stderr: {stderr}");
    assert_eq!(warehouse_files(&server), before);
}
