//! The conformance checks of the due rows ([`crate::DueStore`]), run by
//! [`metadata_store_suite!`](crate::metadata_store_suite) with the others.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{create_table, ns, props, swap};
use crate::{
    CommitEvents, DueItem, DueKind, DueOutcome, DueRow, MetadataStore, Properties, TableName,
    WarehouseRecord,
};

const HOLD: Duration = Duration::from_secs(600);

fn now_ms() -> i64 {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    i64::try_from(millis).unwrap()
}

async fn row(store: &dyn MetadataStore, table: &TableName, kind: DueKind) -> DueRow {
    store
        .due()
        .due_rows(table)
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.kind == kind)
        .unwrap_or_else(|| panic!("{table} has no {kind} row"))
}

async fn is_due_now(store: &dyn MetadataStore, table: &TableName, kind: DueKind) -> bool {
    row(store, table, kind)
        .await
        .due_at_ms
        .is_some_and(|at| at <= now_ms())
}

/// Commits `events` to the table, whose pointer is `*at`, and moves `*at` on.
async fn commit(
    store: &dyn MetadataStore,
    table: &TableName,
    at: &mut String,
    events: CommitEvents,
) {
    let next = format!("{at}+");
    let mut change = swap(table, at, &next);
    change.events = events;
    store.swap_pointers(&[change]).await.unwrap();
    *at = next;
}

/// Namespace `n` with table `t`, created at pointer `m0`; returns the table and its pointer.
async fn one_table(store: &dyn MetadataStore) -> (TableName, String) {
    store
        .create_namespace(&ns(&["n"]), &Properties::new())
        .await
        .unwrap();
    let table = TableName::new(ns(&["n"]), "t");
    let at = "m0".to_string();
    create_table(store, &table, &at).await;
    (table, at)
}

fn files(added: u64) -> CommitEvents {
    CommitEvents {
        added_data_files: added,
        added_manifests: 1,
        ..CommitEvents::default()
    }
}

/// Claims everything due and finishes each claim with `outcome` (or nothing due by time).
async fn settle(store: &dyn MetadataStore, outcome: impl Fn(&DueItem) -> DueOutcome) {
    for item in store.due().claim_due(100, HOLD).await.unwrap() {
        assert!(
            store
                .due()
                .finish_due(&item, &outcome(&item))
                .await
                .unwrap()
        );
    }
}

fn waiting(threshold: i64, item: &DueItem) -> DueOutcome {
    DueOutcome {
        next_due_ms: None,
        threshold,
        period_ms: 0,
        consumed: item.pending,
    }
}

pub async fn new_tables_are_due_and_claims_are_exclusive(store: Arc<dyn MetadataStore>) {
    let due = store.due();
    assert_eq!(due.count_due().await.unwrap(), (0, 0));
    store
        .create_namespace(&ns(&["n"]), &Properties::new())
        .await
        .unwrap();
    let table = TableName::new(ns(&["n"]), "t");
    let other = TableName::new(ns(&["n"]), "u");
    create_table(store.as_ref(), &table, "m0").await;
    assert_eq!(
        due.count_due().await.unwrap(),
        (5, 5),
        "every kind is due at once"
    );
    create_table(store.as_ref(), &other, "n0").await;

    // A claim takes whole tables: all due rows of the tables of its first `limit` rows.
    let claimed = due.claim_due(1, HOLD).await.unwrap();
    assert_eq!(claimed.len(), 5, "{claimed:?}");
    let rest = due.claim_due(10, HOLD).await.unwrap();
    assert_eq!(rest.len(), 5, "claimed rows are not claimed again");
    assert!(due.claim_due(10, HOLD).await.unwrap().is_empty());
    assert_ne!(claimed[0].table, rest[0].table);
    for batch in [&claimed, &rest] {
        let kinds: BTreeSet<DueKind> = batch.iter().map(|item| item.kind).collect();
        assert_eq!(kinds, DueKind::ALL.into_iter().collect());
        assert!(batch.iter().all(|item| item.table == batch[0].table));
    }
    let claimed: Vec<DueItem> = [claimed, rest]
        .concat()
        .into_iter()
        .filter(|item| item.table == table)
        .collect();
    for item in &claimed {
        assert_eq!(item.warehouse, None);
        assert_eq!(item.pending, 0);
    }
    assert!(row(store.as_ref(), &table, DueKind::Scrub).await.claimed);
    assert_eq!(due.count_due().await.unwrap(), (0, 10));

    // Held past its hold (the claimant died): due again, and the old claim no longer finishes.
    let short = due.claim_due(10, Duration::ZERO).await.unwrap();
    assert!(
        short.is_empty(),
        "held rows stay held until their hold is over"
    );
    let item = &claimed[0];
    assert!(due.postpone_due(item, now_ms() - 1).await.unwrap());
    let taken_over = due.claim_due(10, HOLD).await.unwrap();
    assert_eq!(taken_over.len(), 1);
    assert_ne!(taken_over[0].claim, item.claim);
    assert!(!due.finish_due(item, &waiting(1, item)).await.unwrap());
    assert!(
        due.finish_due(&taken_over[0], &waiting(1, &taken_over[0]))
            .await
            .unwrap()
    );
}

