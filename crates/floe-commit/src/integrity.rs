//! Integrity-checked reads of current metadata files (see *Integrity* in `floe_store`).
//!
//! Every pointer records the size and SHA-256 of the metadata file it names, taken of the bytes
//! the commit engine wrote (hashed in memory, before the upload: no extra read) or, registering
//! a table, of the bytes it read. Every read of a table's or view's *current* metadata file that
//! is not served from the metadata cache goes through [`Catalog::read_current`] or
//! [`Catalog::read_current_view`], which compare the bytes with the pointer's record before
//! anything parses them:
//!
//! - **They match**: the file is served, and cached (tables) with its checksum, so that a later
//!   hit costs one comparison of 32 bytes and no hashing.
//! - **They differ** (a truncated, overwritten or rotted file; another file copied over it): the
//!   read fails with [`CommitError::Corrupt`] (503), naming the table and the file, the mismatch
//!   is counted ([`integrity_failures_total`]), logged at WARN, and nothing is cached: the table
//!   is never served as a state that nobody committed.
//! - **The row has no checksum** (written before checksums were recorded): the read takes the
//!   checksum of what it fetched and records it with [`MetadataStore::record_checksum`], which
//!   updates the row only if it still names this file, so every later read verifies.
//!
//! [`MetadataStore::record_checksum`]: floe_store::MetadataStore::record_checksum

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use floe_store::{FileChecksum, PointerKind, TableName, TablePointer};
use tracing::{debug, warn};

use crate::{Catalog, CommitError, MetadataFile, Result};

/// Reads of a metadata file whose bytes did not match their pointer's record.
static INTEGRITY_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many reads of a current metadata file in this process found bytes other than the ones
/// their pointer records: a non-zero value means a metadata file was changed or damaged after
/// it was committed.
pub fn integrity_failures_total() -> u64 {
    INTEGRITY_FAILURES.load(Ordering::Relaxed)
}

impl Catalog {
    /// The table's current metadata file, as `pointer` names it: from the cache if it holds the
    /// file the pointer records, otherwise read, verified and cached (see the module docs).
    pub(crate) async fn read_current(
        &self,
        table: &TableName,
        pointer: &TablePointer,
    ) -> Result<Arc<MetadataFile>> {
        let location = &pointer.metadata_location;
        if let Some(file) = self.cache.get(location)
            && pointer
                .checksum
                .as_ref()
                .is_none_or(|recorded| recorded == file.checksum())
        {
            return Ok(file);
        }
        let bytes = self.warehouse.get(location).await?;
        let checksum = self
            .verify(PointerKind::Table, table, pointer, &bytes)
            .await?;
        let file = Arc::new(MetadataFile::parse_checked(location, bytes, checksum)?);
        self.cache.insert(location, file.clone());
        Ok(file)
    }

    /// The view's current metadata file's bytes, as `pointer` names it, verified (views are not
    /// cached: see `views`).
    pub(crate) async fn read_current_view(
        &self,
        view: &TableName,
        pointer: &TablePointer,
    ) -> Result<Bytes> {
        let bytes = self.warehouse.get(&pointer.metadata_location).await?;
        self.verify(PointerKind::View, view, pointer, &bytes)
            .await?;
        Ok(bytes)
    }

    /// Compares `bytes`, read from the file `pointer` names, with the pointer's record, or
    /// records their checksum in a row that has none. Returns their checksum.
    async fn verify(
        &self,
        kind: PointerKind,
        name: &TableName,
        pointer: &TablePointer,
        bytes: &[u8],
    ) -> Result<FileChecksum> {
        let location = &pointer.metadata_location;
        let Some(recorded) = &pointer.checksum else {
            let checksum = FileChecksum::of(bytes);
            self.backfill(kind, name, location, &checksum).await;
            return Ok(checksum);
        };
        if recorded.matches(bytes) {
            return Ok(recorded.clone());
        }
        let found = FileChecksum::of(bytes);
        INTEGRITY_FAILURES.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::INTEGRITY_FAILURES).increment(1);
        warn!(
            %kind,
            %name,
            file = %location,
            expected = %recorded,
            found = %found,
            "a metadata file does not match the checksum its pointer records; refusing to serve it"
        );
        self.record_finding(name, location, recorded, &found).await;
        Err(CommitError::Corrupt(format!(
            "metadata file {location} of {kind} {name} does not match its checksum \
             (expected {recorded}, found {found}): the file was changed or damaged after it was \
             committed; see floe scrub / floe repair"
        )))
    }

    /// Records a mismatch as an open scrub finding of the table, so that `floe scrub`, the
    /// management API and `floe maintenance history` show it like the scrubber's own. It resolves
    /// nothing (the read checked nothing else); a failure to record is logged, and the read still
    /// fails.
    async fn record_finding(
        &self,
        name: &TableName,
        location: &str,
        recorded: &FileChecksum,
        found: &FileChecksum,
    ) {
        use floe_store::{FindingKind, Problem, ScrubPass};
        let pass = ScrubPass {
            warehouse: self.warehouse.name().to_string(),
            table: name.clone(),
            problems: vec![Problem {
                file: location.to_string(),
                kind: FindingKind::MetadataChecksumMismatch,
                detail: format!("the pointer records {recorded}, the file is {found}"),
                snapshots: Vec::new(),
            }],
            checked: Vec::new(),
            complete: false,
        };
        if let Err(err) = self.store.scrub().record_scrub(&pass).await {
            warn!(%name, file = %location, error = %err, "could not record the scrub finding");
        }
    }

    /// Records the checksum of a row written before checksums were. A failure only means the
    /// next read tries again, so it is logged, not returned.
    async fn backfill(
        &self,
        kind: PointerKind,
        name: &TableName,
        location: &str,
        checksum: &FileChecksum,
    ) {
        match self
            .store
            .record_checksum(kind, name, location, checksum)
            .await
        {
            Ok(true) => {
                debug!(%kind, %name, file = location, "recorded the checksum of a metadata file committed before checksums were")
            }
            Ok(false) => {}
            Err(err) => {
                warn!(%kind, %name, file = location, error = %err, "cannot record a metadata file's checksum; the next read tries again")
            }
        }
    }
}

#[cfg(test)]
mod tests;
