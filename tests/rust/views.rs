//! Iceberg views through the REST API: life cycle, replace with `assert-view-uuid`, names shared
//! with tables, renames across namespaces, pagination and bad input. Raw requests: iceberg-rust's
//! REST client has no view calls.

use serde_json::{Value, json};

use crate::support::*;

fn views_url(api: &Api, namespace: &[&str]) -> String {
    format!("{}/views", api.namespace_url(namespace))
}

fn view_url(api: &Api, namespace: &[&str], view: &str) -> String {
    format!("{}/{}", views_url(api, namespace), encode_segment(view))
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit")
}

/// A view schema with the given columns, all optional longs numbered from 1.
fn schema(schema_id: i64, columns: &[&str]) -> Value {
    let fields: Vec<Value> = columns
        .iter()
        .enumerate()
        .map(|(i, name)| json!({"id": i + 1, "name": name, "required": false, "type": "long"}))
        .collect();
    json!({"type": "struct", "schema-id": schema_id, "fields": fields})
}

fn view_version(version_id: i64, schema_id: i64, sql: &str, namespace: &[&str]) -> Value {
    json!({
        "version-id": version_id,
        "schema-id": schema_id,
        "timestamp-ms": now_ms(),
        "summary": {"engine-name": "floe-e2e"},
        "representations": [{"type": "sql", "sql": sql, "dialect": "spark"}],
        "default-namespace": namespace,
    })
}

/// A CreateViewRequest for `SELECT id FROM <sql's table>`.
fn create_body(namespace: &[&str], name: &str, sql: &str) -> Value {
    json!({
        "name": name,
        "schema": schema(0, &["id"]),
        "view-version": view_version(1, 0, sql, namespace),
        "properties": {"comment": "made by the e2e tests"},
    })
}

/// A CommitViewRequest as Iceberg's Java client sends for `CREATE OR REPLACE VIEW`: a new schema,
/// a new version over it, made current.
fn replace_body(uuid: &str, namespace: &[&str], sql: &str, columns: &[&str]) -> Value {
    json!({
        "requirements": [{"type": "assert-view-uuid", "uuid": uuid}],
        "updates": [
            {"action": "add-schema", "schema": schema(1, columns), "last-column-id": columns.len()},
            {"action": "add-view-version", "view-version": view_version(2, -1, sql, namespace)},
            {"action": "set-current-view-version", "view-version-id": -1},
        ],
    })
}

async fn create_view(api: &Api, namespace: &[&str], name: &str, sql: &str) -> Value {
    let response = api
        .client
        .post(views_url(api, namespace))
        .json(&create_body(namespace, name, sql))
        .send()
        .await
        .expect("create view");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.expect("LoadViewResult")
}

async fn load_view(api: &Api, namespace: &[&str], name: &str) -> Value {
    let response = api
        .client
        .get(view_url(api, namespace, name))
        .send()
        .await
        .expect("load view");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.expect("LoadViewResult")
}

/// `(type, status)` of the ErrorModel `request` gets.
async fn error_of(request: reqwest::RequestBuilder) -> (String, u16) {
    let response = request.send().await.expect("request");
    let (kind, status, message) = error_model(response).await;
    assert!(!message.is_empty(), "ErrorModel without a message");
    (kind, status)
}

fn error(kind: &str, status: u16) -> (String, u16) {
    (kind.to_string(), status)
}

