-- The server processes serving from this store (see src/replicas.rs): the SQLite schema
-- (../migrations/0013_replicas.sql) with ids compared in code point order (COLLATE "C"), as in
-- 0001. Global, like job records.
CREATE TABLE replicas (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    address TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX replicas_by_last_seen ON replicas (last_seen_at);
