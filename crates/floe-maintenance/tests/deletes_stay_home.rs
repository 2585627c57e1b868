//! Deletes stay home: maintenance jobs and purge delete only files inside the table's own
//! location — never another table's file that the metadata names, never through a symbolic link
//! — and nothing at all of a table whose `gc.enabled` is false (Iceberg's "files may be shared").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use floe_commit::open::{OpenOptions, open};
use floe_commit::{CommitSettings, SnapshotChange, TableChange, Warehouses, produce};
use floe_maintenance::scheduler::{Scheduler, SchedulerOptions};
use floe_maintenance::{
    ExpireOptions, MaintenanceError, OrphanOptions, expire_snapshots, remove_orphan_files,
};
use floe_storage::RetryOptions;
use floe_store::TableName;
use iceberg::TableUpdate;
use iceberg::spec::{DataFile, ManifestList, Operation};

mod common;

use common::Fixture;

async fn table() -> Fixture {
    Fixture::with_table("CREATE TABLE s.t (id BIGINT NOT NULL, name VARCHAR)").await
}

fn local_path(location: &str) -> PathBuf {
    url::Url::parse(location).unwrap().to_file_path().unwrap()
}

fn age(path: &Path, by: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - by)
        .unwrap();
}

/// Every regular file under `dir` (not following links), recursively.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                out.insert(entry.path());
            }
        }
    }
    out
}

impl Fixture {
    fn named(&self, name: &str) -> TableName {
        TableName::new(vec!["s".to_string()], name)
    }

    async fn location_of(&self, table: &TableName) -> String {
        let loaded = self.catalog.load_table(table).await.unwrap();
        loaded
            .metadata()
            .location()
            .trim_end_matches('/')
            .to_string()
    }

    async fn set_properties(&self, table: &TableName, properties: &[(&str, &str)]) {
        self.catalog
            .commit_table(TableChange {
                table: table.clone(),
                requirements: vec![],
                updates: vec![TableUpdate::SetProperties {
                    updates: properties
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<HashMap<_, _>>(),
                }],
            })
            .await
            .unwrap();
    }

    async fn snapshot_count(&self, table: &TableName) -> usize {
        let loaded = self.catalog.load_table(table).await.unwrap();
        loaded.metadata().snapshots().count()
    }

