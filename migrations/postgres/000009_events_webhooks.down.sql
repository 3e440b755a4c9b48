DROP INDEX IF EXISTS webhook_deliveries_endpoint_idx;
DROP INDEX IF EXISTS webhook_deliveries_due_idx;
DROP TABLE IF EXISTS webhook_deliveries;
DROP INDEX IF EXISTS webhook_endpoints_rp_idx;
DROP TABLE IF EXISTS webhook_endpoints;
DROP INDEX IF EXISTS event_outbox_created_at_idx;
DROP TABLE IF EXISTS event_outbox;
