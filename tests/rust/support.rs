//! Helpers shared by the end-to-end tests: a real REST client (iceberg-rust's `RestCatalog`),
//! a schema, and appends through iceberg's own writers and fast-append transaction.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use iceberg::io::LocalFsStorageFactory;
use iceberg::spec::{DataFile, NestedField, PrimitiveType, Schema, TableMetadata, Type};
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use iceberg_catalog_rest::{RestCatalog, RestCatalogBuilder};

pub use floe_testkit::FloeServer;

/// iceberg-rust's REST client, pointed at `server`.
pub async fn rest_catalog(server: &FloeServer) -> RestCatalog {
    RestCatalogBuilder::default()
        .with_storage_factory(Arc::new(LocalFsStorageFactory))
        .load("floe", HashMap::from([("uri".to_string(), server.uri())]))
        .await
        .expect("connect RestCatalog")
}

/// `id: long (required), name: string`
pub fn id_name_schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String)).into(),
        ])
        .build()
        .expect("schema")
}

pub async fn create_namespace(catalog: &RestCatalog, name: &str) -> NamespaceIdent {
    let namespace = NamespaceIdent::new(name.to_string());
    catalog
        .create_namespace(&namespace, HashMap::new())
        .await
        .expect("create namespace");
    namespace
}

pub async fn create_table(catalog: &RestCatalog, namespace: &NamespaceIdent, name: &str) -> Table {
    catalog
        .create_table(
            namespace,
            TableCreation::builder()
                .name(name.to_string())
                .schema(id_name_schema())
                .build(),
        )
        .await
        .expect("create table")
}

/// Creates `name` with the id/name schema and the given table properties.
pub async fn create_table_with(
    catalog: &RestCatalog,
    namespace: &NamespaceIdent,
    name: &str,
    properties: &[(&str, &str)],
) -> TableIdent {
    catalog
        .create_table(
            namespace,
            TableCreation::builder()
                .name(name.to_string())
                .schema(id_name_schema())
                .properties(
                    properties
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect::<HashMap<_, _>>(),
                )
                .build(),
        )
        .await
        .expect("create table");
    ident(namespace, name)
}

/// Writes rows `ids` (name = "row-<id>") as one Parquet data file of `table`.
pub async fn write_data_file(table: &Table, ids: &[i64]) -> Vec<DataFile> {
    let schema = table.metadata().current_schema().clone();
    let arrow_schema =
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).expect("arrow schema"));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from(
            ids.iter().map(|id| format!("row-{id}")).collect::<Vec<_>>(),
        )),
    ];
    let batch = RecordBatch::try_new(arrow_schema, columns).expect("batch");
    floe_testkit::iceberg_data::write_data_files(table, batch).await
}

/// Appends `ids` through iceberg-rust's fast-append transaction (which retries on conflicts).
pub async fn append(catalog: &RestCatalog, table: &Table, ids: &[i64]) -> iceberg::Result<Table> {
    let files = write_data_file(table, ids).await;
    let tx = Transaction::new(table);
    let tx = tx.fast_append().add_data_files(files).apply(tx)?;
    tx.commit(catalog).await
}

/// Appends `ids` until the commit is acknowledged; returns the table as that commit left it (its
/// current snapshot is the append's). iceberg-rust's transaction already retries on 409; this
/// outer loop retries when it gives up. A 409 means the commit did not apply, so retrying cannot
/// add the rows twice; any other error fails the test.
pub async fn append_until_acknowledged(
    catalog: &RestCatalog,
    table: &TableIdent,
    ids: &[i64],
) -> Table {
    for _ in 0..50 {
        let current = catalog.load_table(table).await.expect("load table");
        match append(catalog, &current, ids).await {
            Ok(committed) => return committed,
            Err(err) if err.kind() == ErrorKind::CatalogCommitConflicts => continue,
            Err(err) => panic!("append of {ids:?} failed: {err}"),
        }
    }
    panic!("append of {ids:?} still conflicting after 50 transactions");
}

/// Checks that following parent ids from the current snapshot visits every snapshot exactly
/// once, with sequence numbers counting down by one to 1; returns the chain, newest first.
pub fn check_snapshot_chain(metadata: &TableMetadata) -> Vec<i64> {
    let by_id: HashMap<i64, _> = metadata
        .snapshots()
        .map(|snapshot| (snapshot.snapshot_id(), snapshot))
        .collect();
    let mut chain = Vec::new();
    let mut seen = HashSet::new();
    let mut next = metadata.current_snapshot_id();
    let mut expected_sequence = metadata.last_sequence_number();
    while let Some(id) = next {
        let snapshot = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("snapshot {id} is a parent but does not exist"));
        assert!(seen.insert(id), "snapshot {id} appears twice in the chain");
        assert_eq!(snapshot.sequence_number(), expected_sequence, "gap at {id}");
        expected_sequence -= 1;
        chain.push(id);
        next = snapshot.parent_snapshot_id();
    }
    assert_eq!(
        expected_sequence, 0,
        "the chain does not reach the first snapshot"
    );
    assert_eq!(chain.len(), by_id.len(), "snapshots outside the chain");
    chain
}

/// Every `id` in the table's current snapshot, sorted.
pub async fn read_ids(table: &Table) -> Vec<i64> {
    if table.metadata().current_snapshot().is_none() {
        return Vec::new();
    }
    let stream = table
        .scan()
        .select(["id"])
        .build()
        .expect("scan")
        .to_arrow()
        .await
        .expect("arrow stream");
    let batches: Vec<RecordBatch> = stream.try_collect().await.expect("read batches");
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|batch| {
            batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("id column")
                .values()
                .to_vec()
        })
        .collect();
    ids.sort_unstable();
    ids
}

