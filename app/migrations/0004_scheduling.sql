-- Scheduling (issue 5): duration history, setup history, and what the claim needs to read fast.

-- The last n items of an array (all of it when shorter).
CREATE FUNCTION keep_last(items anyarray, n integer) RETURNS anyarray
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT items[greatest(1, cardinality(items) - n + 1):] $$;

-- Recent durations and outcomes per (org, test_path, target), newest last, at most the
-- configured window (QGJOB_HISTORY_WINDOW) of each. `durations_ms` holds only attempts that
-- ran the test (passed, flaky, failed, timed_out); `outcomes` holds every finished attempt.
CREATE TABLE spec_history (
    org_id        text NOT NULL,
    target        target NOT NULL,
    test_path     text NOT NULL,
    durations_ms  integer[] NOT NULL DEFAULT '{}',
    outcomes      job_outcome[] NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, target, test_path)
);

-- Per (org, target): recent setup (install/upload) times from `setup_done` events, and the
-- recent durations of any spec, which estimate a spec never seen before.
CREATE TABLE target_history (
    org_id        text NOT NULL,
    target        target NOT NULL,
    setups_ms     integer[] NOT NULL DEFAULT '{}',
    durations_ms  integer[] NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, target)
);

-- What the policy expected each leased job to take: a live group's remaining work is the
-- sum over its unfinished jobs.
ALTER TABLE jobs ADD COLUMN expected_ms integer;

-- Aging counts from a key's last lease; the claim looks it up per pending key.
CREATE INDEX groups_key_created ON groups (org_id, app_version_id, target, created_at DESC);

-- The claim's read of the queue: the distinct pending keys (a skip scan), and each key's
-- most urgent, oldest jobs.
CREATE INDEX jobs_pending_key
    ON jobs (org_id, app_version_id, target, priority DESC, created_at, job_id)
    WHERE status = 'PENDING';
