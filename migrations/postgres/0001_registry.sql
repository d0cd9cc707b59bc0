-- The registry schema on PostgreSQL. Times are Unix milliseconds (BIGINT); lists are JSON
-- TEXT (the store never queries inside them); the spec is kept byte for byte as BYTEA.
-- Key columns use the "C" collation so names order bytewise, as they do on SQLite, and
-- pagination by natural key gives the same pages on both backends.

CREATE TABLE teams (
    name        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    contact     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE apis (
    slug            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    title           TEXT    NOT NULL,
    description     TEXT,
    team            TEXT COLLATE "C" NOT NULL REFERENCES teams (name),
    version_header  BOOLEAN NOT NULL,
    default_major   BIGINT,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);
CREATE INDEX apis_team ON apis (team);

CREATE TABLE versions (
    api               TEXT COLLATE "C" NOT NULL REFERENCES apis (slug),
    version           TEXT COLLATE "C" NOT NULL,
    major             BIGINT NOT NULL,
    state             TEXT   NOT NULL
                      CHECK (state IN ('draft', 'published', 'deprecated', 'retired')),
    spec_raw          BYTEA  NOT NULL,
    spec_json         TEXT   NOT NULL,
    sha256            TEXT   NOT NULL,
    content_type      TEXT   NOT NULL,
    deprecated_at     BIGINT,
    sunset_at         BIGINT,
    successor         TEXT,
    deprecation_link  TEXT,
    brownouts         TEXT   NOT NULL DEFAULT '[]',
    created_by        TEXT   NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_by        TEXT   NOT NULL,
    updated_at        BIGINT NOT NULL,
    PRIMARY KEY (api, version)
);

CREATE TABLE upstreams (
    api                 TEXT COLLATE "C" NOT NULL REFERENCES apis (slug),
    major               BIGINT NOT NULL,
    targets             TEXT   NOT NULL,
    connect_timeout_ms  BIGINT NOT NULL,
    read_timeout_ms     BIGINT NOT NULL,
    PRIMARY KEY (api, major)
);

-- One entity has one system of record across all APIs: the entity alone is the key.
CREATE TABLE systems_of_record (
    entity  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    system  TEXT NOT NULL,
    api     TEXT COLLATE "C" NOT NULL REFERENCES apis (slug)
);
CREATE INDEX systems_of_record_api ON systems_of_record (api);

CREATE TABLE consumers (
    name        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    contact     TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    consumer      TEXT COLLATE "C" NOT NULL REFERENCES consumers (name),
    hash          TEXT   NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE INDEX api_keys_consumer ON api_keys (consumer);

CREATE TABLE plans (
    name              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    rate_requests     BIGINT NOT NULL CHECK (rate_requests >= 0),
    rate_per_seconds  BIGINT NOT NULL CHECK (rate_per_seconds >= 0),
    rate_burst        BIGINT CHECK (rate_burst >= 0),
    quota_requests    BIGINT CHECK (quota_requests >= 0),
    quota_period      TEXT   CHECK (quota_period IN ('day', 'month')),
    CHECK ((quota_requests IS NULL) = (quota_period IS NULL))
);

CREATE TABLE subscriptions (
    consumer  TEXT COLLATE "C" NOT NULL REFERENCES consumers (name),
    api       TEXT COLLATE "C" NOT NULL REFERENCES apis (slug),
    majors    TEXT NOT NULL,
    plan      TEXT COLLATE "C" NOT NULL REFERENCES plans (name),
    scopes    TEXT NOT NULL,
    PRIMARY KEY (consumer, api)
);
CREATE INDEX subscriptions_api ON subscriptions (api);
CREATE INDEX subscriptions_plan ON subscriptions (plan);

CREATE TABLE admin_tokens (
    id          TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    hash        TEXT   NOT NULL UNIQUE,
    role        TEXT   NOT NULL CHECK (role IN ('admin', 'architect', 'owner', 'auditor')),
    team        TEXT,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Append-only and hash-chained: `hash` covers `prev_hash` and the entry's content.
-- Writers take `LOCK TABLE change_log IN SHARE ROW EXCLUSIVE MODE` first, so `seq` is
-- always the previous maximum plus one and the chain never forks.
CREATE TABLE change_log (
    seq            BIGINT NOT NULL PRIMARY KEY,
    at             BIGINT NOT NULL,
    actor          TEXT COLLATE "C" NOT NULL,
    role           TEXT   NOT NULL CHECK (role IN ('admin', 'architect', 'owner', 'auditor')),
    action         TEXT   NOT NULL,
    target         TEXT COLLATE "C" NOT NULL,
    before_digest  TEXT,
    after_digest   TEXT,
    reason         TEXT,
    prev_hash      TEXT   NOT NULL,
    hash           TEXT   NOT NULL UNIQUE
);
CREATE INDEX change_log_at ON change_log (at);
CREATE INDEX change_log_actor ON change_log (actor);
CREATE INDEX change_log_target ON change_log (target);
