-- All times are INTEGER unix microseconds UTC; NULL means "not set".
-- Booleans are INTEGER 0/1. STRICT makes SQLite reject values of the wrong
-- type, as PostgreSQL would.

CREATE TABLE relying_parties (
    id                        TEXT NOT NULL PRIMARY KEY,
    name                      TEXT NOT NULL UNIQUE,
    display_name              TEXT NOT NULL DEFAULT '',
    number_matching           TEXT NOT NULL DEFAULT '',
    approval_ttl_ms           INTEGER NOT NULL DEFAULT 0,
    allow_location_automation INTEGER NOT NULL DEFAULT 0,
    allow_backup_restore      INTEGER NOT NULL DEFAULT 0,
    created_at                INTEGER,
    updated_at                INTEGER
) STRICT;

CREATE TABLE api_keys (
    id               TEXT NOT NULL PRIMARY KEY,
    relying_party_id TEXT NOT NULL REFERENCES relying_parties (id),
    prefix           TEXT NOT NULL UNIQUE,
    hash             BLOB,
    description      TEXT NOT NULL DEFAULT '',
    created_at       INTEGER,
    last_used_at     INTEGER,
    revoked_at       INTEGER
) STRICT;

CREATE INDEX api_keys_relying_party_id_idx ON api_keys (relying_party_id);

CREATE TABLE devices (
    id                TEXT NOT NULL PRIMARY KEY,
    credential_prefix TEXT NOT NULL UNIQUE,
    credential_hash   BLOB,
    phone_number      TEXT NOT NULL DEFAULT '',
    public_key        BLOB,
    platform          TEXT NOT NULL DEFAULT '',
    push_token        TEXT NOT NULL DEFAULT '',
    push_token_dead   INTEGER NOT NULL DEFAULT 0,
    name              TEXT NOT NULL DEFAULT '',
    app_version       TEXT NOT NULL DEFAULT '',
    created_at        INTEGER,
    last_seen_at      INTEGER,
    revoked_at        INTEGER
) STRICT;

CREATE INDEX devices_phone_number_idx ON devices (phone_number);

-- relying_party_id has no foreign key: events outlive what they describe and
-- may concern no relying party at all (''). AUTOINCREMENT keeps IDs from ever
-- being reused.
CREATE TABLE audit_events (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    time             INTEGER,
    actor            TEXT NOT NULL DEFAULT '',
    action           TEXT NOT NULL DEFAULT '',
    relying_party_id TEXT NOT NULL DEFAULT '',
    target           TEXT NOT NULL DEFAULT '',
    request_id       TEXT NOT NULL DEFAULT '',
    details          TEXT NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX audit_events_relying_party_id_id_idx ON audit_events (relying_party_id, id);
