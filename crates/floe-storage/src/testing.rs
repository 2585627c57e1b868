//! Fault injection for tests (feature `fault-injection`): [`FaultyStore`] wraps any
//! [`ObjectStore`] and makes chosen calls fail, hang or slow down, so that tests can check what a
//! commit leaves behind when the object store fails at each step.
//!
//! ```
//! # use std::sync::Arc;
//! # use floe_storage::testing::{Fault, FaultyStore, Op};
//! let store = Arc::new(FaultyStore::new(Arc::new(object_store::memory::InMemory::new())));
//! store.fail_nth(Op::Put, 2, Fault::Unavailable); // the 2nd put from now on fails
//! store.fail_randomly(0.1, 42, Fault::Unavailable); // and 10% of every call, seeded
//! ```
//!
//! Calls are counted per [`Op`]; [`FaultyStore::calls`] tells how many a piece of code made, which
//! is how a test finds every step it can break.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// The kinds of call a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Put,
    Get,
    Delete,
    List,
    Copy,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails at once with a transient error, like a 503 after the client's retries.
    Unavailable,
    /// Fails at once with a permanent error: access denied.
    Denied,
    /// Waits, then fails with a transient timeout error.
    Timeout(Duration),
    /// Waits, then does the call: a slow store.
    Latency(Duration),
    /// Does the call, then reports a transient error: the write landed but its response was lost,
    /// so the caller cannot know it landed. Only puts and deletes; other calls fail plainly.
    FailAfter,
    /// Does the put, then reports that the object already exists: what a conditional put looks
    /// like when the client retried it after a 5xx whose request had in fact landed. Only puts.
    LandedThenExists,
    /// A write cut short: the put starts a multipart upload of the object on the inner store,
    /// sends the first half of the bytes, then drops the upload without completing it (the
    /// connection or the process died) and fails. Stores stage such writes away from the name (a
    /// local store writes `<name>#<n>` and renames on completion; S3 keeps an incomplete upload
    /// invisible), so nothing must appear under the name. Only puts; other calls fail plainly.
    CutShort,
    /// Fails with the local filesystem's "No space left on device" (ENOSPC), as a full disk under
    /// a local warehouse does. Only puts; other calls fail plainly.
    NoSpace,
}

#[derive(Debug)]
enum Trigger {
    /// The call of this op whose count (1-based) reaches this number.
    Nth(Op, u64),
    /// Every call (of `op`, or of every op), with this probability.
    Random { op: Option<Op>, probability: f64 },
}

#[derive(Debug)]
struct Rule {
    trigger: Trigger,
    fault: Fault,
}

#[derive(Debug, Default)]
struct State {
    calls: HashMap<Op, u64>,
    rules: Vec<Rule>,
    injected: u64,
    rng: u64,
}

/// An [`ObjectStore`] that injects faults into calls to an inner store. See the module docs.
#[derive(Debug)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    faults: Faults,
}

/// The rules and counters, shared with the streams that outlive a call.
#[derive(Debug, Clone)]
struct Faults(Arc<Mutex<State>>);

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            faults: Faults(Arc::new(Mutex::new(State {
                rng: 0x9E37_79B9_7F4A_7C15,
                ..State::default()
            }))),
        }
    }

    /// A faulty store over a fresh in-memory store.
    pub fn in_memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()))
    }

    /// The `n`th call of `op` from now on (1 = the next one) gets `fault`, once.
    pub fn fail_nth(&self, op: Op, n: u64, fault: Fault) {
        let mut state = self.faults.state();
        let seen = state.calls.get(&op).copied().unwrap_or(0);
        state.rules.push(Rule {
            trigger: Trigger::Nth(op, seen + n.max(1)),
            fault,
        });
    }

    /// Every call, of any op, gets `fault` with `probability`; the choices follow `seed`.
    pub fn fail_randomly(&self, probability: f64, seed: u64, fault: Fault) {
        self.add_random(None, probability, seed, fault);
    }

    /// Every call of `op` gets `fault` with `probability`; the choices follow `seed`.
    pub fn fail_op_randomly(&self, op: Op, probability: f64, seed: u64, fault: Fault) {
        self.add_random(Some(op), probability, seed, fault);
    }

    fn add_random(&self, op: Option<Op>, probability: f64, seed: u64, fault: Fault) {
        let mut state = self.faults.state();
        state.rng = seed | 1;
        state.rules.push(Rule {
            trigger: Trigger::Random { op, probability },
            fault,
        });
    }

    /// Removes every rule; counts stay.
    pub fn clear(&self) {
        self.faults.state().rules.clear();
    }

    /// Calls of `op` so far, faulty ones included.
    pub fn calls(&self, op: Op) -> u64 {
        self.faults.state().calls.get(&op).copied().unwrap_or(0)
    }

    /// Faults injected so far (latency included).
    pub fn injected(&self) -> u64 {
        self.faults.state().injected
    }
}

