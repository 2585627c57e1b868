//! The conformance suite every [`MetadataStore`] backend must pass.
//!
//! Each check takes a fresh, empty store and panics on the first broken promise of the trait. A
//! backend runs them all, one test each, with [`metadata_store_suite!`](crate::metadata_store_suite):
//!
//! ```ignore
//! mod conformance {
//!     async fn fresh() -> (std::sync::Arc<dyn floe_store::MetadataStore>, tempfile::TempDir) { ... }
//!     floe_store::metadata_store_suite!(fresh());
//! }
//! ```
//!
//! Listings are expected in Rust's `String` order (Unicode code points, i.e. bytes of UTF-8): a
//! PostgreSQL backend must compare names with `COLLATE "C"`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{
    FileChecksum, IdempotencyClaim, JobFilter, JobRecord, MetadataStore, NamespacePath,
    PageRequest, PointerSwap, Properties, PropertiesChange, StoreError, StoredResponse, TableName,
    TablePointer, WarehouseRecord,
};

mod access;
pub use access::*;
mod due;
pub use due::*;
mod replicas;
mod scrub;
pub use replicas::*;
pub use scrub::*;

/// Generates one `#[tokio::test]` per check of this suite, in the module where it is invoked.
///
/// `$fresh` is an expression evaluated anew for every test; it is a future yielding the store and a
/// guard kept alive until the test ends (a temporary directory, a throwaway database; `()` if none).
/// The invoking crate needs `tokio` with its test macros.
#[macro_export]
macro_rules! metadata_store_suite {
    ($fresh:expr) => {
        $crate::metadata_store_suite!(@checks $fresh;
            namespaces_life_cycle,
            pagination,
            properties_update,
            drop_non_empty_namespace,
            table_create_load_drop,
            rename_across_namespaces,
            views_life_cycle,
            views_and_tables_never_share_names,
            racing_view_and_table_creates,
            concurrent_view_swaps_serialize,
            views_rename_page_and_keep_to_their_warehouse,
            swap_conflict_is_detected,
            multi_table_swap_is_all_or_nothing,
            concurrent_swaps_serialize,
            idempotency_keys,
            concurrent_claims_of_one_key,
            abandoned_idempotency_claims_are_taken_over,
            names_are_opaque,
            invalid_names_are_refused,
            lease_is_exclusive,
            lease_renewal_and_release,
            lease_expiry,
            concurrent_lease_acquires,
            ping_answers,
            warehouses_are_registered_and_dropped,
            warehouses_keep_names_apart,
            namespaces_need_their_warehouse,
            job_records_are_kept_and_listed,
            file_marks_keep_their_first_time,
            locations_never_overlap,
            locations_are_disjoint_across_warehouses_and_kinds,
            dropping_frees_a_location_and_renaming_keeps_it,
            a_location_change_is_checked,
            racing_creates_at_one_location,
            checksums_round_trip,
            recorded_checksums_are_not_replaced,
        );
        // The access-control records (suite/access.rs).
        $crate::metadata_store_suite!(@checks $fresh;
            principals_life_cycle,
            roles_cascade,
            grants_are_idempotent,
            policy_version_moves_with_every_change,
            policy_holds_every_securable,
            concurrent_grants,
            signing_keys_newest_first,
            audit_log_lists_and_expires,
            invalid_access_names_are_refused,
        );
        // The scrubber's findings (suite/scrub.rs).
        $crate::metadata_store_suite!(@checks $fresh;
            scrub_findings_open_refresh_and_resolve,
            scrub_findings_are_listed_counted_and_expired,
            concurrent_scrubs_keep_one_open_finding,
            invalid_scrub_input_is_refused,
        );
        // The replicas' heartbeats (suite/replicas.rs).
        $crate::metadata_store_suite!(@checks $fresh;
            replica_heartbeats_are_listed_and_forgotten,
        );
        // The due rows of the event-driven scheduler (suite/due.rs).
        $crate::metadata_store_suite!(@checks $fresh;
            new_tables_are_due_and_claims_are_exclusive,
            commits_count_towards_thresholds,
            expiry_is_due_when_the_oldest_snapshot_ages_out,
            settings_changes_make_everything_due,
            due_rows_follow_their_table,
            concurrent_claims_take_disjoint_rows,
        );
    };
    (@checks $fresh:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $check() {
                let (store, _guard) = $fresh.await;
                $crate::suite::$check(store).await;
            }
        )*
    };
}

mod integrity;
mod locations;
pub use integrity::*;
pub use locations::*;

fn ns(levels: &[&str]) -> NamespacePath {
    levels.iter().map(|level| level.to_string()).collect()
}

fn props(pairs: &[(&str, &str)]) -> Properties {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

fn all() -> PageRequest {
    PageRequest::default()
}

/// A table location no other test uses: the store refuses overlapping locations across the
/// whole store (see *Locations* in the crate docs), and most checks are not about them.
fn fresh_location() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("s3://suite/fresh/{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Creates the table through a swap from nothing, as the commit engine does.
async fn create_table(
    store: &dyn MetadataStore,
    table: &TableName,
    location: &str,
) -> TablePointer {
    let created = store
        .swap_pointers(&[PointerSwap {
            table: table.clone(),
            expected: None,
            new_location: location.into(),
            new_checksum: FileChecksum::of(location.as_bytes()),
            location: Some(fresh_location()),
            events: Default::default(),
        }])
        .await
        .unwrap_or_else(|err| panic!("creating {table}: {err}"));
    assert_eq!(created.len(), 1);
    created.into_iter().next().unwrap()
}

fn swap(table: &TableName, expected: &str, new_location: &str) -> PointerSwap {
    PointerSwap {
        table: table.clone(),
        expected: Some(expected.into()),
        new_location: new_location.into(),
        new_checksum: FileChecksum::of(new_location.as_bytes()),
        location: None,
        events: Default::default(),
    }
}

/// The pointer the suite expects: its files' checksums are taken of their names.
fn pointer(location: &str, version: i64) -> TablePointer {
    TablePointer {
        metadata_location: location.into(),
        version,
        checksum: Some(FileChecksum::of(location.as_bytes())),
    }
}

pub async fn namespaces_life_cycle(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    let sales_props = props(&[("owner", "ana"), ("comment", "all sales")]);
    store.create_namespace(&sales, &sales_props).await.unwrap();
    assert_eq!(store.load_namespace(&sales).await.unwrap(), sales_props);

    let err = store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NamespaceAlreadyExists(n) if *n == sales),
        "{err:?}"
    );
    assert_eq!(
        store.load_namespace(&sales).await.unwrap(),
        sales_props,
        "a refused create changed the existing namespace"
    );

    let orphan = ns(&["nowhere", "child"]);
    let err = store
        .create_namespace(&orphan, &Properties::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NamespaceNotFound(n) if *n == ns(&["nowhere"])),
        "{err:?}"
    );

    store
        .create_namespace(&ns(&["hr"]), &Properties::new())
        .await
        .unwrap();
    store
        .create_namespace(&ns(&["sales", "eu"]), &Properties::new())
        .await
        .unwrap();
    store
        .create_namespace(&ns(&["sales", "us"]), &Properties::new())
        .await
        .unwrap();
    store
        .create_namespace(&ns(&["sales", "eu", "fr"]), &Properties::new())
        .await
        .unwrap();
    assert_eq!(
        store.load_namespace(&ns(&["sales", "eu"])).await.unwrap(),
        Properties::new()
    );

    let top = store.list_namespaces(None, &all()).await.unwrap();
    assert_eq!(
        top.items,
        vec![ns(&["hr"]), ns(&["sales"])],
        "top level, in name order"
    );
    assert_eq!(top.next_page_token, None);
    let children = store.list_namespaces(Some(&sales), &all()).await.unwrap();
    assert_eq!(
        children.items,
        vec![ns(&["sales", "eu"]), ns(&["sales", "us"])],
        "direct children only"
    );
    let leaves = store
        .list_namespaces(Some(&ns(&["sales", "us"])), &all())
        .await
        .unwrap();
    assert!(leaves.items.is_empty());
    let err = store
        .list_namespaces(Some(&ns(&["nowhere"])), &all())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound(_)), "{err:?}");

    store.drop_namespace(&ns(&["hr"])).await.unwrap();
    let err = store.load_namespace(&ns(&["hr"])).await.unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound(_)), "{err:?}");
    let err = store.drop_namespace(&ns(&["hr"])).await.unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound(_)), "{err:?}");
    let top = store.list_namespaces(None, &all()).await.unwrap();
    assert_eq!(top.items, vec![ns(&["sales"])]);

    // A dropped name can be used again, without the old properties.
    store
        .create_namespace(&ns(&["hr"]), &props(&[("a", "b")]))
        .await
        .unwrap();
    assert_eq!(
        store.load_namespace(&ns(&["hr"])).await.unwrap(),
        props(&[("a", "b")])
    );
}

