DROP TABLE IF EXISTS user_states;
DROP TABLE IF EXISTS request_targets;
DROP TABLE IF EXISTS requests;
DROP TABLE IF EXISTS connections;
DROP TABLE IF EXISTS pairing_phrases;
