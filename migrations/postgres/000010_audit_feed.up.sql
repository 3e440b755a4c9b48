-- Nothing to create: on PostgreSQL an audit event and its security events
-- are written by one statement with a data-modifying WITH (see
-- sqlstore.RecordAuditEvent); SQLite needs a view and a trigger for it.
COMMENT ON TABLE event_outbox IS 'filled by the same statement as the audit event it stands for';

-- The trace context (W3C traceparent) of the call that made a security
-- event, while tracing: it goes from the outbox to each webhook delivery, so
-- a delivery's span joins the trace of the login or change that caused it.
ALTER TABLE event_outbox ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
