//! The processes of a run: clients committing through a replica (with or without an
//! `Idempotency-Key`), readers, and the maintenance jobs (compaction, a copy-on-write delete,
//! snapshot expiry, unreferenced-file removal) — each a small state machine whose steps are
//! single atomic operations on the stores. Jobs commit through the same [`Engine`] as clients.

use crate::engine::{Engine, Update};
use crate::model::{Choice, Fault, FloeModel, Mutation};
use crate::state::{
    Change, Content, FileId, FileSet, Key, Mark, Outcome, Rows, SERVERS, TABLES, World, tables_of,
};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Proc {
    Client(Client),
    Reader(Reader),
    Compaction(Compaction),
    Deleter(Deleter),
    Expiry(Expiry),
    Orphans(Orphans),
    /// A writer that uploaded a data file and died before committing it.
    LeftBehind {
        table: u8,
        row: u8,
        done: bool,
    },
}

/// A client appending one row through a replica's REST API.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client {
    pub server: u8,
    pub tables: u8,
    pub row: u8,
    pub pinned: Option<FileId>,
    pub key: Option<u8>,
    /// Retries left after a 503, a lost response or a crashed replica.
    pub tries_left: u8,
    /// Whether the first request went out (retries may go to either replica).
    pub sent: bool,
    pub files: [Option<FileId>; TABLES],
    pub phase: ClientPhase,
    pub engine: Option<Engine>,
    /// Ghosts for the properties.
    pub first_final: Option<Outcome>,
    pub answers_differ: bool,
    /// Files its latest run wrote, whether that run was refused (409 from its own commit, not a
    /// replay), and whether one of its clean-up deletes failed.
    pub wrote: FileSet,
    pub refused: bool,
    pub cleanup_failed: bool,
    pub won_after_losing: bool,
    pub settled_applied: bool,
    pub kept_unknown: bool,
    pub replayed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientPhase {
    /// Writes its data file(s).
    Upload,
    /// Sends the request (claiming its key first).
    Send,
    Running,
    /// Records the outcome under its key (a 5xx releases the key).
    Completing(Outcome),
    /// The response is on its way.
    Answer(Outcome),
    Done,
}

impl Client {
    pub fn new(server: u8, tables: u8, row: u8) -> Self {
        Client {
            server,
            tables,
            row,
            pinned: None,
            key: None,
            tries_left: 0,
            sent: false,
            files: [None; TABLES],
            phase: ClientPhase::Upload,
            engine: None,
            first_final: None,
            answers_differ: false,
            wrote: FileSet::EMPTY,
            refused: false,
            cleanup_failed: false,
            won_after_losing: false,
            settled_applied: false,
            kept_unknown: false,
            replayed: false,
        }
    }

    pub fn pinned(mut self, base: FileId) -> Self {
        self.pinned = Some(base);
        self
    }

    pub fn with_key(mut self, key: u8, tries: u8) -> Self {
        self.key = Some(key);
        self.tries_left = tries;
        self
    }

    /// Between its upload and its answer: holds a file it may still commit.
    fn busy(&self) -> bool {
        !matches!(self.phase, ClientPhase::Upload | ClientPhase::Done)
    }

    fn choices(&self, model: &FloeModel, world: &World, me: u8) -> Vec<Choice> {
        match self.phase {
            ClientPhase::Upload => vec![Choice::Ok],
            // The first request goes to its own replica; a retry to either.
            ClientPhase::Send if !self.sent => vec![Choice::Server(self.server)],
            ClientPhase::Send => (0..SERVERS as u8).map(Choice::Server).collect(),
            ClientPhase::Running => self
                .engine
                .as_ref()
                .map(|engine| engine.choices(model, world, me))
                .unwrap_or_default(),
            ClientPhase::Completing(_) => vec![Choice::Ok],
            ClientPhase::Answer(_) if model.allows(world, Fault::ResponseLost) => {
                vec![Choice::Ok, Choice::Fault(Fault::ResponseLost)]
            }
            ClientPhase::Answer(_) => vec![Choice::Ok],
            ClientPhase::Done => Vec::new(),
        }
    }

