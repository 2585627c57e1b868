-- Access control (see src/access.rs): the SQLite schema (../migrations/0008_access.sql) with
-- BYTEA for blobs and names compared in code point order (COLLATE "C"), as in 0001. Global, like
-- leases: not per warehouse handle.

-- Clients of the `oauth2` auth mode.
CREATE TABLE principals (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    client_id TEXT COLLATE "C" NOT NULL UNIQUE,
    -- An argon2 PHC string, never the secret.
    secret_hash TEXT NOT NULL,
    -- Unix milliseconds, by the store's clock.
    created_at BIGINT NOT NULL
);

CREATE TABLE roles (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY
);

-- Principals are named, not referenced: an `oidc` principal has no row in `principals`. Deleting a
-- principal's row deletes its assignments in code, in the same transaction.
CREATE TABLE role_assignments (
    principal TEXT COLLATE "C" NOT NULL,
    role TEXT COLLATE "C" NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    PRIMARY KEY (principal, role)
);

-- For the cascade from a deleted role.
CREATE INDEX role_assignments_by_role ON role_assignments (role);

-- A securable is four columns: its kind, its warehouse, its namespace (levels joined with U+001F)
-- and its table or view name, with '' for what it does not have (a warehouse has no namespace).
CREATE TABLE grants (
    role TEXT COLLATE "C" NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    privilege TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL CHECK (kind IN ('server', 'warehouse', 'namespace', 'table', 'view')),
    warehouse TEXT COLLATE "C" NOT NULL,
    namespace TEXT COLLATE "C" NOT NULL,
    name TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (role, privilege, kind, warehouse, namespace, name)
);

-- One row: bumped by every change that can alter an authorization decision, in its transaction.
CREATE TABLE policy_version (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);

-- Starts at 1, so that a cache that never loaded (version 0) is always stale.
INSERT INTO policy_version (id, version) VALUES (1, 1);

CREATE TABLE signing_keys (
    kid TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    algorithm TEXT NOT NULL,
    -- PKCS#8 DER.
    private_key BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    -- Unix milliseconds, by the store's clock; later than every older key's.
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    -- UUIDv7: time-ordered.
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    -- Unix milliseconds, by the recording server's clock.
    at_ms BIGINT NOT NULL,
    principal TEXT COLLATE "C" NOT NULL,
    route TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status BIGINT NOT NULL,
    request_id TEXT NOT NULL
);

CREATE INDEX audit_log_by_time ON audit_log (at_ms);
CREATE INDEX audit_log_by_principal ON audit_log (principal, at_ms);
