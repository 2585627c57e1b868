//! Partition specs that iceberg-rust's builder refuses and Iceberg's Java reference catalog accepts
//! (`floe_commit::partition_specs`): two time transforms on one column, and v1's `void` fields
//! named like their source column. Each is committed, read back from the metadata file with
//! iceberg-rust, and followed by ordinary commits; invalid specs are still refused as bad requests
//! and leave the table as it was.

use std::collections::HashMap;

use floe_commit::open::{OpenOptions, open};
use floe_commit::{Catalog, CommitError, CreateTable, LoadedTable, TableChange};
use floe_store::TableName;
use iceberg::spec::{
    FormatVersion, NestedField, PartitionField, PrimitiveType, Schema, StructType, TableMetadata,
    Transform, Type, UnboundPartitionSpec,
};
use iceberg::{TableRequirement, TableUpdate};
use serde_json::{Value, json};

struct Setup {
    _dir: tempfile::TempDir,
    catalog: Catalog,
    name: TableName,
}

fn schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            NestedField::optional(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(2, "event_ts", Type::Primitive(PrimitiveType::Timestamp)).into(),
            NestedField::optional(3, "str", Type::Primitive(PrimitiveType::String)).into(),
            NestedField::optional(
                4,
                "point",
                Type::Struct(StructType::new(vec![
                    NestedField::optional(5, "x", Type::Primitive(PrimitiveType::Double)).into(),
                ])),
            )
            .into(),
        ])
        .build()
        .unwrap()
}

fn spec(fields: Value) -> UnboundPartitionSpec {
    serde_json::from_value(json!({ "fields": fields })).unwrap()
}

fn field(source_id: i32, field_id: i32, name: &str, transform: Transform) -> PartitionField {
    PartitionField {
        source_id,
        field_id,
        name: name.to_string(),
        transform,
    }
}

impl Setup {
    /// An unpartitioned table with `schema()` in the given format version.
    async fn new(format_version: &str) -> Self {
        Self::with_spec(format_version, None).await
    }

    async fn with_spec(format_version: &str, partition_spec: Option<UnboundPartitionSpec>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let catalog = open(&OpenOptions::new(dir.path().join("data")))
            .await
            .unwrap();
        catalog
            .create_namespace(&["ns".to_string()], &Default::default())
            .await
            .unwrap();
        let name = TableName::new(vec!["ns".to_string()], "t");
        catalog
            .create_table(CreateTable {
                name: name.clone(),
                location: None,
                schema: schema(),
                partition_spec,
                sort_order: None,
                properties: HashMap::from([(
                    "format-version".to_string(),
                    format_version.to_string(),
                )]),
                stage: false,
            })
            .await
            .unwrap();
        Self {
            _dir: dir,
            catalog,
            name,
        }
    }

    async fn commit(&self, updates: Vec<TableUpdate>) -> Result<LoadedTable, CommitError> {
        self.catalog
            .commit_table(TableChange {
                table: self.name.clone(),
                requirements: vec![],
                updates,
            })
            .await
    }

    /// What PyIceberg's `update_spec()` commits: the new spec, made the default.
    async fn evolve(&self, fields: Value) -> Result<LoadedTable, CommitError> {
        self.commit(vec![
            TableUpdate::AddSpec { spec: spec(fields) },
            TableUpdate::SetDefaultSpec { spec_id: -1 },
        ])
        .await
    }

    /// The current metadata file, parsed by iceberg-rust from its bytes (not from any cache).
    async fn stored(&self) -> (TableMetadata, Value) {
        let loaded = self.catalog.load_table(&self.name).await.unwrap();
        let location = loaded.metadata_location.unwrap();
        let bytes = self.catalog.warehouse().get(&location).await.unwrap();
        let metadata: TableMetadata = serde_json::from_slice(&bytes).unwrap();
        (metadata, serde_json::from_slice(&bytes).unwrap())
    }

    async fn metadata_location(&self) -> String {
        self.catalog
            .load_table(&self.name)
            .await
            .unwrap()
            .metadata_location
            .unwrap()
    }
}

fn default_fields(metadata: &TableMetadata) -> Vec<PartitionField> {
    metadata.default_partition_spec().fields().to_vec()
}

