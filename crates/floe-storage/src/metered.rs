//! [`MeteredStore`]: every object-store call a [`Warehouse`](crate::Warehouse) makes, counted and
//! timed (see [`crate::metrics`]).
//!
//! The wrapper sits under the warehouse, not in its methods, so that the calls made through
//! [`Warehouse::store`](crate::Warehouse::store) (Iceberg's FileIO reading and writing data files
//! for maintenance, purges) are measured too.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use metrics::{counter, histogram};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use crate::metrics::{DURATION, ERRORS, OPERATIONS, Operation};

/// An [`ObjectStore`] that records each call of the store it wraps.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The inner store's own name: logs and errors read as before.
        fmt::Display::fmt(&self.inner, f)
    }
}

/// Whether an error is a failure rather than an answer (missing, already there, unchanged).
fn is_failure(err: &object_store::Error) -> bool {
    !matches!(
        err,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
    )
}

fn started(operation: Operation) -> Instant {
    counter!(OPERATIONS, "operation" => operation.as_str()).increment(1);
    Instant::now()
}

fn finished<T>(operation: Operation, since: Instant, result: &Result<T>) {
    histogram!(DURATION, "operation" => operation.as_str()).record(since.elapsed().as_secs_f64());
    if let Err(err) = result {
        failed(operation, err);
    }
}

fn failed(operation: Operation, err: &object_store::Error) {
    if is_failure(err) {
        counter!(ERRORS, "operation" => operation.as_str()).increment(1);
    }
}

async fn measure<T>(operation: Operation, call: impl Future<Output = Result<T>>) -> Result<T> {
    let since = started(operation);
    let result = call.await;
    finished(operation, since, &result);
    result
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        measure(Operation::Put, self.inner.put_opts(location, payload, opts)).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        measure(
            Operation::PutMultipart,
            self.inner.put_multipart_opts(location, opts),
        )
        .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let operation = if options.head {
            Operation::Head
        } else {
            Operation::Get
        };
        measure(operation, self.inner.get_opts(location, options)).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        measure(Operation::Get, self.inner.get_ranges(location, ranges)).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Batched by the inner store (S3 deletes up to 1000 keys a request): counted per path,
        // timed per answer.
        let mut since = Instant::now();
        self.inner
            .delete_stream(locations)
            .map(move |result| {
                counter!(OPERATIONS, "operation" => Operation::Delete.as_str()).increment(1);
                finished(Operation::Delete, since, &result);
                since = Instant::now();
                result
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        metered_listing(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        // Forwarded, not left to the default: stores that list from an offset themselves (S3's
        // start-after) keep doing so.
        metered_listing(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        measure(Operation::List, self.inner.list_with_delimiter(prefix)).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        measure(Operation::Copy, self.inner.copy_opts(from, to, options)).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        measure(Operation::Rename, self.inner.rename_opts(from, to, options)).await
    }
}

/// A listing, counted when it starts and timed until its last page.
fn metered_listing(
    listing: BoxStream<'static, Result<ObjectMeta>>,
) -> BoxStream<'static, Result<ObjectMeta>> {
    let since = started(Operation::List);
    let mut done = false;
    let end = futures::stream::poll_fn(move |_| {
        if !done {
            done = true;
            histogram!(DURATION, "operation" => Operation::List.as_str())
                .record(since.elapsed().as_secs_f64());
        }
        Poll::Ready(None)
    });
    listing
        .inspect(|item| {
            if let Err(err) = item {
                failed(Operation::List, err);
            }
        })
        .chain(end)
        .boxed()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use metrics::{SharedString, Unit};
    use metrics_util::CompositeKey;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    type Recorded = (CompositeKey, Option<Unit>, Option<SharedString>, DebugValue);

    use crate::Warehouse;
    use crate::metrics::{DURATION, ERRORS, OPERATIONS};

    /// The value of the counter `name` with `operation`, or the number of observations of the
    /// histogram; 0 when it was never recorded.
    fn recorded(snapshot: &[Recorded], name: &str, operation: &str) -> u64 {
        snapshot
            .iter()
            .filter(|(key, ..)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|label| label.key() == "operation" && label.value() == operation)
            })
            .map(|(_, _, _, value)| match value {
                DebugValue::Counter(count) => *count,
                DebugValue::Histogram(observations) => observations.len() as u64,
                DebugValue::Gauge(_) => 0,
            })
            .sum()
    }

    #[test]
    fn calls_are_counted_and_timed_by_operation_and_only_failures_are_errors() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let warehouse = Warehouse::local("main", dir.path()).unwrap();
                let file = format!("{}/t/metadata/a.json", warehouse.root());
                let bytes = Bytes::from_static(b"{}");
                warehouse.put_new(&file, bytes.clone()).await.unwrap();
                // Answers, not failures: the file is there already; another is not.
                assert!(warehouse.put_new(&file, bytes).await.is_err());
                let missing = format!("{}/t/metadata/missing.json", warehouse.root());
                assert!(warehouse.get(&missing).await.is_err());
                warehouse.get(&file).await.unwrap();
                assert_eq!(warehouse.size(&file).await.unwrap(), 2);
                let listed = warehouse
                    .list_under(&format!("{}/t", warehouse.root()))
                    .await
                    .unwrap();
                assert_eq!(listed, std::slice::from_ref(&file));
            });
        });
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(recorded(&snapshot, OPERATIONS, "put"), 2);
        assert_eq!(recorded(&snapshot, OPERATIONS, "get"), 2);
        assert_eq!(recorded(&snapshot, OPERATIONS, "head"), 1);
        assert_eq!(recorded(&snapshot, OPERATIONS, "list"), 1);
        assert_eq!(recorded(&snapshot, DURATION, "put"), 2);
        assert_eq!(recorded(&snapshot, DURATION, "list"), 1, "timed to its end");
        for operation in ["put", "get", "head", "list"] {
            assert_eq!(recorded(&snapshot, ERRORS, operation), 0, "{operation}");
        }
    }
}