    fn step(&mut self, model: &FloeModel, world: &mut World, me: u8, choice: Choice) -> Option<()> {
        match self.phase {
            ClientPhase::Upload => {
                for t in tables_of(self.tables) {
                    let file = world.add_file(
                        t as u8,
                        Content::Data {
                            rows: 1 << self.row,
                        },
                    )?;
                    self.files[t] = Some(file);
                }
                self.phase = ClientPhase::Send;
            }
            ClientPhase::Send => {
                let Choice::Server(server) = choice else {
                    return None;
                };
                self.server = server;
                self.sent = true;
                let key = self
                    .key
                    .filter(|_| !model.has(Mutation::IdempotencyKeyIgnored));
                match key.map(|k| world.keys[usize::from(k)]) {
                    None | Some(Key::Free) => {
                        self.wrote = FileSet::EMPTY;
                        self.refused = false;
                        self.cleanup_failed = false;
                        if let Some(k) = key {
                            world.keys[usize::from(k)] = Key::Claimed;
                        }
                        let update = Update::Append {
                            row: self.row,
                            files: self.files,
                            pinned: self.pinned,
                        };
                        self.engine = Some(Engine::new(server, self.tables, update));
                        self.phase = ClientPhase::Running;
                    }
                    Some(Key::Claimed) => self.phase = ClientPhase::Answer(Outcome::Unavailable),
                    Some(Key::Completed(outcome)) => {
                        self.replayed = true;
                        self.phase = ClientPhase::Answer(outcome);
                    }
                }
            }
            ClientPhase::Running => {
                let engine = self.engine.as_mut()?;
                engine.step(model, world, me, choice)?;
                if let Some(outcome) = engine.outcome() {
                    self.wrote = engine.all_written;
                    self.refused = outcome == Outcome::Conflict;
                    self.cleanup_failed = engine.cleanup_failed;
                    self.settled_applied |= engine.settled_applied;
                    self.kept_unknown |= engine.kept_unknown;
                    self.won_after_losing |= outcome == Outcome::Committed && engine.attempt > 1;
                    self.engine = None;
                    self.phase = match self.key {
                        Some(_) if !model.has(Mutation::IdempotencyKeyIgnored) => {
                            ClientPhase::Completing(outcome)
                        }
                        _ => ClientPhase::Answer(outcome),
                    };
                }
            }
            ClientPhase::Completing(outcome) => {
                if let Some(k) = self.key {
                    world.keys[usize::from(k)] = if outcome.is_final() {
                        Key::Completed(outcome)
                    } else {
                        Key::Free
                    };
                }
                self.phase = ClientPhase::Answer(outcome);
            }
            ClientPhase::Answer(outcome) => {
                if choice == Choice::Fault(Fault::ResponseLost) {
                    world.faults_left = world.faults_left.saturating_sub(1);
                    self.retry_or_stop();
                    return Some(());
                }
                if outcome == Outcome::Committed {
                    for t in tables_of(self.tables) {
                        world.acked[t] |= 1 << self.row;
                    }
                }
                if outcome.is_final() {
                    match self.first_final {
                        None => self.first_final = Some(outcome),
                        Some(first) => self.answers_differ |= first != outcome,
                    }
                    self.phase = ClientPhase::Done;
                } else {
                    self.retry_or_stop();
                }
            }
            ClientPhase::Done => return None,
        }
        Some(())
    }

    fn retry_or_stop(&mut self) {
        if self.tries_left > 0 {
            self.tries_left -= 1;
            self.phase = ClientPhase::Send;
        } else {
            self.phase = ClientPhase::Done;
        }
    }

