//! iceberg-rust `FileIO`s over object_store, where iceberg 0.10 alone only has local and
//! in-memory storage. One [`ObjectStorage`] serves two ways of reaching table files:
//!
//! - **a warehouse** ([`warehouse_file_io`]): server-side work (maintenance jobs, SQL on a data
//!   dir) through the warehouse's own object store — local directory, S3, GCS, Azure, memory —
//!   with the server's settings and credentials. Every path is checked to be inside the warehouse
//!   ([`Warehouse::object_path`]) before it is touched, so no job can read, write or delete
//!   outside it, whatever a manifest says;
//! - **a client** ([`ClientStorageFactory`]): `floe sql --catalog` and tests, like any Iceberg
//!   client: `file://` tables on this machine, and `s3://` tables with the FileIO properties a
//!   catalog hands out (`s3.endpoint`, `s3.region`, `s3.path-style-access`) plus the client's own
//!   keys (`s3.access-key-id`, ... or object_store's `AWS_*` variables).
//!
//! Reads are ranged GETs; writes stream up (one PUT, or a multipart upload past 10 MiB).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use floe_storage::Warehouse;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, S3Config,
    Storage, StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// A `FileIO` whose files are `warehouse`'s.
pub fn warehouse_file_io(warehouse: &Warehouse) -> FileIO {
    FileIOBuilder::new(Arc::new(WarehouseStorageFactory {
        warehouse: Some(warehouse.clone()),
    }))
    .build()
}

/// Builds the [`ObjectStorage`] of one warehouse. (De)serializable only because iceberg's storage
/// registry asks for it; a deserialized factory has no warehouse and refuses every path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WarehouseStorageFactory {
    #[serde(skip)]
    warehouse: Option<Warehouse>,
}

#[typetag::serde]
impl StorageFactory for WarehouseStorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(ObjectStorage {
            locator: self.warehouse.clone().map(Locator::Warehouse),
        }))
    }
}

/// Builds a client's [`ObjectStorage`] from FileIO properties (see the module docs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClientStorageFactory;

#[typetag::serde]
impl StorageFactory for ClientStorageFactory {
    fn build(&self, config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(ObjectStorage {
            locator: Some(Locator::Client {
                s3: S3Config::try_from(config)?,
                buckets: Arc::default(),
            }),
        }))
    }
}

/// Where an [`ObjectStorage`]'s paths lead.
#[derive(Debug, Clone)]
enum Locator {
    Warehouse(Warehouse),
    Client {
        s3: S3Config,
        /// One S3 client per bucket, made on first use.
        buckets: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
    },
}

/// Table files through object_store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectStorage {
    #[serde(skip)]
    locator: Option<Locator>,
}

fn error(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unexpected, what.to_string())
}

impl ObjectStorage {
    /// The store and the key of `location`.
    fn locate(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        match &self.locator {
            None => Err(error("this FileIO was deserialized and reaches no store")),
            Some(Locator::Warehouse(warehouse)) => {
                let path = warehouse
                    .object_path(location)
                    .map_err(|err| Error::new(ErrorKind::DataInvalid, err.to_string()))?;
                Ok((warehouse.store().clone(), path))
            }
            Some(Locator::Client { s3, buckets }) => client_locate(s3, buckets, location),
        }
    }
}

/// A client's view: local files by absolute path, S3 objects by bucket and key.
fn client_locate(
    s3: &S3Config,
    buckets: &Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
    location: &str,
) -> Result<(Arc<dyn ObjectStore>, Path)> {
    let url = url::Url::parse(location).map_err(error)?;
    match url.scheme() {
        "file" => {
            let file = url
                .to_file_path()
                .map_err(|()| error(format!("not a local file: {location}")))?;
            let path = Path::from_absolute_path(&file).map_err(error)?;
            Ok((Arc::new(LocalFileSystem::new()), path))
        }
        "s3" | "s3a" => {
            let bucket = url
                .host_str()
                .filter(|bucket| !bucket.is_empty())
                .ok_or_else(|| error(format!("no bucket in {location}")))?;
            let key = Path::from_url_path(url.path().trim_start_matches('/')).map_err(error)?;
            let mut buckets = buckets
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(store) = buckets.get(bucket) {
                return Ok((store.clone(), key));
            }
            let store = s3_client(s3, bucket)?;
            buckets.insert(bucket.to_string(), store.clone());
            Ok((store, key))
        }
        other => Err(error(format!(
            "floe cannot reach {other}:// table files from a client yet: {location}"
        ))),
    }
}

