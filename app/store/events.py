"""Applying what a worker reports under a lease: job started, job finished, setup done.

A result is recorded at most once: it lands only on a job that this group holds and that
is still ASSIGNED or RUNNING, and only on an attempt row that has not finished.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from app.database import TxConn
from app.lifecycle import final_error, status_after
from qgjob.types import JobStatus, Outcome

_START = """
WITH started AS (
    UPDATE jobs SET status = 'RUNNING', started_at = coalesce(started_at, now()),
                    updated_at = now()
    WHERE job_id = $1 AND group_id = $2 AND status = 'ASSIGNED'
    RETURNING job_id, attempts
)
UPDATE job_attempts a SET started_at = now()
FROM started WHERE a.job_id = started.job_id AND a.attempt = started.attempts
RETURNING a.job_id
"""

_LOCK_JOB = """
SELECT status, attempts, max_attempts FROM jobs WHERE job_id = $1 AND group_id = $2 FOR UPDATE
"""

_FINISH_ATTEMPT = """
UPDATE job_attempts SET outcome = $3, error = $4, duration_ms = $5, artifacts = $6, log = $7,
                        finished_at = now(), started_at = coalesce(started_at, now())
WHERE job_id = $1 AND attempt = $2 AND outcome IS NULL
  AND (finished_at IS NULL OR error = 'cancelled')
RETURNING job_id
"""

_FINISH_JOB = """
UPDATE jobs SET status = $2::job_status, outcome = $3::job_outcome, error = $4,
                duration_ms = $5, artifacts = $6,
                started_at = coalesce(started_at, now()),
                finished_at = CASE WHEN $2::job_status = 'PENDING' THEN NULL ELSE now() END,
                not_before = CASE WHEN $2::job_status = 'PENDING'
                    THEN now() + make_interval(secs => $7 * power(2, greatest(attempts - 1, 0))
                                               * (0.5 + random()))
                    ELSE not_before END,
                updated_at = now()
WHERE job_id = $1
"""

_SETUP_DONE = "UPDATE groups SET install_ms = $2 WHERE group_id = $1"
_READY_BUILD = """
UPDATE workers SET ready_builds = (
    SELECT array_agg(b) FROM (
        SELECT DISTINCT unnest(array_append(ready_builds, $2)) AS b) AS builds)
WHERE worker_id = $1
"""


@dataclass
class Applied:
    applied: int = 0
    ignored: list[dict[str, str]] = field(default_factory=list)
    requeued: bool = False

    def ignore(self, job_id: uuid.UUID, reason: str) -> None:
        self.ignored.append({"job_id": str(job_id), "reason": reason})


async def job_started(
    conn: TxConn, result: Applied, *, group_id: uuid.UUID, job_id: uuid.UUID
) -> None:
    if await conn.fetchval(_START, job_id, group_id) is None:
        result.ignore(job_id, "not an assigned job of this group")
    else:
        result.applied += 1


@dataclass(frozen=True)
class Finished:
    job_id: uuid.UUID
    outcome: Outcome
    duration_ms: int
    error: str | None
    artifacts: dict[str, Any]
    log: str | None


async def job_finished(
    conn: TxConn, result: Applied, *, group_id: uuid.UUID, event: Finished, backoff_s: float
) -> None:
    job = await conn.fetchrow(_LOCK_JOB, event.job_id, group_id)
    if job is None:
        result.ignore(event.job_id, "not a job of this group")
        return
    recorded = await conn.fetchval(
        _FINISH_ATTEMPT,
        event.job_id,
        job["attempts"],
        event.outcome.value,
        event.error,
        event.duration_ms,
        event.artifacts,
        event.log,
    )
    if recorded is None:
        result.ignore(event.job_id, "this attempt's result is already recorded")
        return
    if JobStatus(job["status"]).is_terminal:
        # Cancelled while it ran: the attempt keeps what happened, the job stays as it is.
        result.ignore(event.job_id, f"job is {job['status']}; attempt recorded only")
        return
    status = status_after(event.outcome, attempts=job["attempts"], max_attempts=job["max_attempts"])
    outcome = None if status is JobStatus.PENDING else event.outcome.value
    error = event.error
    if status is JobStatus.FAILED and event.outcome is Outcome.ERROR:
        error = final_error(error, attempts=job["attempts"], max_attempts=job["max_attempts"])
    await conn.execute(
        _FINISH_JOB,
        event.job_id,
        status.value,
        outcome,
        error,
        event.duration_ms,
        event.artifacts,
        backoff_s,
    )
    result.applied += 1
    result.requeued = result.requeued or status is JobStatus.PENDING


async def setup_done(
    conn: TxConn,
    result: Applied,
    *,
    group_id: uuid.UUID,
    worker_id: uuid.UUID,
    install_ms: int,
    build: str | None,
) -> None:
    await conn.execute(_SETUP_DONE, group_id, install_ms)
    if build is not None:
        await conn.execute(_READY_BUILD, worker_id, build)
    result.applied += 1
