-- Per-API validation policy (issue 6): request validation on/off, response validation
-- off|report|enforce, the request body limit in bytes, and whether undeclared query
-- parameters are refused. Existing APIs get the defaults.

ALTER TABLE apis
    ADD COLUMN request_validation BOOLEAN NOT NULL DEFAULT TRUE,
    ADD COLUMN response_validation TEXT NOT NULL DEFAULT 'off'
        CHECK (response_validation IN ('off', 'report', 'enforce')),
    ADD COLUMN max_body_bytes BIGINT NOT NULL DEFAULT 1048576 CHECK (max_body_bytes > 0),
    ADD COLUMN reject_unknown_query BOOLEAN NOT NULL DEFAULT FALSE;