impl Faults {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the call and picks its fault, if any.
    fn next_fault(&self, op: Op) -> Option<Fault> {
        let mut state = self.state();
        let count = {
            let count = state.calls.entry(op).or_insert(0);
            *count += 1;
            *count
        };
        let mut chosen = None;
        let mut index = 0;
        while index < state.rules.len() {
            let hit = match state.rules[index].trigger {
                Trigger::Nth(rule_op, n) => rule_op == op && n == count,
                Trigger::Random {
                    op: rule_op,
                    probability,
                } => {
                    rule_op.is_none_or(|rule_op| rule_op == op)
                        && next_random(&mut state.rng) < probability
                }
            };
            if hit && chosen.is_none() {
                chosen = Some(state.rules[index].fault);
                if matches!(state.rules[index].trigger, Trigger::Nth(..)) {
                    state.rules.remove(index);
                    continue;
                }
            }
            index += 1;
        }
        if chosen.is_some() {
            state.injected += 1;
        }
        chosen
    }

    /// Runs `call` under the fault `op` draws, if any.
    async fn run<T>(
        &self,
        op: Op,
        path: &Path,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let fault = self.next_fault(op);
        self.apply(fault, op, path, call).await
    }

    /// Runs `call` under `fault`.
    async fn apply<T>(
        &self,
        fault: Option<Fault>,
        op: Op,
        path: &Path,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match fault {
            None => call.await,
            Some(Fault::Latency(delay)) => {
                tokio::time::sleep(delay).await;
                call.await
            }
            Some(Fault::FailAfter) if matches!(op, Op::Put | Op::Delete) => {
                call.await?;
                Err(injected(path, "the response was lost after the call"))
            }
            Some(Fault::LandedThenExists) if op == Op::Put => {
                call.await?;
                Err(object_store::Error::AlreadyExists {
                    path: path.to_string(),
                    source: "injected fault: a retry found the first attempt's object".into(),
                })
            }
            Some(Fault::Timeout(delay)) => {
                tokio::time::sleep(delay).await;
                Err(injected(path, "request timed out"))
            }
            Some(Fault::Denied) => Err(denied(path)),
            Some(Fault::NoSpace) if op == Op::Put => Err(no_space()),
            Some(
                Fault::Unavailable
                | Fault::FailAfter
                | Fault::LandedThenExists
                | Fault::CutShort
                | Fault::NoSpace,
            ) => Err(injected(path, "503 Service Unavailable")),
        }
    }

    /// [`Fault::CutShort`] for a put of `payload`: half of it staged, never completed.
    async fn cut_short(
        &self,
        inner: &dyn ObjectStore,
        location: &Path,
        payload: PutPayload,
    ) -> Result<PutResult> {
        let bytes: Bytes = payload.into();
        let half = bytes.slice(..bytes.len() / 2);
        let mut upload = inner
            .put_multipart_opts(location, PutMultipartOptions::default())
            .await?;
        upload.put_part(half.clone().into()).await?;
        // Dropped, neither completed nor aborted: what a dead connection leaves behind.
        drop(upload);
        Err(injected(
            location,
            &format!(
                "connection reset: write cut short after {} of {} bytes",
                half.len(),
                bytes.len()
            ),
        ))
    }
}

/// What a local filesystem store reports when the disk is full.
fn no_space() -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(std::io::Error::from_raw_os_error(28)),
    }
}

fn denied(path: &Path) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: path.to_string(),
        source: "injected fault: access denied".into(),
    }
}

fn injected(path: &Path, what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultyStore",
        source: format!("injected fault on {path}: {what}").into(),
    }
}

