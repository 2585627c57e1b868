//! S3 for iceberg-rust's `FileIO`: iceberg 0.10 ships only local and in-memory storage, so the
//! e2e tests and benches bring their own `Storage` over object_store's `AmazonS3` (feature
//! `iceberg` of floe-testkit).
//!
//! It reads the standard FileIO properties (`s3.endpoint`, `s3.region`, `s3.path-style-access`,
//! `s3.access-key-id`, `s3.secret-access-key`) with iceberg's own `S3Config` parser, so a
//! `RestCatalog` gets them from Floe's table `config` plus its own catalog properties, as any
//! Iceberg client would. Whole-file writes (buffered, one PUT on close); range reads.
//!
//! iceberg-rust 0.10 builds the `FileIO` of a table returned by a commit from the catalog's own
//! properties only (a CommitTableResponse has no `config`), so tests reload a table before
//! writing through it again.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, S3Config, Storage, StorageConfig,
    StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// Builds [`S3Storage`] from FileIO properties.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct S3StorageFactory;

#[typetag::serde]
impl StorageFactory for S3StorageFactory {
    fn build(&self, config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(S3Storage {
            config: S3Config::try_from(config)?,
            stores: Arc::default(),
        }))
    }
}

/// `s3://bucket/key` files through object_store, one client per bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Storage {
    config: S3Config,
    #[serde(skip)]
    stores: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

fn error(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unexpected, what.to_string())
}

impl S3Storage {
    /// The bucket's client and the key of `location`.
    fn locate(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let url = url::Url::parse(location).map_err(error)?;
        if !matches!(url.scheme(), "s3" | "s3a") {
            return Err(error(format!("not an s3:// location: {location}")));
        }
        let bucket = url
            .host_str()
            .ok_or_else(|| error(format!("no bucket in {location}")))?;
        let path = Path::from_url_path(url.path().trim_start_matches('/')).map_err(error)?;
        let mut stores = self.stores.lock().unwrap();
        if let Some(store) = stores.get(bucket) {
            return Ok((store.clone(), path));
        }
        let config = &self.config;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(config.enable_virtual_host_style)
            .with_allow_http(true);
        // Tests talk to the local S3 server only, never to AWS.
        let endpoint = config.endpoint.as_ref().ok_or_else(|| {
            error(format!(
                "no s3.endpoint for {location}: the table config or the catalog must set it"
            ))
        })?;
        builder = builder.with_endpoint(endpoint);
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(error)?);
        stores.insert(bucket.to_string(), store.clone());
        Ok((store, path))
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for S3Storage {
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
        let result = store.get(&key).await.map_err(error)?;
        result.bytes().await.map_err(error)
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(S3Read { store, key }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let (store, key) = self.locate(path)?;
        store.put(&key, PutPayload::from(bs)).await.map_err(error)?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(S3Write {
            store,
            key,
            buffer: Vec::new(),
            closed: false,
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

struct S3Read {
    store: Arc<dyn ObjectStore>,
    key: Path,
}

#[async_trait]
impl FileRead for S3Read {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store.get_range(&self.key, range).await.map_err(error)
    }
}

/// Buffers the file and puts it whole on close.
struct S3Write {
    store: Arc<dyn ObjectStore>,
    key: Path,
    buffer: Vec<u8>,
    closed: bool,
}

#[async_trait]
impl FileWrite for S3Write {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        self.buffer.extend_from_slice(&bs);
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if self.closed {
            return Err(error("file already closed"));
        }
        self.closed = true;
        let bytes = Bytes::from(std::mem::take(&mut self.buffer));
        self.store
            .put(&self.key, PutPayload::from(bytes))
            .await
            .map_err(error)?;
        Ok(())
    }
}
