//! Tables on an `s3://` warehouse, on a real S3 server (SeaweedFS, from `floe_testkit::seaweedfs`):
//! the life cycle through iceberg-rust with S3 data I/O, concurrent appends, purge, put-if-absent
//! under racing writers, what clients are told in a table's `config`, and how the server answers
//! when S3 refuses or disappears.
//!
//! The server gets its S3 credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`; clients
//! bring their own (the table `config` carries the endpoint, region and path style, not the keys).

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_storage::{S3Options, StorageError, StoreOptions, Warehouse};
use floe_testkit::seaweedfs::{self, TestS3};
use iceberg::{Catalog, CatalogBuilder, TableCreation};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};
use serde_json::json;

use crate::support::*;
use floe_commit::file_io::ClientStorageFactory;

/// A Floe server whose warehouse is `s3://<bucket>/warehouse` on `s3`, with `extra` flags.
async fn floe_on_s3(s3: &TestS3, bucket: &str, extra: &[&str]) -> FloeServer {
    s3.create_bucket(bucket).await;
    let mut args = s3.floe_args(bucket, "warehouse");
    args.extend(extra.iter().map(|arg| arg.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    FloeServer::start_with_env(&args, &TestS3::credentials_env())
}

/// iceberg-rust's REST client with S3 file I/O; its own keys, the rest from the table config.
async fn s3_catalog(server: &FloeServer) -> RestCatalog {
    RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(ClientStorageFactory))
        .load(
            "floe",
            HashMap::from([
                ("uri".to_string(), server.uri()),
                (
                    "s3.access-key-id".to_string(),
                    seaweedfs::ACCESS_KEY_ID.to_string(),
                ),
                (
                    "s3.secret-access-key".to_string(),
                    seaweedfs::SECRET_ACCESS_KEY.to_string(),
                ),
            ]),
        )
        .await
        .expect("connect RestCatalog")
}

/// The bucket key of an `s3://bucket/key` location.
fn key_of(location: &str) -> String {
    let rest = location.strip_prefix("s3://").expect("an s3:// location");
    rest.split_once('/')
        .map(|(_, key)| key)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn table_life_cycle_on_s3() {
    let s3 = TestS3::start();
    let server = floe_on_s3(&s3, "lake", &[]).await;
    let catalog = s3_catalog(&server).await;

    let namespace = create_namespace(&catalog, "sales").await;
    let table = create_table(&catalog, &namespace, "orders").await;
    let location = table.metadata().location().to_string();
    assert!(
        location.starts_with("s3://lake/warehouse/sales/orders-"),
        "{location}"
    );
    let first_metadata = key_of(table.metadata_location().unwrap());
    assert!(
        s3.list("lake", "").await.contains(&first_metadata),
        "the metadata file is in the bucket"
    );

    // Data goes to S3 through the client's FileIO, metadata through Floe.
    // (A table returned by a commit has no table config in iceberg-rust: reload to write again.)
    append(&catalog, &table, &[1, 2, 3]).await.unwrap();
    let table = catalog
        .load_table(&ident(&namespace, "orders"))
        .await
        .unwrap();
    let table = append(&catalog, &table, &[4, 5]).await.unwrap();
    let reloaded = catalog
        .load_table(&ident(&namespace, "orders"))
        .await
        .unwrap();
    assert_eq!(reloaded.metadata_location(), table.metadata_location());
    assert_eq!(reloaded.metadata().snapshots().len(), 2);
    assert_eq!(read_ids(&reloaded).await, vec![1, 2, 3, 4, 5]);
    check_snapshot_chain(reloaded.metadata());

    let table_prefix = key_of(&location);
    let objects = s3.list("lake", &table_prefix).await;
    let count = |part: &str| objects.iter().filter(|key| key.contains(part)).count();
    assert_eq!(count(".metadata.json"), 3, "{objects:?}");
    assert_eq!(count(".parquet"), 2, "{objects:?}");

    // Dropping without purge keeps the files; with purge, every object of the table goes.
    catalog
        .create_table(
            &namespace,
            TableCreation::builder()
                .name("kept".to_string())
                .schema(id_name_schema())
                .build(),
        )
        .await
        .unwrap();
    let kept = catalog
        .load_table(&ident(&namespace, "kept"))
        .await
        .unwrap();
    catalog
        .drop_table(&ident(&namespace, "kept"))
        .await
        .unwrap();
    assert!(
        !s3.list("lake", &key_of(kept.metadata().location()))
            .await
            .is_empty()
    );

    let response = floe_testkit::http()
        .delete(format!(
            "{}/namespaces/sales/tables/orders?purgeRequested=true",
            server.api()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    assert_eq!(s3.list("lake", &table_prefix).await, Vec::<String>::new());
    assert!(
        !catalog
            .table_exists(&ident(&namespace, "orders"))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_on_s3_all_land_once() {
    const WRITERS: i64 = 8;
    const APPENDS_PER_WRITER: i64 = 3;
    const ROWS_PER_APPEND: i64 = 2;
    let s3 = TestS3::start();
    let server = floe_on_s3(&s3, "lake", &[]).await;
    let catalog = s3_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    catalog
        .create_table(
            &namespace,
            TableCreation::builder()
                .name("hot".to_string())
                .schema(id_name_schema())
                .properties(HashMap::from([
                    ("commit.retry.num-retries".to_string(), "20".to_string()),
                    ("commit.retry.min-wait-ms".to_string(), "50".to_string()),
                    ("commit.retry.max-wait-ms".to_string(), "2000".to_string()),
                ]))
                .build(),
        )
        .await
        .unwrap();
    let table = ident(&namespace, "hot");

    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let catalog = s3_catalog(&server).await;
        let table = table.clone();
        writers.push(tokio::spawn(async move {
            let mut ids_written = Vec::new();
            for append in 0..APPENDS_PER_WRITER {
                let first = (writer * APPENDS_PER_WRITER + append) * ROWS_PER_APPEND;
                let ids: Vec<i64> = (first..first + ROWS_PER_APPEND).collect();
                append_until_acknowledged(&catalog, &table, &ids).await;
                ids_written.extend(ids);
            }
            ids_written
        }));
    }
    let mut expected = Vec::new();
    for writer in writers {
        expected.extend(writer.await.expect("writer"));
    }
    expected.sort_unstable();

    let loaded = catalog.load_table(&table).await.unwrap();
    let chain = check_snapshot_chain(loaded.metadata());
    assert_eq!(chain.len() as i64, WRITERS * APPENDS_PER_WRITER);
    assert_eq!(read_ids(&loaded).await, expected, "every row exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_racing_for_one_metadata_key_get_one_winner() {
    const WRITERS: usize = 6;
    const ROUNDS: usize = 15;
    let s3 = TestS3::start();
    s3.create_bucket("race").await;
    // Each writer is its own warehouse client, as two servers would be.
    let options = StoreOptions {
        s3: S3Options {
            endpoint: Some(s3.endpoint()),
            region: Some(seaweedfs::REGION.into()),
            path_style: true,
            access_key_id: Some(seaweedfs::ACCESS_KEY_ID.into()),
            secret_access_key: Some(seaweedfs::SECRET_ACCESS_KEY.into()),
            ..S3Options::default()
        },
        ..StoreOptions::default()
    };
    let warehouses: Vec<Warehouse> = (0..WRITERS)
        .map(|_| Warehouse::open("main", "s3://race/wh", &options).unwrap())
        .collect();
    for round in 0..ROUNDS {
        let location = format!("s3://race/wh/t/metadata/{round:05}-same.metadata.json");
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let mut tasks = Vec::new();
        for (writer, warehouse) in warehouses.iter().cloned().enumerate() {
            let location = location.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let content = Bytes::from(format!("writer {writer}"));
                barrier.wait().await;
                (writer, warehouse.put_new(&location, content).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (writer, Ok(())) => winners.push(writer),
                (_, Err(StorageError::AlreadyExists { .. })) => {}
                (writer, Err(err)) => panic!("round {round}, writer {writer}: {err}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = warehouses[0].get(&location).await.unwrap();
        assert_eq!(stored, Bytes::from(format!("writer {}", winners[0])));
    }
}

#[tokio::test]
async fn table_config_carries_what_clients_need_and_keys_only_when_shared() {
    let s3 = TestS3::start();
    let server = floe_on_s3(&s3, "lake", &[]).await;
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let created = api.create_table(&["ns"], "t", json!({})).await;
    let loaded = api.load_table(&["ns"], "t").await;
    for result in [&created, &loaded] {
        assert_eq!(
            result["config"],
            json!({
                "s3.endpoint": s3.endpoint(),
                "s3.region": "us-east-1",
                "s3.path-style-access": "true",
                "s3.force-virtual-addressing": "false",
            }),
            "no keys unless shared"
        );
    }
    let text = loaded.to_string();
    assert!(!text.contains(seaweedfs::SECRET_ACCESS_KEY), "{text}");

    let sharing = floe_on_s3(&s3, "shared", &["--s3-share-credentials"]).await;
    let api = Api::new(&sharing);
    api.create_namespace(&["ns"]).await;
    let created = api.create_table(&["ns"], "t", json!({})).await;
    assert_eq!(created["config"]["s3.endpoint"], s3.endpoint());
    assert_eq!(
        created["config"]["s3.access-key-id"],
        seaweedfs::ACCESS_KEY_ID
    );
    assert_eq!(
        created["config"]["s3.secret-access-key"],
        seaweedfs::SECRET_ACCESS_KEY
    );

    // A client with no keys of its own reads and writes with the shared ones.
    let catalog = RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(ClientStorageFactory))
        .load("floe", HashMap::from([("uri".to_string(), sharing.uri())]))
        .await
        .unwrap();
    let namespace = iceberg::NamespaceIdent::new("ns".into());
    let table = create_table(&catalog, &namespace, "data").await;
    append(&catalog, &table, &[7]).await.unwrap();
    let table = catalog
        .load_table(&ident(&namespace, "data"))
        .await
        .unwrap();
    assert_eq!(read_ids(&table).await, vec![7]);
}

/// Runs `floe serve` expecting it to refuse to start; returns its stderr.
pub(crate) fn floe_refuses_to_start(args: &[String], env: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(floe_testkit::floe_binary())
        .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
        .arg(data.path())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run floe serve");
    assert!(!output.status.success(), "floe serve started: {output:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a permanent error must fail fast, took {:?}",
        started.elapsed()
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn wrong_credentials_and_missing_buckets_stop_the_server_with_a_message() {
    let s3 = TestS3::start();
    s3.create_bucket("lake").await;

    let wrong_secret = [
        ("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
    ];
    let stderr = floe_refuses_to_start(&s3.floe_args("lake", "wh"), &wrong_secret);
    assert!(
        stderr.contains("warehouse main refused list") && stderr.contains("access denied"),
        "{stderr}"
    );

    let stderr = floe_refuses_to_start(
        &s3.floe_args("no-such-bucket", "wh"),
        &TestS3::credentials_env(),
    );
    assert!(
        stderr.contains("s3://no-such-bucket/wh") && stderr.contains("the bucket does not exist"),
        "{stderr}"
    );

    // Plain HTTP off loopback is refused before anything is contacted.
    let mut args = s3.floe_args("lake", "wh");
    args[3] = "http://s3.example.invalid:9".to_string(); // --s3-endpoint; never contacted
    let stderr = floe_refuses_to_start(&args, &TestS3::credentials_env());
    assert!(stderr.contains("s3-allow-http"), "{stderr}");
}

#[tokio::test]
async fn an_unreachable_store_is_a_retryable_503_that_changes_nothing() {
    let s3 = TestS3::start();
    let server = floe_on_s3(
        &s3,
        "lake",
        &[
            "--s3-retry-timeout-ms",
            "1000",
            "--s3-connect-timeout-ms",
            "500",
        ],
    )
    .await;
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let before = api.create_table(&["ns"], "t", json!({})).await;

    drop(s3); // the S3 server is gone: connections are refused
    let started = Instant::now();
    let response = api
        .commit(&["ns"], "t", &set_properties_body(json!({ "k": "v" })))
        .await;
    let (kind, status, message) = error_model(response).await;
    assert_eq!(
        (kind.as_str(), status),
        ("ServiceUnavailableException", 503),
        "{message}"
    );
    assert!(
        message.contains("warehouse main is unavailable"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "retries are bounded: {:?}",
        started.elapsed()
    );
    // Loading still works from the server's cache (the pointer did not move).
    let after = api.load_table(&["ns"], "t").await;
    assert_eq!(metadata_location_of(&after), metadata_location_of(&before));
}

/// Maintenance reaches the warehouse's object store itself: the scheduler compacts a table of
/// small files on S3 with no manual step, writing the new file into the bucket, and the rows stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scheduler_compacts_a_table_on_s3() {
    let s3 = TestS3::start();
    let server = floe_on_s3(&s3, "lake", &["--maintenance-interval-ms", "300"]).await;
    let catalog = s3_catalog(&server).await;
    let namespace = create_namespace(&catalog, "events").await;
    // Off while appending, so that no pass compacts half-way through; turned on after.
    let clicks = create_table_with(
        &catalog,
        &namespace,
        "clicks",
        &[("floe.maintenance.enabled", "false")],
    )
    .await;
    let mut expected = Vec::new();
    for round in 0..6 {
        let ids = [round * 10, round * 10 + 1];
        expected.extend(ids);
        // Reloaded each time: a committed table has no S3 config in iceberg-rust (see above).
        let table = catalog.load_table(&clicks).await.unwrap();
        append(&catalog, &table, &ids).await.expect("append");
    }
    Api::new(&server)
        .set_properties(
            &["events"],
            "clicks",
            json!({
                "floe.maintenance.enabled": "true",
                "floe.maintenance.scrub.deep": "true",
            }),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let compacted = loop {
        let table = catalog.load_table(&clicks).await.unwrap();
        let snapshot = table.metadata().current_snapshot().unwrap().clone();
        if snapshot.summary().operation == iceberg::spec::Operation::Replace {
            break table;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted within 60 s:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let summary = &compacted
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties;
    assert_eq!(summary["total-data-files"], "1", "{summary:?}");
    expected.sort_unstable();
    assert_eq!(read_ids(&compacted).await, expected);
    // The same pass scrubs the table after compacting it, on S3 too: sizes by HEAD, footers by
    // ranged GETs (deep), and nothing wrong.
    let scrub = loop {
        let jobs: serde_json::Value = floe_testkit::http()
            .get(format!("{}/management/v1/maintenance/jobs", server.uri()))
            .query(&[
                ("namespace", "events"),
                ("table", "clicks"),
                ("kind", "scrub"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(job) = jobs["jobs"].as_array().and_then(|jobs| jobs.first()) {
            break job.clone();
        }
        assert!(
            Instant::now() < deadline,
            "not scrubbed within 60 s:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(scrub["outcome"], "succeeded", "{scrub}");
    assert_eq!(scrub["stats"]["deep"], "1", "{scrub}");
    assert_eq!(scrub["stats"]["findings"], "0", "{scrub}");
    assert_eq!(scrub["open-findings"], 0, "{scrub}");
    let data_files: Vec<String> = s3
        .list("lake", &key_of(compacted.metadata().location()))
        .await
        .into_iter()
        .filter(|key| key.ends_with(".parquet"))
        .collect();
    assert_eq!(
        data_files.len(),
        7,
        "six inputs (kept for time travel) and one output: {data_files:?}"
    );

    // `floe sql` over REST reads the S3 table like any client: the catalog's table config and
    // its own keys from the environment.
    let output = Command::new(floe_testkit::floe_binary())
        .args(["sql", "--catalog", &server.uri(), "--format", "csv", "-e"])
        .arg("SELECT count(*) AS n, sum(id) AS total FROM events.clicks")
        .envs(TestS3::credentials_env())
        .output()
        .expect("run floe sql");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let total: i64 = expected.iter().sum();
    assert_eq!(stdout.trim(), format!("n,total\n12,{total}"));
}
