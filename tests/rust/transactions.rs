//! Multi-table transactions apply to all tables or none; a staged create creates nothing until
//! its `assert-create` commit, which keeps the client's schema as it is.

use serde_json::{Value, json};

use crate::support::*;

const TABLES: [&str; 3] = ["a", "b", "c"];

async fn commit_transaction(api: &Api, changes: Vec<Value>) -> reqwest::Response {
    api.client
        .post(format!("{}/transactions/commit", api.base))
        .json(&json!({ "table-changes": changes }))
        .send()
        .await
        .expect("transaction request")
}

fn change(table: &str, requirements: Value, updates: Value) -> Value {
    json!({
        "identifier": {"namespace": ["ns"], "name": table},
        "requirements": requirements,
        "updates": updates,
    })
}

/// `(metadata-location, number of metadata files)` of every table in [`TABLES`].
async fn states(api: &Api) -> Vec<(String, usize)> {
    let mut states = Vec::new();
    for table in TABLES {
        let loaded = api.load_table(&["ns"], table).await;
        states.push((
            metadata_location_of(&loaded),
            metadata_files(&location_of(&loaded)).len(),
        ));
    }
    states
}

#[tokio::test]
async fn a_transaction_applies_to_all_tables_or_none() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    let mut uuids = Vec::new();
    for table in TABLES {
        let created = api.create_table(&["ns"], table, json!({})).await;
        uuids.push(created["metadata"]["table-uuid"].clone());
    }

    let before = states(&api).await;
    let changes = TABLES
        .iter()
        .zip(&uuids)
        .map(|(table, uuid)| {
            change(
                table,
                json!([{"type": "assert-table-uuid", "uuid": uuid}]),
                json!([{"action": "set-properties", "updates": {"txn": "1", "table": table}}]),
            )
        })
        .collect();
    let response = commit_transaction(&api, changes).await;
    assert_eq!(response.status(), 204, "{}", response.text().await.unwrap());
    let after = states(&api).await;
    for (table, ((old, old_files), (new, new_files))) in
        TABLES.iter().zip(before.iter().zip(&after))
    {
        assert_ne!(old, new, "{table} was not committed");
        assert_eq!(new_files, &(old_files + 1));
        let loaded = api.load_table(&["ns"], table).await;
        assert_eq!(loaded["metadata"]["properties"]["txn"], "1");
        assert_eq!(loaded["metadata"]["properties"]["table"], json!(table));
    }

    // One failing requirement (the middle table's uuid) fails the whole transaction.
    let before = after;
    let changes = TABLES
        .iter()
        .zip(&uuids)
        .map(|(table, uuid)| {
            let uuid = if *table == "b" {
                json!("0190b2a0-0000-7000-8000-000000000000")
            } else {
                uuid.clone()
            };
            change(
                table,
                json!([{"type": "assert-table-uuid", "uuid": uuid}]),
                json!([{"action": "set-properties", "updates": {"txn": "2"}}]),
            )
        })
        .collect();
    let response = commit_transaction(&api, changes).await;
    let (kind, status, _) = error_model(response).await;
    assert_eq!((kind.as_str(), status), ("CommitFailedException", 409));
    assert_eq!(
        states(&api).await,
        before,
        "a failed transaction changed a table"
    );

    // A bad update in the last table fails it too, after the others were prepared.
    let changes = vec![
        change(
            "a",
            json!([]),
            json!([{"action": "set-properties", "updates": {"txn": "3"}}]),
        ),
        change(
            "b",
            json!([]),
            json!([{"action": "set-properties", "updates": {"txn": "3"}}]),
        ),
        change(
            "c",
            json!([]),
            json!([{"action": "set-location", "location": "file:///tmp/x"}]),
        ),
    ];
    let response = commit_transaction(&api, changes).await;
    assert_eq!(error_model(response).await.1, 400);
    // A missing table fails it as well.
    let changes = vec![
        change(
            "a",
            json!([]),
            json!([{"action": "set-properties", "updates": {"txn": "4"}}]),
        ),
        change(
            "gone",
            json!([]),
            json!([{"action": "set-properties", "updates": {"txn": "4"}}]),
        ),
    ];
    let response = commit_transaction(&api, changes).await;
    assert_eq!(error_model(response).await.1, 404);
    assert_eq!(states(&api).await, before);
    for table in TABLES {
        let loaded = api.load_table(&["ns"], table).await;
        assert_eq!(loaded["metadata"]["properties"]["txn"], "1", "{table}");
    }
}

