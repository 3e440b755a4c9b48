-- Nothing to create: on PostgreSQL an audit event and its security events
-- are written by one statement with a data-modifying WITH (see
-- sqlstore.RecordAuditEvent); SQLite needs a view and a trigger for it.
COMMENT ON TABLE event_outbox IS 'filled by the same statement as the audit event it stands for';
