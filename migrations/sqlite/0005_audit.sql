-- The access log: one row per gateway request, refusals included, written in batches by the
-- gateway's access-log writer (never by the admin API). `id` is a UUIDv7 the gateway gives
-- each record; (at, id) is the key, so a batch inserted twice (a retry, a spool replay after
-- a crash) is kept once. Clustered by time (WITHOUT ROWID): time ranges read sequentially.
-- Durations are microseconds; `flags` is a bit set (1 response failed validation,
-- 2 deprecated version called, 4 brownout).
CREATE TABLE access_log (
    at             INTEGER NOT NULL,
    id             TEXT    NOT NULL,
    request_id     TEXT    NOT NULL,
    trace_id       TEXT,
    consumer       TEXT,
    key_id         TEXT,
    subject        TEXT,
    api            TEXT,
    major          INTEGER,
    version        TEXT,
    operation      TEXT,
    method         TEXT    NOT NULL,
    path_template  TEXT,
    path           TEXT    NOT NULL,
    status         INTEGER NOT NULL,
    decision       TEXT    NOT NULL CHECK (decision IN ('allowed', 'refused', 'failed')),
    reason         TEXT,
    duration_us    INTEGER NOT NULL,
    upstream_us    INTEGER NOT NULL,
    bytes_in       INTEGER NOT NULL,
    bytes_out      INTEGER NOT NULL,
    client_addr    TEXT,
    user_agent     TEXT,
    flags          INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (at, id)
) STRICT, WITHOUT ROWID;

-- The auditor's filters, each followed by time so a filtered window is one index range.
CREATE INDEX access_log_consumer ON access_log (consumer, at);
CREATE INDEX access_log_api_major ON access_log (api, major, at);
CREATE INDEX access_log_status ON access_log (status, at);
CREATE INDEX access_log_decision ON access_log (decision, at);
