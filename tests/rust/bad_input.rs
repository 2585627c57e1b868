//! Bad requests get the spec's ErrorModel with the right status and type, and change nothing:
//! malformed or ill-typed bodies, failed requirements, unknown names and routes, oversized bodies,
//! and locations outside the warehouse.

use serde_json::{Value, json};

use crate::support::*;

/// Sends `request` and returns `(type, status)` of its ErrorModel.
async fn error_of(request: reqwest::RequestBuilder) -> (String, u16) {
    let response = request.send().await.expect("request");
    let (kind, status, message) = error_model(response).await;
    assert!(!message.is_empty(), "ErrorModel without a message");
    (kind, status)
}

fn bad_request() -> (String, u16) {
    ("BadRequestException".to_string(), 400)
}

#[tokio::test]
async fn malformed_and_ill_typed_bodies_are_400() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let created = api.create_table(&["ns"], "t", json!({})).await;
    let table = api.table_url(&["ns"], "t");

    let bodies: Vec<(&str, String)> = vec![
        ("malformed JSON", "{\"updates\": [".to_string()),
        ("not JSON", "updates=1".to_string()),
        (
            "unknown update action",
            json!({"updates": [{"action": "explode-table"}]}).to_string(),
        ),
        (
            "unknown requirement type",
            json!({"requirements": [{"type": "assert-nothing"}], "updates": []}).to_string(),
        ),
        (
            "updates not a list",
            json!({"updates": "set-properties"}).to_string(),
        ),
        (
            "property value not a string",
            json!({"updates": [{"action": "set-properties", "updates": {"k": 1}}]}).to_string(),
        ),
        (
            "snapshot id not a number",
            json!({"requirements": [{"type": "assert-ref-snapshot-id", "ref": "main",
                                     "snapshot-id": "x"}]})
            .to_string(),
        ),
        (
            "missing field",
            json!({"updates": [{"action": "set-location"}]}).to_string(),
        ),
    ];
    for (what, body) in bodies {
        let request = api
            .client
            .post(&table)
            .header("content-type", "application/json")
            .body(body);
        assert_eq!(error_of(request).await, bad_request(), "{what}");
    }

    // Create requests too: a schema of the wrong type, a missing name.
    let tables = format!("{}/tables", api.namespace_url(&["ns"]));
    for body in [
        json!({"name": "x", "schema": "id long"}),
        json!({"schema": id_schema_json()}),
        json!({"name": 7, "schema": id_schema_json()}),
    ] {
        assert_eq!(
            error_of(api.client.post(&tables).json(&body)).await,
            bad_request(),
            "{body}"
        );
    }
    let namespaces = format!("{}/namespaces", api.base);
    assert_eq!(
        error_of(
            api.client
                .post(&namespaces)
                .json(&json!({"namespace": "ns2"}))
        )
        .await,
        bad_request()
    );
    // Bad query parameters and undecodable names.
    assert_eq!(
        error_of(api.client.get(format!("{table}?snapshots=some"))).await,
        bad_request()
    );
    assert_eq!(
        error_of(api.client.get(format!("{namespaces}/%FF%FE"))).await,
        bad_request()
    );

    // Nothing of the above changed the table.
    assert_eq!(
        metadata_location_of(&api.load_table(&["ns"], "t").await),
        metadata_location_of(&created)
    );
    assert_eq!(metadata_files(&location_of(&created)).len(), 1);
}

