-- The scrubber's findings (see src/scrub.rs): problems with the files a table references. Global,
-- like job records: every replica's scheduler records here.
CREATE TABLE scrub_findings (
    -- UUIDv7: time-ordered.
    id TEXT NOT NULL PRIMARY KEY,
    warehouse TEXT NOT NULL,
    -- The namespace as a JSON array of its levels (as maintenance_jobs keeps it), and the table.
    namespace TEXT NOT NULL,
    table_name TEXT NOT NULL,
    -- The file's location, as the table's metadata spells it.
    file TEXT NOT NULL,
    -- missing, size-mismatch, unreadable-footer, ...: checked in code, so a new kind needs no
    -- migration.
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    -- The snapshot ids that reference the file, as a JSON array.
    snapshots TEXT NOT NULL,
    -- Unix milliseconds, by the store's clock.
    found_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    -- NULL while the finding is open.
    resolved_at BIGINT
);

-- At most one open finding per problem: a problem found again refreshes it (an upsert on this
-- index) instead of adding rows.
CREATE UNIQUE INDEX scrub_findings_open ON scrub_findings (warehouse, namespace, table_name, file, kind)
    WHERE resolved_at IS NULL;
CREATE INDEX scrub_findings_by_time ON scrub_findings (found_at);
CREATE INDEX scrub_findings_by_table ON scrub_findings (warehouse, namespace, table_name, found_at);