    /// Its replica crashed: the run is gone; the client sees a broken connection.
    fn crash(&mut self) {
        self.engine = None;
        self.retry_or_stop();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadResult {
    Rows(Rows),
    Error,
}

/// A reader: loads the table, picks a snapshot (the current one, or with `time_travel` any
/// live one), then reads its data files one at a time, as a scan does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reader {
    pub server: u8,
    pub table: u8,
    pub time_travel: bool,
    pub loaded: bool,
    /// Ghost: the load returned a state missing an acknowledged append.
    pub stale: bool,
    pub left: FileSet,
    pub expected: Rows,
    pub got: Rows,
    pub result: Option<ReadResult>,
}

impl Reader {
    pub fn new(server: u8, table: u8, time_travel: bool) -> Self {
        Reader {
            server,
            table,
            time_travel,
            loaded: false,
            stale: false,
            left: FileSet::EMPTY,
            expected: 0,
            got: 0,
            result: None,
        }
    }

    fn pointer(&self, model: &FloeModel, world: &World) -> Option<FileId> {
        let t = usize::from(self.table);
        if model.has(Mutation::StalePointerCache) {
            world.pointer_cache[usize::from(self.server)][t]
        } else {
            world.pointers[t]
        }
    }

    fn choices(&self, model: &FloeModel, world: &World) -> Vec<Choice> {
        if self.result.is_some() {
            return Vec::new();
        }
        if self.loaded {
            return vec![Choice::Ok];
        }
        let loaded = self
            .pointer(model, world)
            .filter(|p| world.exists(*p))
            .and_then(|p| world.metadata(p));
        let picks: Vec<Choice> = match loaded {
            Some(m) if self.time_travel => m.snapshots.iter().map(Choice::Pick).collect(),
            Some(m) => m.current.into_iter().map(Choice::Pick).collect(),
            None => Vec::new(),
        };
        if picks.is_empty() {
            vec![Choice::Ok]
        } else {
            picks
        }
    }

    fn step(&mut self, model: &FloeModel, world: &mut World, choice: Choice) -> Option<()> {
        if !self.loaded {
            self.loaded = true;
            let t = usize::from(self.table);
            let (Some(pointer), Choice::Pick(snapshot)) = (self.pointer(model, world), choice)
            else {
                self.result = Some(ReadResult::Error);
                return Some(());
            };
            if !world.exists(pointer) {
                self.result = Some(ReadResult::Error);
                return Some(());
            }
            let seen = world
                .lineage(pointer)
                .into_iter()
                .filter_map(|id| match world.metadata(id)?.change {
                    Change::Append(row) => Some(1 << row),
                    _ => None,
                })
                .fold(0, |all: Rows, row| all | row);
            self.stale = world.acked[t] & !seen != 0;
            self.left = world.snapshot_files(snapshot);
            self.expected = world.rows(self.left);
        } else if let Some(file) = self.left.iter().next() {
            if !world.exists(file) {
                self.result = Some(ReadResult::Error);
                return Some(());
            }
            self.got |= world.rows(FileSet::one(file));
            self.left = self.left.minus(FileSet::one(file));
        }
        if self.left.is_empty() && self.result.is_none() {
            self.result = Some(ReadResult::Rows(self.got));
        }
        Some(())
    }
}

/// How a maintenance job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobResult {
    Committed,
    Nothing,
    GaveUp,
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobPhase {
    Load,
    Write,
    Running,
    /// Compaction after a conflict: re-read, and rebase if every input is still live.
    Rebase,
    /// Expiry after its commit: delete what only the expired snapshots reached.
    Delete,
    Done(JobResult),
}

/// Bin-pack compaction of the current snapshot's files into one, as `floe_maintenance::compact`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Compaction {
    pub server: u8,
    pub phase: JobPhase,
    pub base: Option<FileId>,
    pub inputs: FileSet,
    pub output: Option<FileId>,
    pub rebases_left: u8,
    pub engine: Option<Engine>,
    /// Ghost: it rebased over a concurrent commit.
    pub rebased: bool,
}