pub async fn pagination(store: Arc<dyn MetadataStore>) {
    let names = ["g", "b", "e", "a", "f", "c", "d"];
    let root = ns(&["root"]);
    store
        .create_namespace(&root, &Properties::new())
        .await
        .unwrap();
    for name in names {
        store
            .create_namespace(&ns(&["root", name]), &Properties::new())
            .await
            .unwrap();
        create_table(
            &*store,
            &TableName::new(root.clone(), name),
            "s3://b/m.json",
        )
        .await;
    }
    let mut sorted = strings(&names);
    sorted.sort();

    for size in [1, 2, 3, 6, 7, 8, 100] {
        let (namespaces, pages) = all_pages(size, async |page| {
            let listed = store.list_namespaces(Some(&root), &page).await.unwrap();
            (listed.items, listed.next_page_token)
        })
        .await;
        assert_eq!(
            pages,
            names.len().div_ceil(size),
            "pages of namespaces, {size} each"
        );
        let expected: Vec<_> = sorted.iter().map(|name| ns(&["root", name])).collect();
        assert_eq!(namespaces, expected, "namespaces in pages of {size}");

        let (tables, pages) = all_pages(size, async |page| {
            let listed = store.list_tables(&root, &page).await.unwrap();
            (listed.items, listed.next_page_token)
        })
        .await;
        assert_eq!(
            pages,
            names.len().div_ceil(size),
            "pages of tables, {size} each"
        );
        assert_eq!(tables, sorted, "tables in pages of {size}");
    }

    // Without a size, everything in one page.
    let everything = store.list_tables(&root, &all()).await.unwrap();
    assert_eq!(everything.items, sorted);
    assert_eq!(everything.next_page_token, None);

    // Keyset pages: an item added behind the cursor does not shift the next page.
    let first = store
        .list_tables(
            &root,
            &PageRequest {
                token: None,
                size: Some(3),
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items, strings(&["a", "b", "c"]));
    create_table(
        &*store,
        &TableName::new(root.clone(), "aa"),
        "s3://b/m.json",
    )
    .await;
    let second = store
        .list_tables(
            &root,
            &PageRequest {
                token: first.next_page_token,
                size: Some(3),
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items, strings(&["d", "e", "f"]));

    let err = store
        .list_tables(
            &root,
            &PageRequest {
                token: Some("not a token".into()),
                size: Some(3),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    let err = store
        .list_tables(&ns(&["nowhere"]), &all())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound(_)), "{err:?}");
}

/// Follows `next_page_token`s from the first page to the last; returns the items and the number of
/// pages. Checks that no page is larger than asked.
async fn all_pages<T>(
    size: usize,
    list: impl AsyncFn(PageRequest) -> (Vec<T>, Option<String>),
) -> (Vec<T>, usize) {
    let mut items = Vec::new();
    let mut pages = 0;
    let mut token = None;
    loop {
        let (page, next) = list(PageRequest {
            token,
            size: Some(size),
        })
        .await;
        assert!(
            page.len() <= size,
            "a page of {} items, {size} asked",
            page.len()
        );
        items.extend(page);
        pages += 1;
        assert!(pages <= 1000, "pagination does not end");
        match next {
            Some(next) => token = Some(next),
            None => return (items, pages),
        }
    }
}

pub async fn properties_update(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store
        .create_namespace(&sales, &props(&[("a", "1"), ("b", "2"), ("c", "3")]))
        .await
        .unwrap();

    let change = store
        .update_namespace_properties(
            &sales,
            &strings(&["b", "zz", "c"]),
            &props(&[("d", "4"), ("a", "10")]),
        )
        .await
        .unwrap();
    assert_eq!(
        change,
        PropertiesChange {
            updated: strings(&["a", "d"]),
            removed: strings(&["b", "c"]),
            missing: strings(&["zz"]),
        }
    );
    assert_eq!(
        store.load_namespace(&sales).await.unwrap(),
        props(&[("a", "10"), ("d", "4")])
    );

    // Removals apply before updates: a key in both ends up set.
    let change = store
        .update_namespace_properties(&sales, &strings(&["a"]), &props(&[("a", "11")]))
        .await
        .unwrap();
    assert_eq!(change.removed, strings(&["a"]));
    assert_eq!(change.updated, strings(&["a"]));
    assert_eq!(
        store.load_namespace(&sales).await.unwrap(),
        props(&[("a", "11"), ("d", "4")])
    );

    // Values are strings of any content, and round-trip exactly.
    let odd = props(&[
        ("json", "{\"x\": [1, 2]}"),
        ("empty", ""),
        ("ünï", "ço\nde"),
    ]);
    store
        .update_namespace_properties(&sales, &[], &odd)
        .await
        .unwrap();
    let loaded = store.load_namespace(&sales).await.unwrap();
    for (key, value) in &odd {
        assert_eq!(loaded.get(key), Some(value));
    }

    let err = store
        .update_namespace_properties(&ns(&["nowhere"]), &[], &props(&[("a", "1")]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound(_)), "{err:?}");
}

pub async fn drop_non_empty_namespace(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    let eu = ns(&["sales", "eu"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    store
        .create_namespace(&eu, &Properties::new())
        .await
        .unwrap();
    let orders = TableName::new(eu.clone(), "orders");
    create_table(&*store, &orders, "s3://b/orders/1.json").await;

    let err = store.drop_namespace(&eu).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NamespaceNotEmpty { namespace, .. } if *namespace == eu),
        "{err:?}"
    );
    let err = store.drop_namespace(&sales).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NamespaceNotEmpty { namespace, .. } if *namespace == sales),
        "{err:?}"
    );
    assert!(store.load_namespace(&eu).await.is_ok());
    assert!(store.load_table(&orders).await.is_ok());

    store.drop_table(&orders).await.unwrap();
    store.drop_namespace(&eu).await.unwrap();
    store.drop_namespace(&sales).await.unwrap();
    assert!(
        store
            .list_namespaces(None, &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn table_create_load_drop(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    let orders = TableName::new(sales.clone(), "orders");

    let err = store.load_table(&orders).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::TableNotFound(t) if *t == orders),
        "{err:?}"
    );

    let created = create_table(&*store, &orders, "s3://b/orders/1.json").await;
    assert_eq!(created, pointer("s3://b/orders/1.json", 1));
    assert_eq!(store.load_table(&orders).await.unwrap(), created);

    let err = store
        .swap_pointers(&[PointerSwap {
            table: orders.clone(),
            expected: None,
            new_location: "s3://b/orders/other.json".into(),
            new_checksum: FileChecksum::of("s3://b/orders/other.json".as_bytes()),
            location: Some(fresh_location()),
            events: Default::default(),
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TableAlreadyExists(t) if *t == orders),
        "{err:?}"
    );
    assert_eq!(store.load_table(&orders).await.unwrap(), created);

    let elsewhere = TableName::new(ns(&["nowhere"]), "orders");
    let err = store
        .swap_pointers(&[PointerSwap {
            table: elsewhere,
            expected: None,
            new_location: "s3://b/x.json".into(),
            new_checksum: FileChecksum::of("s3://b/x.json".as_bytes()),
            location: Some(fresh_location()),
            events: Default::default(),
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NamespaceNotFound(n) if *n == ns(&["nowhere"])),
        "{err:?}"
    );

    let moved = store
        .swap_pointers(&[swap(
            &orders,
            "s3://b/orders/1.json",
            "s3://b/orders/2.json",
        )])
        .await
        .unwrap();
    assert_eq!(moved, vec![pointer("s3://b/orders/2.json", 2)]);
    assert_eq!(store.load_table(&orders).await.unwrap(), moved[0]);

    let missing = TableName::new(sales.clone(), "missing");
    let err = store
        .swap_pointers(&[swap(&missing, "s3://b/x.json", "s3://b/y.json")])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TableNotFound(t) if *t == missing),
        "{err:?}"
    );

    assert_eq!(
        store.list_tables(&sales, &all()).await.unwrap().items,
        strings(&["orders"])
    );
    let dropped = store.drop_table(&orders).await.unwrap();
    assert_eq!(dropped, pointer("s3://b/orders/2.json", 2));
    let err = store.load_table(&orders).await.unwrap_err();
    assert!(matches!(err, StoreError::TableNotFound(_)), "{err:?}");
    let err = store.drop_table(&orders).await.unwrap_err();
    assert!(matches!(err, StoreError::TableNotFound(_)), "{err:?}");
    assert!(
        store
            .list_tables(&sales, &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // A table created again under a dropped name starts over.
    let recreated = create_table(&*store, &orders, "s3://b/orders/new.json").await;
    assert_eq!(recreated, pointer("s3://b/orders/new.json", 1));

    // Nothing to swap is a no-op.
    assert!(store.swap_pointers(&[]).await.unwrap().is_empty());
}

pub async fn rename_across_namespaces(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    let archive = ns(&["archive"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    store
        .create_namespace(&archive, &Properties::new())
        .await
        .unwrap();
    let orders = TableName::new(sales.clone(), "orders");
    let orders_2024 = TableName::new(sales.clone(), "orders_2024");
    let archived = TableName::new(archive.clone(), "orders_2024");
    create_table(&*store, &orders, "s3://b/orders/1.json").await;
    store
        .swap_pointers(&[swap(
            &orders,
            "s3://b/orders/1.json",
            "s3://b/orders/2.json",
        )])
        .await
        .unwrap();
    let before = store.load_table(&orders).await.unwrap();

    store.rename_table(&orders, &orders_2024).await.unwrap();
    assert!(matches!(
        store.load_table(&orders).await,
        Err(StoreError::TableNotFound(_))
    ));
    assert_eq!(store.load_table(&orders_2024).await.unwrap(), before);

    store.rename_table(&orders_2024, &archived).await.unwrap();
    assert_eq!(
        store.load_table(&archived).await.unwrap(),
        before,
        "the pointer moves with the table"
    );
    assert!(
        store
            .list_tables(&sales, &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store.list_tables(&archive, &all()).await.unwrap().items,
        strings(&["orders_2024"])
    );
    // The renamed table is the same table: it keeps committing from its pointer.
    let moved = store
        .swap_pointers(&[swap(
            &archived,
            "s3://b/orders/2.json",
            "s3://b/orders/3.json",
        )])
        .await
        .unwrap();
    assert_eq!(moved, vec![pointer("s3://b/orders/3.json", 3)]);

    let err = store.rename_table(&orders, &archived).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::TableNotFound(t) if *t == orders),
        "{err:?}"
    );

    let other = TableName::new(sales.clone(), "other");
    create_table(&*store, &other, "s3://b/other/1.json").await;
    let err = store.rename_table(&other, &archived).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::TableAlreadyExists(t) if *t == archived),
        "{err:?}"
    );
    let nowhere = TableName::new(ns(&["nowhere"]), "other");
    let err = store.rename_table(&other, &nowhere).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NamespaceNotFound(n) if *n == ns(&["nowhere"])),
        "{err:?}"
    );
    assert_eq!(
        store.load_table(&other).await.unwrap(),
        pointer("s3://b/other/1.json", 1),
        "a refused rename leaves the table where it was"
    );
    assert_eq!(store.load_table(&archived).await.unwrap().version, 3);

    // Moving its tables away empties a namespace.
    store
        .rename_table(&other, &TableName::new(archive, "other"))
        .await
        .unwrap();
    store.drop_namespace(&sales).await.unwrap();
}

