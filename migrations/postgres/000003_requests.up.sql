-- Pairing phrases, connections, login and pairing requests with the devices
-- they were sent to, and per-user limit state. Times are BIGINT unix
-- microseconds UTC; NULL means "not set". Identifiers use the "C" collation.
--
-- relying_party_id and device_id have no foreign keys here: connections and
-- requests are kept for audit after what they refer to is gone.

CREATE TABLE pairing_phrases (
    hash       BYTEA PRIMARY KEY,
    device_id  TEXT COLLATE "C" NOT NULL,
    created_at BIGINT,
    expires_at BIGINT,
    used_at    BIGINT
);

CREATE INDEX pairing_phrases_device_id_idx ON pairing_phrases (device_id);
-- PutPairingPhrase deletes expired phrases on every call.
CREATE INDEX pairing_phrases_expires_at_idx ON pairing_phrases (expires_at);

CREATE TABLE connections (
    id               TEXT COLLATE "C" PRIMARY KEY,
    relying_party_id TEXT COLLATE "C" NOT NULL,
    user_ref         TEXT COLLATE "C" NOT NULL,
    device_id        TEXT COLLATE "C" NOT NULL,
    account_label    TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL DEFAULT '',
    created_at       BIGINT,
    activated_at     BIGINT,
    removed_at       BIGINT
);

CREATE INDEX connections_relying_party_id_user_ref_status_idx ON connections (relying_party_id, user_ref, status);
CREATE INDEX connections_device_id_status_idx ON connections (device_id, status);
-- At most one ACTIVE connection per relying party, user and device.
CREATE UNIQUE INDEX connections_active_key ON connections (relying_party_id, user_ref, device_id) WHERE status = 'ACTIVE';

CREATE TABLE requests (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    kind               TEXT NOT NULL DEFAULT '',
    relying_party_id   TEXT COLLATE "C" NOT NULL,
    user_ref           TEXT COLLATE "C" NOT NULL,
    connection_id      TEXT COLLATE "C" NOT NULL DEFAULT '',
    account_label      TEXT NOT NULL DEFAULT '',
    context_app_name   TEXT NOT NULL DEFAULT '',
    context_ip_address TEXT NOT NULL DEFAULT '',
    context_location   TEXT NOT NULL DEFAULT '',
    context_browser    TEXT NOT NULL DEFAULT '',
    context_action     TEXT NOT NULL DEFAULT '',
    number_matching    TEXT NOT NULL DEFAULT '',
    number_hash        BYTEA,
    status             TEXT NOT NULL DEFAULT '',
    reason             TEXT NOT NULL DEFAULT '',
    created_at         BIGINT,
    expires_at         BIGINT,
    decided_at         BIGINT,
    decided_by         TEXT COLLATE "C" NOT NULL DEFAULT '',
    payload            BYTEA,
    signature          BYTEA,
    auto_approved      BOOLEAN NOT NULL DEFAULT FALSE,
    location_rule_id   TEXT COLLATE "C" NOT NULL DEFAULT ''
);

CREATE INDEX requests_relying_party_id_user_ref_status_idx ON requests (relying_party_id, user_ref, status);
CREATE INDEX requests_status_expires_at_idx ON requests (status, expires_at);

CREATE TABLE request_targets (
    request_id TEXT COLLATE "C" NOT NULL REFERENCES requests (id),
    device_id  TEXT COLLATE "C" NOT NULL,
    delivery   TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '',
    updated_at BIGINT,
    seen_at    BIGINT,
    PRIMARY KEY (request_id, device_id)
);

CREATE INDEX request_targets_device_id_idx ON request_targets (device_id);

CREATE TABLE user_states (
    relying_party_id     TEXT COLLATE "C" NOT NULL,
    user_ref             TEXT COLLATE "C" NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    backoff_until        BIGINT,
    muted_until          BIGINT,
    updated_at           BIGINT,
    PRIMARY KEY (relying_party_id, user_ref)
);
