-- Encrypted app backups, TOTP factors, and the TOTP lock-out of a user.
-- Times are BIGINT unix microseconds UTC; NULL means "not set". Identifiers
-- use the "C" collation.
--
-- device_id and connection_id have no foreign keys: backups and factors are
-- kept (and removed) on their own terms.

-- One backup per phone number; PutBackup replaces it.
CREATE TABLE backups (
    phone_number    TEXT COLLATE "C" PRIMARY KEY,
    device_id       TEXT COLLATE "C" NOT NULL DEFAULT '',
    blob            BYTEA,
    sealed_share    BYTEA,
    verifier        BYTEA,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    created_at      BIGINT,
    updated_at      BIGINT
);

-- connection_id is '' for factors that are not CONNECTION factors.
CREATE TABLE totp_factors (
    id               TEXT COLLATE "C" PRIMARY KEY,
    relying_party_id TEXT COLLATE "C" NOT NULL,
    user_ref         TEXT COLLATE "C" NOT NULL,
    kind             TEXT NOT NULL DEFAULT '',
    connection_id    TEXT COLLATE "C" NOT NULL DEFAULT '',
    label            TEXT NOT NULL DEFAULT '',
    sealed_secret    BYTEA,
    status           TEXT NOT NULL DEFAULT '',
    last_used_step   BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT,
    confirmed_at     BIGINT,
    removed_at       BIGINT
);

CREATE INDEX totp_factors_relying_party_id_user_ref_status_idx ON totp_factors (relying_party_id, user_ref, status);
CREATE INDEX totp_factors_connection_id_idx ON totp_factors (connection_id);

ALTER TABLE user_states ADD COLUMN totp_failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_states ADD COLUMN totp_locked_until BIGINT;
