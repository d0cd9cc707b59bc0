-- The access log: one row per gateway request, refusals included, written in batches by the
-- gateway's access-log writer (never by the admin API). `id` is a UUIDv7 the gateway gives
-- each record; (at, id) is the key, so a batch inserted twice (a retry, a spool replay after
-- a crash) is kept once. Durations are microseconds; `flags` is a bit set (1 response failed
-- validation, 2 deprecated version called, 4 brownout).
--
-- Partitioned by day on `at` (Unix ms). The writer creates each day's partition ahead of
-- time (`access_log_pYYYYMMDD`) and drops those past the retention setting; the default
-- partition only catches records outside every daily range (a skewed clock), so an insert
-- never fails for want of a partition.
CREATE TABLE access_log (
    at             BIGINT NOT NULL,
    id             TEXT COLLATE "C" NOT NULL,
    request_id     TEXT   NOT NULL,
    trace_id       TEXT,
    consumer       TEXT COLLATE "C",
    key_id         TEXT,
    subject        TEXT,
    api            TEXT COLLATE "C",
    major          BIGINT,
    version        TEXT,
    operation      TEXT,
    method         TEXT   NOT NULL,
    path_template  TEXT,
    path           TEXT   NOT NULL,
    status         BIGINT NOT NULL,
    decision       TEXT   NOT NULL CHECK (decision IN ('allowed', 'refused', 'failed')),
    reason         TEXT,
    duration_us    BIGINT NOT NULL,
    upstream_us    BIGINT NOT NULL,
    bytes_in       BIGINT NOT NULL,
    bytes_out      BIGINT NOT NULL,
    client_addr    TEXT,
    user_agent     TEXT,
    flags          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (at, id)
) PARTITION BY RANGE (at);

CREATE TABLE access_log_default PARTITION OF access_log DEFAULT;

-- The auditor's filters, each followed by time so a filtered window is one index range
-- (created on every partition).
CREATE INDEX access_log_consumer ON access_log (consumer, at);
CREATE INDEX access_log_api_major ON access_log (api, major, at);
CREATE INDEX access_log_status ON access_log (status, at);
CREATE INDEX access_log_decision ON access_log (decision, at);
