-- All times are BIGINT unix microseconds UTC; NULL means "not set".
-- Identifiers use the "C" collation so paging by ID orders bytes, as SQLite does.

CREATE TABLE relying_parties (
    id                        TEXT COLLATE "C" PRIMARY KEY,
    name                      TEXT NOT NULL UNIQUE,
    display_name              TEXT NOT NULL DEFAULT '',
    number_matching           TEXT NOT NULL DEFAULT '',
    approval_ttl_ms           BIGINT NOT NULL DEFAULT 0,
    allow_location_automation BOOLEAN NOT NULL DEFAULT FALSE,
    allow_backup_restore      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at                BIGINT,
    updated_at                BIGINT
);

CREATE TABLE api_keys (
    id               TEXT COLLATE "C" PRIMARY KEY,
    relying_party_id TEXT COLLATE "C" NOT NULL REFERENCES relying_parties (id),
    prefix           TEXT COLLATE "C" NOT NULL UNIQUE,
    hash             BYTEA,
    description      TEXT NOT NULL DEFAULT '',
    created_at       BIGINT,
    last_used_at     BIGINT,
    revoked_at       BIGINT
);

CREATE INDEX api_keys_relying_party_id_idx ON api_keys (relying_party_id);

CREATE TABLE devices (
    id                TEXT COLLATE "C" PRIMARY KEY,
    credential_prefix TEXT COLLATE "C" NOT NULL UNIQUE,
    credential_hash   BYTEA,
    phone_number      TEXT NOT NULL DEFAULT '',
    public_key        BYTEA,
    platform          TEXT NOT NULL DEFAULT '',
    push_token        TEXT NOT NULL DEFAULT '',
    push_token_dead   BOOLEAN NOT NULL DEFAULT FALSE,
    name              TEXT NOT NULL DEFAULT '',
    app_version       TEXT NOT NULL DEFAULT '',
    created_at        BIGINT,
    last_seen_at      BIGINT,
    revoked_at        BIGINT
);

CREATE INDEX devices_phone_number_idx ON devices (phone_number);

-- relying_party_id has no foreign key: events outlive what they describe and
-- may concern no relying party at all ('').
CREATE TABLE audit_events (
    id               BIGSERIAL PRIMARY KEY,
    time             BIGINT,
    actor            TEXT NOT NULL DEFAULT '',
    action           TEXT NOT NULL DEFAULT '',
    relying_party_id TEXT COLLATE "C" NOT NULL DEFAULT '',
    target           TEXT NOT NULL DEFAULT '',
    request_id       TEXT NOT NULL DEFAULT '',
    details          TEXT NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_relying_party_id_id_idx ON audit_events (relying_party_id, id);
