//! The conformance checks of disjoint locations (see *Locations* in the crate docs).

use std::sync::Arc;

use super::{ns, warehouse};
use crate::{
    FileChecksum, LocationHolder, MetadataStore, PointerKind, PointerSwap, Properties, StoreError,
    TableName, TablePointer,
};

/// Creates `name` at `location` (a table location; its metadata file somewhere inside).
async fn create_at(
    store: &dyn MetadataStore,
    name: &TableName,
    location: &str,
) -> Result<TablePointer, StoreError> {
    let created = store
        .swap_pointers(&[PointerSwap {
            table: name.clone(),
            expected: None,
            new_location: format!("{location}/metadata/0.json"),
            new_checksum: FileChecksum::of(format!("{location}/metadata/0.json").as_bytes()),
            location: Some(location.to_string()),
            events: Default::default(),
        }])
        .await?;
    Ok(created[0].clone())
}

async fn create_view_at(
    store: &dyn MetadataStore,
    name: &TableName,
    location: &str,
) -> Result<TablePointer, StoreError> {
    store
        .create_view(
            name,
            &format!("{location}/metadata/0.json"),
            &FileChecksum::of(format!("{location}/metadata/0.json").as_bytes()),
            location,
        )
        .await
}

/// The holder a refusal names; panics on any other outcome.
fn holder_of<T: std::fmt::Debug>(outcome: Result<T, StoreError>) -> LocationHolder {
    match outcome {
        Err(StoreError::LocationOverlap { holder, .. }) => *holder,
        other => panic!("expected a location overlap, got {other:?}"),
    }
}

fn table(name: &str) -> TableName {
    TableName::new(ns(&["sales"]), name)
}

async fn with_sales(store: &dyn MetadataStore) {
    store
        .create_namespace(&ns(&["sales"]), &Properties::new())
        .await
        .unwrap();
}

