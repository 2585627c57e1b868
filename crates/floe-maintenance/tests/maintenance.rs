//! Snapshot expiry and unreferenced-file removal on a real catalog in a temp dir: tables written
//! with SQL (`floe-sql` over the commit engine, iceberg-rust's writers and fast append), then
//! maintained, then checked file by file against the warehouse listing.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};

use arrow::array::Int64Array;
use floe_commit::TableChange;
use floe_maintenance::{
    ExpireOptions, MaintenanceError, OrphanOptions, expire_snapshots, remove_orphan_files,
};
use iceberg::TableUpdate;
use iceberg::spec::{SnapshotReference, SnapshotRetention};

mod common;

use common::Fixture;

async fn table() -> Fixture {
    Fixture::with_table("CREATE TABLE s.t (id BIGINT NOT NULL, name VARCHAR)").await
}

impl Fixture {
    /// Inserts one row; returns the new snapshot's id and the files the insert added (all but
    /// the metadata file).
    async fn insert(&self, id: i64) -> (i64, BTreeSet<String>) {
        let before = self.files().await;
        self.sql(&format!("INSERT INTO s.t VALUES ({id}, 'row-{id}')"))
            .await;
        let added = self
            .files()
            .await
            .difference(&before)
            .filter(|file| !file.ends_with(".metadata.json"))
            .cloned()
            .collect();
        (self.current_snapshot().await, added)
    }

