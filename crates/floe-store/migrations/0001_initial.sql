-- The metadata store's first schema. Written in SQL that PostgreSQL accepts as well (BLOB aside,
-- BYTEA there) so that the PostgreSQL backend keeps the same shape.

CREATE TABLE namespaces (
    -- The levels joined with U+001F, which a level never contains.
    path TEXT NOT NULL PRIMARY KEY,
    -- The parent's path, NULL for a top-level namespace. The foreign key makes dropping a namespace
    -- that still has children impossible, whatever the code above does.
    parent TEXT REFERENCES namespaces (path),
    -- The last level: what listings sort by and page on.
    name TEXT NOT NULL,
    -- A JSON object of strings.
    properties TEXT NOT NULL
);

CREATE INDEX namespaces_by_parent ON namespaces (parent, name);

-- One row per table: the pointer to its current metadata file.
CREATE TABLE tables (
    namespace TEXT NOT NULL REFERENCES namespaces (path),
    name TEXT NOT NULL,
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
    body BLOB,
    content_type TEXT,
    -- Unix time in milliseconds.
    created_at BIGINT NOT NULL
);

CREATE INDEX idempotency_keys_by_created_at ON idempotency_keys (created_at);
