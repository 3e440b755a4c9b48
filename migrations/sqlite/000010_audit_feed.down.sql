DROP TRIGGER IF EXISTS audit_with_feed_insert;
DROP VIEW IF EXISTS audit_with_feed;
