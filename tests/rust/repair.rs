//! `floe repair` on a stopped server's data dir: a deleted current metadata file is rolled back
//! to the previous version, and a deleted data file is forgotten, so that the server serves the
//! table again with exactly the rows that survive.

use std::collections::BTreeSet;
use std::process::Command;

use iceberg::Catalog;

use crate::support::*;

fn repair(server: &FloeServer, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(floe_testkit::floe_binary())
        .arg("repair")
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .expect("run floe repair");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn data_files(server: &FloeServer) -> BTreeSet<std::path::PathBuf> {
    files_under(&server.warehouse_dir())
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "parquet"))
        .collect()
}

fn local_path(location: &str) -> std::path::PathBuf {
    url::Url::parse(location).unwrap().to_file_path().unwrap()
}

#[tokio::test]
async fn floe_repair_rolls_back_lost_metadata_and_forgets_lost_data_files() {
    let mut server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    let table = create_table(&catalog, &namespace, "t").await;
    let ident = ident(&namespace, "t");
    let first = append(&catalog, &table, &[1, 2]).await.unwrap();
    let second = append(&catalog, &first, &[3]).await.unwrap();
    assert!(server.stop());

    // The current metadata file is lost.
    let lost = second.metadata_location().unwrap().to_string();
    std::fs::remove_file(local_path(&lost)).unwrap();
    let (ok, _, stderr) = repair(&server, &["ns.t", "--forget-missing-files"]);
    assert!(!ok, "no file of an unreadable table can be checked");
    assert!(stderr.contains("floe:"), "{stderr}");

    let (ok, stdout, stderr) = repair(&server, &["ns.t", "--rollback"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("current metadata: {lost} (missing)")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "would roll back ns.t to: {}",
            first.metadata_location().unwrap()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("commits lost: 1 (metadata versions 2)"),
        "{stdout}"
    );
    let lost_snapshot = second.metadata().current_snapshot_id().unwrap();
    assert!(
        stdout.contains(&format!(
            "snapshot lost: {lost_snapshot} (sequence number 2)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("dry run: nothing changed"), "{stdout}");

    let (ok, stdout, stderr) = repair(&server, &["ns.t", "--rollback", "--apply"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("rolled back ns.t to:"), "{stdout}");
    let (ok, _, stderr) = repair(&server, &["ns.t", "--rollback", "--apply"]);
    assert!(
        !ok && stderr.contains("intact"),
        "a second rollback is refused: {stderr}"
    );

    server.restart();
    let catalog = rest_catalog(&server).await;
    let restored = catalog.load_table(&ident).await.unwrap();
    assert_eq!(
        restored.metadata_location(),
        first.metadata_location(),
        "the table is back at the first append"
    );
    assert_eq!(read_ids(&restored).await, vec![1, 2]);

    // A data file is lost.
    let before = data_files(&server);
    let third = append(&catalog, &restored, &[4]).await.unwrap();
    let written: Vec<_> = data_files(&server).difference(&before).cloned().collect();
    assert_eq!(written.len(), 1);
    append(&catalog, &third, &[5]).await.unwrap();
    assert!(server.stop());
    std::fs::remove_file(&written[0]).unwrap();

    let (ok, stdout, stderr) = repair(&server, &["ns.t", "--forget-missing-files"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("checked 3 data and delete files"),
        "{stdout}"
    );
    assert!(stdout.contains("(missing, 1 records)"), "{stdout}");
    assert!(
        stdout.contains("dry run: would forget 1 file(s), 1 rows lost"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = repair(&server, &["ns.t", "--forget-missing-files", "--apply"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("forgot 1 file(s), 1 rows lost; committed snapshot"),
        "{stdout}"
    );

    server.restart();
    let catalog = rest_catalog(&server).await;
    let table = catalog.load_table(&ident).await.unwrap();
    assert_eq!(read_ids(&table).await, vec![1, 2, 5]);
}
