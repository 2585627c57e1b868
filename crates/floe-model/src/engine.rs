//! The commit engine, step by step as `docs/commit-protocol.md` numbers them: 0 queue, 1 read
//! (with 2 check and 3 apply, which touch nothing shared), 4 write, 5 swap, 6 lost-race clean-up
//! and retry, 7 unknown outcome settled by re-reading. Each step is one atomic action against the
//! metadata store or the object store; between two steps any other process may act.
//!
//! Step 8 (deleting metadata files that fell off the metadata log) is not modelled: the log is
//! never trimmed in runs this short.

use crate::model::{Choice, Fault, FloeModel, Mutation};
use crate::state::{Change, Content, FileId, FileSet, Metadata, Outcome, TABLES, World, tables_of};

/// What a commit asks for: the Iceberg requirements and updates, reduced to their effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Update {
    /// Adds one row in one new data file per table. `pinned`: `assert-ref-snapshot-id main` at
    /// that snapshot (what every Iceberg client's append sends); without it the engine applies
    /// the append to whatever it reads, as it does for requests without a ref requirement.
    Append {
        row: u8,
        files: [Option<FileId>; TABLES],
        pinned: Option<FileId>,
    },
    /// A rewrite (compaction, copy-on-write delete): a new snapshot with exactly `files`,
    /// computed by the job from snapshot `base`, requiring `main` to still be `base`.
    Replace {
        base: FileId,
        files: FileSet,
        change: Change,
    },
    /// Snapshot expiry: removes snapshots, requiring `main` (every ref) to still be `base`.
    Expire { base: FileId, remove: FileSet },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Queue,
    Read,
    Write,
    Swap,
    Settle,
    Cleanup(After),
    Finished(Outcome),
}

/// What follows a clean-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum After {
    /// Step 6: start again at step 1 (or give up with a 409 after the last attempt).
    Retry,
    Fail(Outcome),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Engine {
    pub server: u8,
    /// Bit mask of the tables this commit changes.
    pub tables: u8,
    pub update: Update,
    pub attempt: u8,
    pub phase: Phase,
    /// Step 1's pointers.
    pub read: [Option<FileId>; TABLES],
    /// Step 3's new metadata (snapshot ids still to be set to the file's id).
    pub pending: [Option<Metadata>; TABLES],
    /// Step 4's files, this attempt.
    pub written: [Option<FileId>; TABLES],
    /// With the one-table-at-a-time mutation: the tables already swapped.
    pub swapped: u8,
    /// Ghosts for the properties.
    pub all_written: FileSet,
    pub cleanup_failed: bool,
    pub settled_applied: bool,
    pub kept_unknown: bool,
}

impl Engine {
    pub fn new(server: u8, tables: u8, update: Update) -> Self {
        Engine {
            server,
            tables,
            update,
            attempt: 1,
            phase: Phase::Queue,
            read: [None; TABLES],
            pending: [None, None],
            written: [None; TABLES],
            swapped: 0,
            all_written: FileSet::EMPTY,
            cleanup_failed: false,
            settled_applied: false,
            kept_unknown: false,
        }
    }

