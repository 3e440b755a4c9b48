-- Pairing phrases, connections, login and pairing requests with the devices
-- they were sent to, and per-user limit state. Times are INTEGER unix
-- microseconds UTC; NULL means "not set". Booleans are INTEGER 0/1.
--
-- relying_party_id and device_id have no foreign keys here: connections and
-- requests are kept for audit after what they refer to is gone.

CREATE TABLE pairing_phrases (
    hash       BLOB NOT NULL PRIMARY KEY,
    device_id  TEXT NOT NULL,
    created_at INTEGER,
    expires_at INTEGER,
    used_at    INTEGER
) STRICT;

CREATE INDEX pairing_phrases_device_id_idx ON pairing_phrases (device_id);
-- PutPairingPhrase deletes expired phrases on every call.
CREATE INDEX pairing_phrases_expires_at_idx ON pairing_phrases (expires_at);

CREATE TABLE connections (
    id               TEXT NOT NULL PRIMARY KEY,
    relying_party_id TEXT NOT NULL,
    user_ref         TEXT NOT NULL,
    device_id        TEXT NOT NULL,
    account_label    TEXT NOT NULL DEFAULT '',
    status           TEXT NOT NULL DEFAULT '',
    created_at       INTEGER,
    activated_at     INTEGER,
    removed_at       INTEGER
) STRICT;

CREATE INDEX connections_relying_party_id_user_ref_status_idx ON connections (relying_party_id, user_ref, status);
CREATE INDEX connections_device_id_status_idx ON connections (device_id, status);
-- At most one ACTIVE connection per relying party, user and device.
CREATE UNIQUE INDEX connections_active_key ON connections (relying_party_id, user_ref, device_id) WHERE status = 'ACTIVE';

CREATE TABLE requests (
    id                 TEXT NOT NULL PRIMARY KEY,
    kind               TEXT NOT NULL DEFAULT '',
    relying_party_id   TEXT NOT NULL,
    user_ref           TEXT NOT NULL,
    connection_id      TEXT NOT NULL DEFAULT '',
    account_label      TEXT NOT NULL DEFAULT '',
    context_app_name   TEXT NOT NULL DEFAULT '',
    context_ip_address TEXT NOT NULL DEFAULT '',
    context_location   TEXT NOT NULL DEFAULT '',
    context_browser    TEXT NOT NULL DEFAULT '',
    context_action     TEXT NOT NULL DEFAULT '',
    number_matching    TEXT NOT NULL DEFAULT '',
    number_hash        BLOB,
    status             TEXT NOT NULL DEFAULT '',
    reason             TEXT NOT NULL DEFAULT '',
    created_at         INTEGER,
    expires_at         INTEGER,
    decided_at         INTEGER,
    decided_by         TEXT NOT NULL DEFAULT '',
    payload            BLOB,
    signature          BLOB,
    auto_approved      INTEGER NOT NULL DEFAULT 0,
    location_rule_id   TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX requests_relying_party_id_user_ref_status_idx ON requests (relying_party_id, user_ref, status);
CREATE INDEX requests_status_expires_at_idx ON requests (status, expires_at);

CREATE TABLE request_targets (
    request_id TEXT NOT NULL REFERENCES requests (id),
    device_id  TEXT NOT NULL,
    delivery   TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT '',
    updated_at INTEGER,
    seen_at    INTEGER,
    PRIMARY KEY (request_id, device_id)
) STRICT;

CREATE INDEX request_targets_device_id_idx ON request_targets (device_id);

CREATE TABLE user_states (
    relying_party_id     TEXT NOT NULL,
    user_ref             TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    backoff_until        INTEGER,
    muted_until          INTEGER,
    updated_at           INTEGER,
    PRIMARY KEY (relying_party_id, user_ref)
) STRICT;
