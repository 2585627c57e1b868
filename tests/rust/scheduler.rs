//! Automatic maintenance: `floe serve`'s scheduler finds a table with small files and compacts it
//! with no manual step, leaves a table whose settings turn maintenance off alone, records what it
//! did (listed by the management API and `floe maintenance history`), and the settings API (and
//! `floe maintenance show/set`) reads and changes each table's settings with their sources.

use std::time::{Duration, Instant};

use iceberg::Catalog;
use serde_json::{Value, json};

use crate::support::*;

/// The current snapshot's summary in a LoadTableResult.
fn current_summary(result: &Value) -> Value {
    let metadata = &result["metadata"];
    let current = metadata["current-snapshot-id"].clone();
    metadata["snapshots"]
        .as_array()
        .and_then(|snapshots| snapshots.iter().find(|s| s["snapshot-id"] == current))
        .map(|snapshot| snapshot["summary"].clone())
        .unwrap_or(Value::Null)
}

fn settings_url(server: &FloeServer, namespace: &str, table: &str) -> String {
    format!(
        "{}/management/v1/warehouses/main/namespaces/{namespace}/tables/{table}/maintenance",
        server.uri()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduler_compacts_small_files_by_itself_and_records_it() {
    let server = FloeServer::start_with_args(&["--maintenance-interval-ms", "300"]);
    let catalog = rest_catalog(&server).await;
    let api = Api::new(&server);
    let namespace = create_namespace(&catalog, "events").await;
    // Created with maintenance off, so that no pass compacts half-way through the appends.
    let busy = create_table_with(
        &catalog,
        &namespace,
        "clicks",
        &[("floe.maintenance.enabled", "false")],
    )
    .await;
    let off = create_table_with(
        &catalog,
        &namespace,
        "frozen",
        &[("floe.maintenance.enabled", "false")],
    )
    .await;
    let mut expected = Vec::new();
    for round in 0..6 {
        let ids = [round * 10, round * 10 + 1];
        expected.extend(ids);
        let table = catalog.load_table(&busy).await.unwrap();
        append(&catalog, &table, &ids).await.expect("append");
        let frozen = catalog.load_table(&off).await.unwrap();
        append(&catalog, &frozen, &ids).await.expect("append");
    }

    // Turned on through the settings API; no request of ours starts the job itself: the
    // scheduler finds six small files and compacts them.
    let response = floe_testkit::http()
        .post(settings_url(&server, "events", "clicks"))
        .json(&json!({ "removals": ["floe.maintenance.enabled"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(60);
    let compacted = loop {
        let loaded = api.load_table(&["events"], "clicks").await;
        let summary = current_summary(&loaded);
        if summary["operation"] == "replace" {
            break summary;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted within 60 s: {summary}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(compacted["total-data-files"], "1", "{compacted}");
    let table = catalog.load_table(&busy).await.unwrap();
    expected.sort_unstable();
    assert_eq!(read_ids(&table).await, expected, "the same rows after");

    // Recorded, with what it did.
    let jobs: Value = floe_testkit::http()
        .get(format!("{}/management/v1/maintenance/jobs", server.uri()))
        .query(&[
            ("namespace", "events"),
            ("table", "clicks"),
            ("kind", "compaction"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = &jobs["jobs"][0];
    assert_eq!(job["outcome"], "succeeded", "{jobs}");
    assert_eq!(job["trigger"], "schedule");
    assert_eq!(job["stats"]["files-in"], "6", "{job}");
    assert_eq!(job["stats"]["files-out"], "1", "{job}");
    let (ok, out, err) = floe(&[
        "maintenance",
        "history",
        "--table",
        "events.clicks",
        "--catalog",
        &server.uri(),
    ]);
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|line| line.contains("main/events.clicks")
            && line.contains("compaction")
            && line.contains("succeeded")
            && line.contains("files-in=6")),
        "{out}"
    );

    // Several passes later, the table with maintenance off still has its six files and no job.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let frozen = api.load_table(&["events"], "frozen").await;
    let summary = current_summary(&frozen);
    assert_eq!(summary["operation"], "append");
    assert_eq!(summary["total-data-files"], "6", "{summary}");
    let jobs: Value = floe_testkit::http()
        .get(format!("{}/management/v1/maintenance/jobs", server.uri()))
        .query(&[("namespace", "events"), ("table", "frozen")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["jobs"], json!([]), "{jobs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_inherited_shown_and_checked() {
    // The default warehouse's own defaults come from the server's configuration.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("floe.toml");
    std::fs::write(
        &config,
        "[maintenance-defaults]\n\"floe.maintenance.manifest-rewrite.min-manifests\" = \"50\"\n",
    )
    .unwrap();
    let server = FloeServer::start_with_args(&[
        "--maintenance",
        "false",
        "--config",
        config.to_str().unwrap(),
    ]);
    let api = Api::new(&server);
    api.create_namespace(&["sales"]).await;
    api.create_table(
        &["sales"],
        "orders",
        json!({ "write.target-file-size-bytes": "134217728" }),
    )
    .await;
    let http = floe_testkit::http();

    // Namespace defaults, then the table's own: each setting says where it comes from.
    let response = http
        .post(format!(
            "{}/management/v1/warehouses/main/namespaces/sales/maintenance",
            server.uri()
        ))
        .json(&json!({ "updates": {
            "floe.maintenance.snapshot-expiry.max-snapshot-age-hours": "24",
            "floe.maintenance.compaction.min-input-files": "10",
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http
        .post(settings_url(&server, "sales", "orders"))
        .json(&json!({ "updates": { "floe.maintenance.compaction.min-input-files": "3" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let settings: Value = http
        .get(settings_url(&server, "sales", "orders"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let setting = |key: &str| settings["settings"][format!("floe.maintenance.{key}")].clone();
    assert_eq!(
        setting("compaction.min-input-files"),
        json!({ "value": "3", "source": "table" })
    );
    assert_eq!(
        setting("snapshot-expiry.max-snapshot-age-hours"),
        json!({ "value": "24", "source": "namespace" })
    );
    assert_eq!(
        setting("compaction.target-file-size-bytes"),
        json!({ "value": "134217728", "source": "table-iceberg" })
    );
    assert_eq!(
        setting("snapshot-expiry.min-snapshots-to-keep"),
        json!({ "value": "1", "source": "default" })
    );
    assert_eq!(
        setting("manifest-rewrite.min-manifests"),
        json!({ "value": "50", "source": "warehouse" })
    );
    // The table setting is an ordinary table property: engines see it.
    let loaded = api.load_table(&["sales"], "orders").await;
    assert_eq!(
        loaded["metadata"]["properties"]["floe.maintenance.compaction.min-input-files"],
        "3"
    );

    // Typos, bad values and foreign properties are refused, and nothing changes.
    for body in [
        json!({ "updates": { "floe.maintenance.compacton.enabled": "false" } }),
        json!({ "updates": { "floe.maintenance.compaction.enabled": "maybe" } }),
        json!({ "updates": { "floe.maintenance.compaction.target-file-size-bytes": "1024" } }),
        json!({ "updates": { "write.format.default": "orc" } }),
        json!({ "removals": ["floe.maintenance.nope"] }),
    ] {
        let response = http
            .post(settings_url(&server, "sales", "orders"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (kind, status, message) = floe_testkit::error_model(response).await;
        assert_eq!(
            (kind.as_str(), status),
            ("BadRequestException", 400),
            "{body}: {message}"
        );
    }
    let after = api.load_table(&["sales"], "orders").await;
    assert_eq!(
        metadata_location_of(&after),
        metadata_location_of(&loaded),
        "refused updates commit nothing"
    );
    let response = http
        .get(settings_url(&server, "sales", "nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        floe_testkit::error_model(response).await.0,
        "NoSuchTableException"
    );

    // The same through the CLI.
    let uri = server.uri();
    let (ok, out, err) = floe(&[
        "maintenance",
        "set",
        "sales.orders",
        "floe.maintenance.unreferenced-files.unreferenced-days=5",
        "--remove",
        "floe.maintenance.compaction.min-input-files",
        "--catalog",
        &uri,
    ]);
    assert!(ok, "{err}");
    let line = |out: &str, key: &str| {
        out.lines()
            .find(|line| line.starts_with(&format!("floe.maintenance.{key} ")))
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(
        line(&out, "unreferenced-files.unreferenced-days"),
        "floe.maintenance.unreferenced-files.unreferenced-days 5 (table)"
    );
    assert_eq!(
        line(&out, "compaction.min-input-files"),
        "floe.maintenance.compaction.min-input-files 10 (namespace)"
    );
    let (ok, _, err) = floe(&[
        "maintenance",
        "set",
        "sales.orders",
        "floe.maintenance.enabled=sometimes",
        "--catalog",
        &uri,
    ]);
    assert!(!ok);
    assert!(
        err.contains("true or false") && err.contains("HTTP 400"),
        "{err}"
    );
    let (ok, out, err) = floe(&["maintenance", "show", "sales.orders", "--catalog", &uri]);
    assert!(ok, "{err}");
    assert_eq!(
        line(&out, "unreferenced-files.unreferenced-days"),
        "floe.maintenance.unreferenced-files.unreferenced-days 5 (table)"
    );

    // The management API describes itself.
    let openapi = http
        .get(format!("{uri}/management/v1/openapi.yaml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        openapi.contains("/management/v1/maintenance/jobs"),
        "{openapi}"
    );
}
