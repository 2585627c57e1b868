//! The scrubber: checks that every file a table references is still there, whole.
//!
//! One pass over one table ([`scrub_table`]) reads the table's current metadata file (the one its
//! pointer names, from the warehouse, never from a cache), then every manifest list of every
//! snapshot still in that metadata — what branches, tags and the retention window keep — every
//! manifest those list, and every data and delete file their live entries name, with the
//! statistics files of those snapshots. Each file is checked once per pass, however many
//! snapshots reference it:
//!
//! - manifest lists and manifests are read whole (they must be parsed to go on), and a manifest's
//!   length must equal the `manifest_length` its list records;
//! - data, delete and statistics files are only asked for their size (an S3 `HEAD`), which must
//!   equal `file_size_in_bytes`: nothing of them is read;
//! - a *deep* pass also reads each Parquet file's footer (the last bytes: the footer length and
//!   the `PAR1` magic, then the footer itself, parsed with the `parquet` crate).
//!
//! A pass that found problems while the table moved on (a commit meanwhile) is done again from
//! the new state, so that files a concurrent expiry rightly removed are not reported; a table
//! that moves on under [`MAX_WALKS`] passes in a row fails the scrub (it is tried again later)
//! rather than recording findings that may be stale.
//!
//! What is wrong becomes a [`Problem`] (missing, size mismatch, unreadable metadata, manifest or
//! footer) naming the file and the snapshots that reference it, and the pass is recorded in the
//! metadata store ([`floe_store::ScrubStore::record_scrub`]): new problems open findings, problems
//! found again refresh theirs, and findings the pass no longer finds are resolved. A file outside
//! the warehouse (a registered table's) cannot be reached and is only counted.
//!
//! The pass is rate-limited ([`RateLimits`]): every request to the object store takes one token
//! from a requests-per-second bucket and every byte read one from a bytes-per-second bucket, each
//! holding at most one second's worth; a pass that runs out waits. The scheduler runs it slowly
//! by default (see [`crate::policy`]); `floe scrub` runs at full speed unless told otherwise.
//! A pass holds the table's *scrub* lease, so that replicas do not scrub one table twice at once,
//! but not the maintenance lease: it changes no table and deletes nothing, so it need not
//! exclude the jobs that do, and a job that died holding the maintenance lease (a SIGKILLed
//! `floe maintain`) does not hold up a scrub. What a pass would otherwise have to fear from a
//! concurrent job is a file that the job's commit rightly stopped referencing and then deleted
//! (expiry, unreferenced-file removal of a compaction's leftovers): such a file only goes after
//! the commit that dropped it, so the pass sees the pointer moved and walks again, as it must
//! anyway for other engines' commits, which no Floe lease excludes. Unreferenced-file removal
//! never deletes a file a snapshot references.
//!
//! Process-wide counters ([`counters`]) count requests, bytes read, files checked and problems by
//! kind, for the metrics of the server that runs the scrubs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use floe_commit::Catalog;
use floe_storage::{StorageError, Warehouse};
use floe_store::{FindingKind, Problem, ScrubPass, ScrubRecorded, TableName};
use iceberg::spec::{DataFileFormat, Manifest, ManifestList, TableMetadata};
use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
use tokio::time::Instant;

use crate::reachable::key;
use crate::{MaintenanceError, ProgressSink, Result};

/// How fast a pass may go; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Bytes read from the object store per second (whole manifests and metadata, footers).
    pub bytes_per_second: u64,
    /// Requests (reads and size checks) per second.
    pub requests_per_second: u64,
}

impl RateLimits {
    pub const UNLIMITED: RateLimits = RateLimits {
        bytes_per_second: 0,
        requests_per_second: 0,
    };
}

#[derive(Debug, Clone)]
pub struct ScrubOptions {
    /// Also read every Parquet file's footer.
    pub deep: bool,
    pub limits: RateLimits,
    /// Told how many files and bytes are checked so far (the data-file phase).
    pub progress: ProgressSink,
}