pub async fn commits_count_towards_thresholds(store: Arc<dyn MetadataStore>) {
    let due = store.due();
    let (table, mut at) = one_table(store.as_ref()).await;
    settle(store.as_ref(), |item| waiting(3, item)).await;
    assert_eq!(due.count_due().await.unwrap(), (0, 5));

    commit(store.as_ref(), &table, &mut at, files(2)).await;
    let compaction = row(store.as_ref(), &table, DueKind::Compaction).await;
    assert_eq!((compaction.pending, compaction.due_at_ms), (2, None));
    commit(store.as_ref(), &table, &mut at, files(1)).await;
    assert!(is_due_now(store.as_ref(), &table, DueKind::Compaction).await);
    assert!(
        !is_due_now(store.as_ref(), &table, DueKind::ManifestRewrite).await,
        "two manifests reach a threshold of 3 only with the third"
    );
    assert_eq!(
        row(store.as_ref(), &table, DueKind::ManifestRewrite)
            .await
            .pending,
        2
    );
    assert!(!is_due_now(store.as_ref(), &table, DueKind::Scrub).await);

    // A commit while the job runs keeps its count: the run takes off only what it saw.
    let claimed = due.claim_due(10, HOLD).await.unwrap();
    let compaction = claimed
        .iter()
        .find(|item| item.kind == DueKind::Compaction)
        .unwrap();
    assert_eq!(compaction.pending, 3);
    commit(store.as_ref(), &table, &mut at, files(1)).await;
    assert!(
        due.finish_due(compaction, &waiting(5, compaction))
            .await
            .unwrap()
    );
    let after = row(store.as_ref(), &table, DueKind::Compaction).await;
    assert_eq!(
        (after.pending, after.threshold, after.due_at_ms),
        (1, 5, None)
    );
    assert!(!after.claimed);

    // A run that finds the threshold already reached leaves the job due at once.
    commit(store.as_ref(), &table, &mut at, files(4)).await;
    let claimed = due.claim_due(10, HOLD).await.unwrap();
    let compaction = claimed
        .iter()
        .find(|item| item.kind == DueKind::Compaction)
        .unwrap();
    commit(store.as_ref(), &table, &mut at, files(2)).await;
    assert!(
        due.finish_due(compaction, &waiting(2, compaction))
            .await
            .unwrap()
    );
    assert!(is_due_now(store.as_ref(), &table, DueKind::Compaction).await);

    // Delete files make compaction due whatever the count.
    settle(store.as_ref(), |item| waiting(100, item)).await;
    let deletes = CommitEvents {
        added_delete_files: 1,
        ..CommitEvents::default()
    };
    commit(store.as_ref(), &table, &mut at, deletes).await;
    assert!(is_due_now(store.as_ref(), &table, DueKind::Compaction).await);
}

pub async fn expiry_is_due_when_the_oldest_snapshot_ages_out(store: Arc<dyn MetadataStore>) {
    let due = store.due();
    let (table, mut at) = one_table(store.as_ref()).await;
    let day = 24 * 3_600_000;
    settle(store.as_ref(), |item| DueOutcome {
        period_ms: day,
        ..waiting(1, item)
    })
    .await;
    let oldest = now_ms() - 1000;
    let snapshot = |oldest| CommitEvents {
        oldest_snapshot_ms: Some(oldest),
        ..CommitEvents::default()
    };
    commit(store.as_ref(), &table, &mut at, snapshot(oldest)).await;
    let expiry = row(store.as_ref(), &table, DueKind::SnapshotExpiry).await;
    assert_eq!(expiry.due_at_ms, Some(oldest + day));
    // A later commit does not push an earlier due time back.
    commit(store.as_ref(), &table, &mut at, snapshot(oldest + 500)).await;
    let expiry = row(store.as_ref(), &table, DueKind::SnapshotExpiry).await;
    assert_eq!(expiry.due_at_ms, Some(oldest + day));
    assert!(due.claim_due(10, HOLD).await.unwrap().is_empty());
}

