-- GitHub runs that qgjob ends before their jobs do (a closed pull request, a passed
-- deadline), and the index the retention sweep of processed deliveries walks.

-- Why qgjob ended the run early: 'closed' (its pull request was closed) or 'timed_out' (it
-- passed its deadline). The commit of a run ended by a close runs again when the pull
-- request is reopened.
ALTER TABLE github_runs ADD COLUMN ended text CHECK (ended IN ('closed', 'timed_out'));

-- The run's qgjob.toml `timeout_minutes`, and when it times out: `deadline_at` is cleared
-- once the deadline has been acted on, so that the index holds only runs still inside theirs.
ALTER TABLE github_runs ADD COLUMN timeout_minutes integer;
ALTER TABLE github_runs ADD COLUMN deadline_at timestamptz;
CREATE INDEX github_runs_deadline ON github_runs (deadline_at) WHERE deadline_at IS NOT NULL;

-- Completed as `timed_out` rather than `cancelled` once its jobs have all ended.
ALTER TABLE github_check_runs ADD COLUMN timed_out boolean NOT NULL DEFAULT false;

-- The retention sweep deletes processed deliveries, oldest first.
CREATE INDEX webhook_deliveries_processed ON webhook_deliveries (processed_at)
    WHERE processed_at IS NOT NULL;
