//! Repairs on a real catalog in a temp dir: files of a table written with SQL are deleted or
//! damaged on disk, then `rollback` and `forget_missing_files` make it readable again, through the
//! real commit engine.

use std::path::PathBuf;

use floe_commit::Catalog;
use floe_maintenance::MaintenanceError;
use floe_maintenance::repair::{LOCAL_OPERATOR, RepairOptions, forget_missing_files, rollback};
use floe_store::AuditFilter;

mod common;

use common::Fixture;
use common::parts::{row, table};

fn dry_run() -> RepairOptions {
    RepairOptions::default()
}

fn apply() -> RepairOptions {
    RepairOptions {
        apply: true,
        ..RepairOptions::default()
    }
}

fn local_path(location: &str) -> PathBuf {
    url::Url::parse(location).unwrap().to_file_path().unwrap()
}

async fn pointer(t: &Fixture) -> String {
    t.catalog
        .table_pointer(&t.table)
        .await
        .unwrap()
        .metadata_location
}

/// Rows of `s.t` through a fresh engine, sorted, as `common::parts::row` prints them.
async fn rows_from_fresh_engine(t: &Fixture) -> Vec<String> {
    t.reopened().await.rows("s.t").await
}

async fn audited_routes(catalog: &Catalog) -> Vec<(String, String, String)> {
    catalog
        .store()
        .access()
        .list_audit(&AuditFilter::default(), 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.principal, r.route, r.target))
        .collect()
}

/// Two appends; the second's metadata file is then damaged by `damage`. A rollback restores the
/// first append's metadata, reports the second commit lost, and the table loads and takes commits
/// again.
async fn rolls_back_damaged_metadata(damage: impl FnOnce(&PathBuf), expected_problem: &str) {
    let t = table(false).await;
    t.append(0, 3).await;
    let first = pointer(&t).await;
    let first_snapshot = t.current_snapshot().await;
    t.append(3, 6).await;
    let second_snapshot = t.current_snapshot().await;
    let damaged = pointer(&t).await;
    damage(&local_path(&damaged));

    let plan = rollback(&t.catalog, &t.table, &dry_run()).await.unwrap();
    assert!(!plan.applied);
    assert_eq!(plan.damaged, damaged);
    assert!(
        plan.problem
            .as_deref()
            .unwrap()
            .starts_with(expected_problem),
        "{:?}",
        plan.problem
    );
    assert_eq!(plan.restored, first);
    assert_eq!(plan.restored_snapshot_id, Some(first_snapshot));
    assert_eq!(
        plan.lost_versions,
        vec![2],
        "create=0, first append=1, second=2"
    );
    assert_eq!(
        plan.lost_snapshots
            .iter()
            .map(|s| s.snapshot_id)
            .collect::<Vec<_>>(),
        vec![second_snapshot]
    );
    assert_eq!(plan.lost_snapshots[0].sequence_number, Some(2));
    assert_eq!(pointer(&t).await, damaged, "a dry run changes nothing");
    assert!(audited_routes(&t.catalog).await.is_empty());
    assert!(
        t.reopened()
            .await
            .catalog
            .load_table(&t.table)
            .await
            .is_err(),
        "the damaged table does not load"
    );

    let done = rollback(&t.catalog, &t.table, &apply()).await.unwrap();
    assert!(done.applied);
    assert_eq!(pointer(&t).await, first);
    assert_eq!(
        rows_from_fresh_engine(&t).await,
        (0..3).map(row).collect::<Vec<_>>()
    );
    assert_eq!(
        audited_routes(&t.catalog).await,
        vec![(
            LOCAL_OPERATOR.to_string(),
            "floe repair --rollback".to_string(),
            "main/s.t".to_string()
        )]
    );
    // The table takes commits again, on top of the restored state.
    t.append(10, 11).await;
    let mut expected: Vec<String> = (0..3).chain(10..11).map(row).collect();
    expected.sort();
    assert_eq!(rows_from_fresh_engine(&t).await, expected);
}

#[tokio::test]
async fn rollback_restores_the_previous_version_of_a_deleted_metadata_file() {
    rolls_back_damaged_metadata(|path| std::fs::remove_file(path).unwrap(), "missing").await;
}

