-- Metrics count live jobs at every scrape (app/metrics.py); PENDING ones are covered by
-- jobs_pending, this covers the ones leased to workers, so that no scrape reads the history.
CREATE INDEX jobs_leased_status ON jobs (status) WHERE status IN ('ASSIGNED', 'RUNNING');
