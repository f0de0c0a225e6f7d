-- Web pages (issue 8): a run made by "Re-run failed" remembers the run it repeats.
ALTER TABLE runs ADD COLUMN rerun_of uuid REFERENCES runs (run_id);
CREATE INDEX runs_rerun_of ON runs (rerun_of) WHERE rerun_of IS NOT NULL;
