//! Secrets at rest, end to end: a warehouse's secret key is sealed in `catalog.db`, masked in
//! every response, and still used; the data dir's private files are the server user's only; and
//! `floe config show` never prints the metastore's password.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use floe_testkit::seaweedfs::{self, TestS3};
use serde_json::{Value, json};

use crate::support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warehouse_secret_is_sealed_at_rest_masked_in_responses_and_used() {
    let s3 = TestS3::start();
    s3.create_bucket("vault").await;
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let server =
        FloeServer::start_in_with_args(&data_dir, &["--allowed-storage-root", "s3://vault"]);

    // The embedded store's private files: the server's user only. (The testkit made the data
    // dir itself; `a_data_dir_floe_creates_is_private` checks one Floe makes.)
    for file in ["catalog.db", "secret.key"] {
        assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
    }
    if data_dir.join("catalog.db-wal").exists() {
        assert_eq!(mode(&data_dir.join("catalog.db-wal")), 0o600);
    }

    let http = floe_testkit::http();
    let created = http
        .post(format!("{}/management/v1/warehouses", server.uri()))
        .json(&json!({
            "name": "vault",
            "storage-url": "s3://vault/tables",
            "properties": {
                "s3.endpoint": s3.endpoint(),
                "s3.region": "us-east-1",
                "s3.path-style-access": "true",
                "s3.access-key-id": seaweedfs::ACCESS_KEY_ID,
                "s3.secret-access-key": seaweedfs::SECRET_ACCESS_KEY,
            }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created = created.text().await.unwrap();
    assert!(!created.contains(seaweedfs::SECRET_ACCESS_KEY), "{created}");

    // The warehouse works: its storage is reached with the (opened) secret.
    let api = Api {
        client: http.clone(),
        base: format!("{}/v1/vault", server.uri()),
    };
    api.create_namespace(&["sealed"]).await;
    let table = api.create_table(&["sealed"], "t", json!({})).await;
    let location = table["metadata-location"].as_str().unwrap().to_string();
    assert!(location.starts_with("s3://vault/tables/"), "{location}");
    assert!(!s3.list("vault", "tables/").await.is_empty());

    // Neither a listing nor the database file shows it.
    let listed: Value = http
        .get(format!("{}/management/v1/warehouses", server.uri()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(seaweedfs::SECRET_ACCESS_KEY),
        "{listed}"
    );
    let mut bytes = std::fs::read(data_dir.join("catalog.db")).unwrap();
    if let Ok(mut wal) = std::fs::read(data_dir.join("catalog.db-wal")) {
        bytes.append(&mut wal);
    }
    assert!(
        contains(&bytes, seaweedfs::ACCESS_KEY_ID),
        "read the right file"
    );
    assert!(!contains(&bytes, seaweedfs::SECRET_ACCESS_KEY));
    assert!(contains(&bytes, "floe-sealed:v1:"));

    // A restart with the generated key file opens it again.
    let mut server = server;
    server.restart();
    let api = Api {
        client: http,
        base: format!("{}/v1/vault", server.uri()),
    };
    let loaded = api.load_table(&["sealed"], "t").await;
    assert_eq!(loaded["metadata-location"], location.as_str());
}

#[test]
fn config_show_never_prints_the_metastore_password() {
    let output = Command::new(floe_testkit::floe_binary())
        .args([
            "config",
            "show",
            "--metastore",
            "postgres://floe:hunter2-password@127.0.0.1:5432/floe",
            "--secret-key-file",
            "/etc/floe/secret.key",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let shown = String::from_utf8(output.stdout).unwrap();
    assert!(!shown.contains("hunter2-password"), "{shown}");
    assert!(shown.contains("127.0.0.1:5432/floe"), "{shown}");
    assert!(
        shown.contains("secret-key-file = \"/etc/floe/secret.key\""),
        "{shown}"
    );
}

#[test]
fn a_data_dir_floe_creates_is_private() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("fresh").join("data");
    let output = Command::new(floe_testkit::floe_binary())
        .args(["principal", "list", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&data_dir.join("catalog.db")), 0o600);
    assert_eq!(mode(&data_dir.join("secret.key")), 0o600);
}

async fn config_status(server: &FloeServer, token: &str) -> u16 {
    floe_testkit::http()
        .get(format!("{}/v1/config", server.uri()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The rotation docs/security.md describes, on one server: the new key as current and the old as
/// previous re-seals the token signing keys at start; `floe secrets reseal` then reports 0 left
/// and the old key can go. Before that, the command names what the new key alone cannot open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_secret_key_reseals_at_start_and_the_old_key_can_go() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let dir = data_dir.to_str().unwrap();
    let mut server = FloeServer::start_in_with_args(&data_dir, &["--auth", "oauth2"]);
    let token = admin_token(&server).await;
    assert_eq!(config_status(&server, &token).await, 200);
    assert!(server.stop());

    let old_key = data_dir.join("secret.key");
    let new_key = root.path().join("new.key");
    let key_bytes: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|id| id.as_bytes().to_vec())
        .collect();
    let new_key_text =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key_bytes);
    std::fs::write(&new_key, format!("{new_key_text}\n")).unwrap();
    let new = new_key.to_str().unwrap();
    let old = old_key.to_str().unwrap();

    let (ok, _, err) = floe(&[
        "secrets",
        "reseal",
        "--data-dir",
        dir,
        "--secret-key-file",
        new,
    ]);
    assert!(!ok, "the new key alone cannot open the signing keys");
    assert!(
        err.contains("left: signing-key/") && err.contains("which this server does not have"),
        "{err}"
    );
    assert!(!err.contains(&new_key_text), "{err}");

    // Every server: the new key as current, the old one as previous. The start re-seals.
    let args = [
        "--auth",
        "oauth2",
        "--secret-key-file",
        new,
        "--previous-secret-key-file",
        old,
    ];
    let mut server = FloeServer::start_in_with_args(&data_dir, &args);
    assert_eq!(
        config_status(&server, &token).await,
        200,
        "old tokens still verify"
    );
    admin_token(&server).await;
    assert!(server.stop());

    let (ok, out, err) = floe(&[
        "secrets",
        "reseal",
        "--data-dir",
        dir,
        "--secret-key-file",
        new,
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("re-sealed 0 value(s)") && out.contains("; 0 left"),
        "{out}"
    );

    // The old key is no longer needed.
    std::fs::remove_file(&old_key).unwrap();
    let server =
        FloeServer::start_in_with_args(&data_dir, &["--auth", "oauth2", "--secret-key-file", new]);
    assert_eq!(config_status(&server, &token).await, 200);
    admin_token(&server).await;
}