pub async fn swap_conflict_is_detected(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    let orders = TableName::new(sales, "orders");
    create_table(&*store, &orders, "s3://b/orders/1.json").await;

    // Two committers read the same pointer and race.
    let first = [swap(
        &orders,
        "s3://b/orders/1.json",
        "s3://b/orders/a.json",
    )];
    let second = [swap(
        &orders,
        "s3://b/orders/1.json",
        "s3://b/orders/b.json",
    )];
    let (first, second) = tokio::join!(store.swap_pointers(&first), store.swap_pointers(&second));
    let winner = match (first, second) {
        (Ok(won), Err(StoreError::Conflict { table })) => {
            assert_eq!(table, orders);
            won
        }
        (Err(StoreError::Conflict { table }), Ok(won)) => {
            assert_eq!(table, orders);
            won
        }
        other => panic!("exactly one swap must win, the other conflict: {other:?}"),
    };
    assert_eq!(winner[0].version, 2);
    assert_eq!(store.load_table(&orders).await.unwrap(), winner[0]);

    // A committer that read the winner's pointer goes on from there.
    let next = store
        .swap_pointers(&[swap(
            &orders,
            &winner[0].metadata_location,
            "s3://b/orders/c.json",
        )])
        .await
        .unwrap();
    assert_eq!(next, vec![pointer("s3://b/orders/c.json", 3)]);

    // A stale expected pointer conflicts even when nobody races it at that moment.
    let err = store
        .swap_pointers(&[swap(
            &orders,
            "s3://b/orders/1.json",
            "s3://b/orders/d.json",
        )])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { table } if *table == orders),
        "{err:?}"
    );
    assert_eq!(store.load_table(&orders).await.unwrap(), next[0]);
}

pub async fn multi_table_swap_is_all_or_nothing(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    let [a, b, c] = ["a", "b", "c"].map(|name| TableName::new(sales.clone(), name));
    for table in [&a, &b, &c] {
        create_table(&*store, table, &format!("s3://b/{}/1.json", table.name)).await;
    }
    let fresh = TableName::new(sales.clone(), "fresh");
    let snapshot = async || {
        let mut pointers = Vec::new();
        for table in [&a, &b, &c] {
            pointers.push(store.load_table(table).await.unwrap());
        }
        pointers
    };
    let before = snapshot().await;

    // One stale pointer in the middle of a batch: nothing moves, nothing is created.
    let err = store
        .swap_pointers(&[
            swap(&a, "s3://b/a/1.json", "s3://b/a/2.json"),
            PointerSwap {
                table: fresh.clone(),
                expected: None,
                new_location: "s3://b/fresh/1.json".into(),
                new_checksum: FileChecksum::of("s3://b/fresh/1.json".as_bytes()),
                location: Some(fresh_location()),
                events: Default::default(),
            },
            swap(&b, "s3://b/b/0.json", "s3://b/b/2.json"),
            swap(&c, "s3://b/c/1.json", "s3://b/c/2.json"),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { table } if *table == b),
        "{err:?}"
    );
    assert_eq!(snapshot().await, before, "a failed batch moved a pointer");
    assert!(
        matches!(
            store.load_table(&fresh).await,
            Err(StoreError::TableNotFound(_))
        ),
        "a failed batch created a table"
    );

    // Likewise for a missing table, and for a table that already exists.
    let missing = TableName::new(sales.clone(), "missing");
    let err = store
        .swap_pointers(&[
            swap(&a, "s3://b/a/1.json", "s3://b/a/2.json"),
            swap(&missing, "s3://b/m/1.json", "s3://b/m/2.json"),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TableNotFound(t) if *t == missing),
        "{err:?}"
    );
    let err = store
        .swap_pointers(&[
            swap(&a, "s3://b/a/1.json", "s3://b/a/2.json"),
            PointerSwap {
                table: c.clone(),
                expected: None,
                new_location: "s3://b/c/new.json".into(),
                new_checksum: FileChecksum::of("s3://b/c/new.json".as_bytes()),
                location: Some(fresh_location()),
                events: Default::default(),
            },
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TableAlreadyExists(t) if *t == c),
        "{err:?}"
    );
    assert_eq!(snapshot().await, before, "a failed batch moved a pointer");

    // A good batch moves every pointer, and returns them in order.
    let moved = store
        .swap_pointers(&[
            swap(&c, "s3://b/c/1.json", "s3://b/c/2.json"),
            PointerSwap {
                table: fresh.clone(),
                expected: None,
                new_location: "s3://b/fresh/1.json".into(),
                new_checksum: FileChecksum::of("s3://b/fresh/1.json".as_bytes()),
                location: Some(fresh_location()),
                events: Default::default(),
            },
            swap(&a, "s3://b/a/1.json", "s3://b/a/2.json"),
        ])
        .await
        .unwrap();
    assert_eq!(
        moved,
        vec![
            pointer("s3://b/c/2.json", 2),
            pointer("s3://b/fresh/1.json", 1),
            pointer("s3://b/a/2.json", 2),
        ]
    );
    assert_eq!(
        snapshot().await,
        vec![
            pointer("s3://b/a/2.json", 2),
            pointer("s3://b/b/1.json", 1),
            pointer("s3://b/c/2.json", 2),
        ]
    );
}

