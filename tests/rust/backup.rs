//! `floe backup` / `floe restore`: a catalog lost after a backup comes back with every table at
//! the state the backup saw, on SQLite and on PostgreSQL; a damaged or unfinished backup is
//! refused, and so is a restore over a live catalog unless asked for.

use floe_testkit::FloeServer;
use floe_testkit::postgres::TestPostgres;
use serde_json::json;

use crate::support::*;

/// Creates `ns.a` and `ns.b` with a property each; returns their metadata locations.
async fn populate(server: &FloeServer) -> Vec<(String, String)> {
    let api = Api::new(server);
    api.create_namespace(&["ns"]).await;
    let mut out = Vec::new();
    for name in ["a", "b"] {
        api.create_table(&["ns"], name, json!({})).await;
        let committed = api
            .set_properties(&["ns"], name, json!({ "owner": name }))
            .await;
        out.push((name.to_string(), metadata_location_of(&committed)));
    }
    out
}

async fn assert_tables(server: &FloeServer, expected: &[(String, String)]) {
    let api = Api::new(server);
    for (name, metadata_location) in expected {
        let loaded = api.load_table(&["ns"], name).await;
        assert_eq!(&metadata_location_of(&loaded), metadata_location, "{name}");
        assert_eq!(loaded["metadata"]["properties"]["owner"], json!(name));
    }
}

/// The one folder `floe backup` created under `dir`.
fn backup_folder(stdout: &str) -> String {
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("backup written to "))
        .unwrap_or_else(|| panic!("no backup location in {stdout}"));
    line.trim()
        .strip_prefix("file://")
        .unwrap_or(line.trim())
        .to_string()
}

#[tokio::test]
async fn a_sqlite_catalog_lost_after_a_backup_comes_back() {
    let backups = tempfile::tempdir().unwrap();
    let mut server = FloeServer::start();
    let expected = populate(&server).await;
    let data_dir = server.data_dir().display().to_string();

    let (ok, stdout, stderr) = floe(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--to",
        &backups.path().display().to_string(),
    ]);
    assert!(ok, "{stderr}");
    let folder = backup_folder(&stdout);
    // A commit after the backup is not in it.
    Api::new(&server)
        .set_properties(&["ns"], "a", json!({ "owner": "later" }))
        .await;
    server.stop();

    // Over a live catalog, a restore must be asked for.
    let (ok, _, stderr) = floe(&["restore", "--data-dir", &data_dir, "--from", &folder]);
    assert!(!ok);
    assert!(stderr.contains("--replace-existing"), "{stderr}");

    std::fs::remove_file(server.data_dir().join("catalog.db")).unwrap();
    for side in ["catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(server.data_dir().join(side));
    }
    let (ok, stdout, stderr) = floe(&["restore", "--data-dir", &data_dir, "--from", &folder]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    server.restart();
    assert_tables(&server, &expected).await;
}

#[tokio::test]
async fn a_damaged_or_unfinished_backup_is_refused() {
    let backups = tempfile::tempdir().unwrap();
    let server = FloeServer::start();
    populate(&server).await;
    let data_dir = server.data_dir().display().to_string();
    let (ok, stdout, stderr) = floe(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--to",
        &backups.path().display().to_string(),
    ]);
    assert!(ok, "{stderr}");
    let folder = std::path::PathBuf::from(backup_folder(&stdout));
    let target = tempfile::tempdir().unwrap();
    let target_dir = target.path().display().to_string();

    // One flipped byte in the payload.
    let payload = folder.join("catalog.db");
    let mut bytes = std::fs::read(&payload).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&payload, &bytes).unwrap();
    let (ok, _, stderr) = floe(&[
        "restore",
        "--data-dir",
        &target_dir,
        "--from",
        &folder.display().to_string(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("damaged"), "{stderr}");
    assert!(!target.path().join("catalog.db").exists());

    // No manifest: the backup never finished.
    std::fs::remove_file(folder.join("manifest.json")).unwrap();
    let (ok, _, stderr) = floe(&[
        "restore",
        "--data-dir",
        &target_dir,
        "--from",
        &folder.display().to_string(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("unfinished"), "{stderr}");
    assert!(!target.path().join("catalog.db").exists());
}

#[tokio::test]
async fn a_postgres_catalog_comes_back_in_a_fresh_database() {
    let (source, target) = tokio::task::spawn_blocking(|| {
        let cluster = TestPostgres::shared();
        (cluster.create_database(), cluster.create_database())
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let backups = tempfile::tempdir().unwrap();
    let mut server = FloeServer::start_replica(&source, dir.path(), &[]);
    let expected = populate(&server).await;
    let data_dir = dir.path().display().to_string();
    let (ok, stdout, stderr) = floe(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--metastore",
        &source,
        "--to",
        &backups.path().display().to_string(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("PostgreSQL"), "{stdout}");
    let folder = backup_folder(&stdout);
    server.stop();

    // A fresh database: migrated on connect, then filled in one transaction.
    let (ok, stdout, stderr) = floe(&[
        "restore",
        "--data-dir",
        &data_dir,
        "--metastore",
        &target,
        "--from",
        &folder,
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    // Again into the same database: it now holds a catalog, so it must be asked for.
    let (ok, _, stderr) = floe(&[
        "restore",
        "--data-dir",
        &data_dir,
        "--metastore",
        &target,
        "--from",
        &folder,
    ]);
    assert!(!ok);
    assert!(stderr.contains("--replace-existing"), "{stderr}");

    let restored = FloeServer::start_replica(&target, dir.path(), &[]);
    assert_tables(&restored, &expected).await;
    // The restored catalog takes commits.
    Api::new(&restored)
        .set_properties(&["ns"], "b", json!({ "after": "restore" }))
        .await;
}