#[tokio::test]
async fn failed_requirements_are_409_and_leave_no_trace() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let created = api.create_table(&["ns"], "t", json!({})).await;
    let location = location_of(&created);
    let before = metadata_location_of(&created);

    let failing: Vec<Value> = vec![
        json!({"type": "assert-table-uuid", "uuid": "0190b2a0-0000-7000-8000-000000000000"}),
        // main does not exist yet, so any expected snapshot id fails.
        json!({"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 42}),
        json!({"type": "assert-current-schema-id", "current-schema-id": 7}),
        json!({"type": "assert-create"}),
    ];
    for requirement in failing {
        let body = json!({
            "requirements": [requirement],
            "updates": [{"action": "set-properties", "updates": {"changed": "yes"}}],
        });
        let response = api.commit(&["ns"], "t", &body).await;
        let (kind, status, _) = error_model(response).await;
        assert_eq!(
            (kind.as_str(), status),
            ("CommitFailedException", 409),
            "{requirement}"
        );
        let loaded = api.load_table(&["ns"], "t").await;
        assert_eq!(metadata_location_of(&loaded), before, "{requirement}");
        assert!(loaded["metadata"]["properties"].get("changed").is_none());
        assert_eq!(
            metadata_files(&location).len(),
            1,
            "a failed commit left a metadata file ({requirement})"
        );
    }

    // The same commit with requirements that hold goes through: the 409s were about them.
    let uuid = created["metadata"]["table-uuid"].clone();
    let body = json!({
        "requirements": [
            {"type": "assert-table-uuid", "uuid": uuid},
            {"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": null},
        ],
        "updates": [{"action": "set-properties", "updates": {"changed": "yes"}}],
    });
    let response = api.commit(&["ns"], "t", &body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(metadata_files(&location).len(), 2);
}

#[tokio::test]
async fn unknown_names_routes_and_duplicates() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    api.create_table(&["ns"], "t", json!({})).await;
    let client = &api.client;
    let no_namespace = ("NoSuchNamespaceException".to_string(), 404);
    let no_table = ("NoSuchTableException".to_string(), 404);

    assert_eq!(
        error_of(client.get(api.namespace_url(&["nope"]))).await,
        no_namespace
    );
    assert_eq!(
        error_of(client.get(format!("{}/tables", api.namespace_url(&["nope"])))).await,
        no_namespace
    );
    assert_eq!(
        error_of(client.get(format!(
            "{}?parent=nope",
            format_args!("{}/namespaces", api.base)
        )))
        .await,
        no_namespace
    );
    assert_eq!(
        error_of(
            client
                .post(format!("{}/tables", api.namespace_url(&["nope"])))
                .json(&json!({"name": "t", "schema": id_schema_json()}))
        )
        .await,
        no_namespace
    );
    assert_eq!(
        error_of(client.get(api.table_url(&["ns"], "nope"))).await,
        no_table
    );
    assert_eq!(
        error_of(client.get(api.table_url(&["nope"], "t"))).await.1,
        404
    );
    assert_eq!(
        error_of(
            client
                .post(api.table_url(&["ns"], "nope"))
                .json(&set_properties_body(json!({"k": "v"})))
        )
        .await,
        no_table
    );
    assert_eq!(
        error_of(client.delete(api.table_url(&["ns"], "nope"))).await,
        no_table
    );

    let exists = ("AlreadyExistsException".to_string(), 409);
    assert_eq!(
        error_of(
            client
                .post(format!("{}/tables", api.namespace_url(&["ns"])))
                .json(&json!({"name": "t", "schema": id_schema_json()}))
        )
        .await,
        exists
    );
    assert_eq!(
        error_of(
            client
                .post(format!("{}/namespaces", api.base))
                .json(&json!({"namespace": ["ns"]}))
        )
        .await,
        exists
    );

    // Wrong prefix, unknown routes and unsupported methods: 404/405 with an ErrorModel too.
    let wrong_prefix = format!("{}/v1/other/namespaces", server.uri());
    assert_eq!(error_of(client.get(&wrong_prefix)).await.1, 404);
    assert_eq!(
        error_of(client.get(format!("{}/v1/other/namespaces/ns/tables/t", server.uri())))
            .await
            .1,
        404
    );
    for route in ["/v1/main/nothing-here", "/v2/config", "/"] {
        assert_eq!(
            error_of(client.get(format!("{}{route}", server.uri())))
                .await
                .1,
            404,
            "{route}"
        );
    }
    assert_eq!(
        error_of(client.put(format!("{}/namespaces", api.base)))
            .await
            .1,
        405
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_and_create_nothing() {
    let server = FloeServer::start_with_args(&["--max-request-bytes", "65536"]);
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let big = "x".repeat(100 * 1024);

    let response = api
        .client
        .post(format!("{}/tables", api.namespace_url(&["ns"])))
        .json(&json!({"name": "big", "schema": id_schema_json(), "properties": {"blob": big}}))
        .send()
        .await
        .expect("oversized create");
    let (_, status, _) = error_model(response).await;
    assert_eq!(status, 413);
    let response = api
        .client
        .post(format!("{}/namespaces", api.base))
        .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
        .json(&json!({"namespace": ["big"], "properties": {"blob": big}}))
        .send()
        .await
        .expect("oversized create namespace with a key");
    assert_eq!(error_model(response).await.1, 413);

    let response = api
        .client
        .head(api.table_url(&["ns"], "big"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = api
        .client
        .get(api.namespace_url(&["big"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(
        files_under(&server.warehouse_dir()).is_empty(),
        "files created: {:?}",
        files_under(&server.warehouse_dir())
    );

    // A body under the limit still works.
    api.create_table(&["ns"], "small", json!({"blob": "x".repeat(1024)}))
        .await;
}

#[tokio::test]
async fn locations_outside_the_warehouse_are_400_and_change_nothing() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let tables = format!("{}/tables", api.namespace_url(&["ns"]));
    let warehouse = url_of(&server.warehouse_dir());

    for location in [
        "file:///etc".to_string(),
        "file:///tmp/floe-escape".to_string(),
        format!("{warehouse}/../escape"),
        format!("{warehouse}-sibling/t"),
        "s3://bucket/t".to_string(),
    ] {
        let body = json!({"name": "out", "location": location, "schema": id_schema_json()});
        assert_eq!(
            error_of(api.client.post(&tables).json(&body)).await,
            bad_request(),
            "{location}"
        );
        let response = api
            .client
            .head(api.table_url(&["ns"], "out"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{location}");
    }
    assert!(files_under(&server.warehouse_dir()).is_empty());
    assert!(!std::path::Path::new("/tmp/floe-escape").exists());

    // set-location out of the warehouse: refused, table unchanged, no new metadata file.
    let created = api.create_table(&["ns"], "t", json!({})).await;
    for location in ["file:///tmp/x", &format!("{warehouse}/ns/../../x")] {
        let body = json!({"updates": [{"action": "set-location", "location": location}]});
        let response = api.commit(&["ns"], "t", &body).await;
        assert_eq!(error_model(response).await.1, 400, "{location}");
        let loaded = api.load_table(&["ns"], "t").await;
        assert_eq!(
            metadata_location_of(&loaded),
            metadata_location_of(&created)
        );
        assert_eq!(location_of(&loaded), location_of(&created));
        assert_eq!(metadata_files(&location_of(&created)).len(), 1);
    }

    // Register: a metadata file outside the warehouse is never read, even a valid one.
    let current = local_path(&metadata_location_of(&created));
    let outside = server
        .data_dir()
        .parent()
        .unwrap()
        .join("copy.metadata.json");
    std::fs::copy(&current, &outside).unwrap();
    let register = format!("{}/register", api.namespace_url(&["ns"]));
    for metadata_location in ["file:///etc/passwd".to_string(), url_of(&outside)] {
        let body = json!({"name": "reg", "metadata-location": metadata_location});
        assert_eq!(
            error_of(api.client.post(&register).json(&body)).await,
            bad_request(),
            "{metadata_location}"
        );
    }
    // ...and a file inside the warehouse whose table location is outside it is refused too.
    let mut metadata: Value = serde_json::from_slice(&std::fs::read(&current).unwrap()).unwrap();
    metadata["location"] = json!("file:///etc");
    let inside = current.with_file_name("99999-foreign.metadata.json");
    std::fs::write(&inside, serde_json::to_vec(&metadata).unwrap()).unwrap();
    let body = json!({"name": "reg", "metadata-location": url_of(&inside)});
    assert_eq!(
        error_of(api.client.post(&register).json(&body)).await,
        bad_request()
    );
    let response = api
        .client
        .head(api.table_url(&["ns"], "reg"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// `file://` URL of a local path, as the server spells warehouse locations.
fn url_of(path: &std::path::Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}
