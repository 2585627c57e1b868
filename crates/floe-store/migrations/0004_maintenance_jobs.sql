-- What maintenance jobs did, for `floe maintenance history` and the management API. Global (not
-- per warehouse handle), like leases: the scheduler of any replica records here.
CREATE TABLE maintenance_jobs (
    id TEXT NOT NULL PRIMARY KEY,
    warehouse TEXT NOT NULL,
    -- The namespace as a JSON array of its levels, and the table's name.
    namespace TEXT NOT NULL,
    table_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    trigger_source TEXT NOT NULL,
    -- Unix milliseconds.
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    outcome TEXT NOT NULL,
    error TEXT,
    -- A JSON object of strings.
    stats TEXT NOT NULL
);

CREATE INDEX maintenance_jobs_by_table ON maintenance_jobs (warehouse, namespace, table_name, started_at);
CREATE INDEX maintenance_jobs_by_start ON maintenance_jobs (started_at);
