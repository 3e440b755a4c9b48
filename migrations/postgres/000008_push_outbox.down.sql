DROP INDEX IF EXISTS push_outbox_created_at_idx;
DROP TABLE IF EXISTS push_outbox;
