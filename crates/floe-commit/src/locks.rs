//! Per-table commit queues inside one server process.
//!
//! Correctness never depends on these locks: the store's compare-and-swap decides every race,
//! across processes too. They exist for throughput and fairness. Without them, N concurrent commits
//! to one hot table on one server race each other; each round one wins and N-1 throw their
//! metadata file away and try again, so a single writer can lose round after round until it runs
//! out of attempts. Queued on a fair lock, commits from one server take turns instead, and only
//! commits from other replicas can still make an attempt lose.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use floe_store::TableName;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Default)]
pub(crate) struct TableLocks {
    locks: Mutex<HashMap<TableName, Arc<AsyncMutex<()>>>>,
}

/// Holds the commit turn for a set of tables; released on drop.
pub(crate) struct CommitTurn<'a> {
    owner: &'a TableLocks,
    held: Vec<(TableName, OwnedMutexGuard<()>)>,
}

impl TableLocks {
    /// Waits for the commit turn on every table in `tables`. Locks are taken in name order, so
    /// two multi-table commits can never wait on each other in a cycle.
    pub(crate) async fn acquire<'a>(&'a self, tables: &[&TableName]) -> CommitTurn<'a> {
        let mut names: Vec<TableName> = tables.iter().map(|name| (*name).clone()).collect();
        names.sort();
        names.dedup();
        let mut held = Vec::with_capacity(names.len());
        for name in names {
            let lock = {
                let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
                locks.entry(name.clone()).or_default().clone()
            };
            held.push((name, lock.lock_owned().await));
        }
        CommitTurn { owner: self, held }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for CommitTurn<'_> {
    fn drop(&mut self) {
        let mut locks = self.owner.locks.lock().unwrap_or_else(|p| p.into_inner());
        for (name, guard) in self.held.drain(..) {
            drop(guard);
            // Forget a table's lock once nobody holds or waits for it, so the map stays as small
            // as the set of tables being committed right now.
            if locks
                .get(&name)
                .is_some_and(|lock| Arc::strong_count(lock) == 1)
            {
                locks.remove(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_turn_per_table_at_a_time_and_no_leftovers() {
        let locks = Arc::new(TableLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let a = TableName::new(vec!["ns".to_string()], "a");
        let b = TableName::new(vec!["ns".to_string()], "b");
        let mut tasks = Vec::new();
        for i in 0..32 {
            let (locks, inside) = (locks.clone(), inside.clone());
            let (a, b) = (a.clone(), b.clone());
            tasks.push(tokio::spawn(async move {
                // Half the tasks take both tables in opposite orders: no deadlock allowed.
                let tables = if i % 2 == 0 {
                    vec![&a, &b]
                } else {
                    vec![&b, &a]
                };
                let _turn = locks.acquire(&tables).await;
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two turns at once"
                );
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(locks.len(), 0);
    }
}