/// Ordinary commits keep working on a table whose default spec the builder would refuse: a
/// property, a new column, and a new schema made current.
async fn later_commits_work(setup: &Setup) {
    setup
        .commit(vec![TableUpdate::SetProperties {
            updates: HashMap::from([("owner".to_string(), "floe".to_string())]),
        }])
        .await
        .unwrap();
    let mut fields = schema().as_struct().fields().to_vec();
    fields.push(NestedField::optional(6, "extra", Type::Primitive(PrimitiveType::Int)).into());
    let wider = Schema::builder()
        .with_schema_id(1)
        .with_fields(fields)
        .build()
        .unwrap();
    let loaded = setup
        .commit(vec![
            TableUpdate::AddSchema { schema: wider },
            TableUpdate::SetCurrentSchema { schema_id: -1 },
        ])
        .await
        .unwrap();
    assert!(
        loaded
            .metadata()
            .current_schema()
            .field_by_name("extra")
            .is_some()
    );
    let (stored, _) = setup.stored().await;
    assert_eq!(
        stored.properties().get("owner").map(String::as_str),
        Some("floe")
    );
}

#[tokio::test]
async fn an_hour_field_can_join_a_day_field_on_one_column() {
    // PyIceberg's test_add_hour_to_day.
    let setup = Setup::new("1").await;
    setup
        .evolve(json!([{ "source-id": 2, "field-id": 1000, "name": "daily_partitioned", "transform": "day" }]))
        .await
        .unwrap();
    let loaded = setup
        .evolve(json!([
            { "source-id": 2, "field-id": 1000, "name": "daily_partitioned", "transform": "day" },
            { "source-id": 2, "field-id": 1001, "name": "hourly_partitioned", "transform": "hour" },
        ]))
        .await
        .unwrap();
    let expected = vec![
        field(2, 1000, "daily_partitioned", Transform::Day),
        field(2, 1001, "hourly_partitioned", Transform::Hour),
    ];
    assert_eq!(default_fields(loaded.metadata()), expected);
    let (stored, json) = setup.stored().await;
    assert_eq!(stored.default_partition_spec_id(), 2);
    assert_eq!(stored.last_partition_id(), 1001);
    assert_eq!(stored.partition_specs_iter().len(), 3);
    assert_eq!(default_fields(&stored), expected);
    // v1 readers take the default spec from `partition-spec`.
    assert_eq!(
        json["partition-spec"],
        serde_json::to_value(&expected).unwrap()
    );
    assert_eq!(json["default-spec-id"], json!(2));
    later_commits_work(&setup).await;
    let (stored, _) = setup.stored().await;
    assert_eq!(default_fields(&stored), expected);
}

#[tokio::test]
async fn a_table_can_be_created_with_two_time_fields_on_one_column() {
    let setup = Setup::with_spec(
        "2",
        Some(spec(json!([
            { "source-id": 2, "name": "ts_day", "transform": "day" },
            { "source-id": 2, "name": "ts_hour", "transform": "hour" },
        ]))),
    )
    .await;
    let (stored, _) = setup.stored().await;
    assert_eq!(
        default_fields(&stored),
        vec![
            field(2, 1000, "ts_day", Transform::Day),
            field(2, 1001, "ts_hour", Transform::Hour),
        ]
    );
    later_commits_work(&setup).await;
}

#[tokio::test]
async fn removing_an_identity_field_from_a_v1_table_leaves_a_void_field_of_the_same_name() {
    // PyIceberg's test_remove_identity, then test_remove_and_add_identity.
    let setup = Setup::new("1").await;
    setup
        .evolve(
            json!([{ "source-id": 1, "field-id": 1000, "name": "id", "transform": "identity" }]),
        )
        .await
        .unwrap();
    setup
        .evolve(json!([{ "source-id": 1, "field-id": 1000, "name": "id", "transform": "void" }]))
        .await
        .unwrap();
    let (stored, json) = setup.stored().await;
    assert_eq!(stored.partition_specs_iter().len(), 3);
    assert_eq!(stored.default_partition_spec_id(), 2);
    assert_eq!(
        default_fields(&stored),
        vec![field(1, 1000, "id", Transform::Void)]
    );
    assert_eq!(json["partition-spec"][0]["transform"], json!("void"));
    later_commits_work(&setup).await;

    setup
        .evolve(json!([
            { "source-id": 1, "field-id": 1000, "name": "id_1000", "transform": "void" },
            { "source-id": 1, "field-id": 1001, "name": "id", "transform": "identity" },
        ]))
        .await
        .unwrap();
    let (stored, _) = setup.stored().await;
    assert_eq!(stored.partition_specs_iter().len(), 4);
    assert_eq!(stored.default_partition_spec_id(), 3);
    assert_eq!(stored.last_partition_id(), 1001);
    assert_eq!(
        default_fields(&stored),
        vec![
            field(1, 1000, "id_1000", Transform::Void),
            field(1, 1001, "id", Transform::Identity),
        ]
    );
}