    async fn ids(&self) -> Vec<i64> {
        let batches = self
            .session()
            .run("SELECT id FROM s.t ORDER BY id")
            .await
            .unwrap();
        batches
            .iter()
            .flatten()
            .flat_map(|batch| {
                batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    async fn location(&self) -> String {
        let loaded = self.catalog.load_table(&self.table).await.unwrap();
        loaded.metadata().location().to_string()
    }

    /// Every file under the table's location.
    async fn files(&self) -> BTreeSet<String> {
        let location = self.location().await;
        self.catalog
            .warehouse()
            .list_under(&location)
            .await
            .unwrap()
            .into_iter()
            .collect()
    }

    async fn snapshot_ids(&self) -> BTreeSet<i64> {
        let loaded = self.catalog.load_table(&self.table).await.unwrap();
        loaded
            .metadata()
            .snapshots()
            .map(|s| s.snapshot_id())
            .collect()
    }

    async fn manifest_list(&self, snapshot: i64) -> String {
        let loaded = self.catalog.load_table(&self.table).await.unwrap();
        let snapshot = loaded.metadata().snapshot_by_id(snapshot).unwrap();
        let location = snapshot.manifest_list().to_string();
        // Compare as the listing spells it.
        let path = self.catalog.warehouse().object_path(&location).unwrap();
        format!("{}/{}", self.catalog.warehouse().root(), path)
    }

    async fn update(&self, updates: Vec<TableUpdate>) {
        self.catalog
            .commit_table(TableChange {
                table: self.table.clone(),
                requirements: vec![],
                updates,
            })
            .await
            .unwrap();
    }

    async fn set_ref(&self, name: &str, snapshot: i64, retention: SnapshotRetention) {
        self.update(vec![TableUpdate::SetSnapshotRef {
            ref_name: name.to_string(),
            reference: SnapshotReference::new(snapshot, retention),
        }])
        .await;
    }

    async fn has_ref(&self, name: &str) -> bool {
        let loaded = self.catalog.load_table(&self.table).await.unwrap();
        loaded.metadata().snapshot_for_ref(name).is_some()
    }
}

fn tag(max_ref_age_ms: Option<i64>) -> SnapshotRetention {
    SnapshotRetention::Tag { max_ref_age_ms }
}

fn main_branch() -> SnapshotRetention {
    SnapshotRetention::Branch {
        min_snapshots_to_keep: None,
        max_snapshot_age_ms: None,
        max_ref_age_ms: None,
    }
}

fn expire_all_old(dry_run: bool) -> ExpireOptions {
    ExpireOptions {
        older_than: Some(Duration::ZERO),
        retain_last: None,
        dry_run,
        ..ExpireOptions::default()
    }
}

fn local_path(location: &str) -> std::path::PathBuf {
    url::Url::parse(location).unwrap().to_file_path().unwrap()
}

fn age(location: &str, by: Duration) {
    std::fs::File::options()
        .write(true)
        .open(local_path(location))
        .unwrap()
        .set_modified(SystemTime::now() - by)
        .unwrap();
}

#[tokio::test]
async fn expiry_keeps_tags_and_the_current_chain_and_deletes_exactly_what_only_expired_snapshots_reach()
 {
    let t = table().await;
    let (s1, _) = t.insert(1).await;
    let (s2, _) = t.insert(2).await;
    let (s3, added3) = t.insert(3).await;
    let (s4, added4) = t.insert(4).await;
    // Keep s1 with a tag; roll main back to s2, which leaves s3 and s4 on no ref; append s5.
    t.set_ref("v1", s1, tag(None)).await;
    t.set_ref("main", s2, main_branch()).await;
    let (s5, _) = t.insert(5).await;
    assert_eq!(t.ids().await, vec![1, 2, 5]);
    // Each fast append wrote one data file, one manifest and one manifest list.
    assert_eq!(added3.len(), 3, "{added3:?}");
    assert_eq!(added4.len(), 3, "{added4:?}");
    let manifest_list2 = t.manifest_list(s2).await;
    let mut expected: BTreeSet<String> = added3.union(&added4).cloned().collect();
    expected.insert(manifest_list2);
    tokio::time::sleep(Duration::from_millis(5)).await;

    // A dry run reports exactly what the real run then does, and changes nothing.
    let before = t.files().await;
    let metadata_before = t
        .catalog
        .load_table(&t.table)
        .await
        .unwrap()
        .metadata_location;
    let dry = expire_snapshots(&t.catalog, &t.table, &expire_all_old(true))
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(t.files().await, before);
    assert_eq!(
        t.catalog
            .load_table(&t.table)
            .await
            .unwrap()
            .metadata_location,
        metadata_before
    );
    assert_eq!(t.snapshot_ids().await, BTreeSet::from([s1, s2, s3, s4, s5]));

    let report = expire_snapshots(&t.catalog, &t.table, &expire_all_old(false))
        .await
        .unwrap();
    let mut expired = vec![s2, s3, s4];
    expired.sort();
    assert_eq!(report.expired_snapshots, expired);
    assert!(report.removed_refs.is_empty());
    assert!(report.failed_deletes.is_empty());
    assert_eq!(
        report
            .deleted_files
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(dry.expired_snapshots, report.expired_snapshots);
    assert_eq!(dry.deleted_files, report.deleted_files);
    assert_eq!(dry.deleted_bytes, report.deleted_bytes);
    assert!(report.deleted_bytes > 0);

    // The warehouse lost exactly the expected files and gained only the new metadata file.
    let after = t.files().await;
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(deleted, expected);
    let gained: Vec<&String> = after.difference(&before).collect();
    assert_eq!(gained.len(), 1, "{gained:?}");
    assert!(gained[0].ends_with(".metadata.json"));

    assert_eq!(t.snapshot_ids().await, BTreeSet::from([s1, s5]));
    assert_eq!(t.current_snapshot().await, s5);
    assert!(t.has_ref("v1").await);
    assert_eq!(t.ids().await, vec![1, 2, 5]);

    // Nothing more to do: a second run expires and deletes nothing.
    let again = expire_snapshots(&t.catalog, &t.table, &expire_all_old(false))
        .await
        .unwrap();
    assert!(again.expired_snapshots.is_empty() && again.deleted_files.is_empty());
    assert_eq!(t.files().await, after);
}

#[tokio::test]
async fn expiry_honors_min_snapshots_to_keep_and_removes_refs_past_their_age() {
    let t = table().await;
    t.update(vec![TableUpdate::SetProperties {
        updates: HashMap::from([(
            "history.expire.min-snapshots-to-keep".to_string(),
            "2".to_string(),
        )]),
    }])
    .await;
    let (s1, _) = t.insert(1).await;
    let (s2, _) = t.insert(2).await;
    let (s3, _) = t.insert(3).await;
    let (s4, _) = t.insert(4).await;
    t.set_ref("old", s1, tag(Some(1))).await;
    t.set_ref("keep", s2, tag(None)).await;
    let manifest_list1 = t.manifest_list(s1).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = t.files().await;

    let report = expire_snapshots(&t.catalog, &t.table, &expire_all_old(false))
        .await
        .unwrap();
    // main keeps s4 and s3 (two), the tag "keep" keeps s2; "old" outlived its 1 ms.
    assert_eq!(report.expired_snapshots, vec![s1]);
    assert_eq!(report.removed_refs, vec!["old".to_string()]);
    assert_eq!(report.deleted_files, vec![manifest_list1.clone()]);
    assert_eq!(t.snapshot_ids().await, BTreeSet::from([s2, s3, s4]));
    assert!(!t.has_ref("old").await && t.has_ref("keep").await);
    let after = t.files().await;
    assert_eq!(
        before.difference(&after).cloned().collect::<Vec<_>>(),
        vec![manifest_list1]
    );
    assert_eq!(t.ids().await, vec![1, 2, 3, 4]);

    // With the defaults (5 days) nothing this young expires.
    let report = expire_snapshots(&t.catalog, &t.table, &ExpireOptions::default())
        .await
        .unwrap();
    assert!(report.expired_snapshots.is_empty() && report.removed_refs.is_empty());
}

#[tokio::test]
async fn orphan_removal_deletes_old_unreferenced_files_only() {
    let t = table().await;
    t.insert(1).await;
    t.insert(2).await;
    let location = t.location().await;
    let referenced = t.files().await;
    // Everything the table references is old too: age alone must never get a file deleted.
    for file in &referenced {
        age(file, Duration::from_secs(3 * 24 * 3600));
    }
    let plant = |name: &str, old: bool| {
        let file = format!("{location}/{name}");
        let path = local_path(&file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"orphan").unwrap();
        if old {
            age(&file, Duration::from_secs(2 * 24 * 3600));
        }
        file
    };
    let old_data = plant("data/00000-orphan.parquet", true);
    let old_metadata = plant("metadata/00099-crashed.metadata.json", true);
    let young = plant("data/00001-young.parquet", false);
    // A sibling directory whose name starts with the table's: outside the table, never listed.
    let sibling = format!("{location}-sibling/data/x.parquet");
    let sibling_path = local_path(&sibling);
    std::fs::create_dir_all(sibling_path.parent().unwrap()).unwrap();
    std::fs::write(&sibling_path, b"not this table's").unwrap();
    age(&sibling, Duration::from_secs(2 * 24 * 3600));

    let too_short = OrphanOptions {
        older_than: Duration::from_secs(59 * 60),
        dry_run: true,
        ..OrphanOptions::default()
    };
    assert!(matches!(
        remove_orphan_files(&t.catalog, &t.table, &too_short).await,
        Err(MaintenanceError::InvalidRequest(_))
    ));

    let all_before = t.files().await;
    let dry = remove_orphan_files(
        &t.catalog,
        &t.table,
        &OrphanOptions {
            dry_run: true,
            ..OrphanOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        dry.deleted_files,
        vec![old_data.clone(), old_metadata.clone()]
    );
    assert_eq!(dry.deleted_bytes, 12);
    assert_eq!(dry.too_young, 1);
    assert_eq!(dry.listed, referenced.len() + 3);
    assert_eq!(t.files().await, all_before, "a dry run deletes nothing");

    let report = remove_orphan_files(&t.catalog, &t.table, &OrphanOptions::default())
        .await
        .unwrap();
    assert_eq!(report.deleted_files, vec![old_data, old_metadata]);
    assert!(report.failed_deletes.is_empty());
    let mut expected: BTreeSet<String> = referenced.clone();
    expected.insert(young);
    assert_eq!(t.files().await, expected);
    for file in &referenced {
        assert!(local_path(file).exists(), "{file} was deleted");
    }
    assert!(sibling_path.exists());
    assert_eq!(t.ids().await, vec![1, 2]);
}

#[tokio::test]
async fn expiry_racing_appends_never_loses_one() {
    let t = table().await;
    t.insert(0).await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let writer = async {
        for id in 1..=8 {
            t.sql(&format!("INSERT INTO s.t VALUES ({id}, 'row-{id}')"))
                .await;
            tokio::task::yield_now().await;
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let expirer = async {
        let mut runs = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            // Under a steady stream of appends expiry may give up (a 409): it must never win
            // by losing an append.
            match expire_snapshots(&t.catalog, &t.table, &expire_all_old(false)).await {
                Ok(_) => runs += 1,
                Err(MaintenanceError::Commit(floe_commit::CommitError::Conflict(_))) => {}
                Err(err) => panic!("{err}"),
            }
            tokio::task::yield_now().await;
        }
        runs
    };
    let ((), runs) = tokio::join!(writer, expirer);
    eprintln!("expiry runs during the appends: {runs}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    expire_snapshots(&t.catalog, &t.table, &expire_all_old(false))
        .await
        .unwrap();
    assert_eq!(t.ids().await, (0..=8).collect::<Vec<_>>());
    assert_eq!(t.snapshot_ids().await.len(), 1);
    // What is left is exactly what the one remaining snapshot reaches, plus metadata files.
    let files = t.files().await;
    let data_files = files.iter().filter(|f| f.ends_with(".parquet")).count();
    assert_eq!(data_files, 9, "{files:#?}");
}

#[tokio::test]
async fn two_phase_removal_marks_first_and_deletes_only_after_the_delay() {
    let t = table().await;
    t.insert(1).await;
    let location = t.location().await;
    let referenced = t.files().await;
    for file in &referenced {
        age(file, Duration::from_secs(5 * 24 * 3600));
    }
    let plant = |name: &str| {
        let file = format!("{location}/data/{name}");
        let path = local_path(&file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"orphan").unwrap();
        age(&file, Duration::from_secs(4 * 24 * 3600));
        file
    };
    let crashed = plant("crashed-writer.parquet");
    let vanishing = plant("deleted-by-hand.parquet");
    let delay = Duration::from_millis(600);
    let two_phase = |dry_run: bool| OrphanOptions {
        delete_after_marked: Some(delay),
        dry_run,
        ..OrphanOptions::default()
    };
    let scope = location.trim_end_matches('/').to_string();
    let store = t.catalog.store().clone();

    // A dry run marks nothing; the first real run marks both and deletes neither.
    let dry = remove_orphan_files(&t.catalog, &t.table, &two_phase(true))
        .await
        .unwrap();
    assert!(dry.deleted_files.is_empty());
    assert_eq!(dry.marked_pending, 2);
    assert!(store.marked_files(&scope).await.unwrap().is_empty());
    let first = remove_orphan_files(&t.catalog, &t.table, &two_phase(false))
        .await
        .unwrap();
    assert!(first.deleted_files.is_empty(), "{first:?}");
    assert_eq!(first.marked_pending, 2);
    let marks = store.marked_files(&scope).await.unwrap();
    assert_eq!(
        marks.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([crashed.clone(), vanishing.clone()])
    );

    // Before the delay: still only marked. A file gone meanwhile loses its mark.
    std::fs::remove_file(local_path(&vanishing)).unwrap();
    let second = remove_orphan_files(&t.catalog, &t.table, &two_phase(false))
        .await
        .unwrap();
    assert!(second.deleted_files.is_empty());
    assert_eq!(second.marked_pending, 1);
    let marks = store.marked_files(&scope).await.unwrap();
    assert_eq!(marks.keys().collect::<Vec<_>>(), [&crashed]);

    // After the delay: deleted, and its mark forgotten; the table's files all stay.
    tokio::time::sleep(delay + Duration::from_millis(100)).await;
    let third = remove_orphan_files(&t.catalog, &t.table, &two_phase(false))
        .await
        .unwrap();
    assert_eq!(third.deleted_files, vec![crashed.clone()]);
    assert!(!local_path(&crashed).exists());
    assert!(store.marked_files(&scope).await.unwrap().is_empty());
    assert_eq!(t.files().await, referenced);
    assert_eq!(t.ids().await, vec![1]);
}
