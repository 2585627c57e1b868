//! The conformance checks of integrity-checked pointers (see *Integrity* in the crate docs).

use std::sync::Arc;

use super::{create_table, fresh_location, ns, props, swap};
use crate::{FileChecksum, MetadataStore, PointerKind, StoreError, TableName};

fn checksum(location: &str) -> Option<FileChecksum> {
    Some(FileChecksum::of(location.as_bytes()))
}

/// Every operation that sets a table's or a view's metadata location records the checksum given
/// with it, and every read returns it.
pub async fn checksums_round_trip(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store.create_namespace(&sales, &props(&[])).await.unwrap();
    let orders = TableName::new(sales.clone(), "orders");

    let created = create_table(store.as_ref(), &orders, "s3://b/o/1.json").await;
    assert_eq!(created.checksum, checksum("s3://b/o/1.json"));
    assert_eq!(
        store.load_table(&orders).await.unwrap().checksum,
        checksum("s3://b/o/1.json")
    );
    let moved = store
        .swap_pointers(&[swap(&orders, "s3://b/o/1.json", "s3://b/o/2.json")])
        .await
        .unwrap();
    assert_eq!(moved[0].checksum, checksum("s3://b/o/2.json"));
    assert_eq!(
        store.load_table(&orders).await.unwrap().checksum,
        checksum("s3://b/o/2.json")
    );
    // A refused swap changes nothing, its checksum included.
    let err = store
        .swap_pointers(&[swap(&orders, "s3://b/o/1.json", "s3://b/o/3.json")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(
        store.load_table(&orders).await.unwrap().checksum,
        checksum("s3://b/o/2.json")
    );
    assert_eq!(
        store.drop_table(&orders).await.unwrap().checksum,
        checksum("s3://b/o/2.json")
    );

    let monthly = TableName::new(sales.clone(), "monthly");
    let view = store
        .create_view(
            &monthly,
            "s3://b/v/1.json",
            &FileChecksum::of(b"s3://b/v/1.json"),
            &fresh_location(),
        )
        .await
        .unwrap();
    assert_eq!(view.checksum, checksum("s3://b/v/1.json"));
    assert_eq!(
        store.load_view(&monthly).await.unwrap().checksum,
        checksum("s3://b/v/1.json")
    );
    let moved = store
        .swap_view_pointer(
            &monthly,
            "s3://b/v/1.json",
            "s3://b/v/2.json",
            &FileChecksum::of(b"s3://b/v/2.json"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(moved.checksum, checksum("s3://b/v/2.json"));
    assert_eq!(
        store.load_view(&monthly).await.unwrap().checksum,
        checksum("s3://b/v/2.json")
    );
    assert_eq!(
        store.drop_view(&monthly).await.unwrap().checksum,
        checksum("s3://b/v/2.json")
    );
}

/// [`MetadataStore::record_checksum`] never overwrites a checksum a commit recorded.
pub async fn recorded_checksums_are_not_replaced(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store.create_namespace(&sales, &props(&[])).await.unwrap();
    let orders = TableName::new(sales.clone(), "orders");
    create_table(store.as_ref(), &orders, "s3://b/o/1.json").await;
    let recorded = store
        .record_checksum(
            PointerKind::Table,
            &orders,
            "s3://b/o/1.json",
            &FileChecksum::of(b"other bytes"),
        )
        .await
        .unwrap();
    assert!(!recorded);
    let pointer = store.load_table(&orders).await.unwrap();
    assert_eq!(pointer.checksum, checksum("s3://b/o/1.json"));
    assert_eq!(pointer.version, 1);
    // A row that is gone, or of the other kind, is no error either.
    let missing = TableName::new(sales, "missing");
    for (kind, name) in [(PointerKind::Table, &missing), (PointerKind::View, &orders)] {
        let recorded = store
            .record_checksum(kind, name, "s3://b/o/1.json", &FileChecksum::of(b"x"))
            .await
            .unwrap();
        assert!(!recorded, "{kind} {name}");
    }
}

/// Rows written before checksums were recorded (`forget` clears the checksum of every row, as
/// the migration left them): the checksum is recorded only while the row still names the file it
/// was taken of, without moving the version, and only once.
pub async fn checksums_are_backfilled_only_while_current(
    store: Arc<dyn MetadataStore>,
    forget: impl AsyncFn(),
) {
    let sales = ns(&["sales"]);
    store.create_namespace(&sales, &props(&[])).await.unwrap();
    let orders = TableName::new(sales.clone(), "orders");
    let monthly = TableName::new(sales.clone(), "monthly");
    create_table(store.as_ref(), &orders, "s3://b/o/1.json").await;
    store
        .swap_pointers(&[swap(&orders, "s3://b/o/1.json", "s3://b/o/2.json")])
        .await
        .unwrap();
    store
        .create_view(
            &monthly,
            "s3://b/v/1.json",
            &FileChecksum::of(b"s3://b/v/1.json"),
            &fresh_location(),
        )
        .await
        .unwrap();
    forget().await;
    let before = store.load_table(&orders).await.unwrap();
    assert_eq!(before.checksum, None);
    assert_eq!(store.load_view(&monthly).await.unwrap().checksum, None);

    // A reader that read the pointer before a commit moved it records nothing.
    let stale = store
        .record_checksum(
            PointerKind::Table,
            &orders,
            "s3://b/o/1.json",
            &FileChecksum::of(b"s3://b/o/1.json"),
        )
        .await
        .unwrap();
    assert!(!stale);
    assert_eq!(store.load_table(&orders).await.unwrap().checksum, None);

    let current = FileChecksum::of(b"s3://b/o/2.json");
    let recorded = store
        .record_checksum(PointerKind::Table, &orders, "s3://b/o/2.json", &current)
        .await
        .unwrap();
    assert!(recorded);
    let after = store.load_table(&orders).await.unwrap();
    assert_eq!(after.checksum, Some(current.clone()));
    assert_eq!(after.version, before.version, "a backfill is not a commit");

    // Once only: a second reader's (different) checksum does not replace the first.
    let again = store
        .record_checksum(
            PointerKind::Table,
            &orders,
            "s3://b/o/2.json",
            &FileChecksum::of(b"other"),
        )
        .await
        .unwrap();
    assert!(!again);
    assert_eq!(
        store.load_table(&orders).await.unwrap().checksum,
        Some(current)
    );

    // Views alike; a table's name is not a view's.
    let view_checksum = FileChecksum::of(b"s3://b/v/1.json");
    assert!(
        !store
            .record_checksum(
                PointerKind::Table,
                &monthly,
                "s3://b/v/1.json",
                &view_checksum
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .record_checksum(
                PointerKind::View,
                &monthly,
                "s3://b/v/1.json",
                &view_checksum
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.load_view(&monthly).await.unwrap().checksum,
        Some(view_checksum)
    );

    // The next commit writes its own file's checksum, whatever was recorded before.
    let moved = store
        .swap_pointers(&[swap(&orders, "s3://b/o/2.json", "s3://b/o/3.json")])
        .await
        .unwrap();
    assert_eq!(moved[0].checksum, checksum("s3://b/o/3.json"));
    assert_eq!(
        store.load_table(&orders).await.unwrap().checksum,
        checksum("s3://b/o/3.json")
    );
}