#[tokio::test]
async fn spec_updates_keep_the_builders_numbering() {
    let setup = Setup::new("2").await;
    // Field ids left out are assigned after the table's last one, or reused from an earlier field
    // with the same source and transform.
    setup
        .evolve(json!([{ "source-id": 1, "name": "id", "transform": "identity" }]))
        .await
        .unwrap();
    setup
        .evolve(json!([
            { "source-id": 1, "name": "id", "transform": "identity" },
            { "source-id": 2, "name": "ts_day", "transform": "day" },
            { "source-id": 2, "name": "ts_hour", "transform": "hour" },
        ]))
        .await
        .unwrap();
    let (stored, _) = setup.stored().await;
    assert_eq!(
        default_fields(&stored),
        vec![
            field(1, 1000, "id", Transform::Identity),
            field(2, 1001, "ts_day", Transform::Day),
            field(2, 1002, "ts_hour", Transform::Hour),
        ]
    );
    assert_eq!(stored.last_partition_id(), 1002);
    // An equal spec keeps its id: going back to unpartitioned makes spec 0 the default again.
    let loaded = setup.evolve(json!([])).await.unwrap();
    assert_eq!(loaded.metadata().default_partition_spec_id(), 0);
    assert_eq!(loaded.metadata().partition_specs_iter().len(), 3);
    // Specs other than the default can be removed; the default cannot.
    setup
        .commit(vec![TableUpdate::RemovePartitionSpecs {
            spec_ids: vec![1, 2],
        }])
        .await
        .unwrap();
    let (stored, _) = setup.stored().await;
    assert_eq!(stored.partition_specs_iter().len(), 1);
    assert_eq!(stored.last_partition_id(), 1002);
    let err = setup
        .commit(vec![TableUpdate::RemovePartitionSpecs {
            spec_ids: vec![0],
        }])
        .await
        .unwrap_err();
    assert!(matches!(err, CommitError::InvalidRequest(_)), "{err:?}");
}

#[tokio::test]
async fn a_create_transaction_may_carry_such_a_spec() {
    let setup = Setup::new("2").await;
    let name = TableName::new(vec!["ns".to_string()], "created");
    let spec = spec(json!([
        { "source-id": 2, "field-id": 1000, "name": "ts_day", "transform": "day" },
        { "source-id": 2, "field-id": 1001, "name": "ts_hour", "transform": "hour" },
    ]));
    let loaded = setup
        .catalog
        .commit_table(TableChange {
            table: name.clone(),
            requirements: vec![TableRequirement::NotExist],
            updates: vec![
                TableUpdate::AssignUuid {
                    uuid: uuid::Uuid::now_v7(),
                },
                TableUpdate::UpgradeFormatVersion {
                    format_version: FormatVersion::V2,
                },
                TableUpdate::AddSchema { schema: schema() },
                TableUpdate::SetCurrentSchema { schema_id: -1 },
                TableUpdate::AddSpec { spec },
                TableUpdate::SetDefaultSpec { spec_id: -1 },
            ],
        })
        .await
        .unwrap();
    assert_eq!(
        default_fields(loaded.metadata()),
        vec![
            field(2, 1000, "ts_day", Transform::Day),
            field(2, 1001, "ts_hour", Transform::Hour),
        ]
    );
    assert_eq!(loaded.metadata().partition_specs_iter().len(), 1);
}

