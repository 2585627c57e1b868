//! The conformance checks of the scrubber's findings ([`crate::ScrubStore`]), run by
//! [`metadata_store_suite!`](crate::metadata_store_suite) with the others.

use std::sync::Arc;
use std::time::Duration;

use super::ns;
use crate::{
    FindingFilter, FindingKind, MetadataStore, OpenFindings, Problem, ScrubPass, StoreError,
    TableName,
};

fn problem(file: &str, kind: FindingKind, snapshots: &[i64]) -> Problem {
    Problem {
        file: file.into(),
        kind,
        detail: format!("{file} is {kind}"),
        snapshots: snapshots.to_vec(),
    }
}

/// A pass of a shallow scrub (no footers read).
fn shallow(warehouse: &str, table: &TableName, problems: Vec<Problem>) -> ScrubPass {
    ScrubPass {
        warehouse: warehouse.into(),
        table: table.clone(),
        problems,
        checked: FindingKind::ALL
            .into_iter()
            .filter(|kind| *kind != FindingKind::UnreadableFooter)
            .collect(),
        complete: true,
    }
}

fn open_only(table: &TableName) -> FindingFilter {
    FindingFilter {
        warehouse: Some("main".into()),
        table: Some(table.clone()),
        open_only: true,
        since_ms: None,
    }
}

