//! iceberg-rust's `FileIO` over a warehouse's own object store, for the server-side work that reads
//! and writes table files (maintenance jobs, SQL on a data dir): it reaches every warehouse the
//! server reaches — local directory, S3, memory — with the server's own settings and credentials,
//! where iceberg 0.10 alone only has local and in-memory storage.
//!
//! Every path is checked to be inside the warehouse ([`Warehouse::object_path`]) before it is
//! touched, so no job can read, write or delete outside it, whatever a manifest says.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use floe_storage::Warehouse;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage,
    StorageConfig, StorageFactory,
};
use iceberg::{Error, ErrorKind, Result};
use object_store::buffered::BufWriter;
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

/// Builds [`WarehouseStorage`]. (De)serializable only because iceberg's storage registry asks for
/// it; a deserialized factory has no warehouse and refuses every path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WarehouseStorageFactory {
    #[serde(skip)]
    warehouse: Option<Warehouse>,
}

#[typetag::serde]
impl StorageFactory for WarehouseStorageFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        Ok(Arc::new(WarehouseStorage {
            warehouse: self.warehouse.clone(),
        }))
    }
}

/// Files inside one warehouse, through its object store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WarehouseStorage {
    #[serde(skip)]
    warehouse: Option<Warehouse>,
}

fn error(what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Unexpected, what.to_string())
}

impl WarehouseStorage {
    /// The store and the key of `location`, which must be inside the warehouse.
    fn locate(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, Path)> {
        let warehouse = self
            .warehouse
            .as_ref()
            .ok_or_else(|| error("this FileIO was deserialized and reaches no warehouse"))?;
        let path = warehouse
            .object_path(location)
            .map_err(|err| Error::new(ErrorKind::DataInvalid, err.to_string()))?;
        Ok((warehouse.store().clone(), path))
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for WarehouseStorage {
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
