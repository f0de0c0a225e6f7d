-- The queue's jobs are indexed twice: `jobs_pending` (0001, by priority and age across every
-- key) and `jobs_pending_key` (0004, by key, then priority and age), both over the PENDING
-- rows only. Since the scheduling claim (0004) nothing orders the whole queue by priority:
-- the claim and waiting reasons skip-scan `jobs_pending_key`, and the metrics scrape and
-- the build-wait sweep read the PENDING rows through it as well. The first index only cost
-- a write for every job submitted or sent back to the queue.
DROP INDEX IF EXISTS jobs_pending;
