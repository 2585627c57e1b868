//! Namespace and table names are opaque strings: whatever characters they hold (`/`, `..`, `%`,
//! dots, spaces, quotes, unicode), they round-trip through create, list, load, commit, rename and
//! drop, and never steer a file outside the table's location inside the warehouse.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use iceberg::{Catalog, NamespaceIdent};
use serde_json::{Value, json};

use crate::support::*;

/// Names iceberg-rust's RestCatalog can carry: it puts names into URLs without percent-encoding
/// them, so `/`, `%`, `?` and `#` only travel through the raw requests of the next test.
const CLIENT_NAMES: &[&str] = &[
    "spa ce",
    "dots.in.the.name",
    "quo\"te's",
    "ünï-😀",
    "..x",
    "<tag>{}",
];

/// Names for raw requests, which percent-encode every byte but ASCII letters, digits, `-_~`.
const RAW_NAMES: &[&str] = &[
    "../../etc",
    "../../../../../../../../tmp/floe-names-escape",
    "a/b",
    "100%",
    "100%25",
    "%2e%2e",
    ".hidden",
    "?q=1#frag&x",
    "spa ce",
    "ünï-😀",
    "quo\"te's",
    "back\\slash",
];

#[tokio::test]
async fn odd_names_round_trip_through_iceberg_rust() {
    let server = FloeServer::start();
    let catalog = rest_catalog(&server).await;
    let mut locations = Vec::new();

    for name in CLIENT_NAMES {
        let namespace = NamespaceIdent::new(name.to_string());
        catalog
            .create_namespace(
                &namespace,
                HashMap::from([("who".into(), name.to_string())]),
            )
            .await
            .unwrap_or_else(|err| panic!("create namespace {name:?}: {err}"));
        let nested = NamespaceIdent::from_strs([*name, *name]).unwrap();
        catalog
            .create_namespace(&nested, HashMap::new())
            .await
            .unwrap_or_else(|err| panic!("create namespace {nested:?}: {err}"));
        assert_eq!(
            catalog
                .get_namespace(&namespace)
                .await
                .unwrap()
                .properties()["who"],
            *name
        );
        assert_eq!(
            catalog.list_namespaces(Some(&namespace)).await.unwrap(),
            vec![nested.clone()]
        );

        let table = create_table(&catalog, &nested, name).await;
        assert_eq!(table.identifier(), &ident(&nested, name));
        assert_eq!(
            catalog.list_tables(&nested).await.unwrap(),
            vec![ident(&nested, name)]
        );
        append(&catalog, &table, &[1, 2]).await.unwrap();
        let renamed = ident(&namespace, &format!("{name}{name}"));
        catalog
            .rename_table(&ident(&nested, name), &renamed)
            .await
            .unwrap_or_else(|err| panic!("rename {name:?}: {err}"));
        let loaded = catalog.load_table(&renamed).await.unwrap();
        assert_eq!(read_ids(&loaded).await, vec![1, 2]);
        assert!(!catalog.table_exists(&ident(&nested, name)).await.unwrap());
        locations.push(loaded.metadata().location().to_string());
    }

    let listed: BTreeSet<Vec<String>> = catalog
        .list_namespaces(None)
        .await
        .unwrap()
        .into_iter()
        .map(|namespace| namespace.inner())
        .collect();
    let expected: BTreeSet<Vec<String>> = CLIENT_NAMES
        .iter()
        .map(|name| vec![name.to_string()])
        .collect();
    assert_eq!(listed, expected);

    check_files_stay_inside(&server, &locations);

    // Drop everything again through the client.
    for name in CLIENT_NAMES {
        let namespace = NamespaceIdent::new(name.to_string());
        catalog
            .purge_table(&ident(&namespace, &format!("{name}{name}")))
            .await
            .unwrap();
        catalog
            .drop_namespace(&NamespaceIdent::from_strs([*name, *name]).unwrap())
            .await
            .unwrap();
        catalog.drop_namespace(&namespace).await.unwrap();
    }
    assert!(catalog.list_namespaces(None).await.unwrap().is_empty());
    assert!(files_under(&server.warehouse_dir()).is_empty());
}

