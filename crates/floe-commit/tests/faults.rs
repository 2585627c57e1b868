//! The commit engine under object-store failures, injected with `floe_storage::testing`.
//!
//! - At every object-store call a commit makes, a failure (transient, permanent, timed out, or a
//!   write that landed but was reported failed) leaves the table at its previous state, loadable,
//!   with no new metadata file left behind; or, when it hits the clean-up after the commit point,
//!   the commit stands.
//! - A conditional put that the store retried after its first attempt landed (so the retry finds
//!   the file) is the commit's own write, not a failure.
//! - Under 10% random failures, a stream of concurrent commits through two catalogs (two
//!   replicas on one metadata store) ends with exactly the acknowledged commits in the table.
//!
//! The warehouse is an in-memory object store behind a `FaultyStore`; the metadata store is a
//! SQLite file (failures of the metadata store are tested in floe-store and the e2e tests).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use floe_commit::{Catalog, CommitError, CreateTable, TableChange};
use floe_storage::Warehouse;
use floe_storage::testing::{Fault, FaultyStore, Op};
use floe_store::sqlite::SqliteStore;
use floe_store::{MetadataStore, TableName};
use iceberg::TableUpdate;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn MetadataStore>,
    faults: Arc<FaultyStore>,
    warehouse: Warehouse,
    table: TableName,
}

impl Setup {
    async fn new(properties: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("catalog.db"))
                .await
                .unwrap(),
        );
        let faults = Arc::new(FaultyStore::in_memory());
        let root = url::Url::parse("memory://faults/warehouse").unwrap();
        let warehouse = Warehouse::new("main", root, faults.clone());
        let setup = Self {
            _dir: dir,
            store,
            faults,
            warehouse,
            table: TableName::new(vec!["ns".to_string()], "t"),
        };
        let catalog = setup.catalog();
        catalog
            .create_namespace(&["ns".to_string()], &Default::default())
            .await
            .unwrap();
        catalog
            .create_table(CreateTable {
                name: setup.table.clone(),
                location: None,
                schema: schema(),
                partition_spec: None,
                sort_order: None,
                properties: properties
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                stage: false,
            })
            .await
            .unwrap();
        setup
    }

    /// A catalog with a cold metadata cache, so that it reads metadata files from the store.
    fn catalog(&self) -> Catalog {
        Catalog::new(self.store.clone(), self.warehouse.clone())
    }

    /// The current metadata location and every metadata file of the table, read with no faults.
    async fn state(&self) -> (String, BTreeSet<String>) {
        let table = self.catalog().load_table(&self.table).await.unwrap();
        let files = self
            .warehouse
            .list_under(&format!("{}/metadata", table.metadata().location()))
            .await
            .unwrap()
            .into_iter()
            .collect();
        (table.metadata_location.unwrap(), files)
    }
}

fn schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
        ])
        .build()
        .unwrap()
}

fn set_property(table: &TableName, key: &str) -> TableChange {
    TableChange {
        table: table.clone(),
        requirements: Vec::new(),
        updates: vec![TableUpdate::SetProperties {
            updates: HashMap::from([(key.to_string(), "v".to_string())]),
        }],
    }
}

#[tokio::test]
async fn a_failure_at_any_step_of_a_commit_leaves_the_previous_state() {
    // Old metadata files are deleted after each commit: that is one more step to break.
    let setup = Setup::new(&[
        ("write.metadata.delete-after-commit.enabled", "true"),
        ("write.metadata.previous-versions-max", "1"),
    ])
    .await;
    // Two commits, so that the next one has an old file to expire.
    for key in ["warm-1", "warm-2"] {
        setup
            .catalog()
            .commit_table(set_property(&setup.table, key))
            .await
            .unwrap();
    }

    // How many calls of each kind one commit makes, from a cold cache.
    let before: HashMap<Op, u64> = [Op::Get, Op::Put, Op::Delete]
        .into_iter()
        .map(|op| (op, setup.faults.calls(op)))
        .collect();
    setup
        .catalog()
        .commit_table(set_property(&setup.table, "counted"))
        .await
        .unwrap();
    let steps: Vec<(Op, u64)> = before
        .iter()
        .flat_map(|(op, count)| (1..=setup.faults.calls(*op) - count).map(move |n| (*op, n)))
        .collect();
    assert!(
        steps.contains(&(Op::Get, 1))
            && steps.contains(&(Op::Put, 1))
            && steps.contains(&(Op::Delete, 1)),
        "a commit reads, writes and expires: {steps:?}"
    );

    let faults = [
        Fault::Unavailable,
        Fault::Denied,
        Fault::Timeout(Duration::from_millis(5)),
        Fault::FailAfter,
    ];
    let mut failed = 0;
    for (op, n) in &steps {
        for fault in faults {
            let key = format!("{op:?}-{n}-{fault:?}");
            let (location, files) = setup.state().await;
            setup.faults.fail_nth(*op, *n, fault);
            let result = setup
                .catalog()
                .commit_table(set_property(&setup.table, &key))
                .await;
            setup.faults.clear();
            let (location_after, files_after) = setup.state().await;
            let properties = setup
                .catalog()
                .load_table(&setup.table)
                .await
                .unwrap()
                .metadata()
                .properties()
                .clone();
            match result {
                Err(err) => {
                    failed += 1;
                    assert_eq!(location_after, location, "{key}: the pointer moved: {err}");
                    assert_eq!(files_after, files, "{key}: files changed: {err}");
                    assert!(!properties.contains_key(&key), "{key}");
                    match (fault, &err) {
                        (Fault::Denied, CommitError::Internal(message)) => {
                            assert!(message.contains("warehouse main refused"), "{message}")
                        }
                        (Fault::Denied, _) => panic!("{key}: permanent, not {err:?}"),
                        (_, CommitError::Unavailable(message)) => {
                            assert!(
                                message.contains("warehouse main is unavailable"),
                                "{message}"
                            )
                        }
                        (_, _) => panic!("{key}: transient, not {err:?}"),
                    }
                }
                Ok(committed) => {
                    // Only the clean-up after the commit point may fail without failing the
                    // commit: the old file it could not delete stays, unreferenced.
                    assert_eq!(
                        *op,
                        Op::Delete,
                        "{key}: a failed {op:?} did not fail the commit"
                    );
                    assert_eq!(Some(location_after.clone()), committed.metadata_location);
                    assert!(properties.contains_key(&key), "{key}");
                    assert!(files_after.contains(&location_after), "{key}");
                }
            }
        }
    }
    let before_commit_point = steps.iter().filter(|(op, _)| *op != Op::Delete).count();
    assert_eq!(failed, before_commit_point * faults.len(), "{steps:?}");
}