/// An S3 client for `bucket`: object_store's `AWS_*` environment first, the catalog's and the
/// client's FileIO properties over it.
fn s3_client(s3: &S3Config, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(s3.enable_virtual_host_style);
    if let Some(endpoint) = &s3.endpoint {
        // A plain-http endpoint is the catalog's word (e.g. a test or on-premises server).
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &s3.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if let Some(token) = &s3.session_token {
        builder = builder.with_token(token);
    }
    Ok(Arc::new(builder.build().map_err(error)?))
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStorage {
    async fn exists(&self, path: &str) -> Result<bool> {
        let (store, key) = self.locate(path)?;
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(error(err)),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let (store, key) = self.locate(path)?;
        let meta = store.head(&key).await.map_err(error)?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let (store, key) = self.locate(path)?;
        store
            .get(&key)
            .await
            .map_err(error)?
            .bytes()
            .await
            .map_err(error)
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(RangeRead { store, key }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (store, key) = self.locate(path)?;
        store.put(&key, PutPayload::from(bs)).await.map_err(error)?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(StreamingWrite {
            writer: Some(BufWriter::new(store, key).with_max_concurrency(4)),
        }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (store, key) = self.locate(path)?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(error(err)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let (store, prefix) = self.locate(path)?;
        let keys = store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        store
            .delete_stream(keys)
            .try_collect::<Vec<_>>()
            .await
            .map_err(error)?;
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        while let Some(path) = paths.next().await {
            self.delete(&path).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged GETs: Parquet readers fetch footers and column chunks, not whole files.
struct RangeRead {
    store: Arc<dyn ObjectStore>,
    key: Path,
}

#[async_trait]
impl FileRead for RangeRead {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store.get_range(&self.key, range).await.map_err(error)
    }
}

/// Streams the file up: a small file is one PUT on close, a large one (past 10 MiB, e.g. a
/// compaction output) a multipart upload with a few parts in flight, completed on close — so
/// memory stays bounded and the object appears whole or not at all.
struct StreamingWrite {
    writer: Option<BufWriter>,
}

#[async_trait]
impl FileWrite for StreamingWrite {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        match &mut self.writer {
            Some(writer) => writer.put(bs).await.map_err(error),
            None => Err(error("file already closed")),
        }
    }

    async fn close(&mut self) -> Result<()> {
        match self.writer.take() {
            Some(mut writer) => writer.shutdown().await.map_err(error),
            None => Err(error("file already closed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_reaches_local_files_and_refuses_other_schemes() {
        let dir = tempfile::tempdir().unwrap();
        let file_io = FileIOBuilder::new(Arc::new(ClientStorageFactory)).build();
        let location = url::Url::from_file_path(dir.path().join("t/data/a.parquet"))
            .unwrap()
            .to_string();
        file_io
            .new_output(&location)
            .unwrap()
            .write(Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(
            file_io.new_input(&location).unwrap().read().await.unwrap(),
            Bytes::from_static(b"abc")
        );
        let err = file_io
            .new_input("ftp://host/x")
            .unwrap()
            .read()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot reach ftp://"), "{err}");
    }

    #[tokio::test]
    async fn files_round_trip_inside_the_warehouse_only() {
        let dir = tempfile::tempdir().unwrap();
        let warehouse = Warehouse::local("main", &dir.path().join("wh")).unwrap();
        let file_io = warehouse_file_io(&warehouse);
        let inside = format!("{}/ns/t/data/a.parquet", warehouse.root());
        let output = file_io.new_output(&inside).unwrap();
        output
            .write(Bytes::from_static(b"hello world"))
            .await
            .unwrap();
        let input = file_io.new_input(&inside).unwrap();
        assert_eq!(
            input.read().await.unwrap(),
            Bytes::from_static(b"hello world")
        );
        assert_eq!(input.metadata().await.unwrap().size, 11);
        let reader = input.reader().await.unwrap();
        assert_eq!(
            reader.read(6..11).await.unwrap(),
            Bytes::from_static(b"world")
        );
        assert!(file_io.exists(&inside).await.unwrap());
        // Past the multipart threshold, written in pieces: read back whole.
        let large = format!("{}/ns/t/data/large.parquet", warehouse.root());
        let mut writer = file_io.new_output(&large).unwrap().writer().await.unwrap();
        let chunk = Bytes::from(vec![7u8; 3 * 1024 * 1024]);
        for _ in 0..5 {
            writer.write(chunk.clone()).await.unwrap();
        }
        writer.close().await.unwrap();
        assert!(writer.close().await.is_err());
        let back = file_io.new_input(&large).unwrap().read().await.unwrap();
        assert_eq!(back.len(), 15 * 1024 * 1024);
        assert!(back.iter().all(|byte| *byte == 7));
        file_io.delete(&inside).await.unwrap();
        assert!(!file_io.exists(&inside).await.unwrap());

        let outside = url::Url::from_file_path(dir.path().join("elsewhere.parquet"))
            .unwrap()
            .to_string();
        assert!(
            file_io
                .new_output(&outside)
                .unwrap()
                .write(Bytes::new())
                .await
                .is_err()
        );
        assert!(!dir.path().join("elsewhere.parquet").exists());
    }
}
