//! Integrity-checked pointers, end to end: a current metadata file changed on disk after its
//! commit makes loadTable answer 503 with an ErrorModel that names the table and the file (never
//! a different table), logged at WARN and recorded as an open scrub finding (which `floe scrub`
//! finds too); once the file is restored the table loads again and a scrub resolves it.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_corrupt_metadata_file_is_a_503_until_restored() {
    let mut server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    api.create_table(&["ns"], "t", json!({})).await;
    let committed = api.set_properties(&["ns"], "t", json!({"k": "1"})).await;
    let file = metadata_location_of(&committed);
    let path = local_path(&file);
    let original = std::fs::read(&path).unwrap();

    // Same size, one byte changed: only the checksum tells.
    let mut damaged = original.clone();
    let middle = damaged.len() / 2;
    damaged[middle] = if damaged[middle] == b' ' { b'\t' } else { b' ' };
    std::fs::write(&path, &damaged).unwrap();
    // A fresh process: nothing is served from the metadata cache.
    server.restart();
    let api = Api::new(&server);

    for _ in 0..2 {
        let response = api
            .client
            .get(api.table_url(&["ns"], "t"))
            .send()
            .await
            .unwrap();
        let (kind, status, message) = error_model(response).await;
        assert_eq!(status, 503, "{message}");
        assert_eq!(kind, "ServiceUnavailableException");
        for expected in [
            "ns.t",
            file.as_str(),
            "does not match its checksum",
            "floe repair",
        ] {
            assert!(message.contains(expected), "{expected:?} in {message}");
        }
    }
    // A commit reads the same file first, and is refused the same way.
    let response = api
        .commit(&["ns"], "t", &set_properties_body(json!({"k": "2"})))
        .await;
    assert_eq!(response.status(), 503);
    let log = server.log();
    assert!(
        log.contains("does not match the checksum its pointer records"),
        "{log}"
    );
    // The read recorded an open scrub finding, listed like the scrubber's own...
    let findings: serde_json::Value = floe_testkit::http()
        .get(format!("{}/management/v1/scrub/findings", server.uri()))
        .query(&[("open", "true")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = findings["findings"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{findings}");
    assert_eq!(listed[0]["kind"], "metadata-checksum-mismatch");
    assert_eq!(listed[0]["table"], "t");
    assert_eq!(listed[0]["file"], file.as_str());
    // ... and the scrubber finds the same from the pointer's checksum.
    let data_dir = server.data_dir().display().to_string();
    let (ok, out, _) = floe(&["scrub", "ns.t", "--data-dir", &data_dir]);
    assert!(!ok, "{out}");
    assert!(out.contains("metadata-checksum-mismatch"), "{out}");

    std::fs::write(&path, &original).unwrap();
    let loaded = api.load_table(&["ns"], "t").await;
    assert_eq!(metadata_location_of(&loaded), file);
    assert_eq!(loaded["metadata"]["properties"]["k"], "1");
    // Restored, the next scrub resolves the finding.
    let (ok, out, err) = floe(&["scrub", "ns.t", "--data-dir", &data_dir]);
    assert!(ok, "{out}\n{err}");
}