    pub fn outcome(&self) -> Option<Outcome> {
        match self.phase {
            Phase::Finished(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// The metadata file this commit made current in `table` (after `Committed`).
    pub fn committed_file(&self, table: usize) -> Option<FileId> {
        self.written[table]
    }

    /// The choices this engine has now; empty when it waits for its turn or has finished.
    pub fn choices(&self, model: &FloeModel, world: &World, me: u8) -> Vec<Choice> {
        let faults = |candidates: &[Fault]| {
            let mut choices = vec![Choice::Ok];
            choices.extend(
                candidates
                    .iter()
                    .filter(|fault| model.allows(world, **fault))
                    .map(|fault| Choice::Fault(*fault)),
            );
            choices
        };
        match self.phase {
            Phase::Queue => {
                let free = tables_of(self.tables).all(|t| {
                    world.turns[usize::from(self.server)][t].is_none_or(|holder| holder == me)
                });
                if free || model.has(Mutation::NoQueue) {
                    vec![Choice::Ok]
                } else {
                    Vec::new()
                }
            }
            Phase::Read => vec![Choice::Ok],
            Phase::Write => faults(&[Fault::WriteLost, Fault::WriteLandedButFailed]),
            Phase::Swap => {
                let mut choices = vec![Choice::Ok];
                if self.swap_would_apply(model, world)
                    && model.allows(world, Fault::SwapFailedApplied)
                {
                    choices.push(Choice::Fault(Fault::SwapFailedApplied));
                }
                if model.allows(world, Fault::SwapFailedNotApplied) {
                    choices.push(Choice::Fault(Fault::SwapFailedNotApplied));
                }
                choices
            }
            Phase::Settle => faults(&[Fault::ReadFailed]),
            Phase::Cleanup(_) => faults(&[Fault::DeleteFailed]),
            Phase::Finished(_) => Vec::new(),
        }
    }

    /// Takes one step. `None`: the step cannot be taken in this run (file ids ran out).
    pub fn step(
        &mut self,
        model: &FloeModel,
        world: &mut World,
        me: u8,
        choice: Choice,
    ) -> Option<()> {
        if let Choice::Fault(_) = choice {
            world.faults_left = world.faults_left.saturating_sub(1);
        }
        match self.phase {
            Phase::Queue => {
                if !model.has(Mutation::NoQueue) {
                    for t in tables_of(self.tables) {
                        world.turns[usize::from(self.server)][t] = Some(me);
                    }
                }
                self.phase = Phase::Read;
            }
            Phase::Read => self.read_check_apply(model, world),
            Phase::Write => self.write(model, world, choice)?,
            Phase::Swap => self.swap(model, world, choice),
            Phase::Settle => self.settle(world, choice),
            Phase::Cleanup(after) => {
                let skipped = after == After::Retry && model.has(Mutation::NoCleanupAfterLostRace);
                if choice == Choice::Fault(Fault::DeleteFailed) {
                    self.cleanup_failed = true;
                } else if !skipped {
                    for id in self.written.iter().flatten() {
                        world.delete(*id);
                    }
                }
                self.written = [None; TABLES];
                match after {
                    After::Retry if self.attempt < model.max_attempts => {
                        self.attempt += 1;
                        self.read = [None; TABLES];
                        self.pending = [None, None];
                        self.swapped = 0;
                        self.phase = Phase::Read;
                    }
                    After::Retry => self.finish(world, me, Outcome::Conflict),
                    After::Fail(outcome) => self.finish(world, me, outcome),
                }
            }
            Phase::Finished(_) => return None,
        }
        if let Phase::Finished(_) = self.phase {
            self.release(world, me);
        }
        Some(())
    }

    fn finish(&mut self, world: &mut World, me: u8, outcome: Outcome) {
        self.phase = Phase::Finished(outcome);
        self.release(world, me);
    }

    fn release(&self, world: &mut World, me: u8) {
        for turn in world.turns[usize::from(self.server)].iter_mut() {
            if *turn == Some(me) {
                *turn = None;
            }
        }
    }

    /// Steps 1–3: read each pointer and its metadata file, check the requirements, apply.
    fn read_check_apply(&mut self, model: &FloeModel, world: &mut World) {
        for t in tables_of(self.tables) {
            let pointer = if model.has(Mutation::StalePointerCache) {
                world.pointer_cache[usize::from(self.server)][t]
            } else {
                world.pointers[t]
            };
            let Some(pointer) = pointer.filter(|id| world.exists(*id)) else {
                self.phase = Phase::Finished(Outcome::Unavailable);
                return;
            };
            let Some(read) = world.metadata(pointer).cloned() else {
                self.phase = Phase::Finished(Outcome::Unavailable);
                return;
            };
            let requirement_holds = match &self.update {
                Update::Append { pinned, .. } => {
                    pinned.is_none_or(|base| read.current == Some(base))
                }
                Update::Replace { base, change, .. } => {
                    (*change == Change::Compact
                        && model.has(Mutation::CompactionWithoutRequirement))
                        || read.current == Some(*base)
                }
                Update::Expire { base, .. } => read.current == Some(*base),
            };
            if !requirement_holds {
                self.phase = Phase::Finished(Outcome::Conflict);
                return;
            }
            let mut next = Metadata {
                table: read.table,
                version: read.version + 1,
                parent: Some(pointer),
                server: Some(self.server),
                change: Change::Expire,
                snapshots: read.snapshots,
                current: read.current,
                snapshot_files: FileSet::EMPTY,
            };
            match &self.update {
                Update::Append { row, files, .. } => {
                    next.change = Change::Append(*row);
                    next.snapshot_files = world.current_files(&read);
                    if let Some(file) = files[t] {
                        next.snapshot_files.insert(file);
                    }
                }
                Update::Replace { files, change, .. } => {
                    next.change = *change;
                    next.snapshot_files = *files;
                }
                Update::Expire { remove, .. } => next.snapshots = read.snapshots.minus(*remove),
            }
            self.read[t] = Some(pointer);
            self.pending[t] = Some(next);
        }
        self.phase = Phase::Write;
    }

    /// Step 4: put-if-absent of each new metadata file under a fresh name.
    fn write(&mut self, model: &FloeModel, world: &mut World, choice: Choice) -> Option<()> {
        if choice != Choice::Fault(Fault::WriteLost) {
            for t in tables_of(self.tables) {
                let mut metadata = self.pending[t].clone()?;
                let reused = model
                    .has(Mutation::MetadataNamedByVersion)
                    .then(|| {
                        world.files.iter().position(|f| {
                            matches!(&f.content, Content::Metadata(m)
                                if m.table == metadata.table && m.version == metadata.version)
                        })
                    })
                    .flatten();
                let id = match reused {
                    Some(index) => FileId::try_from(index).ok()?,
                    None => FileId::try_from(world.files.len())
                        .ok()
                        .filter(|id| *id < 64)?,
                };
                if !matches!(metadata.change, Change::Expire) {
                    metadata.snapshots.insert(id);
                    metadata.current = Some(id);
                }
                let content = Content::Metadata(metadata);
                match reused {
                    // A plain put under a name another writer chose too: it overwrites.
                    Some(index) => {
                        let file = &mut world.files[index];
                        file.content = content;
                        file.exists = true;
                        file.old = false;
                        file.writes += 1;
                    }
                    None => {
                        world.add_file(t as u8, content)?;
                    }
                }
                self.written[t] = Some(id);
                self.all_written.insert(id);
            }
        }
        self.phase = match choice {
            Choice::Ok => Phase::Swap,
            // Nothing landed: nothing to clean up.
            Choice::Fault(Fault::WriteLost) => Phase::Finished(Outcome::Unavailable),
            _ => Phase::Cleanup(After::Fail(Outcome::Unavailable)),
        };
        Some(())
    }

    fn swap_would_apply(&self, model: &FloeModel, world: &World) -> bool {
        model.has(Mutation::SwapWithoutCompare)
            || tables_of(self.tables).all(|t| world.pointers[t] == self.read[t])
    }

    /// Step 5: one transaction moving every pointer from what step 1 read to what step 4 wrote.
    fn swap(&mut self, model: &FloeModel, world: &mut World, choice: Choice) {
        if model.has(Mutation::SwapTablesOneByOne) && choice == Choice::Ok {
            // Each table in its own transaction: the mutation invariant 3 rules out.
            if let Some(t) = tables_of(self.tables).find(|t| self.swapped & (1 << t) == 0) {
                if world.pointers[t] == self.read[t] {
                    self.move_pointer(model, world, t);
                    self.swapped |= 1 << t;
                    if tables_of(self.tables).all(|t| self.swapped & (1 << t) != 0) {
                        self.phase = Phase::Finished(Outcome::Committed);
                    }
                } else {
                    self.note_lost_race(world);
                    self.phase = Phase::Cleanup(After::Retry);
                }
            }
            return;
        }
        let applies = self.swap_would_apply(model, world);
        match choice {
            Choice::Ok if applies => {
                for t in tables_of(self.tables) {
                    self.move_pointer(model, world, t);
                }
                self.phase = Phase::Finished(Outcome::Committed);
            }
            Choice::Ok => {
                self.note_lost_race(world);
                self.phase = Phase::Cleanup(After::Retry);
            }
            _ => {
                if choice == Choice::Fault(Fault::SwapFailedApplied) {
                    for t in tables_of(self.tables) {
                        self.move_pointer(model, world, t);
                    }
                }
                self.phase = if model.has(Mutation::CleanupWithoutReread) {
                    Phase::Cleanup(After::Fail(Outcome::Unavailable))
                } else {
                    Phase::Settle
                };
            }
        }
    }

    fn move_pointer(&self, model: &FloeModel, world: &mut World, t: usize) {
        if let Some(to) = self.written[t] {
            world.move_pointer(t, to);
            if model.has(Mutation::StalePointerCache) {
                world.pointer_cache[usize::from(self.server)][t] = Some(to);
            }
        }
    }

    /// Records whether a commit through this same replica won the race (step 0 says only
    /// another replica's commits can).
    fn note_lost_race(&self, world: &mut World) {
        for t in tables_of(self.tables) {
            let Some(now) = world.pointers[t] else {
                continue;
            };
            for id in world.lineage(now) {
                if Some(id) == self.read[t] {
                    break;
                }
                if world.metadata(id).and_then(|m| m.server) == Some(self.server) {
                    world.lost_to_own_replica = true;
                }
            }
        }
    }

    /// Step 7: a swap failed without a definite refusal; read the pointers again.
    fn settle(&mut self, world: &mut World, choice: Choice) {
        if choice != Choice::Ok {
            // Cannot tell: keep the files, answer 503.
            self.kept_unknown = true;
            self.phase = Phase::Finished(Outcome::Unavailable);
            return;
        }
        let mut applied = 0;
        let mut others = 0;
        for t in tables_of(self.tables) {
            let (Some(now), Some(ours)) = (world.pointers[t], self.written[t]) else {
                continue;
            };
            // Applied and then superseded (ours is in the current metadata's log) is applied.
            if now == ours || world.lineage(now).contains(&ours) {
                applied += 1;
            } else {
                others += 1;
            }
        }
        let tables = tables_of(self.tables).count();
        self.phase = if applied == tables {
            self.settled_applied = true;
            Phase::Finished(Outcome::Committed)
        } else if others == tables {
            Phase::Cleanup(After::Fail(Outcome::Unavailable))
        } else {
            self.kept_unknown = true;
            Phase::Finished(Outcome::Unavailable)
        };
    }
}