impl Default for ScrubOptions {
    fn default() -> Self {
        Self {
            deep: false,
            limits: RateLimits::UNLIMITED,
            progress: ProgressSink::default(),
        }
    }
}

/// What one pass checked and found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubReport {
    pub table: TableName,
    /// The metadata file the pass started from.
    pub metadata_location: String,
    pub deep: bool,
    /// Snapshots whose files were checked.
    pub snapshots: usize,
    /// Distinct files checked (metadata, manifest lists, manifests, data, delete, statistics).
    pub files_checked: u64,
    /// The sizes of the files found whole, added up.
    pub bytes_verified: u64,
    /// Bytes read from the object store.
    pub bytes_read: u64,
    /// Requests made to the object store.
    pub requests: u64,
    /// Files outside the warehouse, which the pass cannot reach.
    pub outside_warehouse: u64,
    /// Whether the pass reached every file (no unreadable metadata or manifest stopped it).
    pub complete: bool,
    /// What is wrong, ordered by file.
    pub problems: Vec<Problem>,
    /// What recording the pass changed in the metadata store.
    pub recorded: ScrubRecorded,
}

/// Checks every file `table` references (see the module docs), records the findings, and
/// reports. Holds the table's scrub lease (not its maintenance lease) while it runs.
pub async fn scrub_table(
    catalog: &Catalog,
    table: &TableName,
    options: &ScrubOptions,
) -> Result<ScrubReport> {
    crate::with_scrub_lease(catalog, table, async {
        let mut report = walk(catalog, table, options).await?;
        // A writer that committed meanwhile may have removed files the pass still looked for
        // (an expiry deletes the files of the snapshots it dropped, after its commit): what the
        // table references now decides, so a pass with problems over a table that moved on is
        // done again, from its new state.
        let mut walks = 1;
        while !report.problems.is_empty() {
            let now = catalog.table_pointer(table).await?;
            if now.metadata_location == report.metadata_location {
                break;
            }
            if walks == MAX_WALKS {
                return Err(MaintenanceError::Conflict(format!(
                    "{table} changed during each of {MAX_WALKS} scrub passes that found \
                     problems; nothing recorded, scrub it again later"
                )));
            }
            report = walk(catalog, table, options).await?;
            walks += 1;
        }
        let mut checked: Vec<FindingKind> = vec![
            FindingKind::Missing,
            FindingKind::SizeMismatch,
            FindingKind::UnreadableManifest,
            FindingKind::UnreadableMetadata,
            FindingKind::MetadataChecksumMismatch,
        ];
        if options.deep {
            checked.push(FindingKind::UnreadableFooter);
        }
        let pass = ScrubPass {
            warehouse: catalog.warehouse().name().to_string(),
            table: table.clone(),
            problems: report.problems.clone(),
            checked,
            complete: report.complete,
        };
        report.recorded = catalog.store().scrub().record_scrub(&pass).await?;
        Ok(report)
    })
    .await
}

/// How many passes a scrub makes over a table whose pointer keeps moving before it gives up.
pub const MAX_WALKS: usize = 4;

/// One process-wide snapshot of the scrubber's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubCounters {
    pub requests_total: u64,
    pub bytes_read_total: u64,
    pub files_checked_total: u64,
    /// Problems found by passes, by kind (a problem found by two passes counts twice).
    pub problems_total: BTreeMap<FindingKind, u64>,
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static BYTES_READ: AtomicU64 = AtomicU64::new(0);
static FILES_CHECKED: AtomicU64 = AtomicU64::new(0);
static PROBLEMS: [AtomicU64; FindingKind::ALL.len()] =
    [const { AtomicU64::new(0) }; FindingKind::ALL.len()];

