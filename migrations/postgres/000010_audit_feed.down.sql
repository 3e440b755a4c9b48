ALTER TABLE webhook_deliveries DROP COLUMN traceparent;
COMMENT ON TABLE event_outbox IS NULL;
ALTER TABLE event_outbox DROP COLUMN traceparent;
