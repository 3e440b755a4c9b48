ALTER TABLE relying_parties DROP COLUMN approvals_per_hour;
ALTER TABLE relying_parties DROP COLUMN approvals_per_minute;
ALTER TABLE backups ADD COLUMN locked_until BIGINT;
ALTER TABLE backups ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE backups DROP COLUMN version;

DROP INDEX pairing_phrases_device_id_key;
CREATE INDEX pairing_phrases_device_id_idx ON pairing_phrases (device_id);

CREATE TABLE rate_counters (
    key          TEXT COLLATE "C" NOT NULL,
    window_start BIGINT NOT NULL,
    count        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, window_start)
);

CREATE INDEX rate_counters_window_start_idx ON rate_counters (window_start);

DROP TABLE guess_budgets;
DROP TABLE rate_events;
DROP TABLE rate_keys;
