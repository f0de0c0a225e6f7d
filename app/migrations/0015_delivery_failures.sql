-- A delivery whose processing failed (GitHub unreachable for longer than the inbox retries,
-- a permanent GitHub error, a bug) is marked so: a redelivery of it from GitHub's settings
-- page is processed again instead of being answered as a duplicate.
ALTER TABLE webhook_deliveries ADD COLUMN failed boolean NOT NULL DEFAULT false;
