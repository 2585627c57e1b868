//! Per-table maintenance settings, and where each one comes from.
//!
//! Every table is maintained by default, with settings like S3 Tables': compaction to 512 MiB
//! files (64–512 MiB allowed), at least 1 snapshot kept and snapshots older than 120 hours
//! expired, unreferenced files marked once 3 days old and deleted 10 days after being marked; and
//! its files scrubbed once a day, slowly (8 MiB/s, 20 requests/s), without reading footers. Each
//! setting is a property named
//! `floe.maintenance.<key>` ([`KEYS`]) and may be set on the warehouse (its properties), on a
//! namespace (namespace properties) or on the table (table properties); the most specific wins:
//!
//! ```text
//! table floe.maintenance.*  >  table's own Iceberg property  >  namespace  >  warehouse  >  default
//! ```
//!
//! The Iceberg properties engines already set are honored in the second place:
//! `write.target-file-size-bytes` (compaction target), `history.expire.min-snapshots-to-keep` and
//! `history.expire.max-snapshot-age-ms` (expiry), so a table Spark tuned is maintained as Spark
//! would.

use std::collections::BTreeMap;

use serde::Serialize;

/// The prefix of every maintenance property.
pub const PREFIX: &str = floe_store::due::SETTINGS_PREFIX;

/// Every setting (after [`PREFIX`]) with its built-in default.
pub const KEYS: &[(&str, &str)] = &[
    ("enabled", "true"),
    ("compaction.enabled", "true"),
    ("compaction.target-file-size-bytes", "536870912"),
    ("compaction.min-input-files", "5"),
    ("compaction.max-commit-bytes", "10737418240"),
    ("snapshot-expiry.enabled", "true"),
    ("snapshot-expiry.min-snapshots-to-keep", "1"),
    ("snapshot-expiry.max-snapshot-age-hours", "120"),
    ("unreferenced-files.enabled", "true"),
    ("unreferenced-files.unreferenced-days", "3"),
    ("unreferenced-files.non-current-days", "10"),
    ("unreferenced-files.interval-hours", "24"),
    ("manifest-rewrite.enabled", "true"),
    ("manifest-rewrite.min-manifests", "100"),
    ("scrub.enabled", "true"),
    ("scrub.interval-hours", "24"),
    ("scrub.deep", "false"),
    // Slow on purpose: the scrubber must never compete with readers and writers.
    ("scrub.max-bytes-per-second", "8388608"),
    ("scrub.max-requests-per-second", "20"),
];

/// Turns an Iceberg property's value into the setting's unit; `None` if it does not parse.
type Convert = fn(&str) -> Option<String>;

/// Iceberg's own table properties that stand for a setting, when the table has them.
const ICEBERG_EQUIVALENTS: &[(&str, &str, Convert)] = &[
    (
        "compaction.target-file-size-bytes",
        "write.target-file-size-bytes",
        |value| Some(value.to_string()),
    ),
    (
        "snapshot-expiry.min-snapshots-to-keep",
        "history.expire.min-snapshots-to-keep",
        |value| Some(value.to_string()),
    ),
    (
        "snapshot-expiry.max-snapshot-age-hours",
        "history.expire.max-snapshot-age-ms",
        |value| {
            let millis: u64 = value.parse().ok()?;
            Some((millis / 3_600_000).max(1).to_string())
        },
    ),
];

const MIB: u64 = 1024 * 1024;
/// The compaction targets S3 Tables allows.
pub const TARGET_FILE_SIZE_RANGE: (u64, u64) = (64 * MIB, 512 * MIB);

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Default,
    Warehouse,
    Namespace,
    /// The table's own Iceberg property (`write.target-file-size-bytes`, `history.expire.*`).
    TableIceberg,
    Table,
}

/// One resolved setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub value: String,
    pub source: Source,
}

/// The settings of one table, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenancePolicy {
    pub enabled: bool,
    pub compaction: bool,
    pub target_file_size_bytes: u64,
    pub min_input_files: usize,
    /// Partial progress: input bytes per compaction commit.
    pub max_commit_bytes: u64,
    pub snapshot_expiry: bool,
    pub min_snapshots_to_keep: u32,
    pub max_snapshot_age_hours: u64,
    pub unreferenced_files: bool,
    pub unreferenced_days: u64,
    /// Days a file stays marked (and unreferenced) before it is deleted.
    pub non_current_days: u64,
    pub orphan_interval_hours: u64,
    pub manifest_rewrite: bool,
    pub min_manifests: usize,
    pub scrub: bool,
    pub scrub_interval_hours: u64,
    /// Also read every Parquet data and delete file's footer.
    pub scrub_deep: bool,
    /// The scrub's rate: bytes read and requests made per second (0: unlimited).
    pub scrub_limits: crate::scrub::RateLimits,
    /// Every setting by key (without [`PREFIX`]) with its source, for people.
    pub settings: BTreeMap<String, Setting>,
}

