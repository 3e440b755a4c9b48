-- Rolling-window rate limits and guess budgets replace the clock-aligned
-- counters: "5 an hour" now holds for any 60 minutes.
-- Times are BIGINT unix microseconds UTC; NULL means "not set".

-- One row per limited key, locked while an event is counted, so concurrent
-- takers of one key are serialized and never pass its limit.
CREATE TABLE rate_keys (
    key TEXT COLLATE "C" PRIMARY KEY
);

-- One row per counted event; expires_at is when its longest window ends.
CREATE TABLE rate_events (
    id         BIGSERIAL PRIMARY KEY,
    key        TEXT COLLATE "C" NOT NULL,
    at         BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE INDEX rate_events_key_at_idx ON rate_events (key, at);
CREATE INDEX rate_events_expires_at_idx ON rate_events (expires_at);

-- Failures in a row against one secret, and the lock they brought.
CREATE TABLE guess_budgets (
    key          TEXT COLLATE "C" PRIMARY KEY,
    failures     INTEGER NOT NULL DEFAULT 0,
    locked_until BIGINT,
    updated_at   BIGINT
);

CREATE INDEX guess_budgets_updated_at_idx ON guess_budgets (updated_at);

DROP TABLE rate_counters;

-- At most one phrase per device: concurrent PutPairingPhrase calls cannot
-- leave two live phrases.
DELETE FROM pairing_phrases p WHERE EXISTS (
    SELECT 1 FROM pairing_phrases q
    WHERE q.device_id = p.device_id AND (q.created_at > p.created_at OR (q.created_at = p.created_at AND q.hash > p.hash)));
DROP INDEX pairing_phrases_device_id_idx;
CREATE UNIQUE INDEX pairing_phrases_device_id_key ON pairing_phrases (device_id);

-- A backup's passcode budget is a guess budget now (key "backup:<number>");
-- version makes replacing and deleting a backup compare-and-swap.
ALTER TABLE backups ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE backups DROP COLUMN failed_attempts;
ALTER TABLE backups DROP COLUMN locked_until;

-- A relying party's own bound on login requests to one user (push
-- bombing); 0 takes the deployment's default.
ALTER TABLE relying_parties ADD COLUMN approvals_per_minute INTEGER NOT NULL DEFAULT 0;
ALTER TABLE relying_parties ADD COLUMN approvals_per_hour INTEGER NOT NULL DEFAULT 0;
