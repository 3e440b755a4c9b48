-- Encrypted app backups, TOTP factors, and the TOTP lock-out of a user.
-- Times are INTEGER unix microseconds UTC; NULL means "not set".
--
-- device_id and connection_id have no foreign keys: backups and factors are
-- kept (and removed) on their own terms.

-- One backup per phone number; PutBackup replaces it.
CREATE TABLE backups (
    phone_number    TEXT NOT NULL PRIMARY KEY,
    device_id       TEXT NOT NULL DEFAULT '',
    blob            BLOB,
    sealed_share    BLOB,
    verifier        BLOB,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER,
    created_at      INTEGER,
    updated_at      INTEGER
) STRICT;

-- connection_id is '' for factors that are not CONNECTION factors.
CREATE TABLE totp_factors (
    id               TEXT NOT NULL PRIMARY KEY,
    relying_party_id TEXT NOT NULL,
    user_ref         TEXT NOT NULL,
    kind             TEXT NOT NULL DEFAULT '',
    connection_id    TEXT NOT NULL DEFAULT '',
    label            TEXT NOT NULL DEFAULT '',
    sealed_secret    BLOB,
    status           TEXT NOT NULL DEFAULT '',
    last_used_step   INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER,
    confirmed_at     INTEGER,
    removed_at       INTEGER
) STRICT;

CREATE INDEX totp_factors_relying_party_id_user_ref_status_idx ON totp_factors (relying_party_id, user_ref, status);
CREATE INDEX totp_factors_connection_id_idx ON totp_factors (connection_id);

-- ADD COLUMN keeps user_states STRICT; a NOT NULL column needs its default.
ALTER TABLE user_states ADD COLUMN totp_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_states ADD COLUMN totp_locked_until INTEGER;