#[tokio::test]
async fn rollback_restores_the_previous_version_of_a_corrupt_metadata_file() {
    rolls_back_damaged_metadata(
        |path| std::fs::write(path, b"{\"format-version\": 2, \"tab").unwrap(),
        "not table metadata",
    )
    .await;
}

#[tokio::test]
async fn rollback_refuses_an_intact_table_unless_forced() {
    let t = table(false).await;
    t.append(0, 3).await;
    let first = pointer(&t).await;
    t.append(3, 6).await;
    let current = pointer(&t).await;

    let refused = rollback(&t.catalog, &t.table, &apply()).await.unwrap_err();
    assert!(
        matches!(refused, MaintenanceError::InvalidRequest(ref m) if m.contains("intact")),
        "{refused}"
    );
    assert_eq!(pointer(&t).await, current);

    let forced = RepairOptions {
        force: true,
        ..apply()
    };
    let report = rollback(&t.catalog, &t.table, &forced).await.unwrap();
    assert_eq!(report.restored, first);
    assert_eq!(report.problem, None);
    assert_eq!(report.lost_snapshots.len(), 1);
    assert_eq!(pointer(&t).await, first);
    assert_eq!(t.rows("s.t").await, (0..3).map(row).collect::<Vec<_>>());
}

/// Three appends of rows 0..9 into a table partitioned by `id % 3`: nine files. One is deleted
/// and one truncated; forgetting them makes the table scan again, with exactly the other files'
/// rows.
#[tokio::test]
async fn forget_missing_files_makes_the_table_readable_with_the_other_files_rows() {
    let t = table(true).await;
    for i in 0..3 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let lost = t.files_of_part(1).await;
    assert_eq!(lost.len(), 3);
    let lost_ids: Vec<i64> = t.ids_in_file(&lost[0]).await;
    let damaged_ids: Vec<i64> = t.ids_in_file(&lost[1]).await;
    std::fs::remove_file(local_path(&lost[0])).unwrap();
    let truncated = local_path(&lost[1]);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(
        t.session().run("SELECT * FROM s.t").await.is_err(),
        "a scan reaching a missing file fails"
    );
    let before = t.current_snapshot().await;

    let plan = forget_missing_files(&t.catalog, &t.table, &dry_run())
        .await
        .unwrap();
    assert!(!plan.applied);
    assert_eq!(plan.files_checked, 9);
    let mut expected_missing = vec![lost[0].clone(), lost[1].clone()];
    expected_missing.sort();
    assert_eq!(
        plan.missing
            .iter()
            .map(|f| f.location.clone())
            .collect::<Vec<_>>(),
        expected_missing
    );
    let deleted = plan.missing.iter().find(|f| f.location == lost[0]).unwrap();
    assert_eq!(deleted.found_size, None);
    let cut = plan.missing.iter().find(|f| f.location == lost[1]).unwrap();
    assert_eq!(cut.found_size, Some((bytes.len() / 2) as u64));
    assert_eq!(plan.records_lost(), 2);
    assert_eq!(
        plan.partitions_affected().into_iter().collect::<Vec<_>>(),
        vec![("part=1".to_string(), 2)]
    );
    assert_eq!(
        t.current_snapshot().await,
        before,
        "a dry run commits nothing"
    );

    let done = forget_missing_files(&t.catalog, &t.table, &apply())
        .await
        .unwrap();
    assert!(done.applied);
    let snapshot = done.snapshot_id.unwrap();
    let metadata = t.metadata().await;
    assert_eq!(metadata.current_snapshot_id(), Some(snapshot));
    let summary = metadata.snapshot_by_id(snapshot).unwrap().summary();
    assert_eq!(
        summary
            .additional_properties
            .get("floe.repair")
            .map(String::as_str),
        Some("forget-missing-files")
    );
    assert_eq!(t.live_files().await.len(), 7);
    let mut expected: Vec<String> = (0..9)
        .filter(|id| !lost_ids.contains(id) && !damaged_ids.contains(id))
        .map(row)
        .collect();
    expected.sort();
    assert_eq!(t.rows("s.t").await, expected);
    assert_eq!(
        audited_routes(&t.catalog).await,
        vec![(
            LOCAL_OPERATOR.to_string(),
            "floe repair --forget-missing-files".to_string(),
            "main/s.t".to_string()
        )]
    );

    let again = forget_missing_files(&t.catalog, &t.table, &apply())
        .await
        .unwrap();
    assert!(again.missing.is_empty(), "nothing left to forget");
    assert_eq!(again.snapshot_id, None);
}

