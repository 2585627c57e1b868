//! The metadata log honours `write.metadata.previous-versions-max`, and with
//! `write.metadata.delete-after-commit.enabled` the files that fall off it are deleted.

use serde_json::{Value, json};

use crate::support::*;

const COMMITS: usize = 10;

/// Creates a table with `properties`, commits [`COMMITS`] property changes, and returns the
/// final LoadTableResult.
async fn table_after_commits(api: &Api, name: &str, properties: Value) -> Value {
    api.create_table(&["ns"], name, properties).await;
    for i in 0..COMMITS {
        api.set_properties(&["ns"], name, json!({ format!("k{i}"): "v" }))
            .await;
    }
    api.load_table(&["ns"], name).await
}

/// The metadata log's files, oldest first, after checking that its timestamps never go back.
fn log_files(loaded: &Value) -> Vec<String> {
    let log = loaded["metadata"]["metadata-log"].as_array().unwrap();
    let stamps: Vec<i64> = log
        .iter()
        .map(|entry| entry["timestamp-ms"].as_i64().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    log.iter()
        .map(|entry| entry["metadata-file"].as_str().unwrap().to_string())
        .collect()
}

fn file_names(paths: &[std::path::PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn name_of(location: &str) -> String {
    location.rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn old_metadata_files_are_deleted_when_asked() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;

    let loaded = table_after_commits(
        &api,
        "trimmed",
        json!({
            "write.metadata.previous-versions-max": "3",
            "write.metadata.delete-after-commit.enabled": "true",
        }),
    )
    .await;
    let log = log_files(&loaded);
    assert_eq!(log.len(), 3, "{log:?}");
    let current = metadata_location_of(&loaded);
    let on_disk = file_names(&metadata_files(&location_of(&loaded)));
    let mut expected: Vec<String> = log.iter().map(|l| name_of(l)).collect();
    expected.push(name_of(&current));
    expected.sort();
    assert_eq!(
        on_disk, expected,
        "only the current and 3 previous files stay"
    );
    // In commit order: versions COMMITS-3 .. COMMITS-1, then the current one.
    let versions: Vec<String> = expected.iter().map(|n| n[..5].to_string()).collect();
    assert_eq!(versions, ["00007", "00008", "00009", "00010"]);
    assert_eq!(name_of(&current)[..5], *"00010");
    for (entry, version) in log.iter().zip(["00007", "00008", "00009"]) {
        assert!(local_path(entry).is_file(), "{entry}");
        assert_eq!(&name_of(entry)[..5], version, "{log:?}");
    }
}

#[tokio::test]
async fn old_metadata_files_stay_by_default() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;

    let loaded = table_after_commits(
        &api,
        "kept",
        json!({ "write.metadata.previous-versions-max": "3" }),
    )
    .await;
    let log = log_files(&loaded);
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(
        metadata_files(&location_of(&loaded)).len(),
        COMMITS + 1,
        "without delete-after-commit every metadata file stays"
    );
    for entry in &log {
        assert!(local_path(entry).is_file(), "{entry}");
    }
    // The last log entry is the file the current one replaced.
    let previous: Vec<_> = metadata_files(&location_of(&loaded));
    assert_eq!(
        name_of(log.last().unwrap()),
        file_names(&previous)[COMMITS - 1]
    );

    // Without previous-versions-max the log keeps every version (default 100).
    let loaded = table_after_commits(&api, "default", json!({})).await;
    let log = log_files(&loaded);
    assert_eq!(log.len(), COMMITS);
    let names: Vec<String> = log.iter().map(|l| name_of(l)).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "the log is in commit order");
    assert!(log.iter().all(|entry| local_path(entry).is_file()));
}
