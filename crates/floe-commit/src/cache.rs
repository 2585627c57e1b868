//! Parsed metadata files, and a bounded cache of them keyed by location.
//!
//! Metadata files are immutable: a location names one content forever. So the cache needs no
//! invalidation; freshness comes from reading the table's pointer from the store on every load and
//! only then looking its location up here. The cache is bounded by the size of the JSON it holds,
//! since one table with a long history can outweigh thousands of small ones.
//!
//! Each file carries the checksum of its bytes (see `integrity`): taken when the engine
//! serialized it, or when it was read and verified against its pointer. A hit is served only if
//! that checksum is the one the pointer records, a comparison that needs no hashing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use floe_store::FileChecksum;
use iceberg::spec::TableMetadata;
use serde_json::Value;

use crate::{CommitError, Result, metrics};

/// One metadata file: parsed, and as the JSON a loadTable response embeds.
#[derive(Debug)]
pub struct MetadataFile {
    metadata: TableMetadata,
    json: Bytes,
    /// Of `json`: what a pointer to this file records.
    checksum: FileChecksum,
    /// The same document with only the snapshots that branches and tags point at; built on first
    /// use, since most tables are never loaded that way.
    refs_only_json: OnceLock<Bytes>,
}

impl MetadataFile {
    /// Parses a metadata file's bytes, whose checksum the caller took (or verified) already.
    pub(crate) fn parse_checked(
        location: &str,
        json: Bytes,
        checksum: FileChecksum,
    ) -> Result<Self> {
        let metadata = serde_json::from_slice(&json).map_err(|err| {
            CommitError::Internal(format!("metadata file {location} is not valid: {err}"))
        })?;
        Ok(Self {
            metadata,
            json,
            checksum,
            refs_only_json: OnceLock::new(),
        })
    }

    /// Parses a metadata file's bytes.
    pub fn parse(location: &str, json: Bytes) -> Result<Self> {
        let checksum = FileChecksum::of(&json);
        Self::parse_checked(location, json, checksum)
    }

    /// Serializes metadata the commit engine built.
    pub fn from_metadata(metadata: TableMetadata) -> Result<Self> {
        let serialize_error = |err: serde_json::Error| {
            CommitError::Internal(format!("cannot serialize metadata: {err}"))
        };
        let mut document = serde_json::to_value(&metadata).map_err(serialize_error)?;
        canonical_order(&mut document);
        let json = serde_json::to_vec(&document)
            .map(Bytes::from)
            .map_err(serialize_error)?;
        // Hashed here, in memory, once: the pointer swap records it, and no commit reads back.
        let checksum = FileChecksum::of(&json);
        Ok(Self {
            metadata,
            json,
            checksum,
            refs_only_json: OnceLock::new(),
        })
    }

    pub fn metadata(&self) -> &TableMetadata {
        &self.metadata
    }

    /// The full document, byte for byte as stored.
    pub fn json(&self) -> &Bytes {
        &self.json
    }

    /// The size and SHA-256 of [`MetadataFile::json`].
    pub fn checksum(&self) -> &FileChecksum {
        &self.checksum
    }