/// xorshift64*: a uniform number in [0, 1).
fn next_random(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let fault = self.faults.next_fault(Op::Put);
        if fault == Some(Fault::CutShort) {
            return self
                .faults
                .cut_short(self.inner.as_ref(), location, payload)
                .await;
        }
        self.faults
            .apply(
                fault,
                Op::Put,
                location,
                self.inner.put_opts(location, payload, opts),
            )
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.faults
            .run(
                Op::Put,
                location,
                self.inner.put_multipart_opts(location, opts),
            )
            .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.faults
            .run(Op::Get, location, self.inner.get_opts(location, options))
            .await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.faults
            .run(Op::Get, location, self.inner.get_ranges(location, ranges))
            .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // One fault decision per path; each delete goes to the inner store on its own.
        let inner = self.inner.clone();
        let faults = self.faults.clone();
        locations
            .then(move |location| {
                let inner = inner.clone();
                let faults = faults.clone();
                async move {
                    let location = location?;
                    let one = futures::stream::iter([Ok(location.clone())]).boxed();
                    faults
                        .run(Op::Delete, &location, async {
                            match inner.delete_stream(one).next().await {
                                Some(result) => result,
                                None => Ok(location.clone()),
                            }
                        })
                        .await
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let at = prefix.cloned().unwrap_or_default();
        match self.faults.next_fault(Op::List) {
            None | Some(Fault::Latency(_)) => self.inner.list(prefix),
            Some(Fault::Denied) => futures::stream::once(async move { Err(denied(&at)) }).boxed(),
            Some(_) => {
                futures::stream::once(async move { Err(injected(&at, "503 Service Unavailable")) })
                    .boxed()
            }
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let at = prefix.cloned().unwrap_or_default();
        self.faults
            .run(Op::List, &at, self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.faults
            .run(Op::Copy, to, self.inner.copy_opts(from, to, options))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StorageError, Warehouse};

    fn local(dir: &std::path::Path) -> (Arc<FaultyStore>, Warehouse) {
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
        let faults = Arc::new(FaultyStore::new(Arc::new(local)));
        let root = url::Url::from_directory_path(dir).unwrap();
        (faults.clone(), Warehouse::new("main", root, faults))
    }

    /// object_store's local store stages every write in `<name>#<n>` and renames (or, for a
    /// create-only put, hard-links) it into place once complete, so a write cut short never shows
    /// under its name, and the dropped upload removes its staging file.
    #[tokio::test]
    async fn a_write_cut_short_never_appears_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let (faults, warehouse) = local(dir.path());
        let location = format!("{}/t/data/a.parquet", warehouse.root());
        faults.fail_nth(Op::Put, 1, Fault::CutShort);
        let err = warehouse
            .put_new(&location, Bytes::from(vec![7u8; 4096]))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("cut short after 2048 of 4096 bytes"),
            "{err}"
        );
        assert!(matches!(
            warehouse.get(&location).await,
            Err(StorageError::NotFound { .. })
        ));
        // The staging file goes once the dropped upload's clean-up has run.
        let mut left = Vec::new();
        for _ in 0..100 {
            left = std::fs::read_dir(dir.path().join("t/data"))
                .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
                .unwrap_or_default();
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(left.is_empty(), "left behind: {left:?}");
        // The next write of the same name is whole.
        warehouse
            .put_new(&location, Bytes::from(vec![7u8; 4096]))
            .await
            .unwrap();
        assert_eq!(warehouse.get(&location).await.unwrap().len(), 4096);
    }

    /// A full disk is a transient failure (space can come back), and says so.
    #[tokio::test]
    async fn no_space_left_is_unavailable_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let (faults, warehouse) = local(dir.path());
        let location = format!("{}/t/metadata/1.json", warehouse.root());
        faults.fail_nth(Op::Put, 1, Fault::NoSpace);
        let err = warehouse
            .put_new(&location, Bytes::from_static(b"{}"))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err}");
        assert!(err.to_string().contains("No space left on device"), "{err}");
        assert!(matches!(
            warehouse.get(&location).await,
            Err(StorageError::NotFound { .. })
        ));
        warehouse
            .put_new(&location, Bytes::from_static(b"{}"))
            .await
            .unwrap();
    }
}