#[tokio::test]
async fn a_staged_create_creates_nothing_until_its_commit() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;

    // Field ids as a client chose them: not 1..n, so a server that re-assigns ids is caught.
    let schema = json!({
        "type": "struct",
        "schema-id": 0,
        "fields": [
            {"id": 3, "name": "id", "required": true, "type": "long"},
            {"id": 7, "name": "day", "required": false, "type": "date"},
        ]
    });
    let response = api
        .client
        .post(format!("{}/tables", api.namespace_url(&["ns"])))
        .json(&json!({"name": "t", "schema": schema, "stage-create": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let staged: Value = response.json().await.unwrap();
    assert!(staged.get("metadata-location").is_none(), "{staged}");
    let location = location_of(&staged);
    assert!(location.starts_with("file://"), "{location}");

    let response = api
        .client
        .get(api.table_url(&["ns"], "t"))
        .send()
        .await
        .unwrap();
    let (kind, status, _) = error_model(response).await;
    assert_eq!((kind.as_str(), status), ("NoSuchTableException", 404));
    assert!(
        files_under(&server.warehouse_dir()).is_empty(),
        "a staged create wrote files: {:?}",
        files_under(&server.warehouse_dir())
    );

    // The commit a client sends for a create transaction: the whole table as updates.
    let uuid = staged["metadata"]["table-uuid"].clone();
    let commit = json!({
        "identifier": {"namespace": ["ns"], "name": "t"},
        "requirements": [{"type": "assert-create"}],
        "updates": [
            {"action": "assign-uuid", "uuid": uuid},
            {"action": "upgrade-format-version", "format-version": 2},
            {"action": "add-schema", "schema": schema, "last-column-id": 7},
            {"action": "set-current-schema", "schema-id": -1},
            {"action": "add-spec", "spec": {"spec-id": 0, "fields": [
                {"source-id": 7, "field-id": 1000, "name": "day", "transform": "identity"}
            ]}},
            {"action": "set-default-spec", "spec-id": -1},
            {"action": "add-sort-order", "sort-order": {"order-id": 1, "fields": [
                {"source-id": 3, "transform": "identity", "direction": "asc",
                 "null-order": "nulls-first"}
            ]}},
            {"action": "set-default-sort-order", "sort-order-id": -1},
            {"action": "set-location", "location": location},
            {"action": "set-properties", "updates": {"created-by": "transaction"}},
        ],
    });
    let response = api.commit(&["ns"], "t", &commit).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let committed: Value = response.json().await.unwrap();

    let loaded = api.load_table(&["ns"], "t").await;
    assert_eq!(
        metadata_location_of(&loaded),
        metadata_location_of(&committed)
    );
    let metadata = &loaded["metadata"];
    assert_eq!(metadata["table-uuid"], uuid);
    assert_eq!(metadata["location"], json!(location));
    assert_eq!(metadata["properties"]["created-by"], "transaction");
    let schemas = metadata["schemas"].as_array().unwrap();
    assert_eq!(schemas.len(), 1, "exactly one schema: {metadata}");
    assert_eq!(metadata["current-schema-id"], schemas[0]["schema-id"]);
    let ids: Vec<(i64, &str)> = schemas[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_i64().unwrap(), f["name"].as_str().unwrap()))
        .collect();
    assert_eq!(ids, vec![(3, "id"), (7, "day")]);
    assert_eq!(metadata["last-column-id"], 7);
    let specs = metadata["partition-specs"].as_array().unwrap();
    assert_eq!(specs.len(), 1, "exactly one spec: {metadata}");
    assert_eq!(specs[0]["fields"][0]["source-id"], 7);
    assert_eq!(specs[0]["fields"][0]["field-id"], 1000);
    assert_eq!(metadata["default-spec-id"], specs[0]["spec-id"]);
    let order = metadata["sort-orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|order| order["order-id"] == metadata["default-sort-order-id"])
        .expect("the default sort order");
    assert_eq!(order["fields"][0]["source-id"], 3);
    assert_eq!(metadata_files(&location).len(), 1);

    // Committing the same create again is a conflict: the table exists now.
    let response = api.commit(&["ns"], "t", &commit).await;
    assert_eq!(error_model(response).await.1, 409);
    assert_eq!(metadata_files(&location).len(), 1);

    // A commit to a table that was never created, without assert-create, is a 404.
    let response = api
        .commit(&["ns"], "never", &set_properties_body(json!({"k": "v"})))
        .await;
    assert_eq!(error_model(response).await.1, 404);
}