/// Many committers loop read → swap → retry-on-conflict on one table. Every swap that reported
/// success must be in the table's history: the successes form one chain from the first pointer to
/// the last, with no two of them moving from the same pointer.
pub async fn concurrent_swaps_serialize(store: Arc<dyn MetadataStore>) {
    const TASKS: usize = 16;
    const SUCCESSES: usize = 20;
    let sales = ns(&["sales"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    let orders = TableName::new(sales, "orders");
    create_table(&*store, &orders, "s3://b/orders/0.json").await;

    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = store.clone();
        let orders = orders.clone();
        tasks.spawn(async move {
            let mut moves = Vec::new();
            let mut conflicts = 0;
            while moves.len() < SUCCESSES {
                let current = store.load_table(&orders).await.unwrap();
                let next = format!("s3://b/orders/{task}-{}.json", moves.len());
                match store
                    .swap_pointers(&[swap(&orders, &current.metadata_location, &next)])
                    .await
                {
                    Ok(moved) => {
                        assert_eq!(moved[0].metadata_location, next);
                        assert!(moved[0].version > current.version);
                        moves.push((current.metadata_location, next, moved[0].version));
                    }
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(err) => panic!("task {task}: only conflicts may fail a swap: {err}"),
                }
                assert!(conflicts < 100_000, "task {task} starves");
            }
            moves
        });
    }
    let moves: Vec<(String, String, i64)> = tasks.join_all().await.into_iter().flatten().collect();
    let total = TASKS * SUCCESSES;
    assert_eq!(moves.len(), total);

    let last = store.load_table(&orders).await.unwrap();
    assert_eq!(
        last.version,
        1 + total as i64,
        "every success moved the version once"
    );
    let versions: HashSet<i64> = moves.iter().map(|(_, _, version)| *version).collect();
    assert_eq!(
        versions,
        (2..=1 + total as i64).collect(),
        "versions of the successes"
    );
    let chain: BTreeMap<&str, &str> = moves
        .iter()
        .map(|(from, to, _)| (from.as_str(), to.as_str()))
        .collect();
    assert_eq!(
        chain.len(),
        total,
        "two successful swaps moved from the same pointer"
    );
    let mut at = "s3://b/orders/0.json";
    for _ in 0..total {
        at = chain
            .get(at)
            .unwrap_or_else(|| panic!("the history breaks after {at}: a success was lost"));
    }
    assert_eq!(at, last.metadata_location);
}

/// The server instance claiming keys in the idempotency tests, and a takeover timeout no test
/// reaches unless it means to.
const OWNER: &str = "instance-a";
const TAKEOVER: Duration = Duration::from_secs(120);

pub async fn idempotency_keys(store: Arc<dyn MetadataStore>) {
    let response = StoredResponse {
        status: 200,
        body: b"{\"ok\":true}".to_vec(),
        content_type: Some("application/json".into()),
    };
    let claim = |key: &'static str, fingerprint: &'static str| {
        let store = store.clone();
        async move {
            store
                .claim_idempotency_key(key, fingerprint, OWNER, TAKEOVER)
                .await
                .unwrap()
        }
    };

    assert_eq!(claim("k1", "f1").await, IdempotencyClaim::Claimed);
    assert_eq!(claim("k1", "f1").await, IdempotencyClaim::InFlight);
    assert_eq!(claim("k1", "f2").await, IdempotencyClaim::Mismatch);

    store
        .complete_idempotency_key("k1", OWNER, &response)
        .await
        .unwrap();
    assert_eq!(
        claim("k1", "f1").await,
        IdempotencyClaim::Completed(response.clone())
    );
    assert_eq!(claim("k1", "f2").await, IdempotencyClaim::Mismatch);
    // A completed key is kept for replay: releasing it does nothing.
    store.release_idempotency_key("k1", OWNER).await.unwrap();
    assert_eq!(
        claim("k1", "f1").await,
        IdempotencyClaim::Completed(response.clone())
    );

    // An empty body and no content type round-trip too.
    let empty = StoredResponse {
        status: 204,
        body: Vec::new(),
        content_type: None,
    };
    assert_eq!(claim("k2", "f").await, IdempotencyClaim::Claimed);
    store
        .complete_idempotency_key("k2", OWNER, &empty)
        .await
        .unwrap();
    assert_eq!(claim("k2", "f").await, IdempotencyClaim::Completed(empty));

    // A released key can be claimed again, by any request.
    assert_eq!(claim("k3", "f1").await, IdempotencyClaim::Claimed);
    store.release_idempotency_key("k3", OWNER).await.unwrap();
    assert_eq!(claim("k3", "f2").await, IdempotencyClaim::Claimed);
    store
        .release_idempotency_key("never-claimed", OWNER)
        .await
        .unwrap();

    assert_eq!(
        store
            .expire_idempotency_keys(Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "nothing is an hour old"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store
            .expire_idempotency_keys(Duration::from_millis(10))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        claim("k1", "f2").await,
        IdempotencyClaim::Claimed,
        "k1 expired"
    );
}

pub async fn concurrent_claims_of_one_key(store: Arc<dyn MetadataStore>) {
    let mut claims = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let store = store.clone();
        claims.spawn(async move {
            store
                .claim_idempotency_key("key", "f", OWNER, TAKEOVER)
                .await
                .unwrap()
        });
    }
    let claims = claims.join_all().await;
    let claimed = claims
        .iter()
        .filter(|claim| **claim == IdempotencyClaim::Claimed)
        .count();
    assert_eq!(claimed, 1, "{claims:?}");
    assert_eq!(
        claims.len() - claimed,
        claims
            .iter()
            .filter(|claim| **claim == IdempotencyClaim::InFlight)
            .count()
    );
}

/// Names are data, never syntax: whatever a level or table name contains comes back unchanged.
pub async fn names_are_opaque(store: Arc<dyn MetadataStore>) {
    let levels = [
        "a/b",
        "..",
        ".",
        "%2F",
        "%1F",
        "a b",
        " ",
        "ünïcödé",
        "日本",
        "🦀",
        "'",
        "\"",
        "a.b",
        "\\",
        "*",
        "?",
        "_",
        "%",
        "-- x",
        "a\nb",
        "NULL",
    ];
    for level in levels {
        let namespace = ns(&[level]);
        let properties = props(&[("level", level)]);
        store
            .create_namespace(&namespace, &properties)
            .await
            .unwrap_or_else(|err| panic!("creating {level:?}: {err}"));
        assert_eq!(store.load_namespace(&namespace).await.unwrap(), properties);
        let nested = ns(&[level, level]);
        store
            .create_namespace(&nested, &Properties::new())
            .await
            .unwrap();
        let table = TableName::new(nested.clone(), level);
        let location = format!("s3://b/{level}.json");
        create_table(&*store, &table, &location).await;
        assert_eq!(
            store.load_table(&table).await.unwrap(),
            pointer(&location, 1)
        );
        assert_eq!(
            store
                .list_namespaces(Some(&namespace), &all())
                .await
                .unwrap()
                .items,
            vec![nested.clone()]
        );
        assert_eq!(
            store.list_tables(&nested, &all()).await.unwrap().items,
            strings(&[level])
        );
    }

    // Levels that look like wildcards or prefixes of others match only themselves.
    let mut expected: Vec<NamespacePath> = levels.iter().map(|level| ns(&[level])).collect();
    expected.sort();
    let listed = store.list_namespaces(None, &all()).await.unwrap().items;
    assert_eq!(listed, expected, "top level, in code point order");

    // Paging through odd names yields each exactly once.
    let (paged, _) = all_pages(4, async |page| {
        let listed = store.list_namespaces(None, &page).await.unwrap();
        (listed.items, listed.next_page_token)
    })
    .await;
    assert_eq!(paged, expected);

    // ["a", "b"] and ["a.b"] are different namespaces.
    store
        .create_namespace(&ns(&["a"]), &Properties::new())
        .await
        .unwrap();
    store
        .create_namespace(&ns(&["a", "b"]), &Properties::new())
        .await
        .unwrap();
    assert_eq!(
        store
            .list_namespaces(Some(&ns(&["a"])), &all())
            .await
            .unwrap()
            .items,
        vec![ns(&["a", "b"])]
    );
    assert_eq!(
        store
            .list_namespaces(Some(&ns(&["a.b"])), &all())
            .await
            .unwrap()
            .items,
        vec![ns(&["a.b", "a.b"])]
    );
}

pub async fn invalid_names_are_refused(store: Arc<dyn MetadataStore>) {
    let invalid = [
        ns(&[]),
        ns(&[""]),
        ns(&["a", ""]),
        ns(&["a\u{1f}b"]),
        ns(&["a\0b"]),
    ];
    store
        .create_namespace(&ns(&["a"]), &Properties::new())
        .await
        .unwrap();
    for namespace in &invalid {
        let err = store
            .create_namespace(namespace, &Properties::new())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{namespace:?}: {err:?}"
        );
        let err = store.load_namespace(namespace).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{namespace:?}: {err:?}"
        );
        let table = TableName::new(namespace.clone(), "t");
        let err = store
            .swap_pointers(&[PointerSwap {
                table,
                expected: None,
                new_location: "s3://b/t.json".into(),
                new_checksum: FileChecksum::of("s3://b/t.json".as_bytes()),
                location: Some(fresh_location()),
                events: Default::default(),
            }])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{namespace:?}: {err:?}"
        );
    }
    for name in ["", "t\0"] {
        let table = TableName::new(ns(&["a"]), name);
        let err = store
            .swap_pointers(&[PointerSwap {
                table,
                expected: None,
                new_location: "s3://b/t.json".into(),
                new_checksum: FileChecksum::of("s3://b/t.json".as_bytes()),
                location: Some(fresh_location()),
                events: Default::default(),
            }])
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{name:?}: {err:?}"
        );
    }
    let err = store
        .list_tables(
            &ns(&["a"]),
            &PageRequest {
                token: None,
                size: Some(0),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    assert_eq!(
        store.list_namespaces(None, &all()).await.unwrap().items,
        vec![ns(&["a"])],
        "a refused name was stored"
    );
}

const HOUR: Duration = Duration::from_secs(3600);

pub async fn lease_is_exclusive(store: Arc<dyn MetadataStore>) {
    assert!(
        store
            .try_acquire_lease("compaction", "r1", HOUR)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_acquire_lease("compaction", "r2", HOUR)
            .await
            .unwrap(),
        "a held lease went to a second holder"
    );
    // Leases of other names are independent.
    assert!(store.try_acquire_lease("expiry", "r2", HOUR).await.unwrap());
    assert!(!store.try_acquire_lease("expiry", "r1", HOUR).await.unwrap());
    assert!(
        !store
            .try_acquire_lease("compaction", "r2", HOUR)
            .await
            .unwrap()
    );

    // Malformed requests are refused, not treated as "held by someone else".
    for (name, holder, ttl) in [
        ("", "r1", HOUR),
        ("compaction", "", HOUR),
        ("compaction", "r\0", HOUR),
        ("compaction", "r1", Duration::ZERO),
    ] {
        let err = store
            .try_acquire_lease(name, holder, ttl)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{name:?} {holder:?} {ttl:?}: {err:?}"
        );
    }
    let err = store.release_lease("", "r1").await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
}