/// The `floe.maintenance.*` settings among `properties`, as one string that changes when any of
/// them does (the scheduler compares the default warehouse's configured defaults across starts).
pub fn settings_fingerprint(properties: &BTreeMap<String, String>) -> String {
    properties
        .iter()
        .filter(|(key, _)| key.starts_with(PREFIX))
        .map(|(key, value)| format!("{key}={value}\n"))
        .collect()
}

/// Resolves a table's settings from its warehouse's, namespace's and own properties (any
/// properties not under [`PREFIX`] are ignored, Iceberg's equivalents aside). A value that does
/// not parse, or a compaction target out of range, is an error naming the property and its
/// owner.
pub fn resolve(
    warehouse: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
    table: &BTreeMap<String, String>,
) -> Result<MaintenancePolicy, String> {
    let mut settings = BTreeMap::new();
    for (key, default) in KEYS {
        let property = format!("{PREFIX}{key}");
        let iceberg = ICEBERG_EQUIVALENTS
            .iter()
            .find(|(setting, _, _)| setting == key)
            .and_then(|(_, name, convert)| table.get(*name).and_then(|value| convert(value)));
        let (value, source) = if let Some(value) = table.get(&property) {
            (value.clone(), Source::Table)
        } else if let Some(value) = iceberg {
            (value, Source::TableIceberg)
        } else if let Some(value) = namespace.get(&property) {
            (value.clone(), Source::Namespace)
        } else if let Some(value) = warehouse.get(&property) {
            (value.clone(), Source::Warehouse)
        } else {
            (default.to_string(), Source::Default)
        };
        settings.insert(key.to_string(), Setting { value, source });
    }
    let get = |key: &str| &settings[key];
    let flag = |key: &str| parse_flag(key, get(key));
    let number = |key: &str| parse_number(key, get(key));
    let target_file_size_bytes = number("compaction.target-file-size-bytes")?;
    let (low, high) = TARGET_FILE_SIZE_RANGE;
    if !(low..=high).contains(&target_file_size_bytes) {
        return Err(format!(
            "{} = {target_file_size_bytes} (from the {}) is outside the allowed {low}..={high} \
             bytes (64-512 MiB)",
            describe(
                "compaction.target-file-size-bytes",
                get("compaction.target-file-size-bytes")
            ),
            source_name(get("compaction.target-file-size-bytes").source)
        ));
    }
    let policy = MaintenancePolicy {
        enabled: flag("enabled")?,
        compaction: flag("compaction.enabled")?,
        target_file_size_bytes,
        min_input_files: to_usize(number("compaction.min-input-files")?).max(2),
        max_commit_bytes: number("compaction.max-commit-bytes")?.max(1),
        snapshot_expiry: flag("snapshot-expiry.enabled")?,
        min_snapshots_to_keep: u32::try_from(number("snapshot-expiry.min-snapshots-to-keep")?)
            .unwrap_or(u32::MAX)
            .max(1),
        max_snapshot_age_hours: number("snapshot-expiry.max-snapshot-age-hours")?,
        unreferenced_files: flag("unreferenced-files.enabled")?,
        unreferenced_days: number("unreferenced-files.unreferenced-days")?.max(1),
        non_current_days: number("unreferenced-files.non-current-days")?,
        orphan_interval_hours: number("unreferenced-files.interval-hours")?.max(1),
        manifest_rewrite: flag("manifest-rewrite.enabled")?,
        min_manifests: to_usize(number("manifest-rewrite.min-manifests")?).max(2),
        scrub: flag("scrub.enabled")?,
        scrub_interval_hours: number("scrub.interval-hours")?.max(1),
        scrub_deep: flag("scrub.deep")?,
        scrub_limits: crate::scrub::RateLimits {
            bytes_per_second: number("scrub.max-bytes-per-second")?,
            requests_per_second: number("scrub.max-requests-per-second")?,
        },
        settings,
    };
    Ok(policy)
}

