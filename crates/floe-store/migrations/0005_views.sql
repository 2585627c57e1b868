-- Views: pointers to view metadata files, in the same rows as tables' pointers. One primary key
-- over (namespace, name) for both kinds is what keeps a view and a table from ever sharing a name
-- in one namespace, whichever of two racing creates or renames comes first. Existing rows are
-- tables.
ALTER TABLE tables ADD COLUMN kind TEXT NOT NULL DEFAULT 'table' CHECK (kind IN ('table', 'view'));

-- Listings of one kind in one namespace, in name order.
CREATE INDEX tables_by_kind ON tables (namespace, kind, name);