    async fn count(&self, table: &str) -> i64 {
        let batches = self.sql(&format!("SELECT count(*) FROM {table}")).await;
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0)
    }

    /// The live data files of `table`'s current snapshot.
    async fn data_files(&self, table: &TableName) -> Vec<DataFile> {
        let loaded = self.catalog.load_table(table).await.unwrap();
        let metadata = loaded.metadata();
        let file_io = self.catalog.file_io();
        let bytes = file_io
            .new_input(metadata.current_snapshot().unwrap().manifest_list())
            .unwrap()
            .read()
            .await
            .unwrap();
        let list = ManifestList::parse_with_version(&bytes, metadata.format_version()).unwrap();
        let mut files = Vec::new();
        for manifest in list.entries() {
            let manifest = manifest.load_manifest(&file_io).await.unwrap();
            for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
                files.push(entry.data_file().clone());
            }
        }
        files
    }

    /// Commits one snapshot of `change` to `table` through the producer.
    async fn produce(&self, table: &TableName, change: SnapshotChange) {
        let loaded = self.catalog.load_table(table).await.unwrap();
        let produced = produce(loaded.metadata(), &self.catalog.file_io(), change)
            .await
            .unwrap();
        self.catalog
            .commit(vec![produced.into_table_change(table.clone())])
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn expiry_with_gc_disabled_removes_snapshots_but_deletes_no_file() {
    let t = table().await;
    for id in 1..=4 {
        t.sql(&format!("INSERT INTO s.t VALUES ({id}, 'row-{id}')"))
            .await;
    }
    t.set_properties(&t.table, &[("gc.enabled", "false")]).await;
    let dir = local_path(&t.location_of(&t.table).await);
    let before = files_under(&dir);
    assert_eq!(t.snapshot_count(&t.table).await, 4);

    let report = expire_snapshots(
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
    assert_eq!(report.expired_snapshots.len(), 3, "{report:?}");
    assert!(report.gc_disabled);
    assert!(report.deleted_files.is_empty());
    assert_eq!(t.snapshot_count(&t.table).await, 1);
    // Every file is still there (plus the new metadata file of the expiry commit).
    let after = files_under(&dir);
    assert!(
        before.is_subset(&after),
        "deleted: {:?}",
        before.difference(&after)
    );
    assert_eq!(t.count("s.t").await, 4);

    // With GC on again, the same files do go: the setting was what kept them.
    t.set_properties(&t.table, &[("gc.enabled", "true")]).await;
    t.sql("INSERT INTO s.t VALUES (9, 'row-9')").await;
    let report = expire_snapshots(
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
    assert!(!report.gc_disabled);
    assert!(!report.deleted_files.is_empty());
}

#[tokio::test]
async fn orphan_removal_refuses_a_table_with_gc_disabled() {
    let t = table().await;
    t.sql("INSERT INTO s.t VALUES (1, 'a')").await;
    let dir = local_path(&t.location_of(&t.table).await);
    let orphan = dir.join("data/left-by-a-crash.parquet");
    std::fs::write(&orphan, b"orphan").unwrap();
    age(&orphan, Duration::from_secs(3 * 24 * 3600));
    t.set_properties(&t.table, &[("gc.enabled", "FALSE")]).await;

    for dry_run in [true, false] {
        let options = OrphanOptions {
            dry_run,
            ..OrphanOptions::default()
        };
        match remove_orphan_files(&t.catalog, &t.table, &options).await {
            Err(MaintenanceError::GcDisabled(message)) => {
                assert!(message.contains("GC is disabled"), "{message}");
                assert!(message.contains("s.t"), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(orphan.exists());
}

#[tokio::test]
async fn the_scheduler_deletes_nothing_of_a_table_with_gc_disabled() {
    let t = table().await;
    t.sql("CREATE TABLE s.shared (id BIGINT NOT NULL, name VARCHAR)")
        .await;
    let keeps = t.named("shared");
    let due: [(&str, &str); 7] = [
        ("floe.maintenance.compaction.enabled", "false"),
        ("floe.maintenance.manifest-rewrite.enabled", "false"),
        ("floe.maintenance.snapshot-expiry.enabled", "true"),
        (
            "floe.maintenance.snapshot-expiry.max-snapshot-age-hours",
            "0",
        ),
        ("floe.maintenance.unreferenced-files.enabled", "true"),
        ("floe.maintenance.unreferenced-files.unreferenced-days", "1"),
        ("floe.maintenance.unreferenced-files.non-current-days", "0"),
    ];
    let mut orphans = BTreeMap::new();
    let mut before = BTreeMap::new();
    for (table, sql_name) in [(&t.table, "s.t"), (&keeps, "s.shared")] {
        for id in 1..=3 {
            t.sql(&format!("INSERT INTO {sql_name} VALUES ({id}, 'x')"))
                .await;
        }
        t.set_properties(table, &due).await;
        let dir = local_path(&t.location_of(table).await);
        let orphan = dir.join("data/old-orphan.parquet");
        std::fs::write(&orphan, b"orphan").unwrap();
        for file in files_under(&dir) {
            age(&file, Duration::from_secs(3 * 24 * 3600));
        }
        orphans.insert(table.clone(), orphan);
    }
    t.set_properties(&keeps, &[("gc.enabled", "false")]).await;
    for table in [&t.table, &keeps] {
        let dir = local_path(&t.location_of(table).await);
        before.insert(table.clone(), files_under(&dir));
    }

    let catalog = open(&OpenOptions::new(t.data_dir())).await.unwrap();
    let warehouses = Warehouses::new(catalog, RetryOptions::default(), CommitSettings::default());
    let scheduler = Arc::new(Scheduler::new(
        Arc::new(warehouses),
        SchedulerOptions::default(),
    ));
    let pass = scheduler.run_pass().await;
    assert_eq!(pass.jobs_failed, 0, "{pass:?}");

    // The table with GC on: snapshots expired, their files and the orphan deleted.
    assert_eq!(t.snapshot_count(&t.table).await, 1);
    assert!(!orphans[&t.table].exists());
    let dir = local_path(&t.location_of(&t.table).await);
    assert!(!before[&t.table].is_subset(&files_under(&dir)));

    // The table with GC off: snapshots expired from its metadata, every file kept.
    assert_eq!(t.snapshot_count(&keeps).await, 1);
    assert!(orphans[&keeps].exists());
    let dir = local_path(&t.location_of(&keeps).await);
    let after = files_under(&dir);
    assert!(
        before[&keeps].is_subset(&after),
        "deleted: {:?}",
        before[&keeps].difference(&after)
    );
    assert_eq!(t.count("s.shared").await, 3);
    // No orphan-removal run was recorded for it: it was not run at all.
    let jobs = t
        .catalog
        .store()
        .list_jobs(
            &floe_store::JobFilter {
                warehouse: None,
                table: Some(keeps.clone()),
                kind: Some("orphan-removal".to_string()),
            },
            10,
        )
        .await
        .unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn neither_orphan_removal_nor_purge_follows_a_symlink_out_of_the_table() {
    let t = table().await;
    t.sql("INSERT INTO s.t VALUES (1, 'a')").await;
    let dir = local_path(&t.location_of(&t.table).await);
    let own_files = files_under(&dir);
    assert!(!own_files.is_empty());
    // A foreign directory (outside the warehouse) with an old file, linked into the table.
    let foreign_dir = t.data_dir().parent().unwrap().join("foreign");
    std::fs::create_dir_all(&foreign_dir).unwrap();
    let precious = foreign_dir.join("precious.parquet");
    std::fs::write(&precious, b"not the table's").unwrap();
    std::os::unix::fs::symlink(&foreign_dir, dir.join("data/linked")).unwrap();
    std::os::unix::fs::symlink(&precious, dir.join("metadata/linked.avro")).unwrap();
    // A real orphan, so that the run is seen to delete what it may.
    let orphan = dir.join("data/old-orphan.parquet");
    std::fs::write(&orphan, b"orphan").unwrap();
    for file in files_under(&dir).iter().chain([&precious]) {
        age(file, Duration::from_secs(3 * 24 * 3600));
    }

    let report = remove_orphan_files(&t.catalog, &t.table, &OrphanOptions::default())
        .await
        .unwrap();
    assert_eq!(report.deleted_files.len(), 1, "{report:?}");
    assert!(report.deleted_files[0].ends_with("data/old-orphan.parquet"));
    assert!(!orphan.exists());
    assert!(precious.exists());

    t.catalog.drop_table(&t.table, true).await.unwrap();
    assert!(precious.exists(), "purge followed a link out of the table");
    for file in &own_files {
        assert!(!file.exists(), "purge left {}", file.display());
    }
    assert!(files_under(&dir).is_empty());
}

#[tokio::test]
async fn files_the_metadata_names_outside_the_table_survive_expiry_orphans_and_purge() {
    let t = table().await;
    t.sql("CREATE TABLE s.u (id BIGINT NOT NULL, name VARCHAR)")
        .await;
    let u = t.named("u");
    t.sql("INSERT INTO s.u VALUES (7, 'u'), (8, 'u')").await;
    t.sql("INSERT INTO s.t VALUES (1, 'a')").await;
    // s.t's metadata names s.u's data file: added by one snapshot, removed by the next.
    let foreign = t.data_files(&u).await;
    assert_eq!(foreign.len(), 1);
    let foreign_path = foreign[0].file_path().to_string();
    t.produce(
        &t.table,
        SnapshotChange::new(Operation::Append).adding(foreign.clone()),
    )
    .await;
    assert_eq!(t.count("s.t").await, 3);
    t.produce(
        &t.table,
        SnapshotChange::new(Operation::Delete).removing([foreign_path.clone()]),
    )
    .await;
    let foreign_file = local_path(&foreign_path);
    let dir = local_path(&t.location_of(&t.table).await);
    for file in files_under(&dir).iter().chain([&foreign_file]) {
        age(file, Duration::from_secs(3 * 24 * 3600));
    }

    let expired = expire_snapshots(
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
    assert_eq!(expired.expired_snapshots.len(), 2, "{expired:?}");
    assert!(
        !expired.deleted_files.is_empty(),
        "expiry deleted the table's own files"
    );
    assert!(!expired.deleted_files.contains(&foreign_path));
    assert!(foreign_file.exists(), "expiry deleted another table's file");

    remove_orphan_files(&t.catalog, &t.table, &OrphanOptions::default())
        .await
        .unwrap();
    assert!(foreign_file.exists());

    t.catalog.drop_table(&t.table, true).await.unwrap();
    assert!(files_under(&dir).is_empty());
    assert!(foreign_file.exists(), "purge deleted another table's file");
    assert_eq!(t.count("s.u").await, 2);
}
