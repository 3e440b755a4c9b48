-- Indexes for the retention sweeper (internal/retention), so each bounded
-- delete finds its oldest rows without scanning a table. pairing_phrases
-- (expires_at) and rate_counters (window_start) have theirs already.

-- Expired verifications, used or not.
CREATE INDEX IF NOT EXISTS phone_verifications_expires_at_idx ON phone_verifications (expires_at);
-- Finished requests by decision time; PENDING ones have none (NULL).
CREATE INDEX IF NOT EXISTS requests_decided_at_idx ON requests (decided_at);
-- Development outbox messages by age.
CREATE INDEX IF NOT EXISTS sms_outbox_created_at_idx ON sms_outbox (created_at);
-- Audit events by age.
CREATE INDEX IF NOT EXISTS audit_events_time_idx ON audit_events (time);
