-- Warehouses registered through the management API. The server's configured (default) warehouse
-- is not a row: its namespaces have a NULL `warehouse`, as every namespace had before this
-- migration, so existing stores keep their tables without moving any data.

CREATE TABLE warehouses (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- `s3://bucket/prefix`, `file:///dir` or `memory://name`.
    storage_url TEXT NOT NULL,
    -- A JSON object of strings: storage settings such as `s3.endpoint`.
    properties TEXT NOT NULL,
    -- Unix time in milliseconds.
    created_at BIGINT NOT NULL
);

-- The foreign key keeps a warehouse from being dropped while it has namespaces, and a namespace
-- from being created in a warehouse that is gone, whichever of two racing requests comes first.
-- Keys of a registered warehouse's namespaces start with U+001F and its name (see the store's
-- `Scope`), so `path` stays unique across warehouses.
ALTER TABLE namespaces ADD COLUMN warehouse TEXT COLLATE "C" REFERENCES warehouses (name);

CREATE INDEX namespaces_by_warehouse ON namespaces (warehouse, parent, name);