/// The SQL of the view's current version.
fn current_sql(result: &Value) -> String {
    let metadata = &result["metadata"];
    let current = &metadata["current-version-id"];
    let version = metadata["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|version| version["version-id"] == *current)
        .expect("the current version is listed");
    version["representations"][0]["sql"]
        .as_str()
        .expect("sql")
        .to_string()
}

fn uuid_of(result: &Value) -> String {
    result["metadata"]["view-uuid"]
        .as_str()
        .expect("view-uuid")
        .to_string()
}

async fn list_names(api: &Api, namespace: &[&str], kind: &str, query: &str) -> Value {
    let response = api
        .client
        .get(format!("{}/{kind}{query}", api.namespace_url(namespace)))
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.expect("ListTablesResponse")
}

fn names_in(listing: &Value) -> Vec<String> {
    listing["identifiers"]
        .as_array()
        .expect("identifiers")
        .iter()
        .map(|id| id["name"].as_str().expect("name").to_string())
        .collect()
}

#[tokio::test]
async fn view_life_cycle() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["sales"]).await;

    let config: Value = api
        .client
        .get(format!("{}/v1/config", server.uri()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoints = config["endpoints"].as_array().expect("endpoints");
    for endpoint in [
        "GET /v1/{prefix}/namespaces/{namespace}/views",
        "POST /v1/{prefix}/namespaces/{namespace}/views",
        "GET /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "HEAD /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "POST /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "DELETE /v1/{prefix}/namespaces/{namespace}/views/{view}",
        "POST /v1/{prefix}/views/rename",
    ] {
        assert!(
            endpoints.contains(&json!(endpoint)),
            "{endpoint} advertised"
        );
    }

    let created = create_view(&api, &["sales"], "big_orders", "SELECT id FROM orders").await;
    let first = metadata_location_of(&created);
    assert!(first.ends_with(".metadata.json"), "{first}");
    assert!(
        local_path(&first).is_file(),
        "the metadata file is written under the view's location"
    );
    assert!(
        first.starts_with(&location_of(&created)),
        "{first} under the view's location"
    );
    assert!(local_path(&location_of(&created)).starts_with(server.warehouse_dir()));
    assert_eq!(created["metadata"]["current-version-id"], 1);
    assert_eq!(
        created["metadata"]["properties"]["comment"],
        "made by the e2e tests"
    );
    assert_eq!(current_sql(&created), "SELECT id FROM orders");
    assert_eq!(
        load_view(&api, &["sales"], "big_orders").await,
        created,
        "a load returns what the create did"
    );

    let head = api
        .client
        .head(view_url(&api, &["sales"], "big_orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 204);
    assert_eq!(
        names_in(&list_names(&api, &["sales"], "views", "").await),
        ["big_orders"]
    );
    assert!(
        names_in(&list_names(&api, &["sales"], "tables", "").await).is_empty(),
        "a view is not a table"
    );

    // Replace, as `CREATE OR REPLACE VIEW` does: a new version, the old file kept in the chain.
    let uuid = uuid_of(&created);
    let response = api
        .client
        .post(view_url(&api, &["sales"], "big_orders"))
        .json(&replace_body(
            &uuid,
            &["sales"],
            "SELECT id, qty FROM orders WHERE qty > 10",
            &["id", "qty"],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let replaced: Value = response.json().await.unwrap();
    let second = metadata_location_of(&replaced);
    assert_ne!(second, first);
    assert!(local_path(&second).is_file() && local_path(&first).is_file());
    assert_eq!(uuid_of(&replaced), uuid, "the view keeps its UUID");
    assert_eq!(replaced["metadata"]["current-version-id"], 2);
    assert_eq!(
        replaced["metadata"]["versions"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        current_sql(&replaced),
        "SELECT id, qty FROM orders WHERE qty > 10"
    );
    assert_eq!(load_view(&api, &["sales"], "big_orders").await, replaced);

    // A namespace holding a view is not empty.
    assert_eq!(
        error_of(api.client.delete(api.namespace_url(&["sales"]))).await,
        error("NamespaceNotEmptyException", 409)
    );

    let dropped = api
        .client
        .delete(view_url(&api, &["sales"], "big_orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(dropped.status(), 204);
    let head = api
        .client
        .head(view_url(&api, &["sales"], "big_orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404);
    let no_such_view = error("NoSuchViewException", 404);
    let url = view_url(&api, &["sales"], "big_orders");
    assert_eq!(error_of(api.client.get(&url)).await, no_such_view);
    assert_eq!(error_of(api.client.delete(&url)).await, no_such_view);
    assert_eq!(
        error_of(api.client.post(&url).json(&replace_body(
            &uuid,
            &["sales"],
            "SELECT 1",
            &["one"]
        )))
        .await,
        no_such_view
    );
    let no_such_namespace = error("NoSuchNamespaceException", 404);
    assert_eq!(
        error_of(api.client.get(views_url(&api, &["nowhere"]))).await,
        no_such_namespace
    );
    assert_eq!(
        error_of(
            api.client
                .post(views_url(&api, &["nowhere"]))
                .json(&create_body(&["nowhere"], "v", "SELECT 1"))
        )
        .await,
        no_such_namespace
    );
    let gone = api
        .client
        .delete(api.namespace_url(&["sales"]))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204, "empty once the view is dropped");
}

#[tokio::test]
async fn replace_with_a_stale_view_uuid_is_409() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let old = create_view(&api, &["ns"], "v", "SELECT 1").await;
    let url = view_url(&api, &["ns"], "v");
    assert_eq!(api.client.delete(&url).send().await.unwrap().status(), 204);
    // Another client re-creates the view meanwhile: same name, another view.
    let new = create_view(&api, &["ns"], "v", "SELECT 2").await;
    assert_ne!(uuid_of(&old), uuid_of(&new));
    let files_before = metadata_files(&location_of(&new));

    let stale = replace_body(&uuid_of(&old), &["ns"], "SELECT 3", &["three"]);
    assert_eq!(
        error_of(api.client.post(&url).json(&stale)).await,
        error("CommitFailedException", 409)
    );
    assert_eq!(load_view(&api, &["ns"], "v").await, new, "nothing changed");
    assert_eq!(
        metadata_files(&location_of(&new)),
        files_before,
        "a refused replace leaves no file"
    );

    // With the current UUID it goes through.
    let fresh = replace_body(&uuid_of(&new), &["ns"], "SELECT 3", &["three"]);
    let response = api.client.post(&url).json(&fresh).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(current_sql(&response.json().await.unwrap()), "SELECT 3");
}

/// Replaces racing on one view: none is lost (each lands on a fresh read), and every losing
/// attempt's file is gone.
#[tokio::test]
async fn concurrent_replaces_all_land() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let created = create_view(&api, &["ns"], "v", "SELECT 0").await;
    let uuid = uuid_of(&created);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..6 {
        let (api, uuid) = (api.clone(), uuid.clone());
        tasks.spawn(async move {
            let body = replace_body(&uuid, &["ns"], &format!("SELECT {task}"), &["n"]);
            let response = api
                .client
                .post(view_url(&api, &["ns"], "v"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            metadata_location_of(&response.json().await.unwrap())
        });
    }
    let locations = tasks.join_all().await;
    let view = load_view(&api, &["ns"], "v").await;
    assert!(locations.contains(&metadata_location_of(&view)));
    // The create's file and one per acknowledged replace, nothing else.
    assert_eq!(
        metadata_files(&location_of(&view)).len(),
        1 + locations.len()
    );
    let log = view["metadata"]["version-log"].as_array().unwrap();
    assert!(log.len() >= 2, "{view}");
}

#[tokio::test]
async fn views_and_tables_never_share_a_name() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    api.create_table(&["ns"], "orders", json!({})).await;
    create_view(&api, &["ns"], "big_orders", "SELECT id FROM orders").await;
    let already_exists = error("AlreadyExistsException", 409);

    assert_eq!(
        error_of(api.client.post(views_url(&api, &["ns"])).json(&create_body(
            &["ns"],
            "orders",
            "SELECT 1"
        )))
        .await,
        already_exists,
        "a view named like a table"
    );
    assert_eq!(
        error_of(
            api.client
                .post(format!("{}/tables", api.namespace_url(&["ns"])))
                .json(&json!({"name": "big_orders", "schema": id_schema_json()}))
        )
        .await,
        already_exists,
        "a table named like a view"
    );
    let rename = |kind: &str, from: &str, to: &str| {
        api.client
            .post(format!("{}/{kind}/rename", api.base))
            .json(&json!({
                "source": {"namespace": ["ns"], "name": from},
                "destination": {"namespace": ["ns"], "name": to},
            }))
    };
    assert_eq!(
        error_of(rename("tables", "orders", "big_orders")).await,
        already_exists
    );
    assert_eq!(
        error_of(rename("views", "big_orders", "orders")).await,
        already_exists
    );
    // Each kind's routes see only their own kind.
    assert_eq!(
        error_of(api.client.get(api.table_url(&["ns"], "big_orders"))).await,
        error("NoSuchTableException", 404)
    );
    assert_eq!(
        error_of(api.client.get(view_url(&api, &["ns"], "orders"))).await,
        error("NoSuchViewException", 404)
    );
    assert_eq!(
        error_of(api.client.delete(view_url(&api, &["ns"], "orders"))).await,
        error("NoSuchViewException", 404)
    );
    assert_eq!(
        error_of(rename("views", "orders", "x")).await,
        error("NoSuchViewException", 404)
    );
    assert_eq!(
        names_in(&list_names(&api, &["ns"], "tables", "").await),
        ["orders"]
    );
    assert_eq!(
        names_in(&list_names(&api, &["ns"], "views", "").await),
        ["big_orders"]
    );
    api.load_table(&["ns"], "orders").await;
    load_view(&api, &["ns"], "big_orders").await;
}

#[tokio::test]
async fn rename_across_namespaces() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["sales"]).await;
    api.create_namespace(&["sales", "archive"]).await;
    let created = create_view(&api, &["sales"], "v", "SELECT 1").await;
    let rename = |from: (&[&str], &str), to: (&[&str], &str)| {
        api.client
            .post(format!("{}/views/rename", api.base))
            .json(&json!({
                "source": {"namespace": from.0, "name": from.1},
                "destination": {"namespace": to.0, "name": to.1},
            }))
    };

    let response = rename((&["sales"], "v"), (&["sales", "archive"], "v_2025"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    assert_eq!(
        load_view(&api, &["sales", "archive"], "v_2025").await,
        created,
        "the pointer moves with the view"
    );
    assert_eq!(
        error_of(api.client.get(view_url(&api, &["sales"], "v"))).await,
        error("NoSuchViewException", 404)
    );
    assert!(names_in(&list_names(&api, &["sales"], "views", "").await).is_empty());
    assert_eq!(
        error_of(rename((&["sales"], "v"), (&["sales"], "w"))).await,
        error("NoSuchViewException", 404)
    );
    assert_eq!(
        error_of(rename(
            (&["sales", "archive"], "v_2025"),
            (&["nowhere"], "v")
        ))
        .await,
        error("NoSuchNamespaceException", 404)
    );
    create_view(&api, &["sales"], "taken", "SELECT 1").await;
    assert_eq!(
        error_of(rename(
            (&["sales", "archive"], "v_2025"),
            (&["sales"], "taken")
        ))
        .await,
        error("AlreadyExistsException", 409)
    );
}

#[tokio::test]
async fn views_list_in_pages() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    for name in ["e", "a", "d", "b", "c"] {
        create_view(&api, &["ns"], name, "SELECT 1").await;
    }
    // A table among them is not listed, and does not shift the pages.
    api.create_table(&["ns"], "bb", json!({})).await;

    let mut names = Vec::new();
    let mut pages = 0;
    let mut query = "?pageToken=&pageSize=2".to_string();
    loop {
        let page = list_names(&api, &["ns"], "views", &query).await;
        pages += 1;
        names.extend(names_in(&page));
        match page["next-page-token"].as_str() {
            Some(token) => query = format!("?pageToken={token}&pageSize=2"),
            None => break,
        }
    }
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);
    assert_eq!(
        names_in(&list_names(&api, &["ns"], "views", "").await),
        ["a", "b", "c", "d", "e"],
        "everything without a page token"
    );
    assert_eq!(
        error_of(
            api.client
                .get(format!("{}?pageToken=zz", views_url(&api, &["ns"])))
        )
        .await,
        error("BadRequestException", 400)
    );
}

#[tokio::test]
async fn bad_input_is_400_and_changes_nothing() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let created = create_view(&api, &["ns"], "v", "SELECT 1").await;
    let uuid = uuid_of(&created);
    let bad_request = error("BadRequestException", 400);

    let views = views_url(&api, &["ns"]);
    let good = create_body(&["ns"], "w", "SELECT 1");
    let mut creates: Vec<(&str, Value)> = vec![
        (
            "no view-version",
            json!({"name": "w", "schema": schema(0, &["id"])}),
        ),
        (
            "no schema",
            json!({"name": "w", "view-version": good["view-version"]}),
        ),
        (
            "name not a string",
            json!({"name": 7, "schema": good["schema"],
                                      "view-version": good["view-version"]}),
        ),
        (
            "schema not a struct",
            json!({"name": "w", "schema": "id long",
                                        "view-version": good["view-version"]}),
        ),
    ];
    let mut no_representations = good.clone();
    no_representations["view-version"]["representations"] = json!("SELECT 1");
    creates.push(("representations not a list", no_representations));
    let mut outside = good.clone();
    outside["location"] = json!("file:///tmp/floe-elsewhere/w");
    creates.push(("location outside the warehouse", outside));
    let mut dot = good.clone();
    dot["name"] = json!("..");
    creates.push(("a name no URL can address", dot));
    let mut control = good.clone();
    control["name"] = json!("a\u{7}b");
    creates.push(("control characters in the name", control));
    for (what, body) in creates {
        assert_eq!(
            error_of(api.client.post(&views).json(&body)).await,
            bad_request,
            "{what}"
        );
    }
    assert_eq!(
        error_of(
            api.client
                .post(&views)
                .header("content-type", "application/json")
                .body("{\"name\": ")
        )
        .await,
        bad_request,
        "malformed JSON"
    );

    let url = view_url(&api, &["ns"], "v");
    let replaces: Vec<(&str, Value)> = vec![
        (
            "unknown update",
            json!({"updates": [{"action": "explode-view"}]}),
        ),
        (
            "unknown requirement",
            json!({"requirements": [{"type": "assert-nothing"}], "updates": []}),
        ),
        ("no updates", json!({"requirements": []})),
        (
            "uuid not a UUID",
            json!({"requirements": [{"type": "assert-view-uuid", "uuid": "x"}], "updates": []}),
        ),
        (
            "unknown current version",
            json!({"updates": [{"action": "set-current-view-version", "view-version-id": 42}]}),
        ),
        (
            "another UUID",
            json!({"updates": [{"action": "assign-uuid",
                                "uuid": "00000000-0000-0000-0000-000000000001"}]}),
        ),
        (
            "location outside the warehouse",
            json!({"updates": [{"action": "set-location", "location": "file:///tmp/elsewhere"}]}),
        ),
        (
            "identifier of another view",
            json!({"identifier": {"namespace": ["ns"], "name": "other"},
                   "requirements": [{"type": "assert-view-uuid", "uuid": uuid}], "updates": []}),
        ),
    ];
    for (what, body) in replaces {
        assert_eq!(
            error_of(api.client.post(&url).json(&body)).await,
            bad_request,
            "{what}"
        );
    }
    let rename = json!({"source": {"namespace": ["ns"], "name": "v"},
                        "destination": {"namespace": ["ns"], "name": ""}});
    assert_eq!(
        error_of(
            api.client
                .post(format!("{}/views/rename", api.base))
                .json(&rename)
        )
        .await,
        bad_request,
        "an empty name"
    );

    assert_eq!(
        load_view(&api, &["ns"], "v").await,
        created,
        "nothing changed"
    );
    assert_eq!(metadata_files(&location_of(&created)).len(), 1);
    assert_eq!(
        names_in(&list_names(&api, &["ns"], "views", "").await),
        ["v"]
    );
}

/// A registered warehouse keeps its own views, under its own root; the same name is another view
/// in another warehouse, and may be a table there.
#[tokio::test]
async fn views_stay_in_their_warehouse() {
    let lakes = tempfile::tempdir().unwrap();
    let lake_root = lakes.path().canonicalize().unwrap().join("lake");
    std::fs::create_dir_all(&lake_root).unwrap();
    let lake_url = format!("file://{}", lake_root.display());
    // Registered warehouses must lie under a root the operator allows.
    let server = FloeServer::start_with_args(&["--allowed-storage-root", &lake_url]);
    let response = floe_testkit::http()
        .post(format!("{}/management/v1/warehouses", server.uri()))
        .json(&json!({"name": "lake", "storage-url": lake_url}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let default = Api::new(&server);
    let lake = Api {
        client: default.client.clone(),
        base: format!("{}/v1/lake", server.uri()),
    };
    default.create_namespace(&["ns"]).await;
    lake.create_namespace(&["ns"]).await;

    let in_lake = create_view(&lake, &["ns"], "v", "SELECT 1").await;
    assert!(
        local_path(&metadata_location_of(&in_lake)).starts_with(&lake_root),
        "{in_lake}"
    );
    assert!(names_in(&list_names(&default, &["ns"], "views", "").await).is_empty());
    assert_eq!(
        error_of(default.client.get(view_url(&default, &["ns"], "v"))).await,
        error("NoSuchViewException", 404)
    );
    // The name is free in the default warehouse, for a table as for a view.
    default.create_table(&["ns"], "v", json!({})).await;
    assert_eq!(load_view(&lake, &["ns"], "v").await, in_lake);
    assert_eq!(
        error_of(
            default
                .client
                .post(format!("{}/views/rename", default.base))
                .json(&json!({"source": {"namespace": ["ns"], "name": "v"},
                              "destination": {"namespace": ["ns"], "name": "w"}}))
        )
        .await,
        error("NoSuchViewException", 404),
        "a rename in one warehouse never reaches another's view"
    );
}
