//! Manifest rewrite on a real catalog in a temp dir: tables of one manifest per append, rewritten
//! into few manifests clustered by partition; the live data files, rows (exactly, through the
//! deletes of a merge-on-read table) and history stay the same.

use std::collections::{BTreeSet, HashSet};

use floe_maintenance::{ManifestRewriteOptions, rewrite_manifests};
use iceberg::spec::{ManifestContentType, Operation};

mod common;

use common::Fixture;
use common::parts::{file_io, row, table};

async fn data_manifests(t: &Fixture) -> Vec<iceberg::spec::ManifestFile> {
    let metadata = t.metadata().await;
    t.manifests(&metadata)
        .await
        .into_iter()
        .filter(|m| m.content == ManifestContentType::Data)
        .collect()
}

fn total(metadata: &iceberg::spec::TableMetadata, key: &str) -> String {
    metadata
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties[key]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn many_small_manifests_become_one_with_the_same_files_rows_and_deletes() {
    let t = table(true).await;
    for i in 0..10 {
        t.append(i * 3, i * 3 + 3).await;
    }
    // A merge-on-read delete in the middle: its sequence number must still order it after the
    // first appends and before the later ones once their entries are rewritten.
    let delete = t.equality_deletes(Some(1), &[1, 4]).await;
    t.row_delta(vec![delete]).await;
    t.append_ids(&[1]).await;
    for i in 10..20 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let mut want: Vec<String> = (0..60).filter(|id| *id != 4).map(row).collect();
    want.sort();
    assert_eq!(t.rows("s.t").await, want);
    assert_eq!(data_manifests(&t).await.len(), 21);
    let files = t.live_files().await;
    let deletes = t.live_delete_files().await;
    let pre = t.current_snapshot().await;
    let before = t.metadata().await;

    let dry = rewrite_manifests(
        &t.catalog,
        &t.table,
        &ManifestRewriteOptions {
            dry_run: true,
            ..ManifestRewriteOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(dry.target_size_bytes, 8 * 1024 * 1024);
    assert_eq!(dry.data_manifests, 21);
    assert_eq!(dry.manifests_replaced, 21);
    assert_eq!(dry.snapshot_id, None);
    assert_eq!(t.current_snapshot().await, pre);

    let report = rewrite_manifests(&t.catalog, &t.table, &ManifestRewriteOptions::default())
        .await
        .unwrap();
    assert_eq!(report.manifests_replaced, 21, "{report:?}");
    assert_eq!(report.manifests_created, 1);
    assert_eq!(report.manifests_kept, 1, "the delete manifest");
    assert_eq!(report.entries, 61);
    assert_eq!(report.attempts, 1);
    assert_eq!(report.snapshot_id, Some(t.current_snapshot().await));

    assert_eq!(data_manifests(&t).await.len(), 1);
    assert_eq!(t.live_files().await, files);
    assert_eq!(t.live_delete_files().await, deletes);
    assert_eq!(t.rows("s.t").await, want);
    assert_eq!(t.rows(&format!("s.t FOR VERSION AS OF {pre}")).await, want);
    let after = t.metadata().await;
    let snapshot = after.current_snapshot().unwrap();
    assert_eq!(snapshot.summary().operation, Operation::Replace);
    assert_eq!(snapshot.parent_snapshot_id(), Some(pre));
    for key in [
        "total-data-files",
        "total-records",
        "total-files-size",
        "total-delete-files",
    ] {
        assert_eq!(total(&after, key), total(&before, key), "{key}");
    }
    // Entries keep the snapshot that added their file and their sequence numbers.
    let manifest = &data_manifests(&t).await[0];
    let entries = manifest.load_manifest(&file_io()).await.unwrap();
    assert!(
        entries
            .entries()
            .iter()
            .all(|e| e.status() == iceberg::spec::ManifestStatus::Existing)
    );
    let sequence_numbers: BTreeSet<i64> = entries
        .entries()
        .iter()
        .map(|e| e.sequence_number().unwrap())
        .collect();
    assert_eq!(sequence_numbers.len(), 21, "one per append");

    let again = rewrite_manifests(&t.catalog, &t.table, &ManifestRewriteOptions::default())
        .await
        .unwrap();
    assert_eq!(again.manifests_replaced, 0);
    assert_eq!(again.snapshot_id, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_target_clusters_entries_by_partition() {
    let t = table(true).await;
    for i in 0..24 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let manifests = data_manifests(&t).await;
    let bytes: i64 = manifests.iter().map(|m| m.manifest_length).sum();
    let files = t.live_files().await;
    let checksum = t.checksum("s.t").await;
    // About a third of the entries per manifest.
    let target = u64::try_from(bytes / 3).unwrap();
    let report = rewrite_manifests(
        &t.catalog,
        &t.table,
        &ManifestRewriteOptions {
            target_size_bytes: Some(target),
            ..ManifestRewriteOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(report.manifests_replaced, 24);
    assert!((3..=4).contains(&report.manifests_created), "{report:?}");
    assert_eq!(t.live_files().await, files);
    assert_eq!(t.checksum("s.t").await, checksum);
    // Clustered: a partition spans as few manifests as its entries need, so the (manifest,
    // partition) pairs are at most manifests + partitions - 1.
    let mut pairs = 0;
    let mut seen = HashSet::new();
    for manifest in data_manifests(&t).await {
        let loaded = manifest.load_manifest(&file_io()).await.unwrap();
        let partitions: HashSet<String> = loaded
            .entries()
            .iter()
            .map(|e| format!("{:?}", e.data_file().partition()))
            .collect();
        pairs += partitions.len();
        seen.extend(partitions);
    }
    assert_eq!(seen.len(), 3);
    assert!(pairs < report.manifests_created + 3, "{pairs} pairs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewrite_racing_an_appender_loses_no_file() {
    let t = table(false).await;
    for i in 0..30 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let catalog = t.catalog.clone();
    let table = t.table.clone();
    let rewrite = tokio::spawn(async move {
        rewrite_manifests(&catalog, &table, &ManifestRewriteOptions::default()).await
    });
    // Fewer appends than the rewrite's 10 attempts: even if every one lands in a rewrite's
    // window, the rewrite gets through.
    for i in 100..108 {
        t.append(i * 3, i * 3 + 3).await;
    }
    let report = rewrite.await.unwrap().unwrap();
    assert!(report.snapshot_id.is_some(), "{report:?}");
    let mut want: Vec<String> = (0..90).chain(300..324).map(row).collect();
    want.sort();
    assert_eq!(t.rows("s.t").await, want);
    assert_eq!(t.live_files().await.len(), 38);
}
