-- Who made a run, for the pages and the API: the name of the token that submitted it (or
-- re-ran its failed specs), `token <first 8 hex digits of its id>` for a token without a
-- name, or the GitHub login whose push, pull request or re-run request made it. Runs
-- made before this migration have none.
ALTER TABLE runs ADD COLUMN submitted_by text;
