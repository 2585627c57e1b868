//! Getting a catalog back: maintenance deletes nothing while a backup holds its lease, and a
//! catalog rebuilt from the warehouse alone (`recover_from_storage`) holds every table at its
//! last committed state.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use floe_commit::CommitError;
use floe_commit::open::{OpenOptions, open};
use floe_maintenance::recover::{EntryKind, RecoverOptions, recover_from_storage};
use floe_maintenance::{ExpireOptions, OrphanOptions, expire_snapshots, remove_orphan_files};
use floe_store::TableName;
use floe_store::backup::BACKUP_LEASE;

mod common;

use common::Fixture;

fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                out.insert(entry.path());
            }
        }
    }
    out
}

async fn rows(t: &Fixture, sql: &str) -> Vec<String> {
    let batches = t.sql(sql).await;
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    text.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn while_a_backup_holds_its_lease_maintenance_and_purge_delete_nothing() {
    let t = Fixture::with_table("CREATE TABLE s.t (id BIGINT NOT NULL)").await;
    for id in 1..=4 {
        t.sql(&format!("INSERT INTO s.t VALUES ({id})")).await;
    }
    let dir = t.data_dir().join("warehouse");
    let store = t.catalog.store();
    assert!(!t.catalog.backup_in_progress().await.unwrap());
    assert!(
        store
            .try_acquire_lease(BACKUP_LEASE, "test backup", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(t.catalog.backup_in_progress().await.unwrap());
    let before = files_under(&dir);

    let expiry = expire_snapshots(
        &t.catalog,
        &t.table,
        &ExpireOptions {
            older_than: Some(Duration::ZERO),
            retain_last: Some(1),
            ..ExpireOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(expiry.expired_snapshots.len(), 3, "{expiry:?}");
    assert!(expiry.held_for_backup);
    assert!(expiry.deleted_files.is_empty());

    let orphan = t
        .data_dir()
        .join("warehouse")
        .join(files_under(&dir).iter().next().unwrap().parent().unwrap())
        .join("left-behind.parquet");
    std::fs::write(&orphan, b"orphan").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3 * 24 * 3600))
        .unwrap();
    let orphans = remove_orphan_files(&t.catalog, &t.table, &OrphanOptions::default())
        .await
        .unwrap();
    assert!(orphans.held_for_backup);
    assert!(orphans.deleted_files.is_empty());

    match t.catalog.drop_table(&t.table, true).await {
        Err(CommitError::Unavailable(message)) => assert!(message.contains("backup"), "{message}"),
        other => panic!("expected the purge to wait for the backup, got {other:?}"),
    }
    // Nothing was deleted, and the table was not dropped either.
    let after = files_under(&dir);
    assert!(
        before.is_subset(&after),
        "deleted: {:?}",
        before.difference(&after)
    );
    assert!(orphan.exists());
    assert_eq!(rows(&t, "SELECT count(*) AS n FROM s.t").await[3], "| 4 |");

    // Once the backup is done the same jobs delete again.
    store
        .release_lease(BACKUP_LEASE, "test backup")
        .await
        .unwrap();
    let orphans = remove_orphan_files(&t.catalog, &t.table, &OrphanOptions::default())
        .await
        .unwrap();
    assert!(!orphans.held_for_backup);
    assert!(!orphans.deleted_files.is_empty());
    assert!(!orphan.exists());
}

#[tokio::test]
async fn a_catalog_rebuilt_from_storage_holds_every_table_at_its_last_commit() {
    let t = Fixture::with_table("CREATE TABLE s.t (id BIGINT NOT NULL, name VARCHAR)").await;
    t.sql("INSERT INTO s.t VALUES (1, 'a'), (2, 'b')").await;
    t.sql("INSERT INTO s.t VALUES (3, 'c')").await;
    t.sql("CREATE SCHEMA s2").await;
    t.sql("CREATE TABLE s2.other (x BIGINT)").await;
    t.sql("INSERT INTO s2.other VALUES (10), (20)").await;
    // A table dropped without purging leaves its folder behind under the same name as a later
    // table: ambiguous.
    t.sql("CREATE TABLE s2.again (x BIGINT)").await;
    t.sql("INSERT INTO s2.again VALUES (1)").await;
    t.catalog
        .drop_table(&TableName::new(vec!["s2".into()], "again"), false)
        .await
        .unwrap();
    t.sql("CREATE TABLE s2.again (x BIGINT)").await;
    t.sql("INSERT INTO s2.again VALUES (2)").await;

    let mut expected = Vec::new();
    for name in [("s", "t"), ("s2", "other"), ("s2", "again")] {
        let table = TableName::new(vec![name.0.to_string()], name.1);
        let loaded = t.catalog.load_table(&table).await.unwrap();
        expected.push((table, loaded.metadata_location.clone().unwrap()));
    }
    let rows_t = rows(&t, "SELECT * FROM s.t ORDER BY id").await;

    // The catalog is lost; the warehouse is not.
    let data_dir = t.data_dir();
    let fresh_dir = tempfile::tempdir().unwrap();
    let mut options = OpenOptions::new(fresh_dir.path().join("data"));
    let warehouse = data_dir.join("warehouse").canonicalize().unwrap();
    options.warehouse_url = Some(
        url::Url::from_directory_path(&warehouse)
            .unwrap()
            .to_string(),
    );
    let fresh = open(&options).await.unwrap();

    let dry = recover_from_storage(
        &fresh,
        &RecoverOptions {
            dry_run: true,
            pick_newest: false,
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.recovered.len(), 2, "{dry:?}");
    assert!(
        fresh
            .list_namespaces(None, &Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let report = recover_from_storage(&fresh, &RecoverOptions::default())
        .await
        .unwrap();
    assert_eq!(report.recovered.len(), 2, "{report:?}");
    assert!(
        report
            .recovered
            .iter()
            .all(|entry| entry.kind == EntryKind::Table)
    );
    assert_eq!(report.ambiguous.len(), 1, "{report:?}");
    assert_eq!(report.ambiguous[0].candidates.len(), 2);
    for (table, metadata_location) in &expected[..2] {
        let loaded = fresh.load_table(table).await.unwrap();
        assert_eq!(loaded.metadata_location.as_ref(), Some(metadata_location));
    }
    assert!(matches!(
        fresh.load_table(&expected[2].0).await,
        Err(CommitError::TableNotFound(_))
    ));

    // Told to, it takes the newest of the two.
    let again = recover_from_storage(
        &fresh,
        &RecoverOptions {
            dry_run: false,
            pick_newest: true,
        },
    )
    .await
    .unwrap();
    assert_eq!(again.already_present.len(), 2, "{again:?}");
    assert_eq!(again.recovered.len(), 1);
    let loaded = fresh.load_table(&expected[2].0).await.unwrap();
    assert_eq!(loaded.metadata_location.as_ref(), Some(&expected[2].1));

    let session = floe_sql::Session::new(Arc::new(floe_sql::EmbeddedCatalog::new(Arc::new(fresh))));
    let batches: Vec<_> = session
        .run("SELECT * FROM s.t ORDER BY id")
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .collect();
    let text = arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    assert_eq!(text.lines().map(str::to_string).collect::<Vec<_>>(), rows_t);
}
