//! Credential vending (docs/security.md "Vended credentials") against a real S3 server that
//! enforces STS session policies (SeaweedFS with STS): a client with no keys of its own writes and
//! reads its table with what loadTable vends, those credentials reach no other table, the spec's
//! loadCredentials route answers from the same cache, and the warehouse's settings decide what a
//! client gets with and without the `X-Iceberg-Access-Delegation` header.

use std::collections::HashMap;
use std::sync::Arc;

use floe_testkit::seaweedfs::{self, TestS3};
use iceberg::{Catalog, CatalogBuilder};
use iceberg_catalog_rest::RestCatalogBuilder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{Value, json};

use crate::support::*;
use floe_commit::file_io::ClientStorageFactory;

const HEADER: &str = "X-Iceberg-Access-Delegation";

async fn register_warehouse(server: &FloeServer, s3: &TestS3, name: &str, extra: Value) {
    let mut properties =
        s3.warehouse_properties(json!({"s3.sts-role-arn": seaweedfs::STS_ROLE_ARN}));
    for (key, value) in extra.as_object().expect("object") {
        properties[key] = value.clone();
    }
    let response = floe_testkit::http()
        .post(format!("{}/management/v1/warehouses", server.uri()))
        .json(&json!({
            "name": name,
            "storage-url": format!("s3://lake/{name}"),
            "properties": properties,
        }))
        .send()
        .await
        .expect("create warehouse");
    assert_eq!(
        response.status(),
        201,
        "{}",
        response.text().await.unwrap_or_default()
    );
}

