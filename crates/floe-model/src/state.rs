//! The world the model checks: the metadata store (pointers, idempotency keys, file marks), the
//! object store (metadata and data files), the processes, and a few ghost records that exist only
//! so that properties can be stated (what was acknowledged, what a pointer ever named).
//!
//! Everything is small and `Copy`-ish on purpose: the checker hashes every state it visits, and
//! bit sets keep those hashes cheap.

use crate::procs::Proc;

/// Tables in the model (table 1 is used only by the multi-table transaction scenario).
pub const TABLES: usize = 2;
/// Replicas (`floe serve` processes) sharing one metadata store.
pub const SERVERS: usize = 2;
/// Stands for "the metadata file being written" inside a metadata file whose id is not known
/// until step 4 allocates it (a new snapshot's id is its metadata file's id).
pub const PENDING: FileId = u8::MAX;

/// A file's id; unique for the life of a run, like the UUID in every name Floe writes.
pub type FileId = u8;
/// A set of row ids (each row is written by exactly one append, so it identifies that append).
pub type Rows = u16;

/// A set of file ids (also used for sets of snapshot ids: a snapshot's id is the id of the
/// metadata file that added it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileSet(pub u64);

impl FileSet {
    pub const EMPTY: FileSet = FileSet(0);

    pub fn one(id: FileId) -> Self {
        FileSet(1 << id)
    }
    pub fn contains(self, id: FileId) -> bool {
        id < 64 && self.0 & (1 << id) != 0
    }
    pub fn insert(&mut self, id: FileId) {
        self.0 |= 1 << id;
    }
    pub fn union(self, other: FileSet) -> FileSet {
        FileSet(self.0 | other.0)
    }
    pub fn minus(self, other: FileSet) -> FileSet {
        FileSet(self.0 & !other.0)
    }
    pub fn intersects(self, other: FileSet) -> bool {
        self.0 & other.0 != 0
    }
    pub fn is_subset(self, other: FileSet) -> bool {
        self.0 & !other.0 == 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn len(self) -> u32 {
        self.0.count_ones()
    }
    pub fn iter(self) -> impl Iterator<Item = FileId> {
        (0..64u8).filter(move |id| self.contains(*id))
    }
}

/// What a committed metadata file changed, as far as the table's rows are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// The table as it was when the run started.
    Initial,
    /// An append of one row (in one new data file).
    Append(u8),
    /// A copy-on-write delete of one row.
    Delete(u8),
    /// Compaction: the same rows in fewer files.
    Compact,
    /// Snapshot expiry: snapshots leave the metadata, the current one stays.
    Expire,
}

/// A metadata file's content, reduced to what the protocol and the maintenance jobs look at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Metadata {
    pub table: u8,
    /// Position in the table's history (the `<version>` of `<version>-<uuid>.metadata.json`).
    pub version: u8,
    /// The metadata file the commit read in step 1: its metadata log is the chain of parents.
    pub parent: Option<FileId>,
    /// The replica whose commit engine wrote it (`None`: the initial file).
    pub server: Option<u8>,
    pub change: Change,
    /// The live snapshots (ids).
    pub snapshots: FileSet,
    /// `main`.
    pub current: Option<FileId>,
    /// The data files of the snapshot this file added (its manifest list, in short), if it
    /// added one.
    pub snapshot_files: FileSet,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Content {
    Metadata(Metadata),
    Data { rows: Rows },
}

/// An unreferenced-file mark (two-phase removal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mark {
    None,
    /// Marked, not yet for `non-current-days`.
    Fresh,
    /// Marked long enough ago: the next run deletes it if it is still unreferenced.
    Due,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct File {
    pub table: u8,
    pub content: Content,
    /// Still in the object store. Content is kept after a delete so that properties can still
    /// say what a pointer or a snapshot meant.
    pub exists: bool,
    /// Older than the unreferenced-file age floor.
    pub old: bool,
    pub mark: Mark,
    /// How many times a put wrote this name (ghost: invariant 8 says at most once).
    pub writes: u8,
}

/// An idempotency key's row in the metadata store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Free,
    Claimed,
    Completed(Outcome),
}

/// The answer a commit gives (what the REST response says).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 200: the commit happened.
    Committed,
    /// 409: a requirement failed, or the attempts ran out.
    Conflict,
    /// 503: a dependency failed; the commit may or may not have happened.
    Unavailable,
}

