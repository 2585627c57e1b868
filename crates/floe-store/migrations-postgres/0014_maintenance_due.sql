-- What maintenance is due (see src/due.rs): one row per table and job kind, so that the scheduler
-- claims what is due with one indexed query instead of walking every table. Rows follow their
-- table: a rename moves them, a drop deletes them.
CREATE TABLE maintenance_due (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    -- 'compaction', 'snapshot-expiry', 'manifest-rewrite', 'orphan-removal' or 'scrub'.
    kind TEXT NOT NULL,
    -- Unix ms when the job is due; NULL: not until a commit makes it so. A claim moves it forward
    -- by the claim's hold.
    due_at BIGINT,
    -- What commits added since the last run (files for compaction, manifests for the manifest
    -- rewrite); the job is due at once when it reaches `threshold`, which the last run set.
    pending BIGINT NOT NULL DEFAULT 0,
    threshold BIGINT NOT NULL DEFAULT 1,
    -- Snapshot expiry: the table's snapshot age limit at the last run, in ms.
    period_ms BIGINT NOT NULL DEFAULT 0,
    -- The claim holding the row, if any.
    claim TEXT,
    PRIMARY KEY (namespace, name, kind),
    FOREIGN KEY (namespace, name) REFERENCES tables (namespace, name)
        ON UPDATE CASCADE ON DELETE CASCADE
);

CREATE INDEX maintenance_due_by_time ON maintenance_due (due_at) WHERE due_at IS NOT NULL;

-- Every existing table is due once, as the first pass of the scheduler this replaces would have
-- found it; its runs then set when each job is next due.
INSERT INTO maintenance_due (namespace, name, kind, due_at)
SELECT t.namespace, t.name, k.kind, 0
FROM tables t
CROSS JOIN (
    SELECT 'compaction' AS kind UNION ALL SELECT 'snapshot-expiry' UNION ALL
    SELECT 'manifest-rewrite' UNION ALL SELECT 'orphan-removal' UNION ALL SELECT 'scrub'
) k
WHERE t.kind = 'table';

-- The default warehouse's maintenance defaults come from the server's configuration, not from a
-- row: the fingerprint of those the scheduler last started with tells it when they changed.
CREATE TABLE maintenance_defaults (
    scope TEXT NOT NULL PRIMARY KEY,
    fingerprint TEXT NOT NULL
);
