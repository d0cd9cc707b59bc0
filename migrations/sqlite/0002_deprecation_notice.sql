-- The minimum deprecation notice of an API, in days: a published version may only be
-- deprecated with a sunset at least this far ahead. Existing APIs get the default, 90.

ALTER TABLE apis ADD COLUMN deprecation_notice_days INTEGER NOT NULL DEFAULT 90
    CHECK (deprecation_notice_days >= 0);