#[tokio::test]
async fn invalid_specs_are_bad_requests_and_change_nothing() {
    let setup = Setup::new("1").await;
    setup
        .evolve(json!([{ "source-id": 1, "field-id": 1000, "name": "id", "transform": "void" }]))
        .await
        .unwrap();
    let before = setup.metadata_location().await;
    let cases = [
        (
            json!([{ "source-id": 99, "field-id": 1000, "name": "p", "transform": "identity" }]),
            "no column has the source id 99",
        ),
        (
            json!([{ "source-id": 99, "field-id": 1000, "name": "p", "transform": "void" }]),
            "no column has the source id 99",
        ),
        (
            json!([{ "source-id": 3, "field-id": 1000, "name": "p", "transform": "day" }]),
            "does not apply",
        ),
        (
            json!([{ "source-id": 4, "field-id": 1000, "name": "p", "transform": "identity" }]),
            "non-primitive",
        ),
        (
            json!([
                { "source-id": 2, "field-id": 1000, "name": "p", "transform": "day" },
                { "source-id": 2, "field-id": 1001, "name": "p", "transform": "hour" },
            ]),
            "used more than once",
        ),
        (
            json!([{ "source-id": 2, "field-id": 1000, "name": "", "transform": "day" }]),
            "must not be empty",
        ),
        (
            // A name may be that of the field's own source column only.
            json!([{ "source-id": 2, "field-id": 1000, "name": "id", "transform": "day" }]),
            "named like column 1",
        ),
        (
            json!([{ "source-id": 1, "field-id": 1000, "name": "str", "transform": "void" }]),
            "named like column 3",
        ),
        (
            json!([
                { "source-id": 2, "field-id": 1000, "name": "a", "transform": "day" },
                { "source-id": 2, "field-id": 1000, "name": "b", "transform": "hour" },
            ]),
            "id 1000 is used more than once",
        ),
        (
            // Format version 1 numbers partition fields 1000, 1001, ...
            json!([{ "source-id": 2, "field-id": 1005, "name": "p", "transform": "day" }]),
            "format version 1",
        ),
    ];
    for (fields, message) in cases {
        let err = setup.evolve(fields.clone()).await.unwrap_err();
        match &err {
            CommitError::InvalidRequest(text) => {
                assert!(
                    text.contains(message),
                    "{fields}: {text:?} lacks {message:?}"
                )
            }
            other => panic!("{fields}: expected a bad request, got {other:?}"),
        }
        assert_eq!(setup.metadata_location().await, before, "{fields}");
    }
    let unknown = setup
        .commit(vec![TableUpdate::SetDefaultSpec { spec_id: 42 }])
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, CommitError::InvalidRequest(_)),
        "{unknown:?}"
    );
    let none_added = setup
        .commit(vec![TableUpdate::SetDefaultSpec { spec_id: -1 }])
        .await
        .unwrap_err();
    assert!(
        matches!(none_added, CommitError::InvalidRequest(_)),
        "{none_added:?}"
    );
    assert_eq!(setup.metadata_location().await, before);
}

#[tokio::test]
async fn the_default_spec_must_keep_fitting_the_schema() {
    let setup = Setup::new("2").await;
    setup
        .evolve(json!([
            { "source-id": 2, "name": "ts_day", "transform": "day" },
            { "source-id": 2, "name": "ts_hour", "transform": "hour" },
        ]))
        .await
        .unwrap();
    let before = setup.metadata_location().await;
    // Dropping the partition source column would leave the default spec without its source.
    let narrower = Schema::builder()
        .with_schema_id(1)
        .with_fields(vec![
            NestedField::optional(1, "id", Type::Primitive(PrimitiveType::Long)).into(),
        ])
        .build()
        .unwrap();
    let err = setup
        .commit(vec![
            TableUpdate::AddSchema { schema: narrower },
            TableUpdate::SetCurrentSchema { schema_id: -1 },
        ])
        .await
        .unwrap_err();
    match &err {
        CommitError::InvalidRequest(text) => assert!(text.contains("current schema"), "{text}"),
        other => panic!("expected a bad request, got {other:?}"),
    }
    assert_eq!(setup.metadata_location().await, before);
}

#[tokio::test]
async fn an_upgrade_to_v2_lifts_the_sequential_ids_of_v1_in_the_same_commit() {
    let setup = Setup::new("1").await;
    let loaded = setup
        .commit(vec![
            TableUpdate::UpgradeFormatVersion {
                format_version: FormatVersion::V2,
            },
            TableUpdate::AddSpec {
                spec: spec(
                    json!([{ "source-id": 2, "field-id": 1005, "name": "ts_day", "transform": "day" }]),
                ),
            },
            TableUpdate::SetDefaultSpec { spec_id: -1 },
        ])
        .await
        .unwrap();
    assert_eq!(loaded.metadata().format_version(), FormatVersion::V2);
    assert_eq!(
        default_fields(loaded.metadata()),
        vec![field(2, 1005, "ts_day", Transform::Day)]
    );
    assert_eq!(loaded.metadata().last_partition_id(), 1005);
}
