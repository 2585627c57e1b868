//! Vended credentials against a real S3 server that enforces STS session policies (SeaweedFS).

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_delegation::{TablePrefix, TemporaryCredentials, Vendor};
use floe_storage::{S3Access, S3Options, StoreOptions, Warehouse};
use floe_testkit::seaweedfs::{self, TestS3};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const BUCKET: &str = "lake";

fn warehouse(s3: &TestS3, extra: &[(&str, &str)]) -> Warehouse {
    let mut properties: BTreeMap<String, String> = [
        ("s3.endpoint", s3.endpoint().as_str()),
        ("s3.region", seaweedfs::REGION),
        ("s3.path-style-access", "true"),
        ("s3.access-key-id", seaweedfs::ACCESS_KEY_ID),
        ("s3.secret-access-key", seaweedfs::SECRET_ACCESS_KEY),
        ("s3.sts-role-arn", seaweedfs::STS_ROLE_ARN),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    for (name, value) in extra {
        properties.insert(name.to_string(), value.to_string());
    }
    let options = StoreOptions {
        s3: S3Options::from_properties(&properties).unwrap(),
        ..StoreOptions::default()
    };
    Warehouse::open("lake", &format!("s3://{BUCKET}/wh"), &options).unwrap()
}

fn client(s3: &TestS3, credentials: &TemporaryCredentials) -> Arc<dyn ObjectStore> {
    s3.store_as(
        BUCKET,
        &credentials.access_key_id,
        &credentials.secret_access_key,
        Some(&credentials.session_token),
    )
}

fn denied(result: Result<impl Sized, object_store::Error>) -> bool {
    match result {
        Err(err) => {
            let text = err.to_string();
            assert!(
                text.contains("AccessDenied") || text.contains("403"),
                "{text}"
            );
            true
        }
        Ok(_) => false,
    }
}

async fn list(
    store: &dyn ObjectStore,
    prefix: Option<&str>,
) -> Result<Vec<String>, object_store::Error> {
    let prefix = prefix.map(Path::from);
    store
        .list(prefix.as_ref())
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
}

fn access(warehouse: &Warehouse) -> &S3Access {
    warehouse.s3_access().unwrap()
}

#[tokio::test]
async fn vended_credentials_reach_exactly_their_table_and_write_only_with_write() {
    let s3 = TestS3::start_with_sts();
    s3.create_bucket(BUCKET).await;
    let admin = s3.store(BUCKET);
    for key in [
        "wh/ns/a/data/1.parquet",
        "wh/ns/ab/data/1.parquet",
        "wh/ns/b/data/1.parquet",
        "outside.txt",
    ] {
        admin
            .put(&Path::from(key), PutPayload::from_static(b"row"))
            .await
            .unwrap();
    }
    let warehouse = warehouse(&s3, &[]);
    let table_a =
        TablePrefix::of(access(&warehouse), warehouse.root(), "s3://lake/wh/ns/a").unwrap();
    let vendor = Vendor::new().unwrap();

    let read = vendor
        .credentials(access(&warehouse), &table_a, false)
        .await
        .unwrap();
    assert_ne!(read.access_key_id, seaweedfs::ACCESS_KEY_ID);
    let reader = client(&s3, &read);
    let bytes = reader
        .get(&Path::from("wh/ns/a/data/1.parquet"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"row");
    assert_eq!(
        list(&*reader, Some("wh/ns/a/")).await.unwrap(),
        ["wh/ns/a/data/1.parquet"]
    );
    // A sibling whose name starts with the same letters is another table.
    assert!(denied(
        reader.get(&Path::from("wh/ns/ab/data/1.parquet")).await
    ));
    assert!(denied(
        reader.get(&Path::from("wh/ns/b/data/1.parquet")).await
    ));
    assert!(denied(reader.get(&Path::from("outside.txt")).await));
    assert!(denied(list(&*reader, None).await));
    assert!(denied(list(&*reader, Some("wh/ns/b/")).await));
    assert!(denied(
        reader
            .put(
                &Path::from("wh/ns/a/data/2.parquet"),
                PutPayload::from_static(b"x")
            )
            .await
    ));
    assert!(denied(
        reader.delete(&Path::from("wh/ns/a/data/1.parquet")).await
    ));

    let write = vendor
        .credentials(access(&warehouse), &table_a, true)
        .await
        .unwrap();
    assert_ne!(
        write.access_key_id, read.access_key_id,
        "read and write are cached apart"
    );
    let writer = client(&s3, &write);
    writer
        .put(
            &Path::from("wh/ns/a/data/2.parquet"),
            PutPayload::from_static(b"new"),
        )
        .await
        .unwrap();
    writer
        .delete(&Path::from("wh/ns/a/data/1.parquet"))
        .await
        .unwrap();
    assert!(denied(
        writer
            .put(
                &Path::from("wh/ns/b/data/2.parquet"),
                PutPayload::from_static(b"x")
            )
            .await
    ));
    assert!(denied(
        writer.delete(&Path::from("wh/ns/b/data/1.parquet")).await
    ));
    assert!(denied(
        writer
            .put(&Path::from("outside.txt"), PutPayload::from_static(b"x"))
            .await
    ));
    assert_eq!(
        s3.list(BUCKET, "").await,
        [
            "outside.txt",
            "wh/ns/a/data/2.parquet",
            "wh/ns/ab/data/1.parquet",
            "wh/ns/b/data/1.parquet"
        ]
    );
}

#[tokio::test]
async fn credentials_are_cached_per_table_and_privilege() {
    let s3 = TestS3::start_with_sts();
    s3.create_bucket(BUCKET).await;
    let warehouse = warehouse(&s3, &[("s3.credentials-duration-seconds", "900")]);
    let vendor = Vendor::new().unwrap();
    let table =
        |location: &str| TablePrefix::of(access(&warehouse), warehouse.root(), location).unwrap();
    let first = vendor
        .credentials(access(&warehouse), &table("s3://lake/wh/ns/a"), false)
        .await
        .unwrap();
    let again = vendor
        .credentials(access(&warehouse), &table("s3://lake/wh/ns/a"), false)
        .await
        .unwrap();
    assert_eq!(first.access_key_id, again.access_key_id);
    let lifetime = first
        .expires_at
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        lifetime.as_secs() <= 900 && lifetime.as_secs() > 450,
        "{lifetime:?}"
    );
    let other = vendor
        .credentials(access(&warehouse), &table("s3://lake/wh/ns/b"), false)
        .await
        .unwrap();
    assert_ne!(first.access_key_id, other.access_key_id);
    assert_eq!(vendor.cached_count(), 2);
}

#[tokio::test]
async fn a_role_sts_refuses_is_an_unavailable_error_that_names_no_secret() {
    let s3 = TestS3::start_with_sts();
    s3.create_bucket(BUCKET).await;
    let warehouse = warehouse(&s3, &[("s3.sts-role-arn", "arn:aws:iam::role/nobody")]);
    let table = TablePrefix::of(access(&warehouse), warehouse.root(), "s3://lake/wh/ns/a").unwrap();
    let err = Vendor::new()
        .unwrap()
        .credentials(access(&warehouse), &table, false)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, floe_delegation::DelegationError::Unavailable(_)),
        "{text}"
    );
    assert!(text.contains("AssumeRole refused"), "{text}");
    assert!(!text.contains(seaweedfs::SECRET_ACCESS_KEY), "{text}");
}
