-- The PostgreSQL metadata store's first schema: the SQLite one (../migrations/0001_initial.sql) with
-- BYTEA for blobs, and every name compared in code point order (COLLATE "C") whatever collation the
-- database was created with, so that listings and page tokens agree with the SQLite backend.
-- Plain SQL that CockroachDB and YugabyteDB accept too.

CREATE TABLE namespaces (
    -- The levels joined with U+001F, which a level never contains.
    path TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- The parent's path, NULL for a top-level namespace. The foreign key makes dropping a namespace
    -- that still has children impossible, whatever the code above does.
    parent TEXT COLLATE "C" REFERENCES namespaces (path),
    -- The last level: what listings sort by and page on.
    name TEXT COLLATE "C" NOT NULL,
    -- A JSON object of strings.
    properties TEXT NOT NULL
);

CREATE INDEX namespaces_by_parent ON namespaces (parent, name);

-- One row per table: the pointer to its current metadata file.
CREATE TABLE tables (
    namespace TEXT COLLATE "C" NOT NULL REFERENCES namespaces (path),
    name TEXT COLLATE "C" NOT NULL,
    metadata_location TEXT NOT NULL,
    -- 1 at creation, +1 on every swap.
    version BIGINT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE idempotency_keys (
    key TEXT NOT NULL PRIMARY KEY,
    -- Identifies the request that claimed the key; a retry must carry the same one.
    fingerprint TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'completed')),
    -- The response, once completed.
    status INTEGER,
    body BYTEA,
    content_type TEXT,
    -- Unix time in milliseconds, by the database server's clock.
    created_at BIGINT NOT NULL
);

CREATE INDEX idempotency_keys_by_created_at ON idempotency_keys (created_at);
