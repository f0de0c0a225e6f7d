-- The web overview lists the newest runs of every org for an admin, a page at a time
-- (`app/store/views.py`: newest first, then older than a (created_at, run_id) cursor). Per
-- org, `runs_org_created` serves it; across orgs nothing did, so every poll of the page
-- sorted the whole run history.
CREATE INDEX runs_created ON runs (created_at DESC, run_id DESC);
