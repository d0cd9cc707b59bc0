-- Rate limits (issue 5): per-operation overrides and the Redis failure mode of a plan, and
-- the quota counters the local limiter checkpoints so that quotas survive a restart.

-- JSON array of {operation_id, rate: {requests, per_seconds, burst?}}.
ALTER TABLE plans ADD COLUMN overrides TEXT NOT NULL DEFAULT '[]';
ALTER TABLE plans ADD COLUMN on_redis_failure TEXT NOT NULL DEFAULT 'open'
    CHECK (on_redis_failure IN ('open', 'closed'));

-- One running counter per consumer × API (written every few seconds, not per request).
CREATE TABLE quota_usage (
    consumer      TEXT COLLATE "C" NOT NULL,
    api           TEXT COLLATE "C" NOT NULL,
    period_start  BIGINT NOT NULL,
    period_end    BIGINT NOT NULL,
    used          BIGINT NOT NULL CHECK (used >= 0),
    PRIMARY KEY (consumer, api)
);