impl Compaction {
    pub fn new(server: u8, rebases: u8) -> Self {
        Compaction {
            server,
            phase: JobPhase::Load,
            base: None,
            inputs: FileSet::EMPTY,
            output: None,
            rebases_left: rebases,
            engine: None,
            rebased: false,
        }
    }

    fn step(&mut self, model: &FloeModel, world: &mut World, me: u8, choice: Choice) -> Option<()> {
        match self.phase {
            JobPhase::Load => {
                let Some(metadata) = current_metadata(world, 0) else {
                    self.phase = JobPhase::Done(JobResult::Failed);
                    return Some(());
                };
                self.base = metadata.current;
                self.inputs = world.current_files(&metadata);
                self.phase = if self.inputs.len() < 2 {
                    JobPhase::Done(JobResult::Nothing)
                } else {
                    JobPhase::Write
                };
            }
            JobPhase::Write => {
                if !self.inputs.iter().all(|id| world.exists(id)) {
                    self.phase = JobPhase::Done(JobResult::Failed);
                    return Some(());
                }
                let rows = world.rows(self.inputs);
                let output = world.add_file(0, Content::Data { rows })?;
                self.output = Some(output);
                let base = self.base?;
                self.start(base, world.snapshot_files(base));
            }
            JobPhase::Running => {
                let engine = self.engine.as_mut()?;
                engine.step(model, world, me, choice)?;
                self.phase = match engine.outcome() {
                    None => JobPhase::Running,
                    Some(Outcome::Committed) => JobPhase::Done(JobResult::Committed),
                    Some(Outcome::Conflict) if self.rebases_left > 0 => JobPhase::Rebase,
                    Some(Outcome::Conflict) => {
                        self.forget_output(world);
                        JobPhase::Done(JobResult::GaveUp)
                    }
                    // The outcome may be unknown: the output stays (at worst unreferenced).
                    Some(Outcome::Unavailable) => JobPhase::Done(JobResult::Failed),
                };
            }
            JobPhase::Rebase => {
                self.rebases_left -= 1;
                let now = current_metadata(world, 0);
                match now {
                    Some(metadata)
                        if self.inputs.is_subset(world.current_files(&metadata))
                            && metadata.current.is_some() =>
                    {
                        self.rebased = true;
                        let base = metadata.current?;
                        self.start(base, world.current_files(&metadata));
                    }
                    _ => {
                        self.forget_output(world);
                        self.phase = JobPhase::Done(JobResult::GaveUp);
                    }
                }
            }
            JobPhase::Delete | JobPhase::Done(_) => return None,
        }
        Some(())
    }

    fn start(&mut self, base: FileId, base_files: FileSet) {
        let mut files = base_files.minus(self.inputs);
        if let Some(output) = self.output {
            files.insert(output);
        }
        let update = Update::Replace {
            base,
            files,
            change: Change::Compact,
        };
        self.engine = Some(Engine::new(self.server, 1, update));
        self.phase = JobPhase::Running;
    }

    fn forget_output(&mut self, world: &mut World) {
        if let Some(output) = self.output.take() {
            world.delete(output);
        }
    }
}

/// A copy-on-write `DELETE` of one row: the file holding it is rewritten without it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Deleter {
    pub server: u8,
    pub row: u8,
    pub phase: JobPhase,
    pub base: Option<FileId>,
    pub victim: Option<FileId>,
    pub replacement: Option<FileId>,
    pub engine: Option<Engine>,
}

impl Deleter {
    pub fn new(server: u8, row: u8) -> Self {
        Deleter {
            server,
            row,
            phase: JobPhase::Load,
            base: None,
            victim: None,
            replacement: None,
            engine: None,
        }
    }