/// The newest readable file wins: an unreadable older one is passed over too, and a file numbered
/// above the pointer's (never committed) is never restored.
#[tokio::test]
async fn rollback_passes_over_unreadable_and_uncommitted_metadata_files() {
    let t = table(false).await;
    t.append(0, 3).await;
    let first = pointer(&t).await;
    t.append(3, 6).await;
    let second = pointer(&t).await;
    t.append(6, 9).await;
    let third = pointer(&t).await;
    // A writer that crashed after writing version 4 and before its swap left this behind.
    let stray = third.replace("/00003-", "/00004-");
    assert_ne!(stray, third);
    std::fs::copy(local_path(&third), local_path(&stray)).unwrap();
    std::fs::remove_file(local_path(&third)).unwrap();
    std::fs::write(local_path(&second), b"").unwrap();

    let report = rollback(&t.catalog, &t.table, &apply()).await.unwrap();
    assert_eq!(report.restored, first);
    assert_eq!(report.lost_versions, vec![2, 3]);
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.location.as_str()).collect();
    assert_eq!(skipped, vec![stray.as_str(), second.as_str()]);
    assert!(report.skipped[0].problem.contains("never committed"));
    assert!(report.skipped[1].problem.starts_with("not table metadata"));
    assert_eq!(report.lost_snapshots.len(), 2);
    assert_eq!(
        rows_from_fresh_engine(&t).await,
        (0..3).map(row).collect::<Vec<_>>()
    );

    // Back to the empty table the create wrote, then nothing intact is left: refused, naming
    // what it passed over.
    std::fs::remove_file(local_path(&first)).unwrap();
    let report = rollback(&t.catalog, &t.table, &apply()).await.unwrap();
    assert!(report.restored.contains("/00000-"), "{}", report.restored);
    assert_eq!(report.restored_snapshot_id, None);
    assert!(rows_from_fresh_engine(&t).await.is_empty());
    let created = report.restored;
    std::fs::remove_file(local_path(&created)).unwrap();
    let err = rollback(&t.catalog, &t.table, &apply()).await.unwrap_err();
    assert!(
        matches!(&err, MaintenanceError::InvalidRequest(m)
            if m.contains("no intact metadata file") && m.contains("never committed")),
        "{err}"
    );
    assert_eq!(
        pointer(&t).await,
        created,
        "a refused rollback moves nothing"
    );
}

/// A lost position delete file is forgotten in an `overwrite` snapshot: the rows it deleted are
/// visible again, and the report lists it with no rows lost.
#[tokio::test]
async fn forgetting_a_lost_delete_file_brings_its_rows_back() {
    let t = table(false).await;
    t.append(0, 4).await;
    let data = t.live_files().await.into_iter().next().unwrap();
    let deletes = t.position_deletes(None, &[(data.as_str(), 1)]).await;
    let delete_path = deletes.file_path().to_string();
    t.row_delta(vec![deletes]).await;
    let deleted_id = t.ids_in_file(&data).await[1];
    assert_eq!(t.rows("s.t").await.len(), 3);
    std::fs::remove_file(local_path(&delete_path)).unwrap();

    let done = forget_missing_files(&t.catalog, &t.table, &apply())
        .await
        .unwrap();
    assert_eq!(done.missing.len(), 1);
    assert_eq!(done.missing[0].location, delete_path);
    assert_eq!(done.missing[0].content, "position-deletes");
    assert_eq!(done.records_lost(), 0);
    let metadata = t.metadata().await;
    let snapshot = metadata.current_snapshot().unwrap();
    assert_eq!(
        snapshot.summary().operation,
        iceberg::spec::Operation::Overwrite
    );
    assert!(t.live_delete_files().await.is_empty());
    let mut expected: Vec<String> = (0..4).map(row).collect();
    expected.sort();
    assert_eq!(t.rows("s.t").await, expected);
    assert!(expected.contains(&row(deleted_id)));
}
