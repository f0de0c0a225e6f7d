"""Re-running the failed specs of a run as a new run.

The new run repeats exactly the (spec, target) pairs that ended FAILED — not every spec on
every target — with the original run's org, build, priority, source and commit, and points
back at the run it repeats (`runs.rerun_of`).
"""

from __future__ import annotations

import uuid

from app.database import Conn

# One statement, like a submit: the run row and its jobs appear together or not at all.
# Nothing is inserted when the run is unknown (or another org's) or has no failed job.
_RERUN_FAILED = """
WITH source AS (
    SELECT * FROM runs WHERE run_id = $1 AND ($2::text IS NULL OR org_id = $2)
), failed AS (
    SELECT DISTINCT j.test_path, j.target FROM jobs j JOIN source s ON s.run_id = j.run_id
    WHERE j.status = 'FAILED'
), run AS (
    INSERT INTO runs (run_id, org_id, source, app_version_id, targets, priority, repo, ref,
                      head_sha, rerun_of, submitted_by)
    SELECT $3, s.org_id, s.source, s.app_version_id,
           ARRAY(SELECT DISTINCT target FROM failed ORDER BY target), s.priority, s.repo,
           s.ref, s.head_sha, s.run_id, $5
    FROM source s WHERE EXISTS (SELECT 1 FROM failed)
    RETURNING run_id
)
INSERT INTO jobs (job_id, run_id, org_id, app_version_id, test_path, target, priority,
                  max_attempts)
SELECT gen_random_uuid(), r.run_id, s.org_id, s.app_version_id, f.test_path, f.target,
       s.priority, $4
FROM failed f CROSS JOIN source s CROSS JOIN run r
RETURNING job_id
"""


async def rerun_failed(
    conn: Conn,
    run_id: uuid.UUID,
    *,
    org_scope: str | None,
    max_attempts: int,
    submitted_by: str | None,
) -> uuid.UUID | None:
    """The id of a new run of the run's failed specs, made by `submitted_by`, or None when
    it has none (or is unknown to this org)."""
    new_run_id = uuid.uuid4()
    rows = await conn.fetch(
        _RERUN_FAILED, run_id, org_scope, new_run_id, max_attempts, submitted_by
    )
    return new_run_id if rows else None


_RERUNS = """
SELECT run_id, created_at FROM runs WHERE rerun_of = $1 ORDER BY created_at DESC LIMIT 20
"""
_RERUN_OF = "SELECT rerun_of FROM runs WHERE run_id = $1"


async def rerun_links(conn: Conn, run_id: uuid.UUID) -> tuple[uuid.UUID | None, list[uuid.UUID]]:
    """The run this one repeats (if any) and the newest runs that repeat it."""
    rerun_of: uuid.UUID | None = await conn.fetchval(_RERUN_OF, run_id)
    later = [row["run_id"] for row in await conn.fetch(_RERUNS, run_id)]
    return rerun_of, later
