-- Writing an audit event and the security events it stands for in one
-- statement: the engine inserts into this view, and the trigger puts the
-- audit row into audit_events and each element of the JSON array feed
-- ({"id", "relying_party_id", "type", "body", "created_at", "traceparent"},
-- body a JSON
-- string) into event_outbox. SQLite has no data-modifying WITH; PostgreSQL
-- does the same with one (see sqlstore.RecordAuditEvent), so a decision
-- costs one statement less on both.
CREATE VIEW IF NOT EXISTS audit_with_feed AS
    SELECT time, actor, action, relying_party_id, target, request_id, details, NULL AS feed
    FROM audit_events;

CREATE TRIGGER IF NOT EXISTS audit_with_feed_insert INSTEAD OF INSERT ON audit_with_feed
BEGIN
    INSERT INTO audit_events (time, actor, action, relying_party_id, target, request_id, details)
    VALUES (NEW.time, NEW.actor, NEW.action, NEW.relying_party_id, NEW.target, NEW.request_id, NEW.details);
    INSERT INTO event_outbox (id, relying_party_id, type, body, created_at, traceparent)
    SELECT json_extract(value, '$.id'), json_extract(value, '$.relying_party_id'), json_extract(value, '$.type'),
           CAST(json_extract(value, '$.body') AS BLOB), json_extract(value, '$.created_at'), json_extract(value, '$.traceparent')
    FROM json_each(COALESCE(NEW.feed, '[]'));
END;

-- The trace context (W3C traceparent) of the call that made a security
-- event, while tracing: it goes from the outbox to each webhook delivery, so
-- a delivery's span joins the trace of the login or change that caused it.
ALTER TABLE event_outbox ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_deliveries ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