pub async fn lease_renewal_and_release(store: Arc<dyn MetadataStore>) {
    // A short lease renewed for longer outlives its first term.
    assert!(
        store
            .try_acquire_lease("compaction", "r1", Duration::from_millis(300))
            .await
            .unwrap()
    );
    assert!(
        store
            .try_acquire_lease("compaction", "r1", HOUR)
            .await
            .unwrap(),
        "the holder could not renew"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !store
            .try_acquire_lease("compaction", "r2", HOUR)
            .await
            .unwrap(),
        "a renewed lease expired at the end of its first term"
    );

    // Only the holder's release frees it.
    store.release_lease("compaction", "r2").await.unwrap();
    assert!(
        !store
            .try_acquire_lease("compaction", "r2", HOUR)
            .await
            .unwrap()
    );
    store.release_lease("compaction", "r1").await.unwrap();
    assert!(
        store
            .try_acquire_lease("compaction", "r2", HOUR)
            .await
            .unwrap(),
        "a released lease stayed taken"
    );
    assert!(
        !store
            .try_acquire_lease("compaction", "r1", HOUR)
            .await
            .unwrap()
    );
    // Releasing what one does not hold, or what nobody holds, is a no-op.
    store.release_lease("compaction", "r1").await.unwrap();
    store.release_lease("never-taken", "r1").await.unwrap();
    assert!(
        !store
            .try_acquire_lease("compaction", "r1", HOUR)
            .await
            .unwrap()
    );
}

pub async fn lease_expiry(store: Arc<dyn MetadataStore>) {
    let short = Duration::from_millis(100);
    assert!(
        store
            .try_acquire_lease("compaction", "r1", short)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        store
            .try_acquire_lease("compaction", "r2", HOUR)
            .await
            .unwrap(),
        "an expired lease could not be taken over"
    );
    assert!(
        !store
            .try_acquire_lease("compaction", "r1", HOUR)
            .await
            .unwrap(),
        "the former holder renewed a lease taken over by another"
    );

    // The holder of an expired lease nobody took over may still renew it.
    assert!(
        store
            .try_acquire_lease("expiry", "r1", short)
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.try_acquire_lease("expiry", "r1", HOUR).await.unwrap());
    assert!(!store.try_acquire_lease("expiry", "r2", HOUR).await.unwrap());
}

/// Many replicas race for one free lease, then for one expired lease: one of them wins each time.
pub async fn concurrent_lease_acquires(store: Arc<dyn MetadataStore>) {
    assert!(
        store
            .try_acquire_lease("expired", "old", Duration::from_millis(100))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    for name in ["free", "expired"] {
        let mut tasks = tokio::task::JoinSet::new();
        for replica in 0..16 {
            let store = store.clone();
            tasks.spawn(async move {
                let holder = format!("r{replica}");
                store.try_acquire_lease(name, &holder, HOUR).await.unwrap()
            });
        }
        let won = tasks
            .join_all()
            .await
            .into_iter()
            .filter(|won| *won)
            .count();
        assert_eq!(won, 1, "{won} holders took the {name} lease");
    }
}

pub async fn ping_answers(store: Arc<dyn MetadataStore>) {
    store.ping().await.expect("a fresh store answers a ping");
    // A ping touches no data: the store is still empty.
    let namespaces = store.list_namespaces(None, &all()).await.unwrap();
    assert!(namespaces.items.is_empty());
    store.ping().await.expect("and again");
}

fn view(namespace: &[&str], name: &str) -> TableName {
    TableName::new(ns(namespace), name)
}

pub async fn views_life_cycle(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    let monthly = view(&["sales"], "monthly");
    assert_eq!(
        store
            .create_view(
                &monthly,
                "s3://b/v/1.json",
                &FileChecksum::of("s3://b/v/1.json".as_bytes()),
                &fresh_location()
            )
            .await
            .unwrap(),
        pointer("s3://b/v/1.json", 1)
    );
    assert_eq!(
        store.load_view(&monthly).await.unwrap(),
        pointer("s3://b/v/1.json", 1)
    );
    assert_eq!(
        store.list_views(&sales, &all()).await.unwrap().items,
        strings(&["monthly"])
    );

    let err = store
        .create_view(
            &monthly,
            "s3://b/v/other.json",
            &FileChecksum::of("s3://b/v/other.json".as_bytes()),
            &fresh_location(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::ViewAlreadyExists(v) if *v == monthly),
        "{err:?}"
    );
    let err = store
        .create_view(
            &view(&["nowhere"], "v"),
            "s3://b/v/1.json",
            &FileChecksum::of("s3://b/v/1.json".as_bytes()),
            &fresh_location(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound(_)), "{err:?}");
    let err = store
        .list_views(&ns(&["nowhere"]), &all())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound(_)), "{err:?}");

    // The compare-and-swap: from the pointer read, once.
    assert_eq!(
        store
            .swap_view_pointer(
                &monthly,
                "s3://b/v/1.json",
                "s3://b/v/2.json",
                &FileChecksum::of("s3://b/v/2.json".as_bytes()),
                None
            )
            .await
            .unwrap(),
        pointer("s3://b/v/2.json", 2)
    );
    let err = store
        .swap_view_pointer(
            &monthly,
            "s3://b/v/1.json",
            "s3://b/v/3.json",
            &FileChecksum::of("s3://b/v/3.json".as_bytes()),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { table } if *table == monthly),
        "{err:?}"
    );
    assert_eq!(
        store.load_view(&monthly).await.unwrap(),
        pointer("s3://b/v/2.json", 2),
        "a stale swap changed the pointer"
    );
    let err = store
        .swap_view_pointer(
            &view(&["sales"], "ghost"),
            "s3://b/v/1.json",
            "s3://b/v/3.json",
            &FileChecksum::of("s3://b/v/3.json".as_bytes()),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ViewNotFound(_)), "{err:?}");

    // A namespace holding only a view is not empty.
    let err = store.drop_namespace(&sales).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NamespaceNotEmpty { .. }),
        "{err:?}"
    );

    assert_eq!(
        store.drop_view(&monthly).await.unwrap(),
        pointer("s3://b/v/2.json", 2)
    );
    for err in [
        store.load_view(&monthly).await.unwrap_err(),
        store.drop_view(&monthly).await.unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::ViewNotFound(v) if *v == monthly),
            "{err:?}"
        );
    }
    assert!(
        store
            .list_views(&sales, &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A dropped name can be used again, from version 1.
    assert_eq!(
        store
            .create_view(
                &monthly,
                "s3://b/v2/1.json",
                &FileChecksum::of("s3://b/v2/1.json".as_bytes()),
                &fresh_location()
            )
            .await
            .unwrap(),
        pointer("s3://b/v2/1.json", 1)
    );
    store.drop_view(&monthly).await.unwrap();
    store.drop_namespace(&sales).await.unwrap();

    for bad in [
        view(&["sales"], ""),
        view(&["sales"], "a\0"),
        view(&[], "v"),
    ] {
        let err = store
            .create_view(
                &bad,
                "s3://b/v/1.json",
                &FileChecksum::of("s3://b/v/1.json".as_bytes()),
                &fresh_location(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{bad:?}: {err:?}"
        );
        let err = store.load_view(&bad).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput(_)),
            "{bad:?}: {err:?}"
        );
    }
}

