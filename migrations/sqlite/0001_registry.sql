-- The registry schema on SQLite. Times are Unix milliseconds (INTEGER); lists are JSON
-- TEXT; booleans are 0/1. STRICT tables make SQLite refuse values of the wrong type.

CREATE TABLE teams (
    name        TEXT    NOT NULL PRIMARY KEY,
    contact     TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE apis (
    slug            TEXT    NOT NULL PRIMARY KEY,
    title           TEXT    NOT NULL,
    description     TEXT,
    team            TEXT    NOT NULL REFERENCES teams (name),
    version_header  INTEGER NOT NULL CHECK (version_header IN (0, 1)),
    default_major   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;
CREATE INDEX apis_team ON apis (team);

CREATE TABLE versions (
    api               TEXT    NOT NULL REFERENCES apis (slug),
    version           TEXT    NOT NULL,
    major             INTEGER NOT NULL,
    state             TEXT    NOT NULL
                      CHECK (state IN ('draft', 'published', 'deprecated', 'retired')),
    spec_raw          BLOB    NOT NULL,
    spec_json         TEXT    NOT NULL,
    sha256            TEXT    NOT NULL,
    content_type      TEXT    NOT NULL,
    deprecated_at     INTEGER,
    sunset_at         INTEGER,
    successor         TEXT,
    deprecation_link  TEXT,
    brownouts         TEXT    NOT NULL DEFAULT '[]',
    created_by        TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    updated_by        TEXT    NOT NULL,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (api, version)
) STRICT;

CREATE TABLE upstreams (
    api                 TEXT    NOT NULL REFERENCES apis (slug),
    major               INTEGER NOT NULL,
    targets             TEXT    NOT NULL,
    connect_timeout_ms  INTEGER NOT NULL,
    read_timeout_ms     INTEGER NOT NULL,
    PRIMARY KEY (api, major)
) STRICT;

-- One entity has one system of record across all APIs: the entity alone is the key.
CREATE TABLE systems_of_record (
    entity  TEXT NOT NULL PRIMARY KEY,
    system  TEXT NOT NULL,
    api     TEXT NOT NULL REFERENCES apis (slug)
) STRICT;
CREATE INDEX systems_of_record_api ON systems_of_record (api);

CREATE TABLE consumers (
    name        TEXT    NOT NULL PRIMARY KEY,
    contact     TEXT,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id            TEXT    NOT NULL PRIMARY KEY,
    consumer      TEXT    NOT NULL REFERENCES consumers (name),
    hash          TEXT    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER
) STRICT;
CREATE INDEX api_keys_consumer ON api_keys (consumer);

CREATE TABLE plans (
    name              TEXT    NOT NULL PRIMARY KEY,
    rate_requests     INTEGER NOT NULL CHECK (rate_requests >= 0),
    rate_per_seconds  INTEGER NOT NULL CHECK (rate_per_seconds >= 0),
    rate_burst        INTEGER CHECK (rate_burst >= 0),
    quota_requests    INTEGER CHECK (quota_requests >= 0),
    quota_period      TEXT    CHECK (quota_period IN ('day', 'month')),
    CHECK ((quota_requests IS NULL) = (quota_period IS NULL))
) STRICT;

CREATE TABLE subscriptions (
    consumer  TEXT NOT NULL REFERENCES consumers (name),
    api       TEXT NOT NULL REFERENCES apis (slug),
    majors    TEXT NOT NULL,
    plan      TEXT NOT NULL REFERENCES plans (name),
    scopes    TEXT NOT NULL,
    PRIMARY KEY (consumer, api)
) STRICT;
CREATE INDEX subscriptions_api ON subscriptions (api);
CREATE INDEX subscriptions_plan ON subscriptions (plan);

CREATE TABLE admin_tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    hash        TEXT    NOT NULL UNIQUE,
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'architect', 'owner', 'auditor')),
    team        TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

-- Append-only and hash-chained: `hash` covers `prev_hash` and the entry's content.
CREATE TABLE change_log (
    seq            INTEGER NOT NULL PRIMARY KEY,
    at             INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    role           TEXT    NOT NULL CHECK (role IN ('admin', 'architect', 'owner', 'auditor')),
    action         TEXT    NOT NULL,
    target         TEXT    NOT NULL,
    before_digest  TEXT,
    after_digest   TEXT,
    reason         TEXT,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL UNIQUE
) STRICT;
CREATE INDEX change_log_at ON change_log (at);
CREATE INDEX change_log_actor ON change_log (actor);
CREATE INDEX change_log_target ON change_log (target);
