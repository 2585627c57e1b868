//! What a commit means for maintenance ([`floe_store::CommitEvents`]), read off the table's state
//! before and after it, so that the scheduler looks at a table only when a commit may have made
//! work (see `floe_store::due`).

use floe_store::CommitEvents;
use floe_store::due::SETTINGS_PREFIX;
use iceberg::TableUpdate;
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

/// The events of a commit that applies `updates` (`created`: to a table it creates), read off the
/// updates themselves so that a commit does not scan the table's snapshots or properties for them.
/// The oldest snapshot is set from the resulting metadata by [`with_oldest_snapshot`].
pub(crate) fn commit_events(created: bool, updates: &[TableUpdate]) -> CommitEvents {
    let mut events = CommitEvents {
        reevaluate: created,
        ..CommitEvents::default()
    };
    for update in updates {
        match update {
            TableUpdate::AddSnapshot { snapshot } => {
                let summary = snapshot.summary();
                // Compaction's and the manifest rewrite's own snapshots move files around without
                // adding any work: counting them would only bring the job straight back.
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
            TableUpdate::SetProperties { updates } => {
                events.reevaluate |= updates.keys().any(|key| is_maintenance_property(key));
            }
            TableUpdate::RemoveProperties { removals } => {
                events.reevaluate |= removals.iter().any(|key| is_maintenance_property(key));
            }
            _ => {}
        }
    }
    events
}

/// `events` with the oldest snapshot of the table after the commit.
pub(crate) fn with_oldest_snapshot(
    mut events: CommitEvents,
    after: &TableMetadata,
) -> CommitEvents {
    events.oldest_snapshot_ms = oldest_expirable_snapshot_ms(after);
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