/// A view and a table never share a name in one namespace, and each kind's methods see only their
/// own kind.
pub async fn views_and_tables_never_share_names(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    let table = TableName::new(sales.clone(), "orders");
    let view = TableName::new(sales.clone(), "monthly");
    create_table(&*store, &table, "s3://b/t/1.json").await;
    store
        .create_view(
            &view,
            "s3://b/v/1.json",
            &FileChecksum::of("s3://b/v/1.json".as_bytes()),
            &fresh_location(),
        )
        .await
        .unwrap();

    let err = store
        .create_view(
            &table,
            "s3://b/v/x.json",
            &FileChecksum::of("s3://b/v/x.json".as_bytes()),
            &fresh_location(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::TableAlreadyExists(t) if *t == table),
        "{err:?}"
    );
    let err = store
        .swap_pointers(&[PointerSwap {
            table: view.clone(),
            expected: None,
            new_location: "s3://b/t/x.json".into(),
            new_checksum: FileChecksum::of("s3://b/t/x.json".as_bytes()),
            location: Some(fresh_location()),
            events: Default::default(),
        }])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::ViewAlreadyExists(v) if *v == view),
        "{err:?}"
    );

    assert_eq!(
        store.list_tables(&sales, &all()).await.unwrap().items,
        strings(&["orders"])
    );
    assert_eq!(
        store.list_views(&sales, &all()).await.unwrap().items,
        strings(&["monthly"])
    );
    let err = store.load_table(&view).await.unwrap_err();
    assert!(matches!(err, StoreError::TableNotFound(_)), "{err:?}");
    let err = store.load_view(&table).await.unwrap_err();
    assert!(matches!(err, StoreError::ViewNotFound(_)), "{err:?}");
    let err = store.drop_table(&view).await.unwrap_err();
    assert!(matches!(err, StoreError::TableNotFound(_)), "{err:?}");
    let err = store.drop_view(&table).await.unwrap_err();
    assert!(matches!(err, StoreError::ViewNotFound(_)), "{err:?}");
    let err = store
        .swap_pointers(&[swap(&view, "s3://b/v/1.json", "s3://b/t/x.json")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TableNotFound(_)), "{err:?}");
    let err = store
        .swap_view_pointer(
            &table,
            "s3://b/t/1.json",
            "s3://b/v/x.json",
            &FileChecksum::of("s3://b/v/x.json".as_bytes()),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ViewNotFound(_)), "{err:?}");

    // Renames onto the other kind's name are refused, and renames move only their own kind.
    let err = store.rename_table(&table, &view).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::ViewAlreadyExists(v) if *v == view),
        "{err:?}"
    );
    let err = store.rename_view(&view, &table).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::TableAlreadyExists(t) if *t == table),
        "{err:?}"
    );
    let elsewhere = TableName::new(sales.clone(), "elsewhere");
    let err = store.rename_table(&view, &elsewhere).await.unwrap_err();
    assert!(matches!(err, StoreError::TableNotFound(_)), "{err:?}");
    let err = store.rename_view(&table, &elsewhere).await.unwrap_err();
    assert!(matches!(err, StoreError::ViewNotFound(_)), "{err:?}");

    // Nothing above changed either pointer.
    assert_eq!(
        store.load_table(&table).await.unwrap(),
        pointer("s3://b/t/1.json", 1)
    );
    assert_eq!(
        store.load_view(&view).await.unwrap(),
        pointer("s3://b/v/1.json", 1)
    );
}

/// Creates of a view and a table with one name, racing: exactly one of them lands, and the other
/// learns the name is taken.
pub async fn racing_view_and_table_creates(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    for round in 0..20 {
        let name = TableName::new(sales.clone(), format!("n{round}"));
        let as_view = tokio::spawn({
            let (store, name) = (store.clone(), name.clone());
            async move {
                store
                    .create_view(
                        &name,
                        "s3://b/v/1.json",
                        &FileChecksum::of("s3://b/v/1.json".as_bytes()),
                        &fresh_location(),
                    )
                    .await
            }
        });
        let as_table = tokio::spawn({
            let (store, name) = (store.clone(), name.clone());
            async move {
                store
                    .swap_pointers(&[PointerSwap {
                        table: name,
                        expected: None,
                        new_location: "s3://b/t/1.json".into(),
                        new_checksum: FileChecksum::of("s3://b/t/1.json".as_bytes()),
                        location: Some(fresh_location()),
                        events: Default::default(),
                    }])
                    .await
            }
        });
        let (view, table) = (as_view.await.unwrap(), as_table.await.unwrap());
        let already_exists = |err: &StoreError| {
            matches!(
                err,
                StoreError::TableAlreadyExists(_) | StoreError::ViewAlreadyExists(_)
            )
        };
        match (&view, &table) {
            (Ok(_), Err(err)) => {
                assert!(already_exists(err), "round {round}: {err:?}");
                assert!(store.load_view(&name).await.is_ok());
                assert!(store.load_table(&name).await.is_err());
            }
            (Err(err), Ok(_)) => {
                assert!(already_exists(err), "round {round}: {err:?}");
                assert!(store.load_table(&name).await.is_ok());
                assert!(store.load_view(&name).await.is_err());
            }
            other => panic!("round {round}: exactly one create must land: {other:?}"),
        }
    }
}

/// Racing swaps of one view from the pointer they all read: exactly one wins.
pub async fn concurrent_view_swaps_serialize(store: Arc<dyn MetadataStore>) {
    let sales = ns(&["sales"]);
    store
        .create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    let monthly = TableName::new(sales, "monthly");
    store
        .create_view(
            &monthly,
            "s3://b/v/0.json",
            &FileChecksum::of("s3://b/v/0.json".as_bytes()),
            &fresh_location(),
        )
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..8 {
        let (store, monthly) = (store.clone(), monthly.clone());
        tasks.spawn(async move {
            store
                .swap_view_pointer(
                    &monthly,
                    "s3://b/v/0.json",
                    &format!("s3://b/v/new-{task}.json"),
                    &FileChecksum::of(format!("s3://b/v/new-{task}.json").as_bytes()),
                    None,
                )
                .await
        });
    }
    let results = tasks.join_all().await;
    let won: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|err| matches!(err, StoreError::Conflict { .. })),
        "{results:?}"
    );
    assert_eq!(store.load_view(&monthly).await.unwrap(), *won[0]);
    assert_eq!(won[0].version, 2);
}

