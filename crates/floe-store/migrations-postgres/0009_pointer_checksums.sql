-- Integrity-checked pointers: the size in bytes and the SHA-256 (64 lowercase hex digits) of the
-- metadata file each table's and view's row names, written by the same statement that sets
-- metadata_location, so that a reader can tell that file from any other bytes (see *Integrity* in
-- the crate docs). Both NULL in rows written before this migration, until the first read of the
-- file records them (only while the row still names that file).
ALTER TABLE tables ADD COLUMN metadata_size BIGINT;
ALTER TABLE tables ADD COLUMN metadata_sha256 TEXT;
