-- Disjoint locations: each table's and view's location (the directory its files live under), in
-- canonical form, so that the store can refuse a location that equals, contains or lies inside
-- another's by comparing strings (see *Locations* in the crate docs). NULL in rows written before
-- this migration, until the commit engine fills them in from their metadata files, once.
ALTER TABLE tables ADD COLUMN location TEXT;

-- Serves both halves of the check: equality with the location or one of its ancestors (`IN`),
-- and the range of locations inside it. Not unique: rows written before this migration may
-- already overlap, and must still get their locations recorded.
CREATE INDEX tables_by_location ON tables (location);