    /// The document without snapshots that no branch or tag references (the REST API's
    /// `snapshots=refs`).
    pub fn refs_only_json(&self) -> Result<&Bytes> {
        if let Some(json) = self.refs_only_json.get() {
            return Ok(json);
        }
        let mut document: Value = serde_json::from_slice(&self.json)
            .map_err(|err| CommitError::Internal(format!("cannot re-read metadata: {err}")))?;
        let referenced: std::collections::HashSet<i64> = document
            .get("refs")
            .and_then(Value::as_object)
            .map(|refs| {
                refs.values()
                    .filter_map(|reference| reference.get("snapshot-id").and_then(Value::as_i64))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(snapshots) = document.get_mut("snapshots").and_then(Value::as_array_mut) {
            snapshots.retain(|snapshot| {
                snapshot
                    .get("snapshot-id")
                    .and_then(Value::as_i64)
                    .is_some_and(|id| referenced.contains(&id))
            });
        }
        let json = serde_json::to_vec(&document)
            .map(Bytes::from)
            .map_err(|err| CommitError::Internal(format!("cannot serialize metadata: {err}")))?;
        Ok(self.refs_only_json.get_or_init(|| json))
    }

    fn weight(&self) -> usize {
        // The parsed form is a few times the JSON; the JSON's size is a fair proxy for both.
        self.json.len().saturating_mul(3)
    }
}

/// Iceberg keeps schemas, specs, sort orders and snapshots in maps, so their serialized order
/// would change from one commit to the next. Clients expect the order the reference
/// implementation writes — by id, snapshots oldest first — and readers of `schemas[0]` or of a
/// snapshot list as history rely on it, so files are written in that order.
fn canonical_order(document: &mut Value) {
    let sort_by = |document: &mut Value, list: &str, keys: &[&str]| {
        if let Some(items) = document.get_mut(list).and_then(Value::as_array_mut) {
            items.sort_by_key(|item| {
                keys.iter()
                    .map(|key| item.get(*key).and_then(Value::as_i64).unwrap_or(i64::MIN))
                    .collect::<Vec<_>>()
            });
        }
    };
    sort_by(document, "schemas", &["schema-id"]);
    if let Some(schemas) = document.get_mut("schemas").and_then(Value::as_array_mut) {
        schemas.iter_mut().for_each(shortest_float_defaults);
    }
    sort_by(document, "partition-specs", &["spec-id"]);
    sort_by(document, "sort-orders", &["order-id"]);
    sort_by(
        document,
        "snapshots",
        &["sequence-number", "timestamp-ms", "snapshot-id"],
    );
}

/// Iceberg's writer widens a `float` column's default to a double, so `22.27` would be stored as
/// `22.270000457763672`. The value is a 32-bit float; written as the shortest decimal that reads
/// back as the same float, it is `22.27`, as every other implementation writes it.
fn shortest_float_defaults(ty: &mut Value) {
    if let Some(fields) = ty.get_mut("fields").and_then(Value::as_array_mut) {
        for field in fields {
            if field.get("type").and_then(Value::as_str) == Some("float") {
                for key in ["initial-default", "write-default"] {
                    if let Some(value) = field.get(key).and_then(Value::as_f64) {
                        let shortest: f64 = (value as f32).to_string().parse().unwrap_or(value);
                        field[key] = serde_json::json!(shortest);
                    }
                }
            }
            if let Some(nested) = field.get_mut("type") {
                shortest_float_defaults(nested);
            }
        }
    }
    for key in ["element", "key", "value"] {
        if let Some(nested) = ty.get_mut(key) {
            shortest_float_defaults(nested);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_defaults_are_written_as_the_float_they_are() {
        let mut schema = serde_json::json!({"type": "struct", "fields": [
            {"id": 1, "name": "f", "type": "float", "required": false,
             "initial-default": 22.270000457763672, "write-default": 19.25},
            {"id": 2, "name": "d", "type": "double", "required": false,
             "write-default": 22.270000457763672},
            {"id": 3, "name": "s", "required": false, "type": {"type": "struct", "fields": [
                {"id": 4, "name": "g", "type": "float", "required": false,
                 "write-default": 0.10000000149011612}]}}
        ]});
        shortest_float_defaults(&mut schema);
        let text = schema.to_string();
        assert!(text.contains(r#""initial-default":22.27"#), "{text}");
        assert!(text.contains(r#""write-default":19.25"#), "{text}");
        assert!(text.contains(r#""write-default":0.1}"#), "{text}");
        // Doubles keep every digit they have.
        assert!(
            text.contains(r#""write-default":22.270000457763672"#),
            "{text}"
        );
    }
}

/// A cache of metadata files, evicting the oldest entries beyond a byte budget.
pub struct MetadataCache {
    capacity_bytes: usize,
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_location: HashMap<String, Arc<MetadataFile>>,
    /// Insertion order, for first-in-first-out eviction.
    order: VecDeque<String>,
    bytes: usize,
}

impl MetadataCache {
    pub fn new(capacity_bytes: usize) -> Self {
        Self {
            capacity_bytes,
            inner: Mutex::new(Entries::default()),
        }
    }

    pub fn get(&self, location: &str) -> Option<Arc<MetadataFile>> {
        let found = self.lock().by_location.get(location).cloned();
        let series = if found.is_some() {
            metrics::CACHE_HITS
        } else {
            metrics::CACHE_MISSES
        };
        ::metrics::counter!(series).increment(1);
        found
    }

    pub fn insert(&self, location: &str, file: Arc<MetadataFile>) {
        let mut entries = self.lock();
        let weight = file.weight();
        let before = entries.bytes;
        if let Some(previous) = entries.by_location.insert(location.to_string(), file) {
            entries.bytes -= previous.weight();
        } else {
            entries.order.push_back(location.to_string());
        }
        entries.bytes += weight;
        // Always keep the newest entry, even when it alone is over budget: it is about to be used.
        while entries.bytes > self.capacity_bytes && entries.order.len() > 1 {
            if let Some(oldest) = entries.order.pop_front()
                && let Some(evicted) = entries.by_location.remove(&oldest)
            {
                entries.bytes -= evicted.weight();
            }
        }
        // One gauge for every cache of the process: each adds its own change.
        let gauge = ::metrics::gauge!(metrics::CACHE_BYTES);
        gauge.increment(entries.bytes as f64);
        gauge.decrement(before as f64);
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

impl Drop for MetadataCache {
    fn drop(&mut self) {
        // A dropped warehouse's cache no longer holds anything.
        ::metrics::gauge!(metrics::CACHE_BYTES).decrement(self.lock().bytes as f64);
    }
}