#[tokio::test]
async fn any_name_round_trips_through_percent_encoded_requests() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    let client = &api.client;
    let mut locations = Vec::new();

    for name in RAW_NAMES {
        let namespace = [*name, *name];
        api.create_namespace(&namespace[..1]).await;
        api.create_namespace(&namespace).await;
        let response = client
            .get(format!(
                "{}/namespaces?parent={}",
                api.base,
                encode_segment(name)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let listed: Value = response.json().await.unwrap();
        assert_eq!(listed["namespaces"], json!([namespace]), "{name:?}");

        let created = api.create_table(&namespace, name, json!({})).await;
        let response = client
            .get(format!("{}/tables", api.namespace_url(&namespace)))
            .send()
            .await
            .unwrap();
        let listed: Value = response.json().await.unwrap();
        assert_eq!(
            listed["identifiers"],
            json!([{"namespace": namespace, "name": name}]),
            "{name:?}"
        );
        let committed = api
            .set_properties(&namespace, name, json!({ "name": name }))
            .await;
        let loaded = api.load_table(&namespace, name).await;
        assert_eq!(loaded["metadata"]["properties"]["name"], json!(name));
        assert_eq!(
            metadata_location_of(&loaded),
            metadata_location_of(&committed)
        );

        // Rename into the parent namespace under a name that holds a slash as well.
        let new_name = format!("{name}/{name}");
        let response = client
            .post(format!("{}/tables/rename", api.base))
            .json(&json!({
                "source": {"namespace": namespace, "name": name},
                "destination": {"namespace": [name], "name": new_name},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "rename {name:?}");
        let response = client
            .head(api.table_url(&namespace, name))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404);
        let moved = api.load_table(&[name], &new_name).await;
        assert_eq!(location_of(&moved), location_of(&created));
        locations.push(location_of(&moved));
    }

    check_files_stay_inside(&server, &locations);
    assert!(!Path::new("/tmp/floe-names-escape").exists());

    for name in RAW_NAMES {
        let new_name = format!("{name}/{name}");
        let response = client
            .delete(format!(
                "{}?purgeRequested=true",
                api.table_url(&[name], &new_name)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "drop {name:?}");
        for namespace in [&[*name, *name][..], &[*name][..]] {
            let response = client
                .delete(api.namespace_url(namespace))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 204, "drop namespace {namespace:?}");
        }
    }
    assert!(files_under(&server.warehouse_dir()).is_empty());
}

/// `.` and `..` cannot be addressed in a URL (every URL parser resolves them away, encoded or
/// not), so they are refused as names instead of creating something no client can reach.
#[tokio::test]
async fn dot_segments_are_refused_as_names() {
    let server = FloeServer::start();
    let api = Api::new(&server);
    api.create_namespace(&["ns"]).await;
    for name in [".", ".."] {
        let response = api
            .client
            .post(format!("{}/namespaces", api.base))
            .json(&json!({ "namespace": [name] }))
            .send()
            .await
            .unwrap();
        assert_eq!(error_model(response).await.1, 400, "namespace {name:?}");
        let response = api
            .client
            .post(format!("{}/tables", api.namespace_url(&["ns"])))
            .json(&json!({ "name": name, "schema": id_schema_json() }))
            .send()
            .await
            .unwrap();
        assert_eq!(error_model(response).await.1, 400, "table {name:?}");
    }
    let response = api
        .client
        .get(format!("{}/namespaces", api.base))
        .send()
        .await
        .unwrap();
    let listed: Value = response.json().await.unwrap();
    assert_eq!(listed["namespaces"], json!([["ns"]]));
    assert!(files_under(&server.warehouse_dir()).is_empty());
}

/// Every table location is a plain directory inside the warehouse; every file of the server is
/// inside its data dir, and every file in the warehouse is inside one of `table_locations`.
fn check_files_stay_inside(server: &FloeServer, table_locations: &[String]) {
    let warehouse = server.warehouse_dir().canonicalize().unwrap();
    let table_dirs: Vec<_> = table_locations
        .iter()
        .map(|location| {
            let dir = local_path(location);
            assert!(
                !location.contains("/../") && !location.contains("/./"),
                "{location}"
            );
            assert!(
                dir.starts_with(&warehouse) && dir != warehouse,
                "table location {location} is not inside the warehouse {}",
                warehouse.display()
            );
            let dir = dir.canonicalize().unwrap();
            assert!(dir.starts_with(&warehouse), "{}", dir.display());
            dir
        })
        .collect();

    let files = files_under(&warehouse);
    assert!(!files.is_empty());
    for file in &files {
        let canonical = file.canonicalize().unwrap();
        assert!(
            table_dirs.iter().any(|dir| canonical.starts_with(dir)),
            "{} is outside every table location",
            canonical.display()
        );
        // Client-chosen names never become path components as they are.
        let relative = file.strip_prefix(&warehouse).unwrap();
        for component in relative.components() {
            let component = component.as_os_str().to_str().unwrap();
            assert!(
                component
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "unsanitized path component {component:?} in {}",
                file.display()
            );
        }
    }

    // Nothing was written next to the data dir or inside it but the store (with its secret key) and
    // the warehouse.
    let data_dir = server.data_dir();
    let names_in = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    for entry in names_in(data_dir.parent().unwrap()) {
        assert!(
            entry == "data" || entry.starts_with("data.log."),
            "unexpected entry {entry:?} next to the data dir"
        );
    }
    for entry in names_in(data_dir) {
        assert!(
            entry == "warehouse" || entry == "secret.key" || entry.starts_with("catalog.db"),
            "unexpected entry {entry:?} in the data dir"
        );
    }
}