pub async fn settings_changes_make_everything_due(store: Arc<dyn MetadataStore>) {
    let due = store.due();
    let (table, mut at) = one_table(store.as_ref()).await;
    settle(store.as_ref(), |item| waiting(10, item)).await;

    store
        .update_namespace_properties(&ns(&["n"]), &[], &props(&[("owner", "ana")]))
        .await
        .unwrap();
    assert_eq!(
        due.count_due().await.unwrap(),
        (0, 5),
        "not a maintenance setting"
    );
    store
        .update_namespace_properties(
            &ns(&["n"]),
            &[],
            &props(&[("floe.maintenance.compaction.min-input-files", "9")]),
        )
        .await
        .unwrap();
    assert_eq!(due.count_due().await.unwrap(), (5, 5));

    // A change of the table's own settings cancels running claims: they judged the old ones.
    let claimed = due.claim_due(10, HOLD).await.unwrap();
    assert_eq!(claimed.len(), 5);
    commit(
        store.as_ref(),
        &table,
        &mut at,
        CommitEvents::reevaluate_all(),
    )
    .await;
    assert_eq!(due.count_due().await.unwrap(), (5, 5));
    assert!(
        !due.finish_due(&claimed[0], &waiting(1, &claimed[0]))
            .await
            .unwrap()
    );

    settle(store.as_ref(), |item| waiting(10, item)).await;
    assert_eq!(due.mark_table_due(&table).await.unwrap(), 5);
    assert_eq!(due.count_due().await.unwrap(), (5, 5));
    settle(store.as_ref(), |item| waiting(10, item)).await;
    assert_eq!(due.mark_namespace_due(&ns(&["n"])).await.unwrap(), 5);
    assert_eq!(
        due.adopt_unscheduled_tables().await.unwrap(),
        0,
        "every table has its rows"
    );
}

pub async fn due_rows_follow_their_table(store: Arc<dyn MetadataStore>) {
    let due = store.due();
    store
        .create_namespace(&ns(&["a"]), &Properties::new())
        .await
        .unwrap();
    store
        .create_namespace(&ns(&["b"]), &Properties::new())
        .await
        .unwrap();
    let from = TableName::new(ns(&["a"]), "t");
    let to = TableName::new(ns(&["b"]), "u");
    create_table(store.as_ref(), &from, "m0").await;
    settle(store.as_ref(), |item| waiting(7, item)).await;

    store.rename_table(&from, &to).await.unwrap();
    assert!(due.due_rows(&from).await.unwrap().is_empty());
    let moved = due.due_rows(&to).await.unwrap();
    assert_eq!(moved.len(), 5);
    assert!(moved.iter().all(|row| row.threshold == 7), "{moved:?}");

    store.drop_table(&to).await.unwrap();
    assert_eq!(due.count_due().await.unwrap(), (0, 0));

    // A registered warehouse's tables are claimed with their warehouse's name.
    store
        .create_warehouse(&WarehouseRecord {
            name: "w".into(),
            storage_url: "memory://w".into(),
            properties: Properties::new(),
            created_at_ms: 0,
        })
        .await
        .unwrap();
    let other = store.in_warehouse("w").unwrap();
    other
        .create_namespace(&ns(&["a"]), &Properties::new())
        .await
        .unwrap();
    create_table(other.as_ref(), &from, "w0").await;
    let claimed = store.due().claim_due(10, HOLD).await.unwrap();
    assert_eq!(claimed.len(), 5);
    assert!(
        claimed
            .iter()
            .all(|item| item.warehouse.as_deref() == Some("w") && item.table == from)
    );
    assert!(
        store.due().due_rows(&from).await.unwrap().is_empty(),
        "not in the default warehouse"
    );
    assert_eq!(other.due().due_rows(&from).await.unwrap().len(), 5);
}

pub async fn concurrent_claims_take_disjoint_rows(store: Arc<dyn MetadataStore>) {
    store
        .create_namespace(&ns(&["n"]), &Properties::new())
        .await
        .unwrap();
    for index in 0..20 {
        let table = TableName::new(ns(&["n"]), format!("t{index}"));
        create_table(store.as_ref(), &table, &format!("m{index}")).await;
    }
    let mut claims = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        claims.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.due().claim_due(7, HOLD).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch);
            }
        });
    }
    let mut seen = BTreeSet::new();
    while let Some(claimed) = claims.join_next().await {
        for item in claimed.unwrap() {
            assert!(
                seen.insert((item.table.name.clone(), item.kind)),
                "{} {} claimed twice",
                item.table,
                item.kind
            );
        }
    }
    assert_eq!(seen.len(), 100);
}
