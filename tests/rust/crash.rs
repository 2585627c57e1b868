//! Crash safety: a server SIGKILLed in the middle of a stream of commits loses none that it
//! acknowledged, and the table loads after a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokio::sync::Notify;

use crate::support::*;

const ROUNDS: usize = 3;
const WRITERS: usize = 4;

#[tokio::test]
async fn acknowledged_commits_survive_sigkill() {
    let mut server = FloeServer::start();
    // A fresh client after every restart, so no pooled connection to the dead process is reused.
    let mut api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let created = api.create_table(&["ns"], "t", json!({})).await;
    let table_uuid = created["metadata"]["table-uuid"].clone();
    let mut acknowledged = BTreeSet::new();

    for round in 0..ROUNDS {
        // Kill after a random-ish number of acknowledged commits, while the other writers have
        // commits in flight.
        let kill_after = 5 + (uuid::Uuid::new_v4().as_u128() % 40) as usize;
        let acked = Arc::new(AtomicUsize::new(0));
        let reached = Arc::new(Notify::new());
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let api = api.clone();
                let acked = acked.clone();
                let reached = reached.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for i in 0.. {
                        let key = format!("r{round}-w{writer}-{i}");
                        let body = set_properties_body(json!({ key.clone(): "v" }));
                        let response = api
                            .client
                            .post(api.table_url(&["ns"], "t"))
                            .json(&body)
                            .send()
                            .await;
                        match response {
                            Ok(response) if response.status() == 200 => {
                                // Acknowledged only once the whole response arrived.
                                if response.bytes().await.is_err() {
                                    break;
                                }
                                mine.push(key);
                                if acked.fetch_add(1, Ordering::SeqCst) + 1 == kill_after {
                                    reached.notify_one();
                                }
                            }
                            Ok(response) => panic!(
                                "commit {key} failed before the crash: {} {}",
                                response.status(),
                                response.text().await.unwrap_or_default()
                            ),
                            // The server is gone.
                            Err(_) => break,
                        }
                    }
                    mine
                })
            })
            .collect();

        tokio::time::timeout(std::time::Duration::from_secs(120), reached.notified())
            .await
            .expect("the writers stopped before the kill point");
        server.kill();
        for writer in writers {
            acknowledged.extend(writer.await.unwrap());
        }
        assert!(acknowledged.len() >= kill_after);

        server.restart();
        api = Api::new(&server);
        let loaded = api.load_table(&["ns"], "t").await;
        assert_eq!(loaded["metadata"]["table-uuid"], table_uuid);
        let properties = loaded["metadata"]["properties"].as_object().unwrap();
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|key| !properties.contains_key(key.as_str()))
            .collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged commits lost after SIGKILL: {lost:?}",
            lost.len()
        );
        // The pointer names a file that exists, and the log names only files that exist.
        assert!(local_path(&metadata_location_of(&loaded)).is_file());
        for entry in loaded["metadata"]["metadata-log"].as_array().unwrap() {
            let file = entry["metadata-file"].as_str().unwrap();
            assert!(local_path(file).is_file(), "{file}");
        }
        // And the table takes commits again.
        api.set_properties(&["ns"], "t", json!({ format!("after-{round}"): "v" }))
            .await;
        acknowledged.insert(format!("after-{round}"));
    }

    // Every acknowledged commit of every round is still there after the last restart.
    server.restart();
    let loaded = Api::new(&server).load_table(&["ns"], "t").await;
    let properties = loaded["metadata"]["properties"].as_object().unwrap();
    for key in &acknowledged {
        assert!(properties.contains_key(key), "{key} lost");
    }
}