pub async fn locations_never_overlap(store: Arc<dyn MetadataStore>) {
    with_sales(&*store).await;
    let a = table("a");
    create_at(&*store, &a, "s3://lake/wh/a").await.unwrap();

    let b = table("b");
    for overlapping in [
        "s3://lake/wh/a",
        "s3://lake/wh/a/data",
        "s3://lake/wh/a/data/deep/er",
        "s3://lake/wh",
        "s3://lake",
    ] {
        let holder = holder_of(create_at(&*store, &b, overlapping).await);
        assert_eq!(
            holder,
            LocationHolder {
                warehouse: None,
                kind: PointerKind::Table,
                name: a.clone(),
                location: "s3://lake/wh/a".into(),
            },
            "{overlapping}"
        );
        let err = create_at(&*store, &b, overlapping).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("table sales.a") && message.contains(overlapping),
            "{message}"
        );
    }
    assert!(
        matches!(
            store.load_table(&b).await,
            Err(StoreError::TableNotFound(_))
        ),
        "a refused create leaves no row"
    );

    // Whole segments only: siblings sharing a prefix never overlap, in either order.
    for (name, location) in [
        ("t1", "s3://lake/wh/t1"),
        ("t10", "s3://lake/wh/t10"),
        ("a0", "s3://lake/wh/a0"),
        ("a-b", "s3://lake/wh/a-b"),
        ("a.b", "s3://lake/wh/a.b"),
        ("other", "s3://lake2/wh/a"),
    ] {
        create_at(&*store, &table(name), location)
            .await
            .unwrap_or_else(|err| panic!("{location}: {err}"));
    }
    let holder = holder_of(create_at(&*store, &b, "s3://lake/wh/t1/x").await);
    assert_eq!(holder.name, table("t1"));

    // The store takes canonical locations only, and a new table needs one.
    for bad in ["s3://lake/wh/b/", "lake/wh/b", "s3://lake/wh\\b"] {
        let err = create_at(&*store, &b, bad).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{bad}: {err:?}");
    }
    let err = store
        .swap_pointers(&[PointerSwap {
            table: b.clone(),
            expected: None,
            new_location: "s3://lake/wh/b/metadata/0.json".into(),
            new_checksum: FileChecksum::of("s3://lake/wh/b/metadata/0.json".as_bytes()),
            location: None,
            events: Default::default(),
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");

    // Two creates in one batch are checked against each other too: neither is created.
    let (c, d) = (table("c"), table("d"));
    let batch = [
        PointerSwap {
            table: c.clone(),
            expected: None,
            new_location: "s3://lake/c/metadata/0.json".into(),
            new_checksum: FileChecksum::of("s3://lake/c/metadata/0.json".as_bytes()),
            location: Some("s3://lake/c".into()),
            events: Default::default(),
        },
        PointerSwap {
            table: d.clone(),
            expected: None,
            new_location: "s3://lake/c/d/metadata/0.json".into(),
            new_checksum: FileChecksum::of("s3://lake/c/d/metadata/0.json".as_bytes()),
            location: Some("s3://lake/c/d".into()),
            events: Default::default(),
        },
    ];
    holder_of(store.swap_pointers(&batch).await);
    assert!(matches!(
        store.load_table(&c).await,
        Err(StoreError::TableNotFound(_))
    ));
    assert!(matches!(
        store.load_table(&d).await,
        Err(StoreError::TableNotFound(_))
    ));
}

pub async fn locations_are_disjoint_across_warehouses_and_kinds(store: Arc<dyn MetadataStore>) {
    with_sales(&*store).await;
    store
        .create_warehouse(&warehouse("lake", "memory://lake"))
        .await
        .unwrap();
    let lake = store.in_warehouse("lake").unwrap();
    with_sales(&*lake).await;

    // Warehouses may share storage: a location is checked against every warehouse's.
    create_at(&*store, &table("a"), "s3://shared/a")
        .await
        .unwrap();
    let holder = holder_of(create_at(&*lake, &table("a"), "s3://shared/a/data").await);
    assert_eq!((holder.warehouse, holder.name), (None, table("a")));
    create_view_at(&*lake, &table("v"), "s3://shared/v")
        .await
        .unwrap();
    let holder = holder_of(create_at(&*store, &table("t"), "s3://shared/v/t").await);
    assert_eq!(
        holder,
        LocationHolder {
            warehouse: Some("lake".into()),
            kind: PointerKind::View,
            name: table("v"),
            location: "s3://shared/v".into(),
        }
    );
    let message = create_at(&*store, &table("t"), "s3://shared/v/t")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("view sales.v in warehouse lake"),
        "{message}"
    );

    // Views against tables and views.
    let holder = holder_of(create_view_at(&*store, &table("w"), "s3://shared/a").await);
    assert_eq!(holder.kind, PointerKind::Table);
    let holder = holder_of(create_view_at(&*store, &table("w"), "s3://shared").await);
    assert!(
        [table("a"), table("v")].contains(&holder.name),
        "{holder:?}"
    );
    let holder = holder_of(create_view_at(&*store, &table("w"), "s3://shared/v/w").await);
    assert_eq!(holder.kind, PointerKind::View);
    assert!(matches!(
        store.load_view(&table("w")).await,
        Err(StoreError::ViewNotFound(_))
    ));
    create_view_at(&*store, &table("w"), "s3://shared/w")
        .await
        .unwrap();
}

pub async fn dropping_frees_a_location_and_renaming_keeps_it(store: Arc<dyn MetadataStore>) {
    with_sales(&*store).await;
    store
        .create_namespace(&ns(&["archive"]), &Properties::new())
        .await
        .unwrap();
    let (a, moved) = (table("a"), TableName::new(ns(&["archive"]), "a_old"));
    create_at(&*store, &a, "s3://lake/a").await.unwrap();
    store.rename_table(&a, &moved).await.unwrap();
    let holder = holder_of(create_at(&*store, &table("b"), "s3://lake/a").await);
    assert_eq!(
        holder.name, moved,
        "the location moves with the renamed table"
    );
    store.drop_table(&moved).await.unwrap();
    create_at(&*store, &table("b"), "s3://lake/a")
        .await
        .unwrap();

    let v = table("v");
    create_view_at(&*store, &v, "s3://lake/v").await.unwrap();
    store.rename_view(&v, &table("v2")).await.unwrap();
    let holder = holder_of(create_at(&*store, &table("c"), "s3://lake/v/c").await);
    assert_eq!((holder.kind, holder.name), (PointerKind::View, table("v2")));
    store.drop_view(&table("v2")).await.unwrap();
    create_at(&*store, &table("c"), "s3://lake/v/c")
        .await
        .unwrap();
}

pub async fn a_location_change_is_checked(store: Arc<dyn MetadataStore>) {
    with_sales(&*store).await;
    let (a, b) = (table("a"), table("b"));
    create_at(&*store, &a, "s3://lake/a").await.unwrap();
    let before = create_at(&*store, &b, "s3://lake/b").await.unwrap();
    let mv = |location: Option<&str>, new_location: &str| PointerSwap {
        table: b.clone(),
        expected: Some(before.metadata_location.clone()),
        new_location: new_location.into(),
        new_checksum: FileChecksum::of(new_location.as_bytes()),
        location: location.map(str::to_string),
        events: Default::default(),
    };

    // Into another table's location: refused, and nothing moves.
    let holder = holder_of(
        store
            .swap_pointers(&[mv(Some("s3://lake/a/b"), "s3://lake/a/b/metadata/1.json")])
            .await,
    );
    assert_eq!(holder.name, a);
    assert_eq!(store.load_table(&b).await.unwrap(), before);
    let holder = holder_of(create_at(&*store, &table("c"), "s3://lake/b/c").await);
    assert_eq!(holder.name, b, "b keeps its location after a refused move");

    // A commit that keeps the location is not checked; one that moves it frees the old one.
    let kept = store
        .swap_pointers(&[mv(None, "s3://lake/b/metadata/1.json")])
        .await
        .unwrap();
    assert_eq!(kept[0].version, 2);
    store
        .swap_pointers(&[PointerSwap {
            table: b.clone(),
            expected: Some("s3://lake/b/metadata/1.json".into()),
            new_location: "s3://lake/b2/metadata/2.json".into(),
            new_checksum: FileChecksum::of("s3://lake/b2/metadata/2.json".as_bytes()),
            location: Some("s3://lake/b2".into()),
            events: Default::default(),
        }])
        .await
        .unwrap();
    create_at(&*store, &table("c"), "s3://lake/b/c")
        .await
        .unwrap();
    let holder = holder_of(create_at(&*store, &table("d"), "s3://lake/b2").await);
    assert_eq!(holder.name, b);

    // Moving into a directory of one's own old location is no overlap with oneself.
    store
        .swap_pointers(&[PointerSwap {
            table: a.clone(),
            expected: Some("s3://lake/a/metadata/0.json".into()),
            new_location: "s3://lake/a/inner/metadata/1.json".into(),
            new_checksum: FileChecksum::of("s3://lake/a/inner/metadata/1.json".as_bytes()),
            location: Some("s3://lake/a/inner".into()),
            events: Default::default(),
        }])
        .await
        .unwrap();

    // Views likewise.
    let v = table("v");
    create_view_at(&*store, &v, "s3://lake/v").await.unwrap();
    let holder = holder_of(
        store
            .swap_view_pointer(
                &v,
                "s3://lake/v/metadata/0.json",
                "s3://lake/a/inner/v/metadata/1.json",
                &FileChecksum::of("s3://lake/a/inner/v/metadata/1.json".as_bytes()),
                Some("s3://lake/a/inner/v"),
            )
            .await,
    );
    assert_eq!(holder.name, a);
    assert_eq!(store.load_view(&v).await.unwrap().version, 1);
    store
        .swap_view_pointer(
            &v,
            "s3://lake/v/metadata/0.json",
            "s3://lake/v2/metadata/1.json",
            &FileChecksum::of("s3://lake/v2/metadata/1.json".as_bytes()),
            Some("s3://lake/v2"),
        )
        .await
        .unwrap();
    create_at(&*store, &table("e"), "s3://lake/v")
        .await
        .unwrap();
}

/// Concurrent creates at one location, as tables and as views: exactly one wins, on every round.
pub async fn racing_creates_at_one_location(store: Arc<dyn MetadataStore>) {
    with_sales(&*store).await;
    for round in 0..4 {
        let location = format!("s3://race/{round}");
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..8 {
            let store = store.clone();
            let name = table(&format!("r{round}_{task}"));
            // Half of them aim at a directory inside the location: still one winner only.
            let location = if task % 2 == 0 {
                location.clone()
            } else {
                format!("{location}/sub")
            };
            tasks.spawn(async move {
                if task % 3 == 0 {
                    create_view_at(&*store, &name, &location).await
                } else {
                    create_at(&*store, &name, &location).await
                }
            });
        }
        let outcomes = tasks.join_all().await;
        let won = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        for outcome in outcomes {
            match outcome {
                Ok(_) => {}
                Err(StoreError::LocationOverlap { .. }) => {}
                Err(err) => panic!("round {round}: {err:?}"),
            }
        }
    }
}
