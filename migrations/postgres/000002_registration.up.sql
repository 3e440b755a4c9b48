-- Phone registration: SMS verifications, fixed-window limit counters and the
-- development SMS outbox. Times are BIGINT unix microseconds UTC; NULL means
-- "not set".

CREATE TABLE phone_verifications (
    id             TEXT COLLATE "C" PRIMARY KEY,
    phone_number   TEXT NOT NULL DEFAULT '',
    code_hash      BYTEA,
    link_hash      BYTEA,
    locale         TEXT NOT NULL DEFAULT '',
    client_address TEXT NOT NULL DEFAULT '',
    created_at     BIGINT,
    expires_at     BIGINT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    used_at        BIGINT
);

CREATE INDEX phone_verifications_phone_number_created_at_idx ON phone_verifications (phone_number, created_at);

-- window_start is part of the key, so it is never NULL.
CREATE TABLE rate_counters (
    key          TEXT COLLATE "C" NOT NULL,
    window_start BIGINT NOT NULL,
    count        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, window_start)
);

CREATE INDEX rate_counters_window_start_idx ON rate_counters (window_start);

CREATE TABLE sms_outbox (
    id           BIGSERIAL PRIMARY KEY,
    phone_number TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL DEFAULT '',
    created_at   BIGINT
);

CREATE INDEX sms_outbox_phone_number_id_idx ON sms_outbox (phone_number, id);