#[tokio::test]
async fn under_random_failures_exactly_the_acknowledged_commits_are_in_the_table() {
    let setup = Arc::new(Setup::new(&[]).await);
    // 10% of all calls fail, a few more puts land but report a failure, some calls are slow.
    setup.faults.fail_randomly(0.10, 0x5eed, Fault::Unavailable);
    setup
        .faults
        .fail_op_randomly(Op::Put, 0.05, 0xfa11, Fault::FailAfter);
    setup.faults.fail_op_randomly(
        Op::Get,
        0.05,
        0x510e,
        Fault::Latency(Duration::from_millis(2)),
    );

    // Two catalogs on one metadata store and one warehouse: two replicas, racing.
    let catalogs = [Arc::new(setup.catalog()), Arc::new(setup.catalog())];
    let mut writers = Vec::new();
    for writer in 0..4 {
        let catalog = catalogs[writer % 2].clone();
        let table = setup.table.clone();
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failures = 0;
            for commit in 0..25 {
                let key = format!("ack.w{writer}.c{commit}");
                // Like a client: retry a failed commit a few times, then give up on it.
                for _ in 0..5 {
                    match catalog.commit_table(set_property(&table, &key)).await {
                        Ok(_) => {
                            acknowledged.push(key.clone());
                            break;
                        }
                        Err(CommitError::Unavailable(_) | CommitError::Conflict(_)) => {
                            failures += 1
                        }
                        Err(err) => panic!("{key}: unexpected {err:?}"),
                    }
                }
            }
            (acknowledged, failures)
        }));
    }
    let mut acknowledged = BTreeSet::new();
    let mut failures = 0;
    for writer in writers {
        let (keys, failed) = writer.await.unwrap();
        acknowledged.extend(keys);
        failures += failed;
    }
    let injected = setup.faults.injected();
    setup.faults.clear();
    assert!(
        failures > 10,
        "the faults should have failed commits: {failures}"
    );
    assert!(
        acknowledged.len() > 80,
        "{} acknowledged",
        acknowledged.len()
    );

    // A fresh catalog sees exactly the acknowledged commits: a failed commit never applies.
    let table = setup.catalog().load_table(&setup.table).await.unwrap();
    let keys: BTreeSet<String> = table
        .metadata()
        .properties()
        .keys()
        .filter(|key| key.starts_with("ack."))
        .cloned()
        .collect();
    assert_eq!(keys, acknowledged, "{injected} faults injected");
    // Every file of the metadata log is readable: the history is intact.
    for entry in table.metadata().metadata_log() {
        setup
            .warehouse
            .get(&entry.metadata_file)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", entry.metadata_file));
    }
    assert_eq!(
        table.metadata().metadata_log().len(),
        acknowledged.len(),
        "one earlier metadata file per acknowledged commit"
    );
}

#[tokio::test]
async fn a_put_retried_after_it_landed_still_commits() {
    let setup = Setup::new(&[]).await;
    let (before, _) = setup.state().await;
    // The store's retry of our conditional put finds the object its first attempt wrote.
    setup.faults.fail_nth(Op::Put, 1, Fault::LandedThenExists);
    let committed = setup
        .catalog()
        .commit_table(set_property(&setup.table, "landed"))
        .await
        .expect("our own bytes are not a conflict");
    let (after, files) = setup.state().await;
    assert_ne!(after, before);
    assert_eq!(Some(after.clone()), committed.metadata_location);
    assert!(files.contains(&after));
}
