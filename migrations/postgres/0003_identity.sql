-- Consumer identity on PostgreSQL: trusted JWT issuers, and the per-API opt-in to forward
-- the caller's bearer token upstream.

CREATE TABLE issuers (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    issuer          TEXT COLLATE "C" NOT NULL UNIQUE,
    audiences       TEXT   NOT NULL,
    algorithms      TEXT   NOT NULL,
    jwks_uri        TEXT,
    -- An inline JWKS document; may hold HS256 shared secrets.
    inline_keys     TEXT,
    consumer_claim  TEXT   NOT NULL CHECK (consumer_claim IN ('sub', 'azp', 'client_id')),
    leeway_seconds  BIGINT NOT NULL CHECK (leeway_seconds >= 0),
    created_at      BIGINT NOT NULL,
    CHECK (jwks_uri IS NOT NULL OR inline_keys IS NOT NULL)
);

ALTER TABLE apis ADD COLUMN forward_bearer BOOLEAN NOT NULL DEFAULT FALSE;
