-- DROP COLUMN needs SQLite 3.35 (modernc.org/sqlite bundles a newer one); the
-- columns are in no index or constraint, so SQLite can drop them in place and
-- user_states stays STRICT.
ALTER TABLE user_states DROP COLUMN totp_locked_until;
ALTER TABLE user_states DROP COLUMN totp_failures;
DROP TABLE IF EXISTS totp_factors;
DROP TABLE IF EXISTS backups;