    fn step(&mut self, model: &FloeModel, world: &mut World, me: u8, choice: Choice) -> Option<()> {
        match self.phase {
            JobPhase::Load => {
                let Some(metadata) = current_metadata(world, 0) else {
                    self.phase = JobPhase::Done(JobResult::Failed);
                    return Some(());
                };
                self.base = metadata.current;
                self.victim = world
                    .current_files(&metadata)
                    .iter()
                    .find(|id| world.rows(FileSet::one(*id)) & (1 << self.row) != 0);
                self.phase = match self.victim {
                    Some(_) => JobPhase::Write,
                    None => JobPhase::Done(JobResult::Nothing),
                };
            }
            JobPhase::Write => {
                let victim = self.victim?;
                if !world.exists(victim) {
                    self.phase = JobPhase::Done(JobResult::Failed);
                    return Some(());
                }
                let rest = world.rows(FileSet::one(victim)) & !(1 << self.row);
                let base = self.base?;
                let mut files = world.snapshot_files(base).minus(FileSet::one(victim));
                if rest != 0 {
                    let replacement = world.add_file(0, Content::Data { rows: rest })?;
                    self.replacement = Some(replacement);
                    files.insert(replacement);
                }
                let update = Update::Replace {
                    base,
                    files,
                    change: Change::Delete(self.row),
                };
                self.engine = Some(Engine::new(self.server, 1, update));
                self.phase = JobPhase::Running;
            }
            JobPhase::Running => {
                let engine = self.engine.as_mut()?;
                engine.step(model, world, me, choice)?;
                self.phase = match engine.outcome() {
                    None => JobPhase::Running,
                    Some(Outcome::Committed) => JobPhase::Done(JobResult::Committed),
                    Some(Outcome::Conflict) => {
                        if let Some(replacement) = self.replacement.take() {
                            world.delete(replacement);
                        }
                        JobPhase::Done(JobResult::GaveUp)
                    }
                    Some(Outcome::Unavailable) => JobPhase::Done(JobResult::Failed),
                };
            }
            _ => return None,
        }
        Some(())
    }
}

/// Snapshot expiry keeping only the current snapshot, as `floe_maintenance::expire`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Expiry {
    pub server: u8,
    pub phase: JobPhase,
    /// Data files the expired snapshots reach, as read before the commit.
    pub doomed: FileSet,
    pub retries_left: u8,
    pub engine: Option<Engine>,
    pub committed: Option<FileId>,
}

impl Expiry {
    pub fn new(server: u8, retries: u8) -> Self {
        Expiry {
            server,
            phase: JobPhase::Load,
            doomed: FileSet::EMPTY,
            retries_left: retries,
            engine: None,
            committed: None,
        }
    }

