-- BrowserStack uploads (issue 4, executors): the bs:// url of each build, per org and
-- BrowserStack account, keyed by the build's sha256 so that every worker and group reuses one
-- upload. A short upload lease makes concurrent workers wait for one upload instead of each
-- uploading: the first to ask gets the lease (lease_id, lease_expires_at), the others wait
-- for the url or for the lease to expire. A url BrowserStack has expired is replaced by
-- asking for a lease that names it (`replaces`).
CREATE TABLE browserstack_apps (
    org_id            text NOT NULL,
    sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    account           text NOT NULL,
    app_url           text,
    custom_id         text,
    uploaded_at       timestamptz,
    lease_id          uuid,
    lease_expires_at  timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, sha256, account)
);
