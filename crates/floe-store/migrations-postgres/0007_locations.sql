-- Disjoint locations: each table's and view's location (the directory its files live under), in
-- canonical form, so that the store can refuse a location that equals, contains or lies inside
-- another's by comparing strings (see *Locations* in the crate docs). NULL in rows written before
-- this migration, until the commit engine fills them in from their metadata files, once.
-- COLLATE "C": the check's range `L/ <= location < L0` is a byte range.
ALTER TABLE tables ADD COLUMN location TEXT COLLATE "C";

-- Serves both halves of the check: equality with the location or one of its ancestors (`IN`),
-- and the range of locations inside it. Not unique: rows written before this migration may
-- already overlap, and must still get their locations recorded.
CREATE INDEX tables_by_location ON tables (location);

-- One row, locked (SELECT ... FOR UPDATE) by every transaction that sets a location, before it
-- touches any pointer row: such transactions run one at a time, so that two of them cannot both
-- check, find nothing, and commit overlapping locations. Transactions that keep their tables'
-- locations (ordinary commits) never take it. A row lock rather than an advisory lock, which
-- CockroachDB and YugabyteDB do not all have.
CREATE TABLE location_guard (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1)
);
INSERT INTO location_guard (id) VALUES (1);
