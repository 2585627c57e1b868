//! Compaction of merge-on-read tables: position and equality delete files written directly and
//! committed as row deltas through the snapshot producer, then compacted; the rows are compared
//! exactly (sorted text), against a row set computed here from the deletes written.

use std::collections::BTreeSet;

use floe_commit::{SnapshotChange, produce};
use floe_maintenance::{CompactOptions, MaintenanceError, compact, prepare_compaction};
use iceberg::spec::Operation;

mod common;

use common::Fixture;
use common::parts::{file_io, row, table};

fn options() -> CompactOptions {
    CompactOptions {
        target_file_size_bytes: Some(64 * 1024 * 1024),
        ..CompactOptions::default()
    }
}

/// Rows of `ids`, sorted as [`Fixture::rows`] returns them.
fn expected(ids: impl IntoIterator<Item = i64>) -> Vec<String> {
    let mut rows: Vec<String> = ids.into_iter().map(row).collect();
    rows.sort();
    rows
}

fn summary(metadata: &iceberg::spec::TableMetadata, key: &str) -> Option<String> {
    metadata
        .current_snapshot()?
        .summary()
        .additional_properties
        .get(key)
        .cloned()
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_applies_position_and_equality_deletes_and_drops_the_delete_files() {
    let t = table(true).await;
    for i in 0..4 {
        t.append(i * 12, i * 12 + 12).await;
    }
    let part0 = t.files_of_part(0).await;
    assert_eq!(part0.len(), 4);
    let first = t.ids_in_file(&part0[0]).await;
    let second = t.ids_in_file(&part0[1]).await;
    let positions = t
        .position_deletes(Some(0), &[(&part0[0], 0), (&part0[0], 2), (&part0[1], 1)])
        .await;
    // Partition 1 (ids 1, 4, 7, ...): an equality delete on id.
    let equality = t.equality_deletes(Some(1), &[1, 13, 25, 40]).await;
    let delete_paths = BTreeSet::from([
        positions.file_path().to_string(),
        equality.file_path().to_string(),
    ]);
    t.row_delta(vec![positions, equality]).await;
    // Re-inserted after the delete: a higher sequence number, so the delete does not apply.
    t.append_ids(&[13, 1000, 1001]).await;

    let deleted = [first[0], first[2], second[1], 1, 13, 25, 40];
    let want = expected(
        (0..48)
            .filter(|id| !deleted.contains(id))
            .chain([13, 1000, 1001]),
    );
    assert_eq!(want.len(), 51 - 7);
    assert_eq!(t.rows("s.t").await, want, "the reader applies the deletes");
    assert_eq!(t.live_delete_files().await, delete_paths);
    let pre = t.current_snapshot().await;
    let data_before = t.live_files().await;
    assert_eq!(data_before.len(), 14);

    let dry = compact(
        &t.catalog,
        &t.table,
        &CompactOptions {
            dry_run: true,
            ..options()
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.input_files, 14);
    assert_eq!(dry.applied_delete_files, 2);
    assert_eq!(dry.removed_delete_files, 2);
    assert_eq!(dry.snapshot_id, None);
    assert_eq!(t.current_snapshot().await, pre);
    assert_eq!(t.live_delete_files().await, delete_paths);

    let report = compact(&t.catalog, &t.table, &options()).await.unwrap();
    assert_eq!(report.bins, 3, "{report:?}");
    assert_eq!(report.input_files, 14);
    assert_eq!(report.input_records, 51);
    assert_eq!(report.output_records, 44);
    assert_eq!(report.output_files, 3);
    assert_eq!(report.applied_delete_files, 2);
    assert_eq!(report.removed_delete_files, 2);
    assert!(report.removed_delete_bytes > 0);
    assert_eq!(report.snapshot_id, Some(t.current_snapshot().await));

    assert_eq!(t.rows("s.t").await, want);
    assert!(t.live_delete_files().await.is_empty());
    assert!(t.live_files().await.is_disjoint(&data_before));
    let metadata = t.metadata().await;
    let snapshot = metadata.current_snapshot().unwrap();
    assert_eq!(snapshot.summary().operation, Operation::Replace);
    assert_eq!(
        summary(&metadata, "total-delete-files").as_deref(),
        Some("0")
    );
    assert_eq!(
        summary(&metadata, "removed-delete-files").as_deref(),
        Some("2")
    );
    assert_eq!(summary(&metadata, "total-records").as_deref(), Some("44"));
    // The pre-compaction snapshot still reads its files with its deletes.
    assert_eq!(t.rows(&format!("s.t FOR VERSION AS OF {pre}")).await, want);

    let again = compact(&t.catalog, &t.table, &options()).await.unwrap();
    assert_eq!(again.bins, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_files_still_needed_by_a_file_left_alone_are_kept() {
    let t = table(false).await;
    t.append(0, 3000).await;
    let big = t.live_files().await.into_iter().next().unwrap();
    let big_ids = t.ids_in_file(&big).await;
    for i in 0..4 {
        t.append(5000 + i * 3, 5000 + i * 3 + 3).await;
    }
    let small: Vec<String> = t
        .live_files()
        .await
        .into_iter()
        .filter(|f| *f != big)
        .collect();
    assert_eq!(small.len(), 4);
    let small0 = t.ids_in_file(&small[0]).await;
    let small1 = t.ids_in_file(&small[1]).await;
    let files = vec![
        // A global equality delete (unpartitioned spec): applies to the big file and small ones.
        t.equality_deletes(None, &[5, 5001]).await,
        // A position delete naming rows of the big file and of a small one.
        t.position_deletes(None, &[(&big, 7), (&small[0], 0)]).await,
        // A position delete naming a small file only.
        t.position_deletes(None, &[(&small[1], 1)]).await,
    ];
    let paths: Vec<String> = files.iter().map(|f| f.file_path().to_string()).collect();
    t.row_delta(files).await;

    let deleted = [5, 5001, big_ids[7], small0[0], small1[1]];
    let want = expected(
        (0..3000)
            .chain(5000..5012)
            .filter(|id| !deleted.contains(id)),
    );
    assert_eq!(t.rows("s.t").await, want);

    let big_size = file_io()
        .new_input(&big)
        .unwrap()
        .metadata()
        .await
        .unwrap()
        .size;
    let small_size: u64 = {
        let mut total = 0;
        for file in &small {
            total += file_io()
                .new_input(file)
                .unwrap()
                .metadata()
                .await
                .unwrap()
                .size;
        }
        total
    };
    assert!(small_size * 2 < big_size, "{small_size} vs {big_size}");
    // The big file is not small and its two deletes are below the threshold: left alone.
    let report = compact(
        &t.catalog,
        &t.table,
        &CompactOptions {
            target_file_size_bytes: Some(big_size),
            unchecked_target: true,
            min_input_files: Some(2),
            delete_file_threshold: Some(10),
            ..CompactOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.input_files, 4, "{report:?}");
    assert_eq!(report.applied_delete_files, 3);
    assert_eq!(report.removed_delete_files, 1);
    assert_eq!(t.rows("s.t").await, want);
    assert!(t.live_files().await.contains(&big));
    assert_eq!(
        t.live_delete_files().await,
        BTreeSet::from([paths[0].clone(), paths[1].clone()])
    );

    // With the default threshold the big file is rewritten too, and no delete is left.
    let report = compact(
        &t.catalog,
        &t.table,
        &CompactOptions {
            target_file_size_bytes: Some(big_size),
            unchecked_target: true,
            min_input_files: Some(2),
            ..CompactOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(report.input_files >= 1, "{report:?}");
    assert_eq!(report.removed_delete_files, 2);
    assert_eq!(t.rows("s.t").await, want);
    assert!(!t.live_files().await.contains(&big));
    assert!(t.live_delete_files().await.is_empty());
}

/// Six files of three rows and a position delete on the first: a merge-on-read table.
async fn six_files_with_a_delete() -> (Fixture, Vec<String>, i64) {
    let t = table(false).await;
    for i in 0..6 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let files: Vec<String> = t.live_files().await.into_iter().collect();
    let deleted = t.ids_in_file(&files[0]).await[0];
    let delete = t.position_deletes(None, &[(&files[0], 0)]).await;
    t.row_delta(vec![delete]).await;
    (t, files, deleted)
}

async fn assert_gave_up(t: &Fixture, err: MaintenanceError, reason: &str, want: &[String]) {
    assert!(matches!(err, MaintenanceError::Conflict(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("abandoned") && message.contains(reason),
        "{message}"
    );
    assert_eq!(t.rows("s.t").await, want);
    assert!(
        !t.files_on_disk()
            .await
            .iter()
            .any(|f| f.contains("/compact-")),
        "outputs left behind"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_added_meanwhile_for_an_input_makes_compaction_give_up_cleanly() {
    let (t, files, deleted) = six_files_with_a_delete().await;
    let prepared = prepare_compaction(&t.catalog, &t.table, &options())
        .await
        .unwrap();
    assert_eq!(prepared.report().input_files, 6);
    assert_eq!(prepared.report().applied_delete_files, 1);
    // A row delta deletes a row of an input between the write and the commit.
    let late = t.ids_in_file(&files[1]).await[1];
    let delete = t.position_deletes(None, &[(&files[1], 1)]).await;
    t.row_delta(vec![delete]).await;
    let snapshot = t.current_snapshot().await;
    let live = t.live_files().await;
    let deletes = t.live_delete_files().await;
    assert_eq!(deletes.len(), 2);

    let err = prepared.commit(&t.catalog).await.unwrap_err();
    let want = expected((0..18).filter(|id| *id != deleted && *id != late));
    assert_gave_up(&t, err, "added delete file", &want).await;
    assert_eq!(t.current_snapshot().await, snapshot);
    assert_eq!(t.live_files().await, live);
    assert_eq!(t.live_delete_files().await, deletes);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_input_removed_meanwhile_makes_compaction_give_up_cleanly() {
    let (t, files, deleted) = six_files_with_a_delete().await;
    let prepared = prepare_compaction(&t.catalog, &t.table, &options())
        .await
        .unwrap();
    // Another writer drops an input file whole.
    let gone = t.ids_in_file(&files[2]).await;
    let metadata = t.metadata().await;
    let produced = produce(
        &metadata,
        &file_io(),
        SnapshotChange::new(Operation::Delete).removing([files[2].clone()]),
    )
    .await
    .unwrap();
    t.catalog
        .commit_table(produced.into_table_change(t.table.clone()))
        .await
        .unwrap();
    let snapshot = t.current_snapshot().await;

    let err = prepared.commit(&t.catalog).await.unwrap_err();
    let want = expected((0..18).filter(|id| *id != deleted && !gone.contains(id)));
    assert_gave_up(&t, err, "was removed", &want).await;
    assert_eq!(t.current_snapshot().await, snapshot);
    assert_eq!(t.live_delete_files().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_and_a_delete_for_it_meanwhile_are_rebased_over_and_kept() {
    let (t, _files, deleted) = six_files_with_a_delete().await;
    let first_delete = t.live_delete_files().await;
    let prepared = prepare_compaction(&t.catalog, &t.table, &options())
        .await
        .unwrap();
    // Another writer appends a file and deletes a row of it: neither touches an input.
    t.append(100, 103).await;
    let mut appended = Vec::new();
    for file in t.live_files().await {
        if t.ids_in_file(&file).await.contains(&100) {
            appended.push(file);
        }
    }
    assert_eq!(appended.len(), 1);
    let late = t.ids_in_file(&appended[0]).await[2];
    let delete = t.position_deletes(None, &[(&appended[0], 2)]).await;
    let delete_path = delete.file_path().to_string();
    t.row_delta(vec![delete]).await;

    let report = prepared.commit(&t.catalog).await.unwrap();
    assert_eq!(report.attempts, 2, "{report:?}");
    assert_eq!(report.removed_delete_files, 1);
    assert_eq!(report.snapshot_id, Some(t.current_snapshot().await));
    let want = expected(
        (0..18)
            .chain(100..103)
            .filter(|id| *id != deleted && *id != late),
    );
    assert_eq!(t.rows("s.t").await, want);
    // The compacted input's delete is gone; the new file's delete stays with it.
    let live_deletes = t.live_delete_files().await;
    assert!(live_deletes.is_disjoint(&first_delete));
    assert_eq!(live_deletes, BTreeSet::from([delete_path]));
    let live = t.live_files().await;
    assert_eq!(live.len(), 2);
    assert!(live.contains(&appended[0]));
}

/// `floe sql` cuts a large file into byte ranges read on separate partitions (floe-sql's
/// `scan`): position deletes in every row group still apply, in whichever range holds the row,
/// and every other row is read once.
#[tokio::test(flavor = "multi_thread")]
async fn position_deletes_apply_to_every_range_of_a_split_file() {
    const ROWS: i64 = 2_200_000;
    let t = table(false).await;
    let session = t.session();
    // One writer, one file of three row groups (at most 1,048,576 rows each).
    session
        .run(&format!(
            "SET datafusion.execution.target_partitions = 1;
             INSERT INTO s.t SELECT value, concat('row-', value), value % 3 \
             FROM generate_series(0, {})",
            ROWS - 1
        ))
        .await
        .unwrap();
    let files: Vec<String> = t.live_files().await.into_iter().collect();
    assert_eq!(files.len(), 1);
    let ids = t.ids_in_file(&files[0]).await;
    let positions = [0, 1_048_575, 1_048_576, 1_100_000, ROWS - 1];
    let deletes: Vec<(&str, i64)> = positions.iter().map(|&p| (files[0].as_str(), p)).collect();
    let deleted: Vec<i64> = positions.iter().map(|&p| ids[p as usize]).collect();
    let deletes = t.position_deletes(None, &deletes).await;
    t.row_delta(vec![deletes]).await;

    let session = t.session();
    session
        .run("SET datafusion.execution.target_partitions = 2")
        .await
        .unwrap();
    let text = |sql: &str| {
        let session = &session;
        let sql = sql.to_string();
        async move {
            let batches: Vec<_> = session
                .run(&sql)
                .await
                .unwrap()
                .into_iter()
                .flatten()
                .collect();
            arrow::util::pretty::pretty_format_batches(&batches)
                .unwrap()
                .to_string()
        }
    };
    let plan = text("EXPLAIN SELECT id FROM s.t").await;
    assert!(plan.contains("partitions=2"), "{plan}");
    let counts = text("SELECT count(*) AS n, count(DISTINCT id) AS d FROM s.t").await;
    let left = ROWS - 5;
    assert!(counts.contains(&format!("| {left} | {left} |")), "{counts}");
    let list: Vec<String> = deleted.iter().map(i64::to_string).collect();
    let found = text(&format!(
        "SELECT count(*) AS n FROM s.t WHERE id IN ({})",
        list.join(", ")
    ))
    .await;
    assert!(
        found.contains("| 0 |"),
        "the deleted rows stay deleted: {found}"
    );
}
