-- GitHub App: installations, the webhook inbox, check runs and the outbox of GitHub writes.

-- One row per installation of the App; `org_id` is the account login, lower-cased.
CREATE TABLE github_installations (
    installation_id       bigint PRIMARY KEY,
    org_id                text NOT NULL,
    account_type          text,
    repository_selection  text,
    repositories          text[] NOT NULL DEFAULT '{}',  -- full names, as GitHub spells them
    suspended             boolean NOT NULL DEFAULT false,
    deleted               boolean NOT NULL DEFAULT false,
    next_write_at         timestamptz NOT NULL DEFAULT now(),  -- outbox pacing, Retry-After
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- The durable inbox: a delivery is recorded before the 202, then processed by a loop.
-- `X-GitHub-Delivery` is unique, so a repeat is acknowledged and ignored.
CREATE TABLE webhook_deliveries (
    delivery_id      text PRIMARY KEY,
    event            text NOT NULL,
    action           text,
    installation_id  bigint,
    body             bytea,                     -- NULL once processed (or for ignored events)
    received_at      timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    not_before       timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz,
    processed_at     timestamptz,
    outcome          text
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (not_before, received_at)
    WHERE processed_at IS NULL;

-- Runs started from GitHub, with what they were started for.
CREATE TABLE github_runs (
    run_id           uuid PRIMARY KEY REFERENCES runs (run_id),
    installation_id  bigint NOT NULL,
    repo             text NOT NULL,
    head_sha         text NOT NULL,
    branch           text,
    pr_number        integer,
    trigger          text NOT NULL,
    superseded_by    text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX github_runs_commit ON github_runs (repo, head_sha);
CREATE INDEX github_runs_branch ON github_runs (repo, branch) WHERE superseded_by IS NULL;

-- One check run per (run, target). `run_id` is NULL for a check run that has no run behind it
-- (a fork awaiting approval, a broken qgjob.toml); `trigger` then keeps what to run on approval.
CREATE TABLE github_check_runs (
    check_key          bigserial PRIMARY KEY,
    installation_id    bigint NOT NULL,
    repo               text NOT NULL,
    head_sha           text NOT NULL,
    name               text NOT NULL,
    run_id             uuid REFERENCES runs (run_id),
    target             target,
    github_id          bigint UNIQUE,             -- GitHub's check run id, once created
    state              text NOT NULL,             -- last rendered: queued|in_progress|completed
    done               integer NOT NULL DEFAULT 0, -- jobs finished when last rendered
    reason             text,                      -- why it was cancelled (superseded by …)
    trigger            jsonb,
    rendered_at        timestamptz NOT NULL DEFAULT now(),
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX github_check_runs_live ON github_check_runs (run_id) WHERE state <> 'completed';
CREATE UNIQUE INDEX github_check_runs_target ON github_check_runs (run_id, target)
    WHERE run_id IS NOT NULL;

-- GitHub writes still owed, one row per check run: a newer state replaces the body (last
-- state wins) and bumps `version`; `sent` counts the requests of this version already done
-- (the first creates or updates, the rest append annotations).
CREATE TABLE github_outbox (
    check_key        bigint PRIMARY KEY REFERENCES github_check_runs (check_key),
    installation_id  bigint NOT NULL,
    requests         jsonb NOT NULL,
    version          integer NOT NULL DEFAULT 1,
    sent             integer NOT NULL DEFAULT 0,
    attempts         integer NOT NULL DEFAULT 0,
    not_before       timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX github_outbox_due ON github_outbox (installation_id, not_before);