pub async fn scrub_findings_open_refresh_and_resolve(store: Arc<dyn MetadataStore>) {
    let scrub = store.scrub();
    let orders = TableName::new(ns(&["sales", "eu"]), "orders");
    let first = scrub
        .record_scrub(&shallow(
            "main",
            &orders,
            vec![
                problem(
                    "s3://b/orders/data/a.parquet",
                    FindingKind::Missing,
                    &[2, 1],
                ),
                problem(
                    "s3://b/orders/data/b.parquet",
                    FindingKind::SizeMismatch,
                    &[2],
                ),
            ],
        ))
        .await
        .unwrap();
    assert_eq!((first.opened, first.still_open, first.resolved), (2, 0, 0));
    let listed = scrub.list_findings(&open_only(&orders), 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    let missing = listed
        .iter()
        .find(|finding| finding.kind == FindingKind::Missing)
        .unwrap()
        .clone();
    assert_eq!(missing.table, orders);
    assert_eq!(missing.warehouse, "main");
    assert_eq!(missing.file, "s3://b/orders/data/a.parquet");
    assert_eq!(missing.snapshots, vec![2, 1]);
    assert!(missing.is_open() && missing.found_at_ms > 0);
    assert_eq!(missing.found_at_ms, missing.last_seen_ms);

    // Found again, with more snapshots: the same finding, refreshed, not a second row.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut again = problem(
        "s3://b/orders/data/a.parquet",
        FindingKind::Missing,
        &[3, 2, 1],
    );
    again.detail = "still missing".into();
    let second = scrub
        .record_scrub(&shallow(
            "main",
            &orders,
            vec![again.clone(), again.clone()],
        ))
        .await
        .unwrap();
    assert_eq!(
        (second.opened, second.still_open, second.resolved),
        (0, 1, 1),
        "a.parquet still open, b.parquet resolved"
    );
    let open = scrub.list_findings(&open_only(&orders), 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, missing.id);
    assert_eq!(open[0].detail, "still missing");
    assert_eq!(open[0].snapshots, vec![3, 2, 1]);
    assert_eq!(open[0].found_at_ms, missing.found_at_ms);
    assert!(open[0].last_seen_ms > missing.last_seen_ms);
    let all = FindingFilter {
        open_only: false,
        ..open_only(&orders)
    };
    let every = scrub.list_findings(&all, 10).await.unwrap();
    assert_eq!(every.len(), 2);
    let resolved = every.iter().find(|finding| !finding.is_open()).unwrap();
    assert_eq!(resolved.kind, FindingKind::SizeMismatch);
    assert!(resolved.resolved_at_ms.unwrap() >= resolved.found_at_ms);

    // A shallow pass leaves a deep pass's footer finding alone; a deep pass resolves it.
    let footer = problem(
        "s3://b/orders/data/c.parquet",
        FindingKind::UnreadableFooter,
        &[3],
    );
    let deep = ScrubPass {
        checked: FindingKind::ALL.to_vec(),
        ..shallow("main", &orders, vec![again.clone(), footer])
    };
    assert_eq!(scrub.record_scrub(&deep).await.unwrap().opened, 1);
    let third = scrub
        .record_scrub(&shallow("main", &orders, vec![again.clone()]))
        .await
        .unwrap();
    assert_eq!(third.resolved, 0);
    assert_eq!(
        scrub
            .list_findings(&open_only(&orders), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    // A pass that could not reach every file resolves nothing.
    let incomplete = ScrubPass {
        checked: FindingKind::ALL.to_vec(),
        complete: false,
        ..shallow("main", &orders, Vec::new())
    };
    assert_eq!(scrub.record_scrub(&incomplete).await.unwrap().resolved, 0);
    let clean = ScrubPass {
        checked: FindingKind::ALL.to_vec(),
        ..shallow("main", &orders, Vec::new())
    };
    assert_eq!(scrub.record_scrub(&clean).await.unwrap().resolved, 2);
    assert!(
        scrub
            .list_findings(&open_only(&orders), 10)
            .await
            .unwrap()
            .is_empty()
    );

    // The problem comes back: a new finding, and the history keeps the old one.
    let back = scrub
        .record_scrub(&shallow("main", &orders, vec![again]))
        .await
        .unwrap();
    assert_eq!(back.opened, 1);
    let every = scrub.list_findings(&all, 10).await.unwrap();
    assert_eq!(every.len(), 4);
    assert_eq!(
        every
            .iter()
            .filter(|finding| finding.file.ends_with("a.parquet"))
            .count(),
        2
    );
    assert_eq!(every.iter().filter(|finding| finding.is_open()).count(), 1);
}

pub async fn scrub_findings_are_listed_counted_and_expired(store: Arc<dyn MetadataStore>) {
    let scrub = store.scrub();
    let orders = TableName::new(ns(&["sales", "eu"]), "orders");
    let items = TableName::new(ns(&["sales"]), "items");
    let files = |prefix: &str, count: usize| -> Vec<Problem> {
        (0..count)
            .map(|i| problem(&format!("{prefix}/{i}.parquet"), FindingKind::Missing, &[1]))
            .collect()
    };
    scrub
        .record_scrub(&shallow("main", &orders, files("s3://b/orders", 3)))
        .await
        .unwrap();
    scrub
        .record_scrub(&shallow("main", &items, files("s3://b/items", 1)))
        .await
        .unwrap();
    // Another warehouse's table of the same name is another table.
    scrub
        .record_scrub(&shallow("lake", &orders, files("s3://l/orders", 2)))
        .await
        .unwrap();
    let by_kind = scrub.open_findings_by_kind().await.unwrap();
    assert_eq!(by_kind, vec![(FindingKind::Missing, 6)]);
    let counts = scrub.open_finding_counts(None).await.unwrap();
    let count = |warehouse: &str, table: &TableName, open: u64| OpenFindings {
        warehouse: warehouse.into(),
        table: table.clone(),
        open,
    };
    assert_eq!(
        counts,
        vec![
            count("lake", &orders, 2),
            count("main", &items, 1),
            count("main", &orders, 3),
        ]
    );
    assert_eq!(
        scrub.open_finding_counts(Some("lake")).await.unwrap(),
        vec![count("lake", &orders, 2)]
    );

    // Bounded, newest first, filtered.
    let everything = FindingFilter::default();
    let listed = scrub.list_findings(&everything, 100).await.unwrap();
    assert_eq!(listed.len(), 6);
    assert!(
        listed
            .windows(2)
            .all(|pair| (pair[0].found_at_ms, &pair[0].id) >= (pair[1].found_at_ms, &pair[1].id))
    );
    assert_eq!(scrub.list_findings(&everything, 2).await.unwrap().len(), 2);
    let lake = FindingFilter {
        warehouse: Some("lake".into()),
        ..FindingFilter::default()
    };
    assert!(
        scrub
            .list_findings(&lake, 100)
            .await
            .unwrap()
            .iter()
            .all(|finding| finding.warehouse == "lake" && finding.table == orders)
    );
    // The table filter without a warehouse matches the table in every warehouse.
    let orders_anywhere = FindingFilter {
        table: Some(orders.clone()),
        ..FindingFilter::default()
    };
    assert_eq!(
        scrub
            .list_findings(&orders_anywhere, 100)
            .await
            .unwrap()
            .len(),
        5
    );
    let future = FindingFilter {
        since_ms: Some(listed[0].found_at_ms + 60_000),
        ..FindingFilter::default()
    };
    assert!(scrub.list_findings(&future, 100).await.unwrap().is_empty());
    let past = FindingFilter {
        since_ms: Some(listed[5].found_at_ms),
        ..FindingFilter::default()
    };
    assert_eq!(scrub.list_findings(&past, 100).await.unwrap().len(), 6);

    // A repair resolves the findings of the files it dealt with, and only those.
    let repaired = scrub
        .resolve_findings(
            "main",
            &orders,
            &[
                "s3://b/orders/0.parquet".into(),
                "s3://b/orders/9.parquet".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(repaired, 1);
    assert_eq!(
        scrub.open_finding_counts(Some("main")).await.unwrap(),
        vec![count("main", &items, 1), count("main", &orders, 2)]
    );

    // Expiry takes resolved findings only, once old enough.
    assert_eq!(
        scrub
            .expire_findings(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        scrub
            .expire_findings(Duration::from_millis(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        scrub.list_findings(&everything, 100).await.unwrap().len(),
        5
    );
    // Every warehouse handle sees the same findings.
    let other = store.in_warehouse("lake").unwrap();
    assert_eq!(
        other
            .scrub()
            .list_findings(&everything, 100)
            .await
            .unwrap()
            .len(),
        5
    );
}

pub async fn concurrent_scrubs_keep_one_open_finding(store: Arc<dyn MetadataStore>) {
    let orders = TableName::new(ns(&["sales"]), "orders");
    let pass = shallow(
        "main",
        &orders,
        vec![problem(
            "s3://b/orders/x.parquet",
            FindingKind::Missing,
            &[1],
        )],
    );
    let mut racing = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        let pass = pass.clone();
        racing.spawn(async move { store.scrub().record_scrub(&pass).await });
    }
    while let Some(joined) = racing.join_next().await {
        joined.unwrap().unwrap();
    }
    let listed = store
        .scrub()
        .list_findings(&FindingFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}

pub async fn invalid_scrub_input_is_refused(store: Arc<dyn MetadataStore>) {
    let scrub = store.scrub();
    let good = TableName::new(ns(&["s"]), "t");
    let bad_tables = [
        TableName::new(Vec::<String>::new(), "t"),
        TableName::new(ns(&["s"]), ""),
        TableName::new(ns(&["a\u{1f}b"]), "t"),
    ];
    for table in &bad_tables {
        let result = scrub
            .record_scrub(&shallow("main", table, Vec::new()))
            .await;
        assert!(
            matches!(result, Err(StoreError::InvalidInput(_))),
            "{table:?}: {result:?}"
        );
    }
    let result = scrub.record_scrub(&shallow("", &good, Vec::new())).await;
    assert!(
        matches!(result, Err(StoreError::InvalidInput(_))),
        "{result:?}"
    );
    let mut nul = problem("s3://b/x", FindingKind::Missing, &[]);
    nul.detail = "a\0b".into();
    let result = scrub.record_scrub(&shallow("main", &good, vec![nul])).await;
    assert!(
        matches!(result, Err(StoreError::InvalidInput(_))),
        "{result:?}"
    );
    // Nothing of a refused pass was recorded.
    assert!(
        scrub
            .list_findings(&FindingFilter::default(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}