async fn request(
    method: reqwest::Method,
    url: String,
    delegation: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = floe_testkit::http().request(method, url);
    if let Some(modes) = delegation {
        request = request.header(HEADER, modes);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A client of bucket `lake` that holds only `config`'s (vended) keys.
pub(crate) fn client_of(s3: &TestS3, config: &Value) -> Arc<dyn ObjectStore> {
    let text = |key: &str| {
        config[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {config}"))
    };
    s3.store_as(
        "lake",
        text("s3.access-key-id"),
        text("s3.secret-access-key"),
        Some(text("s3.session-token")),
    )
}

fn key_of(location: &str) -> String {
    location
        .strip_prefix("s3://lake/")
        .expect("in the bucket")
        .to_string()
}

#[tokio::test]
async fn a_client_without_keys_writes_and_reads_its_table_with_vended_credentials_only() {
    let s3 = TestS3::start_with_sts();
    s3.create_bucket("lake").await;
    let server = FloeServer::start_with_args(&["--allowed-storage-root", "s3://lake"]);
    register_warehouse(&server, &s3, "vend", json!({})).await;

    // iceberg-rust's REST client, with no keys of its own and none in its environment.
    let catalog = RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(ClientStorageFactory))
        .load(
            "floe",
            HashMap::from([
                ("uri".to_string(), server.uri()),
                ("warehouse".to_string(), "vend".to_string()),
            ]),
        )
        .await
        .expect("connect");
    let namespace = create_namespace(&catalog, "sales").await;
    let table = create_table(&catalog, &namespace, "orders").await;
    let table = append(&catalog, &table, &[1, 2, 3])
        .await
        .expect("append with vended credentials");
    let reloaded = catalog
        .load_table(&ident(&namespace, "orders"))
        .await
        .expect("load");
    assert_eq!(read_ids(&reloaded).await, [1, 2, 3]);
    assert_eq!(
        table.metadata().current_snapshot_id(),
        reloaded.metadata().current_snapshot_id()
    );

    // What the client got: temporary keys for this table, never the warehouse's.
    let base = format!("{}/v1/vend/namespaces/sales/tables", server.uri());
    let (status, loaded) = request(
        reqwest::Method::GET,
        format!("{base}/orders"),
        Some("vended-credentials"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{loaded}");
    let text = loaded.to_string();
    assert!(
        !text.contains(seaweedfs::SECRET_ACCESS_KEY) && !text.contains(seaweedfs::ACCESS_KEY_ID)
    );
    let config = &loaded["config"];
    assert_eq!(
        config["client.refresh-credentials-endpoint"],
        "v1/vend/namespaces/sales/tables/orders/credentials"
    );
    let location = loaded["metadata"]["location"]
        .as_str()
        .expect("location")
        .to_string();
    let credential = &loaded["storage-credentials"][0];
    assert_eq!(credential["prefix"], location.as_str());
    assert_eq!(
        credential["config"]["s3.access-key-id"],
        config["s3.access-key-id"]
    );
    let expires: u128 = config["s3.session-token-expires-at-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::UNIX_EPOCH.elapsed().unwrap().as_millis();
    assert!(
        expires > now + 30 * 60 * 1000,
        "at least half the default hour is left"
    );

    // loadCredentials answers from the same cache.
    let (status, refreshed) = request(
        reqwest::Method::GET,
        format!("{base}/orders/credentials"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(
        refreshed["storage-credentials"][0]["config"]["s3.access-key-id"],
        config["s3.access-key-id"]
    );

    // Those keys reach exactly this table.
    let other = create_table(&catalog, &namespace, "returns").await;
    append(&catalog, &other, &[9])
        .await
        .expect("append to the other table");
    let (_, other_loaded) = request(
        reqwest::Method::GET,
        format!("{base}/returns"),
        Some("vended-credentials"),
        None,
    )
    .await;
    let other_metadata = key_of(other_loaded["metadata-location"].as_str().unwrap());
    let own_metadata = key_of(loaded["metadata-location"].as_str().unwrap());
    let client = client_of(&s3, config);
    client
        .get(&Path::from(own_metadata))
        .await
        .expect("own metadata");
    let refused = client
        .get(&Path::from(other_metadata.clone()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("AccessDenied") || refused.contains("403"),
        "{refused}"
    );
    let write_elsewhere = client
        .put(
            &Path::from("vend/elsewhere.txt"),
            PutPayload::from_static(b"x"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        write_elsewhere.contains("AccessDenied") || write_elsewhere.contains("403"),
        "{write_elsewhere}"
    );
    // Without auth every caller holds every privilege, so these keys also write the table.
    client
        .put(
            &Path::from(format!("{}/data/extra.bin", key_of(&location))),
            PutPayload::from_static(b"x"),
        )
        .await
        .expect("write inside the table");
}

#[tokio::test]
async fn the_warehouse_decides_which_modes_clients_get() {
    let s3 = TestS3::start_with_sts();
    s3.create_bucket("lake").await;
    let server = FloeServer::start_with_args(&["--allowed-storage-root", "s3://lake"]);
    register_warehouse(
        &server,
        &s3,
        "optin",
        json!({"s3.default-access-delegation": "none"}),
    )
    .await;
    let api = Api {
        client: floe_testkit::http(),
        base: format!("{}/v1/optin", server.uri()),
    };
    api.create_namespace(&["ns"]).await;
    let created = api.create_table(&["ns"], "t", json!({})).await;
    assert!(
        created.get("storage-credentials").is_none(),
        "no header, default none: {created}"
    );
    assert!(created["config"].get("s3.session-token").is_none());

    let url = api.table_url(&["ns"], "t");
    let (_, asked) = request(
        reqwest::Method::GET,
        url.clone(),
        Some("remote-signing-unknown, vended-credentials"),
        None,
    )
    .await;
    assert!(
        asked["storage-credentials"][0]["config"]["s3.session-token"].is_string(),
        "{asked}"
    );
    let (_, unknown) = request(reqwest::Method::GET, url, Some("something-else"), None).await;
    assert!(unknown.get("storage-credentials").is_none(), "{unknown}");

    // The default (file://) warehouse vends nothing, and says so with an empty list.
    let local = Api::new(&server);
    local.create_namespace(&["ns"]).await;
    local.create_table(&["ns"], "t", json!({})).await;
    let (status, none) = request(
        reqwest::Method::GET,
        format!("{}/credentials", local.table_url(&["ns"], "t")),
        Some("vended-credentials"),
        None,
    )
    .await;
    assert_eq!((status, none), (200, json!({"storage-credentials": []})));

    // Settings that cannot work are refused when the warehouse is registered.
    let response = floe_testkit::http()
        .post(format!("{}/management/v1/warehouses", server.uri()))
        .json(&json!({
            "name": "broken",
            "storage-url": "s3://lake/broken",
            "properties": {
                "s3.endpoint": s3.endpoint(),
                "s3.access-key-id": seaweedfs::ACCESS_KEY_ID,
                "s3.secret-access-key": seaweedfs::SECRET_ACCESS_KEY,
                "s3.access-delegation": "vended-credentials",
            },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("s3.sts-role-arn"),
        "{body}"
    );
}

#[tokio::test]
async fn the_default_warehouse_vends_with_server_flags_and_refuses_settings_that_cannot_work() {
    let s3 = TestS3::start_with_sts();
    s3.create_bucket("lake").await;
    let mut args = s3.floe_args("lake", "warehouse");
    args.extend([
        "--s3-sts-role-arn".to_string(),
        seaweedfs::STS_ROLE_ARN.to_string(),
    ]);
    let args_str: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = FloeServer::start_with_env(&args_str, &TestS3::credentials_env());
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let created = api.create_table(&["ns"], "t", json!({})).await;
    let config = &created["storage-credentials"][0]["config"];
    assert!(config["s3.session-token"].is_string(), "{created}");
    assert_ne!(config["s3.access-key-id"], seaweedfs::ACCESS_KEY_ID);

    let env = TestS3::credentials_env();
    let no_role = crate::s3::floe_refuses_to_start(
        &[
            "--s3-access-delegation".to_string(),
            "vended-credentials".to_string(),
        ]
        .iter()
        .chain(s3.floe_args("lake", "warehouse").iter())
        .cloned()
        .collect::<Vec<_>>(),
        &env,
    );
    assert!(no_role.contains("s3.sts-role-arn"), "{no_role}");
    let local = crate::s3::floe_refuses_to_start(
        &[
            "--s3-sts-role-arn".to_string(),
            "arn:aws:iam::role/x".to_string(),
        ],
        &[],
    );
    assert!(local.contains("s3:// warehouses only"), "{local}");
}

/// Vending scopes credentials to a table's location, so every table must lie inside its
/// warehouse: registering metadata whose location is elsewhere is refused (and a table that got
/// there some other way would load without credentials: `delegation::vend::table_access`).
#[tokio::test]
async fn a_table_whose_location_is_outside_the_warehouse_cannot_be_registered() {
    let s3 = TestS3::start_with_sts();
    s3.create_bucket("lake").await;
    let server = FloeServer::start_with_args(&["--allowed-storage-root", "s3://lake"]);
    register_warehouse(&server, &s3, "vend", json!({})).await;
    let api = Api {
        client: floe_testkit::http(),
        base: format!("{}/v1/vend", server.uri()),
    };
    api.create_namespace(&["ns"]).await;
    let created = api.create_table(&["ns"], "t", json!({})).await;
    // The same metadata, copied outside the warehouse's root, registered as another table.
    let metadata = key_of(created["metadata-location"].as_str().unwrap());
    let admin = s3.store("lake");
    let bytes = admin
        .get(&Path::from(metadata))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut moved: Value = serde_json::from_slice(&bytes).unwrap();
    moved["location"] = json!("s3://lake/elsewhere/t");
    admin
        .put(
            &Path::from("vend/loose/metadata/00000-x.metadata.json"),
            serde_json::to_vec(&moved).unwrap().into(),
        )
        .await
        .unwrap();
    let (status, registered) = request(
        reqwest::Method::POST,
        format!("{}/namespaces/ns/register", api.base),
        Some("vended-credentials"),
        Some(json!({
            "name": "loose",
            "metadata-location": "s3://lake/vend/loose/metadata/00000-x.metadata.json",
        })),
    )
    .await;
    assert_eq!(status, 400, "{registered}");
    assert!(
        registered["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("outside warehouse vend")),
        "{registered}"
    );
}