impl Outcome {
    /// Whether an idempotency key records this answer for good (2xx and 4xx do; a 5xx releases
    /// the key so that a retry runs).
    pub fn is_final(self) -> bool {
        !matches!(self, Outcome::Unavailable)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct World {
    /// Each table's pointer row (its metadata location).
    pub pointers: [Option<FileId>; TABLES],
    pub files: Vec<File>,
    pub keys: Vec<Key>,
    pub procs: Vec<Proc>,
    /// Step 0's in-process commit turn: per replica and table, the process holding it.
    pub turns: [[Option<u8>; TABLES]; SERVERS],
    /// With the stale-cache mutation only: what each replica last saw of each pointer.
    pub pointer_cache: [[Option<FileId>; TABLES]; SERVERS],
    /// Faults (object store, metadata store, lost responses) that may still happen.
    pub faults_left: u8,
    /// Replica crashes that may still happen.
    pub crashes_left: u8,
    /// Whether the time that makes files older than the age floor may still pass.
    pub ticks_left: u8,
    /// Ghost: rows whose append a client was told succeeded, per table.
    pub acked: [Rows; TABLES],
    /// Ghost: every metadata file a pointer ever named.
    pub named: FileSet,
    /// Ghost: an attempt lost its race to a commit through its own replica.
    pub lost_to_own_replica: bool,
    /// Ghost: files unreferenced-file removal deleted.
    pub deleted_as_orphans: FileSet,
    /// Ghost: data files snapshot expiry deleted.
    pub deleted_by_expiry: FileSet,
}

impl World {
    pub fn metadata(&self, id: FileId) -> Option<&Metadata> {
        match &self.files.get(usize::from(id))?.content {
            Content::Metadata(metadata) => Some(metadata),
            Content::Data { .. } => None,
        }
    }

    pub fn exists(&self, id: FileId) -> bool {
        self.files.get(usize::from(id)).is_some_and(|f| f.exists)
    }

    pub fn rows(&self, files: FileSet) -> Rows {
        files
            .iter()
            .filter_map(|id| match &self.files.get(usize::from(id))?.content {
                Content::Data { rows } => Some(*rows),
                Content::Metadata(_) => None,
            })
            .fold(0, |all, rows| all | rows)
    }

    /// The data files of snapshot `id`.
    pub fn snapshot_files(&self, id: FileId) -> FileSet {
        self.metadata(id)
            .map(|m| m.snapshot_files)
            .unwrap_or_default()
    }

    /// The data files of `metadata`'s current snapshot.
    pub fn current_files(&self, metadata: &Metadata) -> FileSet {
        metadata
            .current
            .map(|id| self.snapshot_files(id))
            .unwrap_or_default()
    }

    /// Every data file any live snapshot of `metadata` reaches.
    pub fn reachable_files(&self, metadata: &Metadata) -> FileSet {
        metadata
            .snapshots
            .iter()
            .fold(FileSet::EMPTY, |all, id| all.union(self.snapshot_files(id)))
    }

    /// `from` and its ancestors, newest first (its metadata log and itself).
    pub fn lineage(&self, from: FileId) -> Vec<FileId> {
        let mut chain = vec![from];
        let mut at = from;
        while let Some(parent) = self.metadata(at).and_then(|m| m.parent) {
            if chain.contains(&parent) {
                break;
            }
            chain.push(parent);
            at = parent;
        }
        chain
    }

    pub fn lineage_set(&self, from: FileId) -> FileSet {
        self.lineage(from)
            .into_iter()
            .fold(FileSet::EMPTY, |mut all, id| {
                all.insert(id);
                all
            })
    }

    /// The changes committed to a table, oldest first.
    pub fn changes(&self, table: usize) -> Vec<Change> {
        let Some(pointer) = self.pointers[table] else {
            return Vec::new();
        };
        let mut changes: Vec<Change> = self
            .lineage(pointer)
            .into_iter()
            .filter_map(|id| self.metadata(id).map(|m| m.change))
            .collect();
        changes.reverse();
        changes
    }

    /// Rows whose append is in the table's committed history.
    pub fn appended_rows(&self, table: usize) -> Rows {
        self.changes(table)
            .into_iter()
            .filter_map(|change| match change {
                Change::Append(row) => Some(1 << row),
                _ => None,
            })
            .fold(0, |all, row| all | row)
    }

    /// A new file, young and unmarked; `None` once ids run out (the run is then cut there).
    pub fn add_file(&mut self, table: u8, content: Content) -> Option<FileId> {
        let id = FileId::try_from(self.files.len())
            .ok()
            .filter(|id| *id < 64)?;
        self.files.push(File {
            table,
            content,
            exists: true,
            old: false,
            mark: Mark::None,
            writes: 1,
        });
        Some(id)
    }

    pub fn delete(&mut self, id: FileId) {
        if let Some(file) = self.files.get_mut(usize::from(id)) {
            file.exists = false;
            file.mark = Mark::None;
        }
    }

    /// Moves a pointer, recording what it names for the properties.
    pub fn move_pointer(&mut self, table: usize, to: FileId) {
        self.pointers[table] = Some(to);
        self.named.insert(to);
    }
}

/// Iterates the table indices of a bit mask.
pub fn tables_of(mask: u8) -> impl Iterator<Item = usize> {
    (0..TABLES).filter(move |t| mask & (1 << t) != 0)
}
