-- qgjob schema, version 1: orgs, tokens, runs, jobs and their attempts, groups, workers,
-- idempotency keys. Status enums mirror qgjob/types.py (a test checks they match).

CREATE TYPE target AS ENUM ('emulator', 'device', 'browserstack');
CREATE TYPE priority AS ENUM ('low', 'normal', 'high');
CREATE TYPE job_status AS ENUM ('PENDING', 'ASSIGNED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED');
CREATE TYPE job_outcome AS ENUM ('passed', 'flaky', 'failed', 'skipped', 'timed_out', 'error');
CREATE TYPE run_source AS ENUM ('cli', 'api', 'github', 'actions');
CREATE TYPE token_role AS ENUM ('submitter', 'admin', 'worker');
CREATE TYPE group_status AS ENUM ('LEASED', 'FINISHED', 'RELEASED', 'EXPIRED');
CREATE TYPE worker_status AS ENUM ('idle', 'busy', 'draining', 'offline');

CREATE TABLE orgs (
    org_id      text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- org_id NULL: a fleet-wide token (the local admin token, or a worker serving every org).
CREATE TABLE api_tokens (
    token_id     uuid PRIMARY KEY,
    org_id       text REFERENCES orgs (org_id),
    role         token_role NOT NULL,
    name         text NOT NULL DEFAULT '',
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

CREATE TABLE runs (
    run_id          uuid PRIMARY KEY,
    org_id          text NOT NULL REFERENCES orgs (org_id),
    source          run_source NOT NULL,
    repo            text,
    ref             text,
    head_sha        text,
    app_version_id  text NOT NULL,
    targets         target[] NOT NULL,
    priority        priority NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_org_created ON runs (org_id, created_at DESC);

CREATE TABLE workers (
    worker_id       uuid PRIMARY KEY,
    org_id          text REFERENCES orgs (org_id),
    name            text NOT NULL,
    target_types    target[] NOT NULL,
    labels          jsonb NOT NULL DEFAULT '{}',
    capacity        integer NOT NULL CHECK (capacity > 0),
    status          worker_status NOT NULL DEFAULT 'idle',
    ready_builds    text[] NOT NULL DEFAULT '{}',
    last_heartbeat  timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE lease_token_seq;

CREATE TABLE groups (
    group_id          uuid PRIMARY KEY,
    org_id            text NOT NULL REFERENCES orgs (org_id),
    app_version_id    text NOT NULL,
    target            target NOT NULL,
    key               text NOT NULL,
    worker_id         uuid NOT NULL REFERENCES workers (worker_id),
    lease_token       bigint NOT NULL,
    lease_expires_at  timestamptz NOT NULL,
    status            group_status NOT NULL DEFAULT 'LEASED',
    install_ms        integer,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz
);
CREATE INDEX groups_live_expiry ON groups (lease_expires_at) WHERE status = 'LEASED';
CREATE INDEX groups_worker_live ON groups (worker_id) WHERE status = 'LEASED';

CREATE TABLE jobs (
    job_id          uuid PRIMARY KEY,
    run_id          uuid NOT NULL REFERENCES runs (run_id),
    org_id          text NOT NULL REFERENCES orgs (org_id),
    app_version_id  text NOT NULL,
    test_path       text NOT NULL,
    target          target NOT NULL,
    priority        priority NOT NULL,
    status          job_status NOT NULL DEFAULT 'PENDING',
    outcome         job_outcome,
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL,
    worker_id       uuid,
    group_id        uuid,
    duration_ms     integer,
    error           text,
    artifacts       jsonb NOT NULL DEFAULT '{}',
    not_before      timestamptz NOT NULL DEFAULT now(),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz
) WITH (fillfactor = 80);
COMMENT ON COLUMN jobs.group_id IS 'the group that holds the job now, or held it last';
CREATE INDEX jobs_org_created ON jobs (org_id, created_at DESC, job_id DESC);
CREATE INDEX jobs_run ON jobs (run_id);
CREATE INDEX jobs_group ON jobs (group_id) WHERE group_id IS NOT NULL;
CREATE INDEX jobs_pending ON jobs (priority DESC, created_at, job_id)
    INCLUDE (org_id, app_version_id, target) WHERE status = 'PENDING';

-- One row per attempt: nothing that happened to a job is ever overwritten.
CREATE TABLE job_attempts (
    job_id       uuid NOT NULL REFERENCES jobs (job_id),
    attempt      integer NOT NULL,
    group_id     uuid NOT NULL,
    worker_id    uuid NOT NULL,
    outcome      job_outcome,
    error        text,
    duration_ms  integer,
    artifacts    jsonb NOT NULL DEFAULT '{}',
    log          text,
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE idempotency_keys (
    org_id        text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status_code   integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, key)
);

-- Wake long-polling claims: one notification per statement that inserts PENDING jobs
-- (PostgreSQL folds identical notifications within a transaction). Code paths that return
-- jobs to PENDING (retries, releases) notify explicitly.
CREATE FUNCTION notify_pending_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_jobs WHERE status = 'PENDING') THEN
        PERFORM pg_notify('qgjob_pending', '');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION notify_pending_jobs();
