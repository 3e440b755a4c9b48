-- The push outbox: one row per push a committed request still has to hand to
-- the JetStream push queue. CreateApproval writes the rows in the
-- transaction that creates the request, so a replica that dies after the
-- commit loses no push; a relay on every replica publishes the rows (id as
-- the JetStream Msg-Id, so a row published twice is sent once) and deletes
-- them once JetStream has stored them.
CREATE TABLE IF NOT EXISTS push_outbox (
    id            TEXT PRIMARY KEY,   -- request_id:device_id
    job           BLOB NOT NULL,      -- the push job as the queue carries it
    created_at    INTEGER NOT NULL,   -- unix microseconds
    claimed_until INTEGER             -- a relay holds the row until then
);
CREATE INDEX IF NOT EXISTS push_outbox_created_at_idx ON push_outbox (created_at);
