DROP TRIGGER IF EXISTS audit_with_feed_insert;
DROP VIEW IF EXISTS audit_with_feed;
ALTER TABLE webhook_deliveries DROP COLUMN traceparent;
ALTER TABLE event_outbox DROP COLUMN traceparent;
