-- The app's language, from registration (StartPhoneVerification.locale) or
-- UpdateDevice: push alerts are written in it. '' means English.
ALTER TABLE devices ADD COLUMN locale TEXT NOT NULL DEFAULT '';