/// The scrubber's counters since the process started.
pub fn counters() -> ScrubCounters {
    ScrubCounters {
        requests_total: REQUESTS.load(Ordering::Relaxed),
        bytes_read_total: BYTES_READ.load(Ordering::Relaxed),
        files_checked_total: FILES_CHECKED.load(Ordering::Relaxed),
        problems_total: FindingKind::ALL
            .iter()
            .zip(&PROBLEMS)
            .map(|(kind, count)| (*kind, count.load(Ordering::Relaxed)))
            .collect(),
    }
}

/// A file the pass checks, with everything that references it.
#[derive(Debug)]
struct Referenced {
    location: String,
    /// The size the metadata records, when it records one.
    expected_size: Option<u64>,
    parquet: bool,
    snapshots: BTreeSet<i64>,
}

/// Files keyed by object path (two spellings of one location are one file), in path order.
type Files = BTreeMap<String, Referenced>;

fn reference(
    files: &mut Files,
    warehouse: &Warehouse,
    location: &str,
    expected_size: Option<u64>,
    parquet: bool,
    snapshots: impl IntoIterator<Item = i64>,
) {
    files
        .entry(key(warehouse, location))
        .or_insert_with(|| Referenced {
            location: location.to_string(),
            expected_size,
            parquet,
            snapshots: BTreeSet::new(),
        })
        .snapshots
        .extend(snapshots);
}

async fn walk(catalog: &Catalog, table: &TableName, options: &ScrubOptions) -> Result<ScrubReport> {
    let pointer = catalog.table_pointer(table).await?;
    let mut pass = Pass {
        warehouse: catalog.warehouse(),
        limiter: Limiter::new(options.limits),
        report: ScrubReport {
            table: table.clone(),
            metadata_location: pointer.metadata_location.clone(),
            deep: options.deep,
            snapshots: 0,
            files_checked: 0,
            bytes_verified: 0,
            bytes_read: 0,
            requests: 0,
            outside_warehouse: 0,
            complete: false,
            problems: Vec::new(),
            recorded: ScrubRecorded::default(),
        },
    };
    let Some(metadata) = pass
        .metadata(&pointer.metadata_location, pointer.checksum.as_ref())
        .await?
    else {
        return Ok(pass.finish());
    };
    let mut complete = true;
    let warehouse = catalog.warehouse();

    let mut lists = Files::new();
    for snapshot in metadata.snapshots() {
        let id = snapshot.snapshot_id();
        reference(
            &mut lists,
            warehouse,
            snapshot.manifest_list(),
            None,
            false,
            [id],
        );
        pass.report.snapshots += 1;
    }
    let mut manifests = Files::new();
    for list in lists.values() {
        let Some(bytes) = pass.read(list).await? else {
            complete = false;
            continue;
        };
        match ManifestList::parse_with_version(&bytes, metadata.format_version()) {
            Ok(parsed) => {
                for manifest in parsed.entries() {
                    let length = u64::try_from(manifest.manifest_length).ok();
                    reference(
                        &mut manifests,
                        warehouse,
                        &manifest.manifest_path,
                        length.filter(|length| *length > 0),
                        false,
                        list.snapshots.iter().copied(),
                    );
                }
            }
            Err(err) => {
                complete = false;
                pass.problem(list, FindingKind::UnreadableManifest, err.to_string());
            }
        }
    }

    let mut data = Files::new();
    for manifest in manifests.values() {
        let Some(bytes) = pass.read(manifest).await? else {
            complete = false;
            continue;
        };
        match Manifest::parse_avro(&bytes) {
            Ok(parsed) => {
                // Only live entries: a file an entry records as deleted may rightly be gone.
                for entry in parsed.entries().iter().filter(|entry| entry.is_alive()) {
                    let file = entry.data_file();
                    reference(
                        &mut data,
                        warehouse,
                        entry.file_path(),
                        Some(file.file_size_in_bytes()),
                        file.file_format() == DataFileFormat::Parquet,
                        manifest.snapshots.iter().copied(),
                    );
                }
            }
            Err(err) => {
                complete = false;
                pass.problem(manifest, FindingKind::UnreadableManifest, err.to_string());
            }
        }
    }
    let kept: BTreeSet<i64> = metadata.snapshots().map(|s| s.snapshot_id()).collect();
    for stats in metadata.statistics_iter() {
        if kept.contains(&stats.snapshot_id) {
            let size = u64::try_from(stats.file_size_in_bytes).ok();
            reference(
                &mut data,
                warehouse,
                &stats.statistics_path,
                size,
                false,
                [stats.snapshot_id],
            );
        }
    }
    for stats in metadata.partition_statistics_iter() {
        if kept.contains(&stats.snapshot_id) {
            let size = u64::try_from(stats.file_size_in_bytes).ok();
            reference(
                &mut data,
                warehouse,
                &stats.statistics_path,
                size,
                false,
                [stats.snapshot_id],
            );
        }
    }

    let total_bytes = data.values().filter_map(|file| file.expected_size).sum();
    options
        .progress
        .start("scrubbing", data.len() as u64, total_bytes);
    for file in data.values() {
        pass.check(file, options.deep).await?;
        options
            .progress
            .advance(1, file.expected_size.unwrap_or_default());
    }
    options.progress.finish();
    pass.report.complete = complete;
    Ok(pass.finish())
}

