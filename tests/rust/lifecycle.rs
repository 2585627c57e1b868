//! Namespace and table life cycle through iceberg-rust's REST client: create, append, reload,
//! rename, drop with purge, register.

use std::collections::HashMap;

use iceberg::{Catalog, NamespaceIdent};

use crate::support::*;

#[tokio::test]
async fn namespace_and_table_life_cycle_with_iceberg_rust() {
    let server = FloeServer::start();
    let catalog = rest_catalog(&server).await;

    let namespace = create_namespace(&catalog, "sales").await;
    let nested = NamespaceIdent::from_strs(["sales", "eu"]).unwrap();
    catalog
        .create_namespace(&nested, HashMap::from([("owner".into(), "ana".into())]))
        .await
        .unwrap();
    assert_eq!(
        catalog.list_namespaces(None).await.unwrap(),
        vec![namespace.clone()]
    );
    assert_eq!(
        catalog.list_namespaces(Some(&namespace)).await.unwrap(),
        vec![nested.clone()]
    );
    assert_eq!(
        catalog.get_namespace(&nested).await.unwrap().properties()["owner"],
        "ana"
    );
    assert!(catalog.namespace_exists(&nested).await.unwrap());

    let table = create_table(&catalog, &namespace, "orders").await;
    assert!(table.metadata().current_snapshot().is_none());
    let table = append(&catalog, &table, &[1, 2, 3]).await.unwrap();
    let table = append(&catalog, &table, &[4, 5]).await.unwrap();

    let reloaded = catalog
        .load_table(&ident(&namespace, "orders"))
        .await
        .unwrap();
    assert_eq!(reloaded.metadata().snapshots().len(), 2);
    assert_eq!(read_ids(&reloaded).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(reloaded.metadata_location(), table.metadata_location());

    // Rename across namespaces: the data comes along, the old name is gone.
    let moved = ident(&nested, "orders_eu");
    catalog
        .rename_table(&ident(&namespace, "orders"), &moved)
        .await
        .unwrap();
    assert!(
        !catalog
            .table_exists(&ident(&namespace, "orders"))
            .await
            .unwrap()
    );
    let renamed = catalog.load_table(&moved).await.unwrap();
    assert_eq!(read_ids(&renamed).await, vec![1, 2, 3, 4, 5]);

    // Register the renamed table's current metadata under a new name: refused while the table
    // holds its location (two names over one set of files: purging one would delete the other's).
    let err = catalog
        .register_table(
            &ident(&namespace, "orders_copy"),
            renamed.metadata_location().unwrap().to_string(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sales.eu.orders_eu"), "{err}");
    // Dropped without purge, the table keeps its files and frees its location: register again.
    catalog.drop_table(&moved).await.unwrap();
    let registered = catalog
        .register_table(
            &ident(&namespace, "orders_copy"),
            renamed.metadata_location().unwrap().to_string(),
        )
        .await
        .unwrap();
    assert_eq!(read_ids(&registered).await, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        catalog.list_tables(&namespace).await.unwrap(),
        vec![ident(&namespace, "orders_copy")]
    );

    // Purge removes every file under the table's location.
    let copy = ident(&namespace, "orders_copy");
    let table_dir = local_path(renamed.metadata().location());
    assert!(!files_under(&table_dir).is_empty());
    catalog.purge_table(&copy).await.unwrap();
    assert!(!catalog.table_exists(&copy).await.unwrap());
    assert!(
        files_under(&table_dir).is_empty(),
        "files left after purge: {:?}",
        files_under(&table_dir)
    );

    catalog.drop_namespace(&nested).await.unwrap();
    catalog.drop_namespace(&namespace).await.unwrap();
    assert!(catalog.list_namespaces(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn metrics_reports_are_accepted_and_sigterm_stops_cleanly() {
    let mut server = FloeServer::start();
    let http = floe_testkit::http();
    let api = server.api();
    http.post(format!("{api}/namespaces"))
        .json(&serde_json::json!({"namespace": ["m"]}))
        .send()
        .await
        .unwrap();
    let created = http
        .post(format!("{api}/namespaces/m/tables"))
        .json(
            &serde_json::json!({"name": "t", "schema": {"type": "struct", "schema-id": 0,
            "fields": [{"id": 1, "name": "id", "type": "long", "required": true}]}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);

    let report = serde_json::json!({
        "report-type": "scan-report", "table-name": "m.t", "snapshot-id": 1,
        "filter": true, "schema-id": 0, "projected-field-ids": [1],
        "projected-field-names": ["id"], "metrics": {}
    });
    let response = http
        .post(format!("{api}/namespaces/m/tables/t/metrics"))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert!(
        server.log().contains("client metrics report"),
        "{}",
        server.log()
    );

    assert!(server.stop(), "floe serve must exit 0 on SIGTERM");
    assert!(
        server.log().contains("floe catalog stopped"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn sigterm_right_after_start_still_shuts_down_gracefully() {
    // A supervisor may stop the server the moment it says it listens; the signal handlers must
    // already be in place by then, or the default action kills it without a clean shutdown.
    for _ in 0..5 {
        let mut server = FloeServer::start();
        assert!(
            server.stop(),
            "exit status after SIGTERM; log:\n{}",
            server.log()
        );
    }
}

/// `gc.enabled=false` says the table's files may be shared with other tables: a purge is refused
/// with 400 before anything is dropped (as Iceberg Java does), and the table and its files stay.
#[tokio::test]
async fn purge_of_a_table_with_gc_disabled_is_refused_and_keeps_everything() {
    let server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let api = Api::new(&server);
    let namespace = create_namespace(&catalog, "shared").await;
    let lake = create_table_with(&catalog, &namespace, "lake", &[("gc.enabled", "false")]).await;
    let table = catalog.load_table(&lake).await.unwrap();
    append(&catalog, &table, &[1, 2, 3]).await.expect("append");
    let location = location_of(&api.load_table(&["shared"], "lake").await);
    let files = files_under(&local_path(&location));
    assert!(files.len() >= 4, "{files:?}");

    let response = api
        .client
        .delete(format!(
            "{}?purgeRequested=true",
            api.table_url(&["shared"], "lake")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "BadRequestException");
    assert_eq!(body["error"]["code"], 400);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("GC is disabled"), "{message}");

    let reloaded = catalog.load_table(&lake).await.expect("the table stays");
    assert_eq!(read_ids(&reloaded).await, vec![1, 2, 3]);
    for file in &files {
        assert!(file.exists(), "{} was deleted", file.display());
    }

    // Dropping without purge is allowed (it deletes no file).
    let response = api
        .client
        .delete(api.table_url(&["shared"], "lake"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    for file in &files {
        assert!(file.exists(), "{} was deleted", file.display());
    }
}