/// Checks properties a client wants to set: every `floe.maintenance.*` name must be a known
/// setting with a valid value. Other names are not this module's business and pass.
pub fn validate(updates: &BTreeMap<String, String>) -> Result<(), String> {
    for name in updates.keys() {
        let Some(key) = name.strip_prefix(PREFIX) else {
            continue;
        };
        if !KEYS.iter().any(|(known, _)| *known == key) {
            return Err(format!(
                "unknown maintenance setting {name:?}; known: {}",
                KEYS.iter()
                    .map(|(key, _)| format!("{PREFIX}{key}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let explicit: BTreeMap<String, String> = updates
        .iter()
        .filter(|(name, _)| name.starts_with(PREFIX))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    resolve(&BTreeMap::new(), &BTreeMap::new(), &explicit).map(|_| ())
}

fn parse_flag(key: &str, setting: &Setting) -> Result<bool, String> {
    match setting.value.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{} must be true or false", describe(key, setting))),
    }
}

fn parse_number(key: &str, setting: &Setting) -> Result<u64, String> {
    setting
        .value
        .trim()
        .parse()
        .map_err(|_| format!("{} must be a whole number", describe(key, setting)))
}

fn describe(key: &str, setting: &Setting) -> String {
    format!(
        "{PREFIX}{key} = {:?} (set on the {})",
        setting.value,
        source_name(setting.source)
    )
}

fn source_name(source: Source) -> &'static str {
    match source {
        Source::Default => "built-in defaults",
        Source::Warehouse => "warehouse",
        Source::Namespace => "namespace",
        Source::TableIceberg => "table, as an Iceberg property",
        Source::Table => "table",
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_s3_tables_like() {
        let policy = resolve(&props(&[]), &props(&[]), &props(&[])).unwrap();
        assert!(policy.enabled && policy.compaction && policy.snapshot_expiry);
        assert_eq!(policy.target_file_size_bytes, 512 * MIB);
        assert_eq!(policy.min_snapshots_to_keep, 1);
        assert_eq!(policy.max_snapshot_age_hours, 120);
        assert_eq!(policy.unreferenced_days, 3);
        assert_eq!(policy.non_current_days, 10);
        assert!(policy.scrub && !policy.scrub_deep);
        assert_eq!(policy.scrub_interval_hours, 24);
        assert_eq!(policy.scrub_limits.bytes_per_second, 8 * MIB);
        assert_eq!(policy.scrub_limits.requests_per_second, 20);
        assert!(
            policy
                .settings
                .values()
                .all(|setting| setting.source == Source::Default)
        );
    }

    #[test]
    fn the_most_specific_layer_wins() {
        let warehouse = props(&[
            ("floe.maintenance.compaction.min-input-files", "8"),
            (
                "floe.maintenance.snapshot-expiry.max-snapshot-age-hours",
                "48",
            ),
            ("floe.maintenance.unreferenced-files.unreferenced-days", "7"),
        ]);
        let namespace = props(&[
            ("floe.maintenance.compaction.min-input-files", "6"),
            (
                "floe.maintenance.snapshot-expiry.max-snapshot-age-hours",
                "24",
            ),
        ]);
        let table = props(&[
            ("floe.maintenance.compaction.min-input-files", "3"),
            ("history.expire.max-snapshot-age-ms", "7200000"),
            ("write.target-file-size-bytes", "134217728"),
            ("unrelated", "x"),
        ]);
        let policy = resolve(&warehouse, &namespace, &table).unwrap();
        assert_eq!(policy.min_input_files, 3);
        assert_eq!(
            policy.settings["compaction.min-input-files"].source,
            Source::Table
        );
        assert_eq!(
            policy.max_snapshot_age_hours, 2,
            "the table's Iceberg property"
        );
        assert_eq!(
            policy.settings["snapshot-expiry.max-snapshot-age-hours"].source,
            Source::TableIceberg
        );
        assert_eq!(policy.target_file_size_bytes, 128 * MIB);
        assert_eq!(policy.unreferenced_days, 7);
        assert_eq!(
            policy.settings["unreferenced-files.unreferenced-days"].source,
            Source::Warehouse
        );
        // A table setting beats the table's own Iceberg equivalent.
        let table = props(&[
            ("history.expire.max-snapshot-age-ms", "7200000"),
            (
                "floe.maintenance.snapshot-expiry.max-snapshot-age-hours",
                "10",
            ),
        ]);
        let policy = resolve(&warehouse, &namespace, &table).unwrap();
        assert_eq!(policy.max_snapshot_age_hours, 10);
    }

    #[test]
    fn bad_values_name_the_property_and_where_it_is_set() {
        let err = resolve(
            &props(&[]),
            &props(&[("floe.maintenance.compaction.enabled", "yes")]),
            &props(&[]),
        )
        .unwrap_err();
        assert!(
            err.contains("floe.maintenance.compaction.enabled") && err.contains("namespace"),
            "{err}"
        );
        let err = resolve(
            &props(&[]),
            &props(&[]),
            &props(&[("write.target-file-size-bytes", "1024")]),
        )
        .unwrap_err();
        assert!(err.contains("outside the allowed"), "{err}");
        assert!(validate(&props(&[("floe.maintenance.compacton.enabled", "true")])).is_err());
        assert!(
            validate(&props(&[
                ("floe.maintenance.enabled", "false"),
                ("other", "x")
            ]))
            .is_ok()
        );
        assert!(
            validate(&props(&[(
                "floe.maintenance.snapshot-expiry.min-snapshots-to-keep",
                "x"
            )]))
            .is_err()
        );
    }
}
