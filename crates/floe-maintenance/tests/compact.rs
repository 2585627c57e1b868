//! Bin-pack compaction on a real catalog in a temp dir: tables of many small files written with
//! SQL, compacted, then checked row by row (a checksum of the sorted rows), file by file, and
//! against concurrent writers.

use floe_commit::open::OpenOptions;
use floe_maintenance::{CompactOptions, MaintenanceError, Strategy, compact, prepare_compaction};
use floe_sql::Session;

mod common;

use common::parts::{file_io, table};

fn options() -> CompactOptions {
    CompactOptions {
        target_file_size_bytes: Some(64 * 1024 * 1024),
        ..CompactOptions::default()
    }
}

/// `appends` appends of 3 rows each: one file per append and partition touched.
async fn compacts_many_small_files(partitioned: bool, appends: i64) {
    let t = table(partitioned).await;
    for i in 0..appends {
        t.append(i * 3, i * 3 + 3).await;
    }
    let before = t.live_files().await;
    let files_per_partition = if partitioned { 3 } else { 1 };
    let appends = usize::try_from(appends).unwrap();
    assert_eq!(before.len(), appends * files_per_partition);
    let checksum = t.checksum("s.t").await;
    assert_eq!(checksum.0, appends * 3);
    let pre = t.current_snapshot().await;

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
    assert_eq!(dry.bins, files_per_partition);
    assert_eq!(dry.input_files, before.len());
    assert_eq!(dry.snapshot_id, None);
    assert_eq!(t.current_snapshot().await, pre);

    let report = compact(&t.catalog, &t.table, &options()).await.unwrap();
    assert_eq!(report.bins, files_per_partition);
    assert_eq!(report.input_files, appends * files_per_partition);
    assert_eq!(report.output_files, files_per_partition);
    assert_eq!(report.attempts, 1);
    assert_eq!(report.snapshot_id, Some(t.current_snapshot().await));

    let after = t.live_files().await;
    assert_eq!(after.len(), files_per_partition);
    assert!(after.is_disjoint(&before));
    assert_eq!(t.checksum("s.t").await, checksum);
    // Time travel still reads the old files.
    assert_eq!(
        t.checksum(&format!("s.t FOR VERSION AS OF {pre}")).await,
        checksum
    );
    let loaded = t.catalog.load_table(&t.table).await.unwrap();
    let snapshot = loaded.metadata().current_snapshot().unwrap();
    assert_eq!(
        snapshot.summary().operation,
        iceberg::spec::Operation::Replace
    );

    // Nothing left to do.
    let again = compact(&t.catalog, &t.table, &options()).await.unwrap();
    assert_eq!(again.bins, 0);
    assert_eq!(again.snapshot_id, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_of_an_unpartitioned_table_keeps_every_row_in_one_file() {
    compacts_many_small_files(false, 60).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_of_500_small_files_keeps_every_row_and_writes_one_file_per_partition() {
    // 170 appends over 3 partitions: 510 small files, as the maintenance issue asks.
    compacts_many_small_files(true, 170).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_target_makes_several_bins_and_partitions_below_the_minimum_are_left_alone() {
    let t = table(false).await;
    for i in 0..12 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let checksum = t.checksum("s.t").await;
    let sizes: u64 = {
        let loaded = t.catalog.load_table(&t.table).await.unwrap();
        loaded
            .metadata()
            .current_snapshot()
            .unwrap()
            .summary()
            .additional_properties["total-files-size"]
            .parse()
            .unwrap()
    };
    // About four files per bin.
    let target = sizes / 12 * 4 + sizes / 24;
    let refused = compact(
        &t.catalog,
        &t.table,
        &CompactOptions {
            target_file_size_bytes: Some(target),
            ..CompactOptions::default()
        },
    )
    .await;
    assert!(matches!(refused, Err(MaintenanceError::InvalidRequest(_))));
    let too_few = compact(
        &t.catalog,
        &t.table,
        &CompactOptions {
            min_input_files: Some(13),
            ..options()
        },
    )
    .await
    .unwrap();
    assert_eq!(too_few.bins, 0);

    let report = compact(
        &t.catalog,
        &t.table,
        &CompactOptions {
            target_file_size_bytes: Some(target),
            unchecked_target: true,
            ..CompactOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(report.bins >= 3, "{report:?}");
    assert_eq!(report.input_files, 12);
    assert_eq!(t.live_files().await.len(), report.output_files);
    assert!(report.output_files < 12);
    assert_eq!(t.checksum("s.t").await, checksum);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_append_is_rebased_over_and_kept() {
    let t = table(true).await;
    for i in 0..10 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let prepared = prepare_compaction(&t.catalog, &t.table, &options())
        .await
        .unwrap();
    assert_eq!(prepared.report().input_files, 30);
    // Another writer appends between the write and the commit.
    t.append(1000, 1006).await;
    let appended = t.live_files().await;
    let report = prepared.commit(&t.catalog).await.unwrap();
    assert_eq!(report.attempts, 2);
    assert_eq!(report.snapshot_id, Some(t.current_snapshot().await));

    let expected: Vec<String> = {
        let mut rows: Vec<String> = (0..30)
            .chain(1000..1006)
            .map(|id| format!("{id}|row-{id}|{}", id % 3))
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(t.rows("s.t").await, expected);
    // The appender's 3 files stay, next to one output per partition.
    let live = t.live_files().await;
    assert_eq!(live.len(), 6);
    assert_eq!(live.intersection(&appended).count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_racing_an_appender_loses_no_row() {
    let t = table(false).await;
    for i in 0..20 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let catalog = t.catalog.clone();
    let table = t.table.clone();
    let compaction = tokio::spawn(async move { compact(&catalog, &table, &options()).await });
    for i in 100..110 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let report = compaction.await.unwrap().unwrap();
    assert!(report.input_files >= 20, "{report:?}");
    assert!(report.snapshot_id.is_some());
    let mut expected: Vec<String> = (0..60)
        .chain(300..330)
        .map(|id| format!("{id}|row-{id}|{}", id % 3))
        .collect();
    expected.sort();
    assert_eq!(t.rows("s.t").await, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overwrite_removing_an_input_makes_compaction_give_up_cleanly() {
    let t = table(false).await;
    for i in 0..10 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let prepared = prepare_compaction(&t.catalog, &t.table, &options())
        .await
        .unwrap();
    assert_eq!(prepared.report().input_files, 10);
    // A copy-on-write delete through a second engine on the same data dir: it rewrites an input.
    Session::open_embedded(&OpenOptions::new(t.data_dir()))
        .await
        .unwrap()
        .run("DELETE FROM s.t WHERE id = 4")
        .await
        .unwrap();
    let after_delete = t.current_snapshot().await;
    let live = t.live_files().await;
    let rows = t.rows("s.t").await;

    let err = prepared.commit(&t.catalog).await.unwrap_err();
    assert!(matches!(err, MaintenanceError::Conflict(_)), "{err}");
    assert!(err.to_string().contains("abandoned"), "{err}");
    assert_eq!(t.current_snapshot().await, after_delete);
    assert_eq!(t.live_files().await, live);
    assert_eq!(t.rows("s.t").await, rows);
    assert_eq!(rows.len(), 29);
    assert!(!rows.iter().any(|r| r.starts_with("4|")));
    // The compaction's own outputs are gone.
    assert!(
        !t.files_on_disk()
            .await
            .iter()
            .any(|f| f.contains("/compact-")),
        "outputs left behind"
    );
}

/// Makes `field` (`Transform`ed) the table's default sort order, descending, nulls last.
async fn set_sort_order(t: &common::Fixture, field: &str, transform: iceberg::spec::Transform) {
    use iceberg::spec::{NullOrder, SortDirection, SortField, SortOrder};
    let metadata = t.metadata().await;
    let source_id = metadata.current_schema().field_id_by_name(field).unwrap();
    let order = SortOrder::builder()
        .with_order_id(1)
        .with_sort_field(
            SortField::builder()
                .source_id(source_id)
                .transform(transform)
                .direction(SortDirection::Descending)
                .null_order(NullOrder::Last)
                .build(),
        )
        .build_unbound()
        .unwrap();
    t.catalog
        .commit_table(floe_commit::TableChange {
            table: t.table.clone(),
            requirements: vec![],
            updates: vec![
                iceberg::TableUpdate::AddSortOrder { sort_order: order },
                iceberg::TableUpdate::SetDefaultSortOrder { sort_order_id: -1 },
            ],
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sort_compaction_writes_each_partition_in_the_tables_sort_order() {
    let t = table(true).await;
    // Ids in a scrambled order: every file holds a mix.
    for i in 0..12 {
        let ids: Vec<i64> = (0..5).map(|j| ((i * 5 + j) * 7) % 60).collect();
        t.append_ids(&ids).await;
    }
    let checksum = t.checksum("s.t").await;
    assert_eq!(checksum.0, 60);
    let sort = CompactOptions {
        strategy: Strategy::Sort,
        ..options()
    };
    let err = compact(&t.catalog, &t.table, &sort).await.unwrap_err();
    assert!(
        matches!(&err, MaintenanceError::InvalidRequest(m) if m.contains("no sort order")),
        "{err}"
    );
    set_sort_order(&t, "id", iceberg::spec::Transform::Bucket(4)).await;
    let err = compact(&t.catalog, &t.table, &sort).await.unwrap_err();
    assert!(
        matches!(&err, MaintenanceError::InvalidRequest(m) if m.contains("only identity")),
        "{err}"
    );
    set_sort_order(&t, "id", iceberg::spec::Transform::Identity).await;
    let order_id = t.metadata().await.default_sort_order_id();

    let report = compact(&t.catalog, &t.table, &sort).await.unwrap();
    assert_eq!(report.input_files, 36, "{report:?}");
    assert_eq!(report.output_files, 3);
    assert_eq!(t.checksum("s.t").await, checksum);
    for file in t.live_files().await {
        let ids = t.ids_in_file(&file).await;
        assert_eq!(ids.len(), 20);
        let mut descending = ids.clone();
        descending.sort_by(|a, b| b.cmp(a));
        assert_eq!(ids, descending, "{file} is not in the sort order");
    }
    // The outputs record the sort order they are written in.
    let metadata = t.metadata().await;
    for manifest in t.manifests(&metadata).await {
        let loaded = manifest.load_manifest(&file_io()).await.unwrap();
        for entry in loaded.entries().iter().filter(|e| e.is_alive()) {
            assert_eq!(
                entry.data_file().sort_order_id(),
                Some(i32::try_from(order_id).unwrap())
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_progress_commits_one_chunk_of_bins_at_a_time() {
    let t = table(true).await;
    for i in 0..8 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let checksum = t.checksum("s.t").await;
    let before = t.current_snapshot().await;
    // Any limit below one partition's bin: one bin (one partition) per commit.
    let report = compact(
        &t.catalog,
        &t.table,
        &CompactOptions {
            max_commit_bytes: Some(1),
            ..options()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.commits, 3, "{report:?}");
    assert_eq!(report.bins, 3);
    assert_eq!(report.input_files, 24);
    assert_eq!(report.output_files, 3);
    assert_eq!(t.live_files().await.len(), 3);
    assert_eq!(t.checksum("s.t").await, checksum);
    // Three replace snapshots on top of the last append, each its own commit.
    let loaded = t.catalog.load_table(&t.table).await.unwrap();
    let metadata = loaded.metadata();
    let mut snapshot = metadata.current_snapshot().unwrap().clone();
    for _ in 0..3 {
        assert_eq!(
            snapshot.summary().operation,
            iceberg::spec::Operation::Replace
        );
        let parent = snapshot.parent_snapshot_id().unwrap();
        snapshot = metadata.snapshot_by_id(parent).unwrap().clone();
    }
    assert_eq!(snapshot.snapshot_id(), before);
}

/// Morton key of two small non-negative numbers, `first`'s bit before `second`'s at every level:
/// an independent check of the order compaction writes.
fn morton(first: u64, second: u64) -> u64 {
    (0..16).rev().fold(0, |key, bit| {
        (key << 2) | (((first >> bit) & 1) << 1) | ((second >> bit) & 1)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn zorder_compaction_lays_rows_along_the_morton_curve() {
    let t = table(false).await;
    for i in 0..12 {
        let ids: Vec<i64> = (0..5).map(|j| ((i * 5 + j) * 7) % 60).collect();
        t.append_ids(&ids).await;
    }
    let checksum = t.checksum("s.t").await;
    let zorder = |columns: &[&str]| CompactOptions {
        strategy: Strategy::ZOrder,
        zorder_columns: columns.iter().map(|c| c.to_string()).collect(),
        ..options()
    };
    for (columns, expected) in [
        (&["id"][..], "two or more"),
        (&["id", "nope"][..], "no top-level column \"nope\""),
    ] {
        let err = compact(&t.catalog, &t.table, &zorder(columns))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
    let report = compact(&t.catalog, &t.table, &zorder(&["part", "id"]))
        .await
        .unwrap();
    assert_eq!((report.input_files, report.output_files), (12, 1));
    assert_eq!(t.checksum("s.t").await, checksum);
    let file = t.live_files().await.into_iter().next().unwrap();
    let ids = t.ids_in_file(&file).await;
    assert_eq!(ids.len(), 60);
    let keys: Vec<u64> = ids
        .iter()
        .map(|id| morton((id % 3) as u64, *id as u64))
        .collect();
    assert!(keys.windows(2).all(|pair| pair[0] <= pair[1]), "{ids:?}");
    assert_ne!(ids, (0..60).collect::<Vec<_>>(), "not simply by id");
}
