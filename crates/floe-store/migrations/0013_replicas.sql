-- The server processes serving from this store (see src/replicas.rs): each writes a heartbeat
-- while it runs, so that an operator (the console's server page) sees which replicas are alive.
-- Global, like job records.
CREATE TABLE replicas (
    -- One per server process (a UUIDv7 made at start).
    id TEXT NOT NULL PRIMARY KEY,
    -- What it listens on (host:port), and its version.
    address TEXT NOT NULL,
    version TEXT NOT NULL,
    -- Unix milliseconds: when the process started (its own clock), when it last wrote (the store's).
    started_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX replicas_by_last_seen ON replicas (last_seen_at);
