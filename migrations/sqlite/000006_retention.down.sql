DROP INDEX IF EXISTS audit_events_time_idx;
DROP INDEX IF EXISTS sms_outbox_created_at_idx;
DROP INDEX IF EXISTS requests_decided_at_idx;
DROP INDEX IF EXISTS phone_verifications_expires_at_idx;
