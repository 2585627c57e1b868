//! What a commit means for maintenance ([`floe_store::CommitEvents`]), read off the table's state
//! before and after it, so that the scheduler looks at a table only when a commit may have made
//! work (see `floe_store::due`).

use std::collections::HashSet;

use floe_store::CommitEvents;
use floe_store::due::SETTINGS_PREFIX;
use iceberg::spec::{Operation, TableMetadata};

/// Iceberg's own table properties that maintenance honors (see `floe_maintenance::policy`):
/// changing one is changing the table's maintenance settings.
pub const MAINTENANCE_ICEBERG_PROPERTIES: &[&str] = &[
    "write.target-file-size-bytes",
    "history.expire.min-snapshots-to-keep",
    "history.expire.max-snapshot-age-ms",
    "gc.enabled",
];

/// Whether `key` is a table property that maintenance reads.
pub fn is_maintenance_property(key: &str) -> bool {
    key.starts_with(SETTINGS_PREFIX) || MAINTENANCE_ICEBERG_PROPERTIES.contains(&key)
}

/// The events of a commit from `before` (`None`: the commit creates the table) to `after`.
pub(crate) fn commit_events(before: Option<&TableMetadata>, after: &TableMetadata) -> CommitEvents {
    let known: HashSet<i64> = before
        .map(|metadata| metadata.snapshots().map(|s| s.snapshot_id()).collect())
        .unwrap_or_default();
    let mut events = CommitEvents {
        oldest_snapshot_ms: oldest_expirable_snapshot_ms(after),
        ..CommitEvents::default()
    };
    for snapshot in after
        .snapshots()
        .filter(|s| !known.contains(&s.snapshot_id()))
    {
        let summary = snapshot.summary();
        // Compaction's and the manifest rewrite's own snapshots move files around without adding
        // any work: counting them would only bring the job straight back.
        if summary.operation == Operation::Replace {
            continue;
        }
        let count = |key: &str| {
            summary
                .additional_properties
                .get(key)
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let data = count("added-data-files");
        let deletes = count("added-delete-files");
        events.added_data_files += data;
        events.added_delete_files += deletes;
        if data + deletes > 0 {
            events.added_manifests += 1;
        }
    }
    events.reevaluate = match before {
        Some(before) => settings_changed(before, after),
        None => true,
    };
    events
}

/// The time of the table's oldest snapshot other than the current one (which expiry always
/// keeps): once it is older than the table's age limit, snapshot expiry has work. Snapshots kept
/// for other reasons (a tag, a branch's own retention) may make expiry find nothing then; it looks
/// again after the next commit.
pub fn oldest_expirable_snapshot_ms(metadata: &TableMetadata) -> Option<i64> {
    let current = metadata.current_snapshot_id();
    metadata
        .snapshots()
        .filter(|snapshot| Some(snapshot.snapshot_id()) != current)
        .map(|snapshot| snapshot.timestamp_ms())
        .min()
}

fn settings_changed(before: &TableMetadata, after: &TableMetadata) -> bool {
    let relevant = |metadata: &TableMetadata| -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = metadata
            .properties()
            .iter()
            .filter(|(key, _)| is_maintenance_property(key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        pairs.sort();
        pairs
    };
    relevant(before) != relevant(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_properties_are_recognized() {
        assert!(is_maintenance_property(
            "floe.maintenance.compaction.enabled"
        ));
        assert!(is_maintenance_property("gc.enabled"));
        assert!(!is_maintenance_property("owner"));
        assert!(!is_maintenance_property("write.format.default"));
    }
}
