"""Applying what a worker reports under a lease: job started, job finished, setup done.

A batch is applied set-based, a handful of statements whatever its size, inside the
caller's transaction (which holds the lease). A result is recorded at most once: it lands
only on a job that this group holds, on an attempt row that has no outcome yet, and it
moves the job only while the job is still ASSIGNED or RUNNING.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from app.database import TxConn
from app.lifecycle import final_error, status_after
from qgjob.types import JobStatus, Outcome

_START = """
WITH started AS (
    UPDATE jobs SET status = 'RUNNING', started_at = coalesce(started_at, now()),
                    updated_at = now()
    WHERE job_id = ANY($1::uuid[]) AND group_id = $2 AND status = 'ASSIGNED'
    RETURNING job_id, attempts
)
UPDATE job_attempts a SET started_at = now()
FROM started WHERE a.job_id = started.job_id AND a.attempt = started.attempts
RETURNING a.job_id
"""

_LOCK_JOBS = """
SELECT job_id, status, attempts, max_attempts FROM jobs
WHERE job_id = ANY($1::uuid[]) AND group_id = $2
ORDER BY job_id FOR UPDATE
"""

# A cancelled attempt was closed without an outcome; the worker's report may still fill it.
_FINISH_ATTEMPTS = """
UPDATE job_attempts a SET outcome = r.outcome, error = r.error, duration_ms = r.duration_ms,
                          artifacts = r.artifacts, log = r.log,
                          finished_at = now(), started_at = coalesce(a.started_at, now())
FROM unnest($1::uuid[], $2::int[], $3::job_outcome[], $4::text[], $5::int[], $6::jsonb[],
            $7::text[]) AS r(job_id, attempt, outcome, error, duration_ms, artifacts, log)
WHERE a.job_id = r.job_id AND a.attempt = r.attempt AND a.outcome IS NULL
  AND (a.finished_at IS NULL OR a.error = 'cancelled')
RETURNING a.job_id
"""

_FINISH_JOBS = """
UPDATE jobs j SET status = r.status, outcome = r.outcome, error = r.error,
                  duration_ms = r.duration_ms, artifacts = r.artifacts,
                  started_at = coalesce(j.started_at, now()),
                  finished_at = CASE WHEN r.status = 'PENDING' THEN NULL ELSE now() END,
                  not_before = CASE WHEN r.status = 'PENDING'
                      THEN now() + make_interval(secs => $7 * power(2, greatest(j.attempts - 1, 0))
                                                 * (0.5 + random()))
                      ELSE j.not_before END,
                  updated_at = now()
FROM unnest($1::uuid[], $2::job_status[], $3::job_outcome[], $4::text[], $5::int[],
            $6::jsonb[]) AS r(job_id, status, outcome, error, duration_ms, artifacts)
WHERE j.job_id = r.job_id
"""

_SETUP_DONE = "UPDATE groups SET install_ms = $2 WHERE group_id = $1"
_READY_BUILD = """
UPDATE workers SET ready_builds = (
    SELECT array_agg(b) FROM (
        SELECT DISTINCT unnest(array_append(ready_builds, $2)) AS b) AS builds)
WHERE worker_id = $1
"""


@dataclass(frozen=True)
class Finished:
    job_id: uuid.UUID
    outcome: Outcome
    duration_ms: int
    error: str | None
    artifacts: dict[str, Any]
    log: str | None


@dataclass
class Applied:
    applied: int = 0
    ignored: list[dict[str, str]] = field(default_factory=list)
    requeued: bool = False
    retried: int = 0  # jobs sent back to PENDING by this batch (infrastructure errors)

    def ignore(self, job_id: uuid.UUID, reason: str) -> None:
        self.ignored.append({"job_id": str(job_id), "reason": reason})


async def apply_events(
    conn: TxConn,
    *,
    group_id: uuid.UUID,
    started: Sequence[uuid.UUID],
    finished: Sequence[Finished],
    backoff_s: float,
) -> Applied:
    """Apply a batch of job events for one group. A job that starts and finishes in the same
    batch goes straight to its end state."""
    result = Applied()
    results: dict[uuid.UUID, Finished] = {}
    for event in finished:
        if event.job_id in results:
            result.ignore(event.job_id, "finished twice in one batch; the first one counts")
        else:
            results[event.job_id] = event
    only_started = list(dict.fromkeys(j for j in started if j not in results))
    if only_started:
        moved = {r["job_id"] for r in await conn.fetch(_START, only_started, group_id)}
        result.applied += len(moved)
        for job_id in only_started:
            if job_id not in moved:
                result.ignore(job_id, "not an assigned job of this group")
    if results:
        await _finish(conn, result, group_id=group_id, results=results, backoff_s=backoff_s)
    return result


async def _finish(
    conn: TxConn,
    result: Applied,
    *,
    group_id: uuid.UUID,
    results: dict[uuid.UUID, Finished],
    backoff_s: float,
) -> None:
    jobs = {r["job_id"]: r for r in await conn.fetch(_LOCK_JOBS, list(results), group_id)}
    for job_id in results.keys() - jobs.keys():
        result.ignore(job_id, "not a job of this group")
    held = [results[job_id] for job_id in sorted(jobs)]
    recorded = {
        r["job_id"]
        for r in await conn.fetch(
            _FINISH_ATTEMPTS,
            [e.job_id for e in held],
            [jobs[e.job_id]["attempts"] for e in held],
            [e.outcome.value for e in held],
            [e.error for e in held],
            [e.duration_ms for e in held],
            [e.artifacts for e in held],
            [e.log for e in held],
        )
    }
    moving: list[tuple[Finished, JobStatus, str | None, str | None]] = []
    for event in held:
        job = jobs[event.job_id]
        if event.job_id not in recorded:
            result.ignore(event.job_id, "this attempt's result is already recorded")
        elif JobStatus(job["status"]).is_terminal:
            # Cancelled while it ran: the attempt keeps what happened, the job stays as it is.
            result.ignore(event.job_id, f"job is {job['status']}; attempt recorded only")
        else:
            attempts, most = job["attempts"], job["max_attempts"]
            status = status_after(event.outcome, attempts=attempts, max_attempts=most)
            outcome = None if status is JobStatus.PENDING else event.outcome.value
            error = event.error
            if status is JobStatus.FAILED and event.outcome is Outcome.ERROR:
                error = final_error(error, attempts=attempts, max_attempts=most)
            moving.append((event, status, outcome, error))
    if not moving:
        return
    await conn.execute(
        _FINISH_JOBS,
        [e.job_id for e, _, _, _ in moving],
        [status.value for _, status, _, _ in moving],
        [outcome for _, _, outcome, _ in moving],
        [error for _, _, _, error in moving],
        [e.duration_ms for e, _, _, _ in moving],
        [e.artifacts for e, _, _, _ in moving],
        backoff_s,
    )
    result.applied += len(moving)
    result.retried += sum(1 for _, s, _, _ in moving if s is JobStatus.PENDING)
    result.requeued = result.requeued or result.retried > 0


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
