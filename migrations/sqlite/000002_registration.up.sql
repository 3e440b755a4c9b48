-- Phone registration: SMS verifications, fixed-window limit counters and the
-- development SMS outbox. Times are INTEGER unix microseconds UTC; NULL means
-- "not set".

CREATE TABLE phone_verifications (
    id             TEXT NOT NULL PRIMARY KEY,
    phone_number   TEXT NOT NULL DEFAULT '',
    code_hash      BLOB,
    link_hash      BLOB,
    locale         TEXT NOT NULL DEFAULT '',
    client_address TEXT NOT NULL DEFAULT '',
    created_at     INTEGER,
    expires_at     INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 0,
    used_at        INTEGER
) STRICT;

CREATE INDEX phone_verifications_phone_number_created_at_idx ON phone_verifications (phone_number, created_at);

-- window_start is part of the key, so it is never NULL.
CREATE TABLE rate_counters (
    key          TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    count        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, window_start)
) STRICT;

CREATE INDEX rate_counters_window_start_idx ON rate_counters (window_start);

-- AUTOINCREMENT keeps IDs from ever being reused.
CREATE TABLE sms_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    phone_number TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL DEFAULT '',
    created_at   INTEGER
) STRICT;

CREATE INDEX sms_outbox_phone_number_id_idx ON sms_outbox (phone_number, id);
