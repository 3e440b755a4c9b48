DROP TABLE IF EXISTS sms_outbox;
DROP TABLE IF EXISTS rate_counters;
DROP TABLE IF EXISTS phone_verifications;
