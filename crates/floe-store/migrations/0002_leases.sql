-- Leases: which replica runs a background job that must run once across replicas.
CREATE TABLE leases (
    name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    -- Unix time in milliseconds, by the store's clock, after which anyone may take the lease.
    expires_at_ms BIGINT NOT NULL
);
