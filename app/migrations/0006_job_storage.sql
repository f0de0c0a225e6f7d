-- Storage of the job tables for a steady stream of short jobs (bench/dispatch.py, bench/soak.py;
-- the figures are in bench/README.md).
--
-- Every job row is written three times (submit, claim, finish) and each write that changes
-- `status` is a non-HOT update: a new entry in every index whose columns or predicate it
-- touches. The index of jobs by group only needs the jobs a live group still holds (to know
-- when the group is done, to release or expire it) and the cancelled ones (a heartbeat
-- tells the worker to stop them): indexing only those keeps finished jobs out of it, so a
-- finish writes one index entry less and the index stays as small as the live work.
DROP INDEX jobs_group;
CREATE INDEX jobs_group_live ON jobs (group_id) WHERE status IN ('ASSIGNED', 'RUNNING');
CREATE INDEX jobs_group_cancelled ON jobs (group_id)
    WHERE status = 'CANCELLED' AND group_id IS NOT NULL;

-- An attempt row is inserted at claim and filled in at finish. With room left on its page
-- the finish is a HOT update: no new entry in the primary key.
ALTER TABLE job_attempts SET (fillfactor = 70);

-- Vacuum the hot tables after a small fraction of their rows changed (the default waits
-- for 20 %, by then a busy queue drags a large tail of dead tuples through every scan),
-- and without the cost-based pauses that let it fall behind the write rate.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.02,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE job_attempts SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_cost_delay = 0
);
-- Groups and workers are small and updated in place all the time (lease, status, heartbeat).
ALTER TABLE groups SET (
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE workers SET (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 500,
    autovacuum_vacuum_cost_delay = 0
);
