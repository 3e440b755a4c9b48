ALTER TABLE devices DROP COLUMN locale;