/// Views page like tables, rename across namespaces with their pointer, and stay in their
/// warehouse.
pub async fn views_rename_page_and_keep_to_their_warehouse(store: Arc<dyn MetadataStore>) {
    let (sales, archive) = (ns(&["sales"]), ns(&["archive"]));
    for namespace in [&sales, &archive] {
        store
            .create_namespace(namespace, &Properties::new())
            .await
            .unwrap();
    }
    let names = ["g", "b", "e", "a", "f", "c", "d"];
    for name in names {
        store
            .create_view(
                &TableName::new(sales.clone(), name),
                &format!("s3://b/{name}.json"),
                &FileChecksum::of(format!("s3://b/{name}.json").as_bytes()),
                &fresh_location(),
            )
            .await
            .unwrap();
    }
    // A table in the middle of the names must not show up in, or shift, the pages of views.
    create_table(
        &*store,
        &TableName::new(sales.clone(), "bb"),
        "s3://b/t.json",
    )
    .await;
    let mut sorted = strings(&names);
    sorted.sort();
    for size in [1, 2, 3, 7, 8] {
        let (views, pages) = all_pages(size, async |page| {
            let listed = store.list_views(&sales, &page).await.unwrap();
            (listed.items, listed.next_page_token)
        })
        .await;
        assert_eq!(views, sorted, "views in pages of {size}");
        assert_eq!(pages, names.len().div_ceil(size), "pages of {size}");
    }

    let from = TableName::new(sales.clone(), "a");
    let to = TableName::new(archive.clone(), "a_2025");
    store
        .swap_view_pointer(
            &from,
            "s3://b/a.json",
            "s3://b/a2.json",
            &FileChecksum::of("s3://b/a2.json".as_bytes()),
            None,
        )
        .await
        .unwrap();
    store.rename_view(&from, &to).await.unwrap();
    assert_eq!(
        store.load_view(&to).await.unwrap(),
        pointer("s3://b/a2.json", 2),
        "the pointer moves with the view"
    );
    assert!(matches!(
        store.load_view(&from).await,
        Err(StoreError::ViewNotFound(_))
    ));
    assert_eq!(
        store.list_views(&archive, &all()).await.unwrap().items,
        strings(&["a_2025"])
    );
    let err = store
        .rename_view(&to, &TableName::new(ns(&["nowhere"]), "a"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NamespaceNotFound(_)), "{err:?}");
    let err = store
        .rename_view(&to, &TableName::new(sales.clone(), "b"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ViewAlreadyExists(_)), "{err:?}");

    // Another warehouse has its own names: the same view name there is a different view.
    store
        .create_warehouse(&warehouse("lake", "memory://lake"))
        .await
        .unwrap();
    let lake = store.in_warehouse("lake").unwrap();
    lake.create_namespace(&sales, &Properties::new())
        .await
        .unwrap();
    assert!(
        lake.list_views(&sales, &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        lake.load_view(&TableName::new(sales.clone(), "b")).await,
        Err(StoreError::ViewNotFound(_))
    ));
    lake.create_view(
        &TableName::new(sales.clone(), "b"),
        "s3://lake/b.json",
        &FileChecksum::of("s3://lake/b.json".as_bytes()),
        &fresh_location(),
    )
    .await
    .unwrap();
    assert_eq!(
        store
            .load_view(&TableName::new(sales.clone(), "b"))
            .await
            .unwrap()
            .metadata_location,
        "s3://b/b.json"
    );
    let err = lake
        .rename_view(
            &TableName::new(sales.clone(), "b"),
            &TableName::new(archive, "b"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NamespaceNotFound(_)),
        "a rename never leaves its warehouse: {err:?}"
    );
}

fn warehouse(name: &str, url: &str) -> WarehouseRecord {
    WarehouseRecord {
        name: name.into(),
        storage_url: url.into(),
        properties: props(&[("s3.region", "eu-west-1"), ("s3.secret-access-key", "k")]),
        created_at_ms: 0,
    }
}

pub async fn warehouses_are_registered_and_dropped(store: Arc<dyn MetadataStore>) {
    assert!(store.list_warehouses().await.unwrap().is_empty());
    let lake = warehouse("lake", "s3://bucket/lake");
    store.create_warehouse(&lake).await.unwrap();
    store
        .create_warehouse(&warehouse("archive", "file:///srv/archive"))
        .await
        .unwrap();
    assert!(matches!(
        store.create_warehouse(&lake).await,
        Err(StoreError::WarehouseAlreadyExists(name)) if name == "lake"
    ));

    let loaded = store.load_warehouse("lake").await.unwrap();
    assert_eq!(loaded.storage_url, lake.storage_url);
    assert_eq!(loaded.properties, lake.properties);
    assert!(
        loaded.created_at_ms > 0,
        "the store stamps the creation time"
    );
    let names: Vec<String> = store
        .list_warehouses()
        .await
        .unwrap()
        .into_iter()
        .map(|warehouse| warehouse.name)
        .collect();
    assert_eq!(names, strings(&["archive", "lake"]));

    for bad in ["", "Lake", "a/b", "-x", "a\u{1f}b"] {
        assert!(
            matches!(
                store.create_warehouse(&warehouse(bad, "memory://x")).await,
                Err(StoreError::InvalidInput(_))
            ),
            "{bad:?}"
        );
        assert!(store.in_warehouse(bad).is_err(), "{bad:?}");
    }

    // Not empty: a namespace holds it; the registry is unchanged by the refusal.
    let in_lake = store.in_warehouse("lake").unwrap();
    in_lake
        .create_namespace(&ns(&["sales"]), &Properties::new())
        .await
        .unwrap();
    assert!(matches!(
        store.drop_warehouse("lake").await,
        Err(StoreError::WarehouseNotEmpty(name)) if name == "lake"
    ));
    assert!(store.load_warehouse("lake").await.is_ok());
    in_lake.drop_namespace(&ns(&["sales"])).await.unwrap();
    store.drop_warehouse("lake").await.unwrap();
    assert!(matches!(
        store.load_warehouse("lake").await,
        Err(StoreError::WarehouseNotFound(name)) if name == "lake"
    ));
    assert!(matches!(
        store.drop_warehouse("lake").await,
        Err(StoreError::WarehouseNotFound(_))
    ));
}

