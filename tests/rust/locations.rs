//! No table's or view's location equals, contains or lies inside another's (issue #10, "Disjoint
//! locations"): otherwise purging one table deletes another's live files. Every way a location
//! is set is refused with a 400 naming the table that holds it: create, staged create, register,
//! `set-location`, and views.

use iceberg::Catalog;
use serde_json::{Value, json};

use crate::support::*;

/// Sends `request`, expects a 400 BadRequestException, and returns its message.
async fn refused(request: reqwest::RequestBuilder) -> String {
    let response = request.send().await.expect("request");
    let (kind, status, message) = error_model(response).await;
    assert_eq!(
        (kind.as_str(), status),
        ("BadRequestException", 400),
        "{message}"
    );
    message
}

fn create_at(api: &Api, name: &str, location: &str) -> reqwest::RequestBuilder {
    api.client
        .post(format!("{}/tables", api.namespace_url(&["ns"])))
        .json(&json!({"name": name, "schema": id_schema_json(), "location": location}))
}

async fn exists(api: &Api, name: &str) -> bool {
    let response = api
        .client
        .head(api.table_url(&["ns"], name))
        .send()
        .await
        .unwrap();
    response.status() == 204 || response.status() == 200
}

/// The attack of the issue: table B created at A's location, inside it, or around it. Refused;
/// purging a legitimate neighbour still works, and A keeps its data.
#[tokio::test]
async fn a_table_cannot_take_or_wrap_another_tables_location() {
    let server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let namespace = create_namespace(&catalog, "ns").await;
    let victim = create_table(&catalog, &namespace, "victim").await;
    append(&catalog, &victim, &[1, 2, 3]).await.unwrap();
    let victim_location = victim.metadata().location().to_string();
    let parent = victim_location.rsplit_once('/').unwrap().0.to_string();

    let api = Api::new(&server);
    for location in [
        victim_location.clone(),
        format!("{victim_location}/"),
        format!("{victim_location}/data"),
        format!("{victim_location}/./data/"),
        parent,
    ] {
        let message = refused(create_at(&api, "intruder", &location)).await;
        assert!(message.contains("ns.victim"), "{location}: {message}");
        assert!(!exists(&api, "intruder").await, "{location}");
    }

    // A sibling whose name extends the victim's is no overlap; nor is a default location.
    let sibling = format!("{victim_location}0");
    let response = create_at(&api, "sibling", &sibling).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let legit = create_table(&catalog, &namespace, "legit").await;
    append(&catalog, &legit, &[9]).await.unwrap();
    catalog
        .purge_table(&ident(&namespace, "legit"))
        .await
        .unwrap();
    assert!(files_under(&local_path(legit.metadata().location())).is_empty());

    let reloaded = catalog
        .load_table(&ident(&namespace, "victim"))
        .await
        .unwrap();
    assert_eq!(read_ids(&reloaded).await, vec![1, 2, 3]);

    // Views share the rule with tables.
    let view = json!({
        "name": "v",
        "location": format!("{victim_location}/view"),
        "schema": id_schema_json(),
        "view-version": {
            "version-id": 1, "schema-id": 0, "timestamp-ms": 1_700_000_000_000_i64,
            "summary": {"engine-name": "test"}, "default-namespace": ["ns"],
            "representations": [{"type": "sql", "sql": "SELECT 1 AS id", "dialect": "spark"}]
        },
        "properties": {}
    });
    let message = refused(
        api.client
            .post(format!("{}/views", api.namespace_url(&["ns"])))
            .json(&view),
    )
    .await;
    assert!(message.contains("ns.victim"), "{message}");
}

/// Register, `set-location`, a staged create's commit and a location outside the warehouse.
#[tokio::test]
async fn every_way_of_setting_a_location_is_checked() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let victim = api.create_table(&["ns"], "victim", json!({})).await;
    let victim_location = location_of(&victim);

    // Register: a metadata file whose location is the victim's (here, its own current file).
    let message = refused(
        api.client
            .post(format!("{}/register", api.namespace_url(&["ns"])))
            .json(&json!({"name": "reg", "metadata-location": metadata_location_of(&victim)})),
    )
    .await;
    assert!(message.contains("ns.victim"), "{message}");
    assert!(!exists(&api, "reg").await);

    // set-location into the victim's directory: refused, the table unchanged.
    let other = api.create_table(&["ns"], "other", json!({})).await;
    let body = json!({"updates": [
        {"action": "set-location", "location": format!("{victim_location}/other")}
    ]});
    let message = refused(api.client.post(api.table_url(&["ns"], "other")).json(&body)).await;
    assert!(message.contains("ns.victim"), "{message}");
    let loaded = api.load_table(&["ns"], "other").await;
    assert_eq!(metadata_location_of(&loaded), metadata_location_of(&other));
    assert_eq!(metadata_files(&location_of(&other)).len(), 1);

    // A staged create at an overlapping location: staging creates nothing, the commit is refused.
    let response = api
        .client
        .post(format!("{}/tables", api.namespace_url(&["ns"])))
        .json(
            &json!({"name": "staged", "schema": id_schema_json(), "stage-create": true,
                      "location": format!("{victim_location}/staged")}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let staged: Value = response.json().await.unwrap();
    let commit = json!({
        "requirements": [{"type": "assert-create"}],
        "updates": [
            {"action": "assign-uuid", "uuid": staged["metadata"]["table-uuid"]},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": id_schema_json(), "last-column-id": 1},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "set-location", "location": location_of(&staged)},
        ],
    });
    let message = refused(
        api.client
            .post(api.table_url(&["ns"], "staged"))
            .json(&commit),
    )
    .await;
    assert!(message.contains("ns.victim"), "{message}");
    assert!(!exists(&api, "staged").await);

    // Outside the warehouse: refused at once, naming the warehouse root; for a staged create too.
    let root = victim_location.rsplit_once("/ns/").unwrap().0.to_string();
    for stage in [false, true] {
        let message = refused(
            api.client
                .post(format!("{}/tables", api.namespace_url(&["ns"])))
                .json(&json!({"name": "out", "schema": id_schema_json(),
                              "location": "file:///tmp/floe-outside", "stage-create": stage})),
        )
        .await;
        assert!(message.contains(&root), "{message}");
    }
    assert!(!exists(&api, "out").await);

    // Dropping the victim frees its location.
    let response = api
        .client
        .delete(api.table_url(&["ns"], "victim"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = create_at(&api, "successor", &victim_location)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}
