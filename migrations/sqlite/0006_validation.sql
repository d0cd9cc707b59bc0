-- Per-API validation policy (issue 6): request validation on/off, response validation
-- off|report|enforce, the request body limit in bytes, and whether undeclared query
-- parameters are refused. Existing APIs get the defaults.

ALTER TABLE apis ADD COLUMN request_validation INTEGER NOT NULL DEFAULT 1
    CHECK (request_validation IN (0, 1));
ALTER TABLE apis ADD COLUMN response_validation TEXT NOT NULL DEFAULT 'off'
    CHECK (response_validation IN ('off', 'report', 'enforce'));
ALTER TABLE apis ADD COLUMN max_body_bytes INTEGER NOT NULL DEFAULT 1048576
    CHECK (max_body_bytes > 0);
ALTER TABLE apis ADD COLUMN reject_unknown_query INTEGER NOT NULL DEFAULT 0
    CHECK (reject_unknown_query IN (0, 1));
