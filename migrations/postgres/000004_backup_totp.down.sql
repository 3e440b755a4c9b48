ALTER TABLE user_states DROP COLUMN IF EXISTS totp_locked_until;
ALTER TABLE user_states DROP COLUMN IF EXISTS totp_failures;
DROP TABLE IF EXISTS totp_factors;
DROP TABLE IF EXISTS backups;
