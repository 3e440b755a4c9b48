-- The security event outbox: one row per event a committed change still has
-- to hand to the JetStream stream PUSHAUTH_EVENTS. audit.Write adds the rows
-- in the transaction of the change (next to its audit row), so a replica that
-- dies after the commit loses no event; a relay on every replica publishes
-- them (id as the Msg-Id), queues their webhook deliveries and deletes them.
CREATE TABLE IF NOT EXISTS event_outbox (
    id               TEXT PRIMARY KEY,
    relying_party_id TEXT NOT NULL,
    type             TEXT NOT NULL,
    body             BLOB NOT NULL,     -- the event as JSON, as the stream carries it
    created_at       INTEGER NOT NULL,  -- unix microseconds
    claimed_until    INTEGER            -- a relay holds the row until then
);
CREATE INDEX IF NOT EXISTS event_outbox_created_at_idx ON event_outbox (created_at);

-- Webhook endpoints an operator registered for a relying party. The signing
-- secret is sealed with the server's key.
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    id               TEXT PRIMARY KEY,
    relying_party_id TEXT NOT NULL,
    url              TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    secret_sealed    BLOB NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    disabled_at      INTEGER,
    disabled_reason  TEXT NOT NULL DEFAULT '',
    failing_since    INTEGER            -- first failure since the last success
);
CREATE INDEX IF NOT EXISTS webhook_endpoints_rp_idx ON webhook_endpoints (relying_party_id);

-- The durable delivery queue: one row per event and endpoint (unique, so an
-- event queued twice is delivered once). Workers claim due rows with a
-- conditional update and hold them until claimed_until.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    body            BLOB NOT NULL,
    state           TEXT NOT NULL,   -- pending, delivered, failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until   INTEGER,
    claim           TEXT NOT NULL DEFAULT '',
    last_status     INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due_idx ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at);
