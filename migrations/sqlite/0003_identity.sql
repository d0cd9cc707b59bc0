-- Consumer identity on SQLite: trusted JWT issuers, and the per-API opt-in to forward the
-- caller's bearer token upstream.

CREATE TABLE issuers (
    id              TEXT    NOT NULL PRIMARY KEY,
    issuer          TEXT    NOT NULL UNIQUE,
    audiences       TEXT    NOT NULL,
    algorithms      TEXT    NOT NULL,
    jwks_uri        TEXT,
    -- An inline JWKS document; may hold HS256 shared secrets.
    inline_keys     TEXT,
    consumer_claim  TEXT    NOT NULL CHECK (consumer_claim IN ('sub', 'azp', 'client_id')),
    leeway_seconds  INTEGER NOT NULL CHECK (leeway_seconds >= 0),
    created_at      INTEGER NOT NULL,
    CHECK (jwks_uri IS NOT NULL OR inline_keys IS NOT NULL)
) STRICT;

ALTER TABLE apis ADD COLUMN forward_bearer INTEGER NOT NULL DEFAULT 0
    CHECK (forward_bearer IN (0, 1));
