-- A newer commit supersedes the older live runs of its branch or its pull request, whichever
-- GitHub event (push, pull_request, check_suite) made them: a run of a pull request from a
-- fork is matched by its number only, since its branch is the fork's, not the repository's.
ALTER TABLE github_runs ADD COLUMN from_fork boolean NOT NULL DEFAULT false;

-- The check runs of a commit: a push, its check suite and its pull request would each owe
-- the commit a check run with no run behind it (nothing matched, a broken qgjob.toml, a fork
-- waiting); the second and third find the first (`app/github/triggers.py`, `_owe_alone`).
CREATE INDEX github_check_runs_commit ON github_check_runs (repo, head_sha);