pub fn ident(namespace: &NamespaceIdent, name: &str) -> TableIdent {
    TableIdent::new(namespace.clone(), name.to_string())
}

/// Files under a directory, recursively (for "files gone after purge" checks).
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

/// A `file://` location as a local path.
pub fn local_path(location: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

// ---- raw REST calls, for tests that check exact requests, status codes and files on disk

pub use floe_testkit::error_model;
use serde_json::{Value, json};

/// One URL path segment, percent-encoded: everything but ASCII letters, digits, `-`, `_` and `~`.
/// (iceberg-rust's RestCatalog does not encode names at all, so names with `/`, `%`, `?` or `#`
/// only travel through raw requests.)
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `{"type":"struct", ...}` with `id: long (required)` as field 1.
pub fn id_schema_json() -> Value {
    json!({
        "type": "struct",
        "schema-id": 0,
        "fields": [{ "id": 1, "name": "id", "required": true, "type": "long" }]
    })
}

/// A raw REST client for one server.
#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    /// `http://127.0.0.1:<port>/v1/<prefix>`
    pub base: String,
}

impl Api {
    pub fn new(server: &FloeServer) -> Self {
        Self {
            client: floe_testkit::http(),
            base: server.api(),
        }
    }

    /// `.../namespaces/<levels joined by 0x1F>`, encoded.
    pub fn namespace_url(&self, namespace: &[&str]) -> String {
        format!(
            "{}/namespaces/{}",
            self.base,
            encode_segment(&namespace.join("\u{1f}"))
        )
    }

    pub fn table_url(&self, namespace: &[&str], table: &str) -> String {
        format!(
            "{}/tables/{}",
            self.namespace_url(namespace),
            encode_segment(table)
        )
    }

    pub async fn create_namespace(&self, namespace: &[&str]) {
        let response = self
            .client
            .post(format!("{}/namespaces", self.base))
            .json(&json!({ "namespace": namespace }))
            .send()
            .await
            .expect("create namespace");
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// Creates a table with [`id_schema_json`] and `properties`; returns its LoadTableResult.
    pub async fn create_table(&self, namespace: &[&str], name: &str, properties: Value) -> Value {
        let response = self
            .client
            .post(format!("{}/tables", self.namespace_url(namespace)))
            .json(&json!({ "name": name, "schema": id_schema_json(), "properties": properties }))
            .send()
            .await
            .expect("create table");
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.expect("LoadTableResult")
    }

    /// The table's LoadTableResult; panics unless 200.
    pub async fn load_table(&self, namespace: &[&str], name: &str) -> Value {
        let response = self
            .client
            .get(self.table_url(namespace, name))
            .send()
            .await
            .expect("load table");
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.expect("LoadTableResult")
    }

    /// POSTs a CommitTableRequest.
    pub async fn commit(&self, namespace: &[&str], name: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.table_url(namespace, name))
            .json(body)
            .send()
            .await
            .expect("commit request")
    }

    /// Commits one `set-properties` update without requirements; returns the CommitTableResponse.
    pub async fn set_properties(&self, namespace: &[&str], name: &str, updates: Value) -> Value {
        let response = self
            .commit(namespace, name, &set_properties_body(updates))
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.expect("CommitTableResponse")
    }
}

/// `{"requirements":[],"updates":[{"action":"set-properties","updates":<updates>}]}`
pub fn set_properties_body(updates: Value) -> Value {
    json!({
        "requirements": [],
        "updates": [{ "action": "set-properties", "updates": updates }]
    })
}

/// The `*.metadata.json` files in a table's `metadata/` directory, sorted by name.
pub fn metadata_files(table_location: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = files_under(&local_path(table_location).join("metadata"))
        .into_iter()
        .filter(|path| path.to_string_lossy().ends_with(".metadata.json"))
        .collect();
    files.sort();
    files
}

/// The table location in a LoadTableResult or CommitTableResponse.
pub fn location_of(result: &Value) -> String {
    result["metadata"]["location"]
        .as_str()
        .expect("metadata.location")
        .to_string()
}

/// The metadata-location in a LoadTableResult or CommitTableResponse.
pub fn metadata_location_of(result: &Value) -> String {
    result["metadata-location"]
        .as_str()
        .expect("metadata-location")
        .to_string()
}

/// Runs the real `floe` binary with `args`: (succeeded, stdout, stderr).
pub fn floe(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(floe_testkit::floe_binary())
        .args(args)
        .output()
        .expect("run floe");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Trades a `client_id:client_secret` credential for a token at the token endpoint (in the form
/// body, as PyIceberg sends it).
pub async fn token_for(server: &FloeServer, credential: &str) -> String {
    let (client_id, client_secret) = credential.split_once(':').expect("id:secret");
    let response = floe_testkit::http()
        .post(format!("{}/v1/oauth/tokens", server.uri()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("scope", "catalog"),
        ])
        .send()
        .await
        .expect("the token endpoint answers");
    assert_eq!(response.status(), 200, "token for {client_id}");
    let token: Value = response.json().await.expect("token response");
    assert_eq!(token["token_type"], "bearer");
    token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// A token of the first administrator, whose credential the first `oauth2` start wrote.
pub async fn admin_token(server: &FloeServer) -> String {
    let credential = std::fs::read_to_string(server.data_dir().join("admin-credential"))
        .expect("read admin-credential");
    token_for(server, credential.trim()).await
}
