//! A bounded cache of parsed metadata files, keyed by location.
//!
//! Metadata files are immutable: a location names one content forever. So the cache needs no
//! invalidation; freshness comes from reading the table's pointer from the store on every load and
//! only then looking its location up here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use iceberg::spec::TableMetadata;

pub struct MetadataCache {
    capacity: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_location: HashMap<String, Arc<TableMetadata>>,
    /// Insertion order, for first-in-first-out eviction.
    order: VecDeque<String>,
}

impl MetadataCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Entries::default()),
        }
    }

    pub fn get(&self, location: &str) -> Option<Arc<TableMetadata>> {
        self.lock().by_location.get(location).cloned()
    }

    pub fn insert(&self, location: &str, metadata: Arc<TableMetadata>) {
        let mut entries = self.lock();
        if entries
            .by_location
            .insert(location.to_string(), metadata)
            .is_none()
        {
            entries.order.push_back(location.to_string());
        }
        while entries.order.len() > self.capacity {
            if let Some(oldest) = entries.order.pop_front() {
                entries.by_location.remove(&oldest);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().by_location.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that matters
        // for a cache, so recover from poisoning instead of propagating it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
