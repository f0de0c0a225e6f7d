-- Builds: the app artifact each app_version_id of an org tests, stored on the service
-- (content-addressed by sha256 under the data dir) or kept elsewhere (an external url).
-- Workers that need a build to run (device, emulator, BrowserStack executors) say so.

CREATE TYPE build_platform AS ENUM ('android', 'ios');

CREATE TABLE builds (
    org_id          text NOT NULL REFERENCES orgs (org_id),
    app_version_id  text NOT NULL,
    platform        build_platform NOT NULL,
    filename        text NOT NULL,
    size            bigint NOT NULL CHECK (size >= 0),
    sha256          text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    storage_key     text,
    external_url    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, app_version_id),
    CHECK ((storage_key IS NULL) <> (external_url IS NULL))
);
CREATE INDEX builds_storage_key ON builds (storage_key) WHERE storage_key IS NOT NULL;

ALTER TABLE workers ADD COLUMN needs_build boolean NOT NULL DEFAULT false;

-- A build that arrives (or changes) may make waiting jobs claimable: wake long-polling claims.
CREATE FUNCTION notify_build_arrived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qgjob_pending', '');
    RETURN NULL;
END $$;

CREATE TRIGGER builds_notify AFTER INSERT OR UPDATE ON builds
    FOR EACH STATEMENT EXECUTE FUNCTION notify_build_arrived();