/// One pass's object-store traffic and what it found.
struct Pass<'a> {
    warehouse: &'a Warehouse,
    limiter: Limiter,
    report: ScrubReport,
}

impl Pass<'_> {
    fn finish(mut self) -> ScrubReport {
        self.report
            .problems
            .sort_by(|a, b| (&a.file, a.kind).cmp(&(&b.file, b.kind)));
        self.report
    }

    fn problem(&mut self, file: &Referenced, kind: FindingKind, detail: String) {
        self.problem_at(&file.location, kind, detail, &file.snapshots);
    }

    fn problem_at(
        &mut self,
        location: &str,
        kind: FindingKind,
        detail: String,
        snapshots: &BTreeSet<i64>,
    ) {
        if let Some(position) = FindingKind::ALL.iter().position(|k| *k == kind) {
            PROBLEMS[position].fetch_add(1, Ordering::Relaxed);
        }
        crate::metrics::scrub_problem(kind);
        self.report.problems.push(Problem {
            file: location.to_string(),
            kind,
            detail,
            snapshots: snapshots.iter().copied().collect(),
        });
    }

    fn checked(&mut self) {
        self.report.files_checked += 1;
        FILES_CHECKED.fetch_add(1, Ordering::Relaxed);
        crate::metrics::scrub_checked();
    }

    async fn request(&mut self) {
        self.report.requests += 1;
        REQUESTS.fetch_add(1, Ordering::Relaxed);
        crate::metrics::scrub_request();
        self.limiter.take_request().await;
    }

    async fn bytes(&mut self, bytes: u64) {
        self.report.bytes_read += bytes;
        BYTES_READ.fetch_add(bytes, Ordering::Relaxed);
        crate::metrics::scrub_bytes(bytes);
        self.limiter.take_bytes(bytes).await;
    }

    /// The current metadata file, parsed; `None` (and a problem) when it is missing, differs from
    /// the checksum its pointer records, or does not parse, since nothing else can then be checked.
    async fn metadata(
        &mut self,
        location: &str,
        recorded: Option<&floe_store::FileChecksum>,
    ) -> Result<Option<TableMetadata>> {
        let file = Referenced {
            location: location.to_string(),
            expected_size: None,
            parquet: false,
            snapshots: BTreeSet::new(),
        };
        let Some(bytes) = self.read(&file).await? else {
            return Ok(None);
        };
        // Rows written before pointers recorded checksums have none: the commit engine records
        // one on its next read.
        if let Some(recorded) = recorded
            && !recorded.matches(&bytes)
        {
            let found = floe_store::FileChecksum::of(&bytes);
            self.problem(
                &file,
                FindingKind::MetadataChecksumMismatch,
                format!("the pointer records {recorded}, the file is {found}"),
            );
            return Ok(None);
        }
        match serde_json::from_slice::<TableMetadata>(&bytes) {
            Ok(metadata) => Ok(Some(metadata)),
            Err(err) => {
                self.problem(&file, FindingKind::UnreadableMetadata, err.to_string());
                Ok(None)
            }
        }
    }

    /// Reads a whole file and checks its size; `None` when it is missing (a problem) or outside
    /// the warehouse. Other failures (the store is down) end the pass.
    async fn read(&mut self, file: &Referenced) -> Result<Option<bytes::Bytes>> {
        self.checked();
        self.request().await;
        let bytes = match self.warehouse.get(&file.location).await {
            Ok(bytes) => bytes,
            Err(StorageError::NotFound { .. }) => {
                self.problem(file, FindingKind::Missing, "the file does not exist".into());
                return Ok(None);
            }
            Err(StorageError::InvalidLocation { .. }) => {
                self.report.outside_warehouse += 1;
                return Ok(None);
            }
            Err(err) => return Err(err.into()),
        };
        let size = bytes.len() as u64;
        self.bytes(size).await;
        match file.expected_size {
            Some(expected) if expected != size => {
                self.problem(file, FindingKind::SizeMismatch, size_detail(expected, size));
            }
            _ => self.report.bytes_verified += size,
        }
        Ok(Some(bytes))
    }

    /// Checks a data, delete or statistics file: its size, and on a deep pass its footer.
    async fn check(&mut self, file: &Referenced, deep: bool) -> Result<()> {
        self.checked();
        self.request().await;
        let size = match self.warehouse.size(&file.location).await {
            Ok(size) => size,
            Err(StorageError::NotFound { .. }) => {
                self.problem(file, FindingKind::Missing, "the file does not exist".into());
                return Ok(());
            }
            Err(StorageError::InvalidLocation { .. }) => {
                self.report.outside_warehouse += 1;
                return Ok(());
            }
            Err(err) => return Err(err.into()),
        };
        if let Some(expected) = file.expected_size
            && expected != size
        {
            self.problem(file, FindingKind::SizeMismatch, size_detail(expected, size));
            return Ok(());
        }
        if deep
            && file.parquet
            && let Some(detail) = self.footer_problem(&file.location, size).await?
        {
            self.problem(file, FindingKind::UnreadableFooter, detail);
            return Ok(());
        }
        self.report.bytes_verified += size;
        Ok(())
    }

    /// What is wrong with the Parquet footer of the file at `location`, of `size` bytes, if
    /// anything: one ranged read of the file's tail, a second when the footer is longer.
    async fn footer_problem(&mut self, location: &str, size: u64) -> Result<Option<String>> {
        const TAIL: usize = 8;
        // `PAR1`, then at least the footer's length and closing magic.
        if size < 4 + TAIL as u64 {
            return Ok(Some(format!(
                "{size} bytes is too short for a Parquet file"
            )));
        }
        let read = size.min(FOOTER_READ);
        let Some(tail) = self.read_range(location, size - read..size).await? else {
            return Ok(Some("the file vanished while its footer was read".into()));
        };
        let Some(last) = tail.len().checked_sub(TAIL).map(|start| &tail[start..]) else {
            return Ok(Some("the store returned fewer bytes than asked".into()));
        };
        let footer = match FooterTail::try_from(last) {
            Ok(footer) => footer,
            Err(err) => return Ok(Some(format!("the footer's tail: {err}"))),
        };
        // An encrypted footer needs its key to be parsed; its magic is all that can be checked.
        if footer.is_encrypted_footer() {
            return Ok(None);
        }
        let length = footer.metadata_length() as u64;
        if length + TAIL as u64 + 4 > size {
            return Ok(Some(format!(
                "the footer claims {length} bytes, more than the file's {size}"
            )));
        }
        let metadata = if length + TAIL as u64 <= read {
            let end = tail.len() - TAIL;
            tail.slice(end - length as usize..end)
        } else {
            let end = size - TAIL as u64;
            match self.read_range(location, end - length..end).await? {
                Some(bytes) => bytes,
                None => return Ok(Some("the file vanished while its footer was read".into())),
            }
        };
        Ok(ParquetMetaDataReader::decode_metadata(&metadata)
            .err()
            .map(|err| format!("the footer does not parse: {err}")))
    }

    async fn read_range(
        &mut self,
        location: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<bytes::Bytes>> {
        self.request().await;
        self.bytes(range.end - range.start).await;
        match self.warehouse.get_range(location, range).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

/// How much of a Parquet file's tail a deep check reads at first: most footers fit.
const FOOTER_READ: u64 = 64 * 1024;

fn size_detail(expected: u64, actual: u64) -> String {
    format!("the metadata records {expected} bytes; the file has {actual}")
}

/// The pass's two token buckets.
struct Limiter {
    bytes: Option<Bucket>,
    requests: Option<Bucket>,
}

impl Limiter {
    fn new(limits: RateLimits) -> Self {
        let now = Instant::now();
        let bucket = |rate: u64| (rate > 0).then(|| Bucket::new(rate, now));
        Self {
            bytes: bucket(limits.bytes_per_second),
            requests: bucket(limits.requests_per_second),
        }
    }

    async fn take_request(&mut self) {
        if let Some(bucket) = &mut self.requests {
            wait(bucket.take(1, Instant::now())).await;
        }
    }

    async fn take_bytes(&mut self, bytes: u64) {
        if let Some(bucket) = &mut self.bytes {
            wait(bucket.take(bytes, Instant::now())).await;
        }
    }
}

async fn wait(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

/// A token bucket that holds at most one second's worth and may go into debt: taking more than
/// there is succeeds, and the taker waits until the debt would be paid. So a read larger than a
/// second's worth (a big manifest) still goes, and the pass then pauses as long as it should.
#[derive(Debug)]
struct Bucket {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_second: u64, now: Instant) -> Self {
        Self {
            per_second: per_second as f64,
            tokens: per_second as f64,
            last: now,
        }
    }

    /// Takes `amount` tokens at `now`; returns how long to wait before going on.
    fn take(&mut self, amount: u64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.tokens -= amount as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_a_seconds_worth_through_then_paces() {
        let start = Instant::now();
        let mut bucket = Bucket::new(10, start);
        for _ in 0..10 {
            assert_eq!(bucket.take(1, start), Duration::ZERO);
        }
        // The eleventh request in the same instant waits a tenth of a second.
        assert_eq!(bucket.take(1, start), Duration::from_millis(100));
        // Half a second later, the debt is paid and four more are free.
        let later = start + Duration::from_millis(500);
        for _ in 0..4 {
            assert_eq!(bucket.take(1, later), Duration::ZERO);
        }
        assert!(bucket.take(1, later) > Duration::ZERO);
    }

    #[test]
    fn a_bucket_never_saves_more_than_a_second() {
        let start = Instant::now();
        let mut bucket = Bucket::new(1000, start);
        let idle = start + Duration::from_secs(3600);
        assert_eq!(bucket.take(1000, idle), Duration::ZERO);
        assert_eq!(bucket.take(500, idle), Duration::from_millis(500));
    }

    #[test]
    fn a_read_bigger_than_a_second_goes_and_then_waits() {
        let start = Instant::now();
        let mut bucket = Bucket::new(100, start);
        assert_eq!(bucket.take(350, start), Duration::from_millis(2500));
    }
}
