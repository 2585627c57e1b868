//! A maintenance job that is SIGKILLed cannot give its table's lease back: the table must not
//! stay blocked for long. `floe scrub` does not need that lease at all (it changes nothing), and
//! the next `floe maintain` runs once the lease's short TTL is over.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use floe_commit::open::{OpenOptions, open};
use iceberg::Catalog;
use iceberg::transaction::{ApplyTransactionAction, Transaction};

use crate::support::*;

/// Data files in the table: enough that a compaction takes a while in a debug build, so that the
/// test sees it holding the lease before it is killed.
const FILES: i64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_floe_maintain_blocks_neither_scrub_nor_maintenance_for_long() {
    let server = FloeServer::start_with_args(&["--maintenance", "false"]);
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    let loaded = create_table(&catalog, &namespace, "t").await;
    let mut files = Vec::new();
    for id in 0..FILES {
        files.extend(write_data_file(&loaded, &[id]).await);
    }
    let tx = Transaction::new(&loaded);
    let tx = tx.fast_append().add_data_files(files).apply(tx).unwrap();
    tx.commit(&catalog).await.unwrap();

    let data_dir = server.data_dir().to_str().unwrap().to_string();
    let store_view = open(&OpenOptions::new(server.data_dir())).await.unwrap();
    let lease = floe_maintenance_lease(&store_view, "t");
    let mut job = Command::new(floe_testkit::floe_binary())
        .args(["maintain", "ns.t", "--compact", "--data-dir", &data_dir])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed as soon as it holds the lease: mid-run, before it could give the lease up.
    loop {
        if store_view.store().lease_is_held(&lease).await.unwrap() {
            job.kill().unwrap();
            job.wait().unwrap();
            break;
        }
        if let Some(status) = job.try_wait().unwrap() {
            panic!("floe maintain ended ({status}) before the test saw it hold the lease");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        store_view.store().lease_is_held(&lease).await.unwrap(),
        "the killed job's lease is still held"
    );
    let (ok, out, err) = floe(&["maintain", "ns.t", "--compact", "--data-dir", &data_dir]);
    assert!(
        !ok,
        "a second run started while the dead one's lease held:\n{out}"
    );
    assert!(
        err.contains("another maintenance run holds table ns.t"),
        "{err}"
    );

    // The scrub runs at once, and the killed compaction left nothing referenced missing.
    let (ok, out, err) = floe(&["scrub", "ns.t", "--data-dir", &data_dir]);
    assert!(
        ok,
        "floe scrub did not run beside the dead job's lease:\n{out}\n{err}"
    );
    assert!(out.contains("no open findings"), "{out}");

    // Once the TTL is over (a minute by default), maintenance goes on. The bound only keeps a
    // broken lease from hanging the test.
    let deadline = Instant::now() + 3 * floe_maintenance_ttl();
    while store_view.store().lease_is_held(&lease).await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "the dead job's lease outlived three TTLs"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (ok, out, err) = floe(&["maintain", "ns.t", "--compact", "--data-dir", &data_dir]);
    assert!(
        ok,
        "maintenance did not resume after the TTL:\n{out}\n{err}"
    );
    let compacted = catalog.load_table(loaded.identifier()).await.unwrap();
    let mut ids = read_ids(&compacted).await;
    ids.sort_unstable();
    assert_eq!(ids, (0..FILES).collect::<Vec<_>>());
    let snapshot = compacted.metadata().current_snapshot().unwrap();
    assert_eq!(
        snapshot.summary().operation,
        iceberg::spec::Operation::Replace,
        "the resumed compaction committed"
    );
}

/// The lease of table `ns.<table>`, as the jobs name it.
fn floe_maintenance_lease(catalog: &floe_commit::Catalog, table: &str) -> String {
    let table = floe_maintenance::TableName::new(vec!["ns".to_string()], table);
    floe_maintenance::lease::maintenance_lease_name(catalog, &table)
}

fn floe_maintenance_ttl() -> Duration {
    floe_maintenance::LeaseSettings::default().ttl
}