pub async fn warehouses_keep_names_apart(store: Arc<dyn MetadataStore>) {
    store
        .create_warehouse(&warehouse("lake", "memory://lake"))
        .await
        .unwrap();
    let lake = store.in_warehouse("lake").unwrap();
    let default = store.clone();
    let orders = TableName::new(ns(&["sales"]), "orders");
    for (store, location) in [(&default, "s3://d/1.json"), (&lake, "s3://l/1.json")] {
        store
            .create_namespace(&ns(&["sales"]), &props(&[("location", location)]))
            .await
            .unwrap();
        store
            .create_namespace(&ns(&["sales", "eu"]), &Properties::new())
            .await
            .unwrap();
        create_table(store.as_ref(), &orders, location).await;
    }
    // Each sees its own namespace tree and pointers only.
    for (store, location) in [(&default, "s3://d/1.json"), (&lake, "s3://l/1.json")] {
        let top = store.list_namespaces(None, &all()).await.unwrap();
        assert_eq!(top.items, vec![ns(&["sales"])]);
        let children = store
            .list_namespaces(Some(&ns(&["sales"])), &all())
            .await
            .unwrap();
        assert_eq!(children.items, vec![ns(&["sales", "eu"])]);
        assert_eq!(
            store.load_namespace(&ns(&["sales"])).await.unwrap(),
            props(&[("location", location)])
        );
        assert_eq!(
            store.load_table(&orders).await.unwrap(),
            pointer(location, 1)
        );
    }
    // A swap in one warehouse moves that warehouse's pointer only.
    lake.swap_pointers(&[swap(&orders, "s3://l/1.json", "s3://l/2.json")])
        .await
        .unwrap();
    assert_eq!(
        default.load_table(&orders).await.unwrap(),
        pointer("s3://d/1.json", 1)
    );
    assert!(matches!(
        default
            .swap_pointers(&[swap(&orders, "s3://l/2.json", "s3://d/2.json")])
            .await,
        Err(StoreError::Conflict { .. })
    ));
    // Renames and drops stay inside the warehouse.
    let renamed = TableName::new(ns(&["sales", "eu"]), "orders");
    lake.rename_table(&orders, &renamed).await.unwrap();
    assert!(default.load_table(&orders).await.is_ok());
    assert!(matches!(
        default.load_table(&renamed).await,
        Err(StoreError::TableNotFound(_))
    ));
    default.drop_table(&orders).await.unwrap();
    assert_eq!(
        lake.load_table(&renamed).await.unwrap(),
        pointer("s3://l/2.json", 2)
    );
    let tables = lake
        .list_tables(&ns(&["sales", "eu"]), &all())
        .await
        .unwrap();
    assert_eq!(tables.items, strings(&["orders"]));
    assert!(
        default
            .list_tables(&ns(&["sales", "eu"]), &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn namespaces_need_their_warehouse(store: Arc<dyn MetadataStore>) {
    let ghost = store.in_warehouse("ghost").unwrap();
    assert!(matches!(
        ghost.create_namespace(&ns(&["sales"]), &Properties::new()).await,
        Err(StoreError::WarehouseNotFound(name)) if name == "ghost"
    ));
    assert!(
        ghost
            .list_namespaces(None, &all())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        ghost
            .load_table(&TableName::new(ns(&["sales"]), "orders"))
            .await,
        Err(StoreError::TableNotFound(_))
    ));
    // Racing creates of namespaces against the warehouse's drop: each namespace either lands
    // before the drop (which then fails) or is refused; never one in a dropped warehouse.
    for round in 0..10 {
        store
            .create_warehouse(&warehouse("racy", "memory://racy"))
            .await
            .unwrap();
        let racy = store.in_warehouse("racy").unwrap();
        let create = tokio::spawn({
            let racy = racy.clone();
            async move {
                racy.create_namespace(&ns(&[&format!("n{round}")]), &Properties::new())
                    .await
            }
        });
        let dropped = store.drop_warehouse("racy").await;
        let created = create.await.unwrap();
        match (&dropped, &created) {
            (Ok(()), Err(StoreError::WarehouseNotFound(_))) => {}
            (Err(StoreError::WarehouseNotEmpty(_)), Ok(())) => {
                racy.drop_namespace(&ns(&[&format!("n{round}")]))
                    .await
                    .unwrap();
                store.drop_warehouse("racy").await.unwrap();
            }
            other => panic!("round {round}: {other:?}"),
        }
        assert!(
            racy.list_namespaces(None, &all())
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}

fn job(id: &str, warehouse: &str, table: &TableName, kind: &str, started_at_ms: i64) -> JobRecord {
    JobRecord {
        id: id.into(),
        warehouse: warehouse.into(),
        table: table.clone(),
        kind: kind.into(),
        trigger: "schedule".into(),
        started_at_ms,
        finished_at_ms: None,
        outcome: "running".into(),
        error: None,
        stats: Properties::new(),
    }
}

pub async fn job_records_are_kept_and_listed(store: Arc<dyn MetadataStore>) {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let orders = TableName::new(ns(&["sales", "eu"]), "orders");
    let items = TableName::new(ns(&["sales"]), "items");
    let mut first = job("j1", "main", &orders, "compaction", now - 3_000);
    store.record_job(&first).await.unwrap();
    // The same run again, finished: one record, updated.
    first.finished_at_ms = Some(now - 2_000);
    first.outcome = "succeeded".into();
    first.stats = props(&[("files-in", "12"), ("bytes-out", "1024")]);
    store.record_job(&first).await.unwrap();
    let mut failed = job("j2", "main", &orders, "snapshot-expiry", now - 1_000);
    failed.outcome = "failed".into();
    failed.error = Some("metadata store unavailable".into());
    failed.finished_at_ms = Some(now - 500);
    store.record_job(&failed).await.unwrap();
    store
        .record_job(&job("j3", "main", &items, "compaction", now - 200))
        .await
        .unwrap();
    store
        .record_job(&job("j4", "lake", &orders, "compaction", now - 100))
        .await
        .unwrap();

    let all = store.list_jobs(&JobFilter::default(), 10).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, ["j4", "j3", "j2", "j1"], "newest first");
    assert_eq!(all[3], first, "a record reads back as written");
    assert_eq!(all[2], failed);

    let of_orders = store
        .list_jobs(
            &JobFilter {
                warehouse: Some("main".into()),
                table: Some(orders.clone()),
                kind: None,
            },
            10,
        )
        .await
        .unwrap();
    let ids: Vec<&str> = of_orders.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, ["j2", "j1"]);
    let compactions = store
        .list_jobs(
            &JobFilter {
                kind: Some("compaction".into()),
                ..JobFilter::default()
            },
            2,
        )
        .await
        .unwrap();
    let ids: Vec<&str> = compactions.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, ["j4", "j3"], "limited to the newest two");

    // Records that started long enough ago go; the others stay.
    let mut old = job(
        "j0",
        "main",
        &orders,
        "orphan-removal",
        now - 40 * 24 * 3_600_000,
    );
    old.outcome = "succeeded".into();
    store.record_job(&old).await.unwrap();
    assert_eq!(
        store
            .expire_jobs(Duration::from_secs(30 * 24 * 3600))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .list_jobs(&JobFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        4
    );
    let bad = job(
        "j5",
        "main",
        &TableName::new(Vec::new(), "t"),
        "compaction",
        now,
    );
    assert!(matches!(
        store.record_job(&bad).await,
        Err(StoreError::InvalidInput(_))
    ));
}

pub async fn file_marks_keep_their_first_time(store: Arc<dyn MetadataStore>) {
    let table = "s3://b/sales/orders-1";
    let other = "s3://b/sales/items-2";
    let paths = strings(&[
        "s3://b/sales/orders-1/data/a.parquet",
        "s3://b/sales/orders-1/data/b.parquet",
    ]);
    let first = store.mark_files(table, &paths[..1]).await.unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let both = store.mark_files(table, &paths).await.unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[&paths[0]], first[&paths[0]],
        "a mark keeps its first time"
    );
    assert!(both[&paths[1]] > first[&paths[0]], "{both:?}");
    store
        .mark_files(other, &strings(&["s3://b/sales/items-2/x"]))
        .await
        .unwrap();
    assert_eq!(store.marked_files(table).await.unwrap(), both);
    store.unmark_files(table, &paths[..1]).await.unwrap();
    let left = store.marked_files(table).await.unwrap();
    assert_eq!(left.keys().collect::<Vec<_>>(), [&paths[1]]);
    assert_eq!(
        store.marked_files(other).await.unwrap().len(),
        1,
        "scopes apart"
    );
    store.unmark_files(table, &[]).await.unwrap();
    assert!(store.mark_files(table, &[]).await.unwrap().is_empty());
}

/// A claim whose owner stops renewing it is taken over after the timeout, by the same request
/// only; the owner that was taken over can neither complete nor release it any more, and one
/// that keeps renewing is never taken over.
pub async fn abandoned_idempotency_claims_are_taken_over(store: Arc<dyn MetadataStore>) {
    let claim = |key: &'static str, fingerprint: &'static str, owner: &'static str, after_ms| {
        let store = store.clone();
        async move {
            store
                .claim_idempotency_key(key, fingerprint, owner, Duration::from_millis(after_ms))
                .await
                .unwrap()
        }
    };
    assert_eq!(
        claim("k", "f", "a", 120_000).await,
        IdempotencyClaim::Claimed
    );
    assert_eq!(
        claim("k", "f", "b", 120_000).await,
        IdempotencyClaim::InFlight,
        "a's claim is fresh"
    );
    assert!(store.renew_idempotency_claim("k", "a").await.unwrap());
    assert!(
        !store.renew_idempotency_claim("k", "b").await.unwrap(),
        "b holds no claim to renew"
    );
    // Long enough that a's claim is stale for a 10 ms takeover window, and that a claim still as
    // old as a's last renewal would be stale for the 300 ms window below, which a fresh claim is
    // not even on a loaded machine.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        claim("k", "other", "b", 10).await,
        IdempotencyClaim::Mismatch,
        "only the same request takes a claim over"
    );
    assert_eq!(
        claim("k", "f", "a", 10).await,
        IdempotencyClaim::InFlight,
        "an owner does not take over its own claim: its request still runs"
    );
    assert_eq!(claim("k", "f", "b", 10).await, IdempotencyClaim::Claimed);
    assert_eq!(
        claim("k", "f", "c", 300).await,
        IdempotencyClaim::InFlight,
        "the takeover renewed the claim"
    );

    // The owner that was taken over has lost its say.
    assert!(!store.renew_idempotency_claim("k", "a").await.unwrap());
    let late = StoredResponse {
        status: 200,
        body: b"late".to_vec(),
        content_type: None,
    };
    let refused = store.complete_idempotency_key("k", "a", &late).await;
    assert!(
        matches!(refused, Err(StoreError::Internal(_))),
        "{refused:?}"
    );
    store.release_idempotency_key("k", "a").await.unwrap();
    assert_eq!(
        claim("k", "f", "c", 120_000).await,
        IdempotencyClaim::InFlight,
        "a's release did not free b's claim"
    );
    let response = StoredResponse {
        status: 201,
        body: b"b's".to_vec(),
        content_type: None,
    };
    store
        .complete_idempotency_key("k", "b", &response)
        .await
        .unwrap();
    assert_eq!(
        claim("k", "f", "c", 10).await,
        IdempotencyClaim::Completed(response),
        "a completed key is never taken over"
    );

    // An owner that keeps renewing keeps its claim past the timeout.
    assert_eq!(claim("r", "f", "a", 1000).await, IdempotencyClaim::Claimed);
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(store.renew_idempotency_claim("r", "a").await.unwrap());
        assert_eq!(claim("r", "f", "b", 1000).await, IdempotencyClaim::InFlight);
    }
}