    fn step(&mut self, model: &FloeModel, world: &mut World, me: u8, choice: Choice) -> Option<()> {
        match self.phase {
            JobPhase::Load => {
                let Some(metadata) = current_metadata(world, 0) else {
                    self.phase = JobPhase::Done(JobResult::Failed);
                    return Some(());
                };
                let Some(current) = metadata.current else {
                    self.phase = JobPhase::Done(JobResult::Nothing);
                    return Some(());
                };
                let remove = metadata.snapshots.minus(FileSet::one(current));
                if remove.is_empty() {
                    self.phase = JobPhase::Done(JobResult::Nothing);
                    return Some(());
                }
                self.doomed = remove.iter().fold(FileSet::EMPTY, |all, id| {
                    all.union(world.snapshot_files(id))
                });
                let update = Update::Expire {
                    base: current,
                    remove,
                };
                self.engine = Some(Engine::new(self.server, 1, update));
                self.phase = JobPhase::Running;
            }
            JobPhase::Running => {
                let engine = self.engine.as_mut()?;
                engine.step(model, world, me, choice)?;
                self.phase = match engine.outcome() {
                    None => JobPhase::Running,
                    Some(Outcome::Committed) => {
                        self.committed = engine.committed_file(0);
                        JobPhase::Delete
                    }
                    Some(Outcome::Conflict) if self.retries_left > 0 => {
                        self.retries_left -= 1;
                        JobPhase::Load
                    }
                    Some(Outcome::Conflict) => JobPhase::Done(JobResult::GaveUp),
                    Some(Outcome::Unavailable) => JobPhase::Done(JobResult::Failed),
                };
            }
            JobPhase::Delete => {
                // Only after the commit, and minus what the committed metadata still reaches.
                let live = self
                    .committed
                    .and_then(|id| world.metadata(id))
                    .map(|m| world.reachable_files(m))
                    .unwrap_or_default();
                let delete = if model.has(Mutation::ExpiryWithoutSubtraction) {
                    self.doomed
                } else {
                    self.doomed.minus(live)
                };
                for id in delete.iter() {
                    if world.exists(id) {
                        world.delete(id);
                        world.deleted_by_expiry.insert(id);
                    }
                }
                self.phase = JobPhase::Done(JobResult::Committed);
            }
            _ => return None,
        }
        Some(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrphanPhase {
    List,
    Load,
    Act,
    Done,
}

/// Unreferenced-file removal, as `floe_maintenance::orphans`: list, then read the metadata,
/// then act on unreferenced files past the age floor — delete them (one phase, `floe maintain
/// --remove-orphans`), or mark them and delete them once marked long enough (two phases, the
/// scheduler).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Orphans {
    pub server: u8,
    pub two_phase: bool,
    pub runs_left: u8,
    pub phase: OrphanPhase,
    pub listed: FileSet,
    pub listed_old: FileSet,
    pub referenced: FileSet,
}

impl Orphans {
    pub fn new(server: u8, two_phase: bool, runs: u8) -> Self {
        Orphans {
            server,
            two_phase,
            runs_left: runs,
            phase: OrphanPhase::List,
            listed: FileSet::EMPTY,
            listed_old: FileSet::EMPTY,
            referenced: FileSet::EMPTY,
        }
    }

    fn step(&mut self, model: &FloeModel, world: &mut World) -> Option<()> {
        match self.phase {
            OrphanPhase::List => {
                self.listed = FileSet::EMPTY;
                self.listed_old = FileSet::EMPTY;
                for (index, file) in world.files.iter().enumerate() {
                    let id = FileId::try_from(index).ok()?;
                    if file.exists && file.table == 0 {
                        self.listed.insert(id);
                        if file.old {
                            self.listed_old.insert(id);
                        }
                    }
                }
                self.phase = OrphanPhase::Load;
            }
            OrphanPhase::Load => {
                let Some(pointer) = world.pointers[0].filter(|id| world.exists(*id)) else {
                    self.phase = OrphanPhase::Done;
                    return Some(());
                };
                let metadata = world.metadata(pointer)?;
                self.referenced = world
                    .lineage_set(pointer)
                    .union(world.reachable_files(metadata));
                self.phase = OrphanPhase::Act;
            }
            OrphanPhase::Act => {
                let aged = if model.has(Mutation::OrphanRemovalWithoutAgeFloor) {
                    self.listed
                } else {
                    self.listed_old
                };
                let candidates = aged.minus(self.referenced);
                let mut delete = candidates;
                if self.two_phase {
                    delete = FileSet::EMPTY;
                    for (index, file) in world.files.iter_mut().enumerate() {
                        let id = FileId::try_from(index).ok()?;
                        if !candidates.contains(id) {
                            file.mark = Mark::None;
                            continue;
                        }
                        match file.mark {
                            Mark::Due => delete.insert(id),
                            Mark::None => file.mark = Mark::Fresh,
                            Mark::Fresh => {}
                        }
                    }
                }
                for id in delete.iter() {
                    if world.exists(id) {
                        world.delete(id);
                        world.deleted_as_orphans.insert(id);
                    }
                }
                self.runs_left = self.runs_left.saturating_sub(1);
                self.phase = if self.runs_left > 0 {
                    OrphanPhase::List
                } else {
                    OrphanPhase::Done
                };
            }
            OrphanPhase::Done => return None,
        }
        Some(())
    }
}

fn current_metadata(world: &World, table: usize) -> Option<crate::state::Metadata> {
    let pointer = world.pointers[table].filter(|id| world.exists(*id))?;
    world.metadata(pointer).cloned()
}

impl Proc {
    pub fn choices(&self, model: &FloeModel, world: &World, me: u8) -> Vec<Choice> {
        let engine_or_ok = |engine: &Option<Engine>, phase: JobPhase| match phase {
            JobPhase::Done(_) => Vec::new(),
            JobPhase::Running => engine
                .as_ref()
                .map(|e| e.choices(model, world, me))
                .unwrap_or_default(),
            _ => vec![Choice::Ok],
        };
        match self {
            Proc::Client(client) => client.choices(model, world, me),
            Proc::Reader(reader) => reader.choices(model, world),
            Proc::Compaction(job) => engine_or_ok(&job.engine, job.phase),
            Proc::Deleter(job) => engine_or_ok(&job.engine, job.phase),
            Proc::Expiry(job) => engine_or_ok(&job.engine, job.phase),
            Proc::Orphans(job) if job.phase == OrphanPhase::Done => Vec::new(),
            Proc::Orphans(_) => vec![Choice::Ok],
            Proc::LeftBehind { done: true, .. } => Vec::new(),
            Proc::LeftBehind { .. } => vec![Choice::Ok],
        }
    }

    pub fn step(
        &mut self,
        model: &FloeModel,
        world: &mut World,
        me: u8,
        choice: Choice,
    ) -> Option<()> {
        match self {
            Proc::Client(client) => client.step(model, world, me, choice),
            Proc::Reader(reader) => reader.step(model, world, choice),
            Proc::Compaction(job) => job.step(model, world, me, choice),
            Proc::Deleter(job) => job.step(model, world, me, choice),
            Proc::Expiry(job) => job.step(model, world, me, choice),
            Proc::Orphans(job) => job.step(model, world),
            Proc::LeftBehind { table, row, done } => {
                world.add_file(*table, Content::Data { rows: 1 << *row })?;
                *done = true;
                Some(())
            }
        }
    }

    /// Whether it holds a file it wrote and may still commit: time past the unreferenced-file
    /// age floor must not pass meanwhile (the floor exceeds the longest write job).
    pub fn busy(&self) -> bool {
        match self {
            Proc::Client(client) => client.busy(),
            Proc::Compaction(job) => !matches!(job.phase, JobPhase::Load | JobPhase::Done(_)),
            Proc::Deleter(job) => !matches!(job.phase, JobPhase::Load | JobPhase::Done(_)),
            Proc::Expiry(job) => !matches!(job.phase, JobPhase::Load | JobPhase::Done(_)),
            Proc::Reader(_) | Proc::Orphans(_) | Proc::LeftBehind { .. } => false,
        }
    }

    /// Whether a crash of `server` ends a run of this process.
    pub fn runs_on(&self, server: u8) -> bool {
        match self {
            Proc::Client(client) => {
                client.server == server
                    && matches!(
                        client.phase,
                        ClientPhase::Running | ClientPhase::Completing(_)
                    )
            }
            Proc::Compaction(job) => {
                job.server == server
                    && job.engine.is_some()
                    && !matches!(job.phase, JobPhase::Done(_))
            }
            Proc::Deleter(job) => {
                job.server == server
                    && job.engine.is_some()
                    && !matches!(job.phase, JobPhase::Done(_))
            }
            Proc::Expiry(job) => {
                job.server == server
                    && job.engine.is_some()
                    && !matches!(job.phase, JobPhase::Done(_))
            }
            _ => false,
        }
    }

    pub fn crash(&mut self) {
        match self {
            Proc::Client(client) => client.crash(),
            Proc::Compaction(job) => job.phase = JobPhase::Done(JobResult::Failed),
            Proc::Deleter(job) => job.phase = JobPhase::Done(JobResult::Failed),
            Proc::Expiry(job) => job.phase = JobPhase::Done(JobResult::Failed),
            _ => {}
        }
    }
}
