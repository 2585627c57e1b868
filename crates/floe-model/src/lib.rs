//! A checked model of Floe's commit protocol and of maintenance against writers, written for the
//! [stateright](https://docs.rs/stateright) model checker. It models the protocol of
//! `docs/commit-protocol.md`, not Floe's code, and depends on no other Floe crate.
//!
//! # What is modelled
//!
//! - **The commit protocol** ([`engine`]): step 0 (a per-replica, per-table commit turn), step 1
//!   (read the pointer and its metadata file), 2 (requirements), 3 (apply), 4 (put-if-absent of a
//!   new metadata file under a fresh name), 5 (one compare-and-swap transaction over every pointer
//!   of the commit), 6 (a lost race: delete the file, retry, up to `commit-max-attempts`), 7 (a
//!   swap that failed without a definite refusal: read the pointers again — applied → success,
//!   someone else's → clean up, cannot tell → keep the files and answer 503). Two replicas share
//!   one metadata store and one object store.
//! - **Clients** ([`procs::Client`]): an append of one row (its data file uploaded first), with
//!   or without `assert-ref-snapshot-id` (pinned), with or without an `Idempotency-Key`: the key
//!   is claimed before the commit runs, completed with a final (2xx/4xx) answer after it or
//!   released on a 5xx; a retry with the same key (after a 503, a lost response, a crashed
//!   replica) goes to either replica and gets the stored answer, a 503 while the key is claimed,
//!   or runs when it is free.
//! - **Maintenance against writers** ([`procs`]): compaction's replace (requires `main` at the
//!   snapshot it read; on a conflict it rebases if every input is still live, else gives up and
//!   deletes its output) against an append and a copy-on-write delete; snapshot expiry (commit
//!   first, requiring every ref, then delete what only the expired snapshots reached, minus what
//!   the committed metadata still reaches) against a reader that may read any snapshot;
//!   unreferenced-file removal (list, then read the metadata, then act on unreferenced files past
//!   the age floor: one phase deletes, two phases mark first and delete once the mark is due)
//!   against a writer whose file is uploaded but not committed. The copy-on-write delete gives
//!   up on a 409 (a client's retry would be a new run).
//! - **Faults**: a put that is lost or lands but reports failure; a swap that fails after or
//!   without applying; a re-read that fails; a delete that fails; a lost response; `kill -9` of a
//!   replica (its runs vanish; committed state is durable).
//!
//! # What Floe guarantees to a reader of an expired snapshot
//!
//! Nothing holds a snapshot for a reader: expiry deletes files right after its commit. A reader
//! that loaded snapshot S before S expired reads S's files one at a time and fails on the first
//! missing one (Iceberg readers do not skip a missing file), so it gets all of S's rows or an
//! error — never part of them. A reader of a snapshot that is still live always finds its files.
//! The model checks both, and shows that the error does happen.
//!
//! # Why a plain [`stateright::Model`] and not actors
//!
//! Replicas talk to each other only through the metadata store and the object store, whose
//! operations are atomic (one transaction, one put, one delete). So every process is a small
//! state machine whose steps are those operations, and the checker interleaves them explicitly.
//! Stateright's actor framework would add a network — messages in flight, duplicated, reordered —
//! that Floe does not have between replicas, and whose states would multiply the search without
//! adding a behaviour. Each scenario ([`Scenario`]) is a handful of processes, and each fault,
//! crash and passing of time is spent from a small budget, so breadth-first search covers every
//! interleaving within the depth bound in seconds.
//!
//! # Invariants
//!
//! Every invariant of `docs/commit-protocol.md` that concerns the protocol is a property, named
//! with its number (see [`model`]'s constants): 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 13, 17, plus step
//! 0's promise. Out of the model's scope: 9 and 18 (locations and paths), 11 (metadata-log
//! trimming: no run is long enough), 14 (views run the same steps on one pointer), 15 and 16
//! (which files a delete may touch, `gc.enabled`), and step 8.
//!
//! # Mutations
//!
//! [`Mutation`] switches one check off (swap without comparing, no commit turn, metadata files
//! named by version and overwritten, pointers cached in a replica, step 6 without its clean-up,
//! step 7's re-read skipped, one transaction per table, the idempotency key ignored, compaction
//! without its requirement, expiry deleting live files, unreferenced-file removal without the
//! age floor); the tests show that the checker then finds the counterexample.
//!
//! # Running it
//!
//! `cargo test -p floe-model` checks every scenario to a bounded depth and every mutation.
//! `FLOE_MODEL_DEPTH=N` checks deeper by hand ([`depth`]); `FLOE_MODEL_FAULTS=N` lets the
//! `Faults` scenario inject more faults per run ([`fault_budget`]), which needs more depth.
//!
//! # Known limits it shows
//!
//! Two behaviours of Floe are not invariants, and tests show the checker reaching them: after an
//! unknown outcome that step 7 cannot settle (the re-read fails; a later commit already on top
//! of ours, naming ours in its metadata log, settles as applied), the answer is 503 and the idempotency key is released, so a retry runs again:
//! a pinned append then hears 409 although it is in the table
//! ([`model::KNOWN_LIMIT_409`]), and a request with no requirement would be applied twice.

pub mod engine;
pub mod model;
pub mod procs;
pub mod state;

pub use model::{Action, Choice, Fault, FloeModel, Mutation, Scenario};
pub use state::World;

/// The default search depth. Every scenario's state space ends within it (the deepest, with the
/// default budgets, at 34 steps), so the search is exhaustive, not merely bounded.
pub const DEFAULT_DEPTH: usize = 40;
/// The default number of faults the `Faults` scenario may inject in one run.
pub const DEFAULT_FAULTS: u8 = 2;

/// The depth to search: `FLOE_MODEL_DEPTH` if set to a number, else [`DEFAULT_DEPTH`].
pub fn depth() -> usize {
    env_number("FLOE_MODEL_DEPTH").unwrap_or(DEFAULT_DEPTH)
}

/// The `Faults` scenario's fault budget: `FLOE_MODEL_FAULTS` if set to a number, else
/// [`DEFAULT_FAULTS`]. More faults make longer runs: raise `FLOE_MODEL_DEPTH` with it.
pub fn fault_budget() -> u8 {
    env_number("FLOE_MODEL_FAULTS").unwrap_or(DEFAULT_FAULTS)
}

fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
}
