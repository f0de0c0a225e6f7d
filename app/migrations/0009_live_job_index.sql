-- Version 0009 first created an index of ASSIGNED/RUNNING jobs by status for the metrics
-- scrape. 0006 already indexes exactly those rows (jobs_group_live), which the scrape now
-- reads (app/metrics.py), so the second index only cost a write per claim and start.
DROP INDEX IF EXISTS jobs_leased_status;
