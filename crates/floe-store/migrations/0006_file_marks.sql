-- Two-phase unreferenced-file removal: a file found unreferenced is marked first and deleted only
-- once its mark is old enough, so that a file is deleted only after it stayed unreferenced for
-- the whole delay. `scope` is the table location the file was found under.
CREATE TABLE file_marks (
    scope TEXT NOT NULL,
    path TEXT NOT NULL,
    -- Unix milliseconds, by the store's clock.
    marked_at BIGINT NOT NULL,
    PRIMARY KEY (scope, path)
);
