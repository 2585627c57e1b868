//! Several warehouses in one server: the default one on a local directory and one registered
//! through the management API on a real S3 server (SeaweedFS). Each keeps its own namespaces and
//! tables under its own root; no table location, created or registered, may point into another
//! warehouse; clients pick a warehouse by name (or storage URL) through `/v1/config`; every replica
//! serves a warehouse created on any of them; and `floe warehouse` manages them from the shell.

use std::collections::HashMap;
use std::sync::Arc;

use floe_testkit::postgres::TestPostgres;
use floe_testkit::seaweedfs::{self, TestS3};
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};
use serde_json::{Value, json};

use crate::support::*;
use floe_commit::file_io::ClientStorageFactory;

fn management(server: &FloeServer) -> String {
    format!("{}/management/v1/warehouses", server.uri())
}

/// Registers a warehouse through the management API; returns the response body.
async fn create_warehouse(server: &FloeServer, body: Value) -> Value {
    let response = floe_testkit::http()
        .post(management(server))
        .json(&body)
        .send()
        .await
        .expect("create warehouse");
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    body
}

/// iceberg-rust's REST client for warehouse `warehouse`, with S3 file I/O.
async fn s3_catalog(server: &FloeServer, warehouse: &str) -> RestCatalog {
    RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(ClientStorageFactory))
        .load(
            "floe",
            HashMap::from([
                ("uri".to_string(), server.uri()),
                ("warehouse".to_string(), warehouse.to_string()),
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

fn api_for(server: &FloeServer, prefix: &str) -> Api {
    Api {
        client: floe_testkit::http(),
        base: format!("{}/v1/{prefix}", server.uri()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_warehouses_on_different_storage_keep_their_tables_apart() {
    let s3 = TestS3::start();
    s3.create_bucket("lake").await;
    let server = FloeServer::start_with_args(&["--allowed-storage-root", "s3://lake"]);
    let created = create_warehouse(
        &server,
        json!({
            "name": "lake",
            "storage-url": "s3://lake/tables",
            "properties": {
                "s3.endpoint": s3.endpoint(),
                "s3.region": "us-east-1",
                "s3.path-style-access": "true",
                "s3.access-key-id": seaweedfs::ACCESS_KEY_ID,
                "s3.secret-access-key": seaweedfs::SECRET_ACCESS_KEY,
            }
        }),
    )
    .await;
    assert_eq!(created["prefix"], "lake");
    assert_eq!(created["storage-url"], "s3://lake/tables");

    // The same names in both warehouses, different rows.
    let local = rest_catalog(&server).await;
    let lake = s3_catalog(&server, "lake").await;
    let mut locations = Vec::new();
    for (catalog, ids) in [(&local, vec![1, 2, 3]), (&lake, vec![10, 20])] {
        let namespace = create_namespace(catalog, "sales").await;
        let table = create_table(catalog, &namespace, "orders").await;
        append(catalog, &table, &ids).await.expect("append");
        locations.push(table.metadata().location().to_string());
    }
    let sales = iceberg::NamespaceIdent::new("sales".into());
    let orders = ident(&sales, "orders");
    assert_eq!(
        read_ids(&local.load_table(&orders).await.unwrap()).await,
        [1, 2, 3]
    );
    assert_eq!(
        read_ids(&lake.load_table(&orders).await.unwrap()).await,
        [10, 20]
    );
    let (local_location, lake_location) = (&locations[0], &locations[1]);
    assert!(
        local_location.starts_with(&format!(
            "file://{}/",
            server.warehouse_dir().canonicalize().unwrap().display()
        )),
        "{local_location}"
    );
    assert!(
        lake_location.starts_with("s3://lake/tables/sales/orders-"),
        "{lake_location}"
    );
    // Every object of the bucket is the lake table's; nothing of it landed on the local disk.
    let keys = s3.list("lake", "").await;
    assert!(!keys.is_empty());
    let lake_key = lake_location.trim_start_matches("s3://lake/");
    assert!(keys.iter().all(|key| key.starts_with(lake_key)), "{keys:?}");
    let local_files = files_under(&server.warehouse_dir());
    assert!(
        local_files
            .iter()
            .all(|path| !path.to_string_lossy().contains("tables")),
        "{local_files:?}"
    );

    // No location into the other warehouse, whether created or registered.
    let main_api = api_for(&server, "main");
    let lake_api = api_for(&server, "lake");
    let lake_metadata = metadata_location_of(&lake_api.load_table(&["sales"], "orders").await);
    let local_metadata = metadata_location_of(&main_api.load_table(&["sales"], "orders").await);
    for (api, foreign_location, foreign_metadata) in [
        (&main_api, lake_location, &lake_metadata),
        (&lake_api, local_location, &local_metadata),
    ] {
        let response = api
            .client
            .post(format!("{}/tables", api.namespace_url(&["sales"])))
            .json(&json!({
                "name": "intruder",
                "schema": id_schema_json(),
                "location": format!("{foreign_location}/intruder"),
            }))
            .send()
            .await
            .unwrap();
        let (kind, status, message) = floe_testkit::error_model(response).await;
        assert_eq!(
            (kind.as_str(), status),
            ("BadRequestException", 400),
            "{message}"
        );

        let response = api
            .client
            .post(format!("{}/register", api.namespace_url(&["sales"])))
            .json(&json!({ "name": "intruder", "metadata-location": foreign_metadata }))
            .send()
            .await
            .unwrap();
        let (kind, status, message) = floe_testkit::error_model(response).await;
        assert_eq!(
            (kind.as_str(), status),
            ("BadRequestException", 400),
            "{message}"
        );
        assert!(message.contains("outside"), "{message}");
    }

    // Clients find warehouses by name or by storage URL; an unknown one is a 404.
    let http = floe_testkit::http();
    for asked in ["lake", "s3://lake/tables", "s3://lake/tables/"] {
        let config: Value = http
            .get(format!("{}/v1/config", server.uri()))
            .query(&[("warehouse", asked)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(config["overrides"]["prefix"], "lake", "{asked}: {config}");
    }
    let response = http
        .get(format!("{}/v1/config?warehouse=nope", server.uri()))
        .send()
        .await
        .unwrap();
    let (kind, status, message) = floe_testkit::error_model(response).await;
    assert_eq!((kind.as_str(), status), ("NoSuchWarehouseException", 404));
    assert!(message.contains("main, lake"), "{message}");
    let response = http
        .get(format!("{}/v1/nope/namespaces", server.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        floe_testkit::error_model(response).await.0,
        "NoSuchWarehouseException"
    );

    // A warehouse goes only once empty; then its prefix is gone, the other untouched.
    let response = http
        .delete(format!("{}/lake", management(&server)))
        .send()
        .await
        .unwrap();
    let (kind, status, _) = floe_testkit::error_model(response).await;
    assert_eq!((kind.as_str(), status), ("WarehouseNotEmptyException", 409));
    lake.purge_table(&orders).await.expect("purge");
    lake.drop_namespace(&sales).await.expect("drop namespace");
    let response = http
        .delete(format!("{}/lake", management(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = http
        .get(format!("{}/v1/lake/namespaces", server.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        read_ids(&local.load_table(&orders).await.unwrap()).await,
        [1, 2, 3]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_warehouse_created_on_one_replica_is_served_by_every_replica() {
    let metastore = tokio::task::spawn_blocking(|| TestPostgres::shared().create_database())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = url::Url::from_directory_path(dir.path().join("archive")).unwrap();
    let allowed = ["--allowed-storage-root", storage.as_str()];
    let first = FloeServer::start_replica(&metastore, &dir.path().join("data"), &allowed);
    let second = FloeServer::start_replica(&metastore, &dir.path().join("data"), &allowed);
    create_warehouse(
        &first,
        json!({ "name": "archive", "storage-url": storage.as_str() }),
    )
    .await;

    // Made through one replica, used through the other at once, in any order.
    let on_second = api_for(&second, "archive");
    on_second.create_namespace(&["old"]).await;
    let created = api_for(&first, "archive")
        .create_table(&["old"], "orders", json!({}))
        .await;
    assert!(
        location_of(&created).starts_with(storage.as_str().trim_end_matches('/')),
        "{created}"
    );
    let loaded = on_second.load_table(&["old"], "orders").await;
    assert_eq!(
        metadata_location_of(&loaded),
        metadata_location_of(&created)
    );
    let listed: Value = floe_testkit::http()
        .get(management(&second))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["warehouses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|warehouse| warehouse["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["main", "archive"]);
    // The default warehouse does not see the other's namespace.
    let main: Value = floe_testkit::http()
        .get(format!("{}/v1/main/namespaces", second.uri()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(main["namespaces"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floe_warehouse_manages_warehouses_with_or_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    let archive = url::Url::from_directory_path(dir.path().join("archive")).unwrap();

    // No server: straight on the data dir's store.
    let (ok, out, err) = floe(&[
        "warehouse",
        "create",
        "archive",
        "--storage-url",
        archive.as_str(),
        "--data-dir",
        data_dir,
        "--allowed-storage-root",
        archive.as_str(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("created warehouse archive"), "{out}");
    let (ok, out, err) = floe(&["warehouse", "list", "--data-dir", data_dir]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[1].starts_with("main (default)"), "{out}");
    assert!(lines[2].starts_with("archive "), "{out}");
    assert_eq!(lines[3], "2 warehouses", "{out}");

    // `floe sql` works in it on the data dir too: the files land under its storage.
    let (ok, out, err) = floe(&[
        "sql",
        "--data-dir",
        data_dir,
        "--warehouse",
        "archive",
        "--format",
        "csv",
        "-e",
        "CREATE SCHEMA scratch; CREATE TABLE scratch.t (id BIGINT); \
         INSERT INTO scratch.t VALUES (7), (8); SELECT id FROM scratch.t ORDER BY id",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.ends_with("id\n7\n8\n"), "{out}");
    let archived = files_under(&dir.path().join("archive"));
    assert!(
        archived
            .iter()
            .any(|path| path.to_string_lossy().ends_with(".parquet")),
        "{archived:?}"
    );
    assert!(files_under(&data.join("warehouse")).is_empty());
    let (ok, _, err) = floe(&[
        "sql",
        "--data-dir",
        data_dir,
        "--warehouse",
        "nope",
        "-e",
        "SELECT 1",
    ]);
    assert!(!ok);
    assert!(err.contains("there are: main, archive"), "{err}");
    let (ok, out, err) = floe(&[
        "sql",
        "--data-dir",
        data_dir,
        "--warehouse",
        "archive",
        "-e",
        "DROP TABLE scratch.t; DROP SCHEMA scratch",
    ]);
    assert!(ok, "{out}{err}");

    // A server on that data dir serves it; the CLI goes through its API too.
    let server = FloeServer::start_in(&data);
    let catalog = server.uri();
    api_for(&server, "archive").create_namespace(&["old"]).await;
    let (ok, out, err) = floe(&[
        "warehouse",
        "create",
        "s3",
        "--storage-url",
        "s3://bucket/x",
        "-p",
        "s3.endpont=http://127.0.0.1:1",
        "--catalog",
        &catalog,
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("unknown storage setting \"s3.endpont\"") && err.contains("HTTP 400"),
        "{err}"
    );
    let (ok, out, err) = floe(&["warehouse", "drop", "archive", "--catalog", &catalog]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("not empty") && err.contains("HTTP 409"),
        "{err}"
    );
    let (ok, out, err) = floe(&["warehouse", "show", "archive", "--catalog", &catalog]);
    assert!(ok, "{err}");
    let shown: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(shown["name"], "archive");
    assert_eq!(shown["default"], false);

    let response = floe_testkit::http()
        .delete(api_for(&server, "archive").namespace_url(&["old"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (ok, out, err) = floe(&["warehouse", "drop", "archive", "--catalog", &catalog]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "dropped warehouse archive");
    let (ok, out, _) = floe(&["warehouse", "list", "--json", "--catalog", &catalog]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}
