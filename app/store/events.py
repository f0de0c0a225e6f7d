"""Applying what a worker reports under a lease: job started, job finished, setup done.

A batch is applied set-based, one statement whatever its size, inside the caller's
transaction (which holds the lease); `report_events` is the events endpoint's whole
transaction: lock the lease and read the batch's jobs, apply, settle the group; three
statements. A result is recorded at most once: it lands only on a job that this group
holds, on an attempt row that has no outcome yet, and it moves the job only while the job
is still ASSIGNED or RUNNING on that attempt.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.database import TxConn
from app.lifecycle import final_error, status_after
from app.store import history
from app.store.leases import lock_lease, settle_group
from qgjob.types import JobStatus, Outcome

# One statement applies a batch: the jobs that only started (`$12`) move to RUNNING with
# their attempt; each finished job's attempt is recorded and the job moved to the state the
# caller computed (`$8..$10`); the recorded attempts go into the duration history
# (`app.store.history`). Neither write needs the rows locked beforehand: each is guarded by
# what it expects (the attempt still open, the job still live on that attempt), and
# PostgreSQL re-checks the guard against the newest row version when a concurrent write (a
# cancel) got there first. A cancelled attempt was closed without an outcome; the worker's
# report may still fill it. "Still live" is spelt `<> ALL (the other states)` rather than
# `IN ('ASSIGNED', 'RUNNING')`: the latter matches the predicate of the small index of live
# jobs (migration 0006), which the planner then scans whole for every row instead of going
# by job id. The started and the finished jobs are distinct rows (the caller sees to it), as
# one statement may not update a row twice.
_APPLY = f"""
WITH started AS (
    UPDATE jobs SET status = 'RUNNING', started_at = coalesce(started_at, now()),
                    updated_at = now()
    WHERE job_id = ANY($12::uuid[]) AND group_id = $13 AND status = 'ASSIGNED'
    RETURNING job_id, attempts
), started_attempts AS (
    UPDATE job_attempts a SET started_at = now()
    FROM started WHERE a.job_id = started.job_id AND a.attempt = started.attempts
    RETURNING a.job_id
), r AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::job_outcome[], $4::text[], $5::int[],
                         $6::jsonb[], $7::text[], $8::job_status[], $9::job_outcome[],
                         $10::text[]) WITH ORDINALITY
        AS r(job_id, attempt, outcome, error, duration_ms, artifacts, log,
             status, job_outcome, job_error, n)
), recorded AS (
    UPDATE job_attempts a SET outcome = r.outcome, error = r.error, duration_ms = r.duration_ms,
                              artifacts = r.artifacts, log = r.log,
                              finished_at = now(), started_at = coalesce(a.started_at, now())
    FROM r
    WHERE a.job_id = r.job_id AND a.attempt = r.attempt AND a.outcome IS NULL
      AND (a.finished_at IS NULL OR a.error = 'cancelled')
    RETURNING a.job_id
), moved AS (
    UPDATE jobs j SET status = r.status, outcome = r.job_outcome, error = r.job_error,
                      duration_ms = r.duration_ms, artifacts = r.artifacts,
                      started_at = coalesce(j.started_at, now()),
                      finished_at = CASE WHEN r.status = 'PENDING' THEN NULL ELSE now() END,
                      not_before = CASE WHEN r.status = 'PENDING'
                          THEN now() + make_interval(
                              secs => $11 * power(2, greatest(j.attempts - 1, 0))
                                      * (0.5 + random()))
                          ELSE j.not_before END,
                      updated_at = now()
    FROM r JOIN recorded USING (job_id)
    WHERE j.job_id = r.job_id AND j.attempts = r.attempt
      AND j.status <> ALL ('{{PENDING,COMPLETED,FAILED,CANCELLED}}'::job_status[])
    RETURNING j.job_id, j.status
), history_source AS (
    SELECT j.org_id, j.target, j.test_path, r.outcome, r.duration_ms, r.n
    FROM r JOIN recorded USING (job_id) JOIN jobs j ON j.job_id = r.job_id
), {history.RECORD_FINISHED_CTES.format(source="history_source", window="$14", scope_window="$15")}
SELECT r.job_id, true AS finished, recorded.job_id IS NOT NULL AS recorded,
       moved.status AS moved_to
FROM r LEFT JOIN recorded USING (job_id) LEFT JOIN moved USING (job_id)
UNION ALL
SELECT job_id, false, true, NULL FROM started_attempts
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
    retry: bool = True  # False: an error outcome is final (app.lifecycle.status_after)


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
    jobs: Mapping[uuid.UUID, asyncpg.Record],
) -> Applied:
    """Apply a batch of job events for one group, in one statement. A job that starts and
    finishes in the same batch goes straight to its end state. `jobs`: the batch's finished
    jobs of this group as `lock_lease` read them (status, attempts, max_attempts)."""
    result = Applied()
    results: dict[uuid.UUID, Finished] = {}
    for event in finished:
        if event.job_id in results:
            result.ignore(event.job_id, "finished twice in one batch; the first one counts")
        else:
            results[event.job_id] = event
    only_started = list(dict.fromkeys(j for j in started if j not in results))
    held = [results[job_id] for job_id in sorted(results) if job_id in jobs]
    if not held and not only_started:
        _ignore_strangers(result, results, jobs)
        return result
    # What each job becomes if its attempt is recorded now (a job already ended keeps its
    # state; the guard in _APPLY leaves it alone).
    after: list[tuple[JobStatus, str | None, str | None]] = []
    for event in held:
        job = jobs[event.job_id]
        attempts, most = job["attempts"], job["max_attempts"]
        retry = event.retry
        status = status_after(event.outcome, attempts=attempts, max_attempts=most, retry=retry)
        outcome = None if status is JobStatus.PENDING else event.outcome.value
        error = event.error
        if status is JobStatus.FAILED and event.outcome is Outcome.ERROR:
            error = final_error(error, attempts=attempts, max_attempts=most, retry=retry)
        after.append((status, outcome, error))
    rows = await conn.fetch(
        _APPLY,
        [e.job_id for e in held],
        [jobs[e.job_id]["attempts"] for e in held],
        [e.outcome.value for e in held],
        [e.error for e in held],
        [e.duration_ms for e in held],
        [e.artifacts for e in held],
        [e.log for e in held],
        [status.value for status, _, _ in after],
        [outcome for _, outcome, _ in after],
        [error for _, _, error in after],
        backoff_s,
        only_started,
        group_id,
        history.WINDOW,
        history.SCOPE_WINDOW,
    )
    moved_started = {row["job_id"] for row in rows if not row["finished"]}
    result.applied += len(moved_started)
    for job_id in only_started:
        if job_id not in moved_started:
            result.ignore(job_id, "not an assigned job of this group")
    _ignore_strangers(result, results, jobs)
    for row in rows:
        if not row["finished"]:
            continue
        job_id = row["job_id"]
        if not row["recorded"]:
            result.ignore(job_id, "this attempt's result is already recorded")
        elif row["moved_to"] is None:
            # Cancelled while it ran: the attempt keeps what happened, the job stays as it is.
            was = jobs[job_id]["status"]
            now = was if JobStatus(was).is_terminal else "no longer running"
            result.ignore(job_id, f"job is {now}; attempt recorded only")
        else:
            result.applied += 1
            if row["moved_to"] == JobStatus.PENDING:
                result.retried += 1
    result.requeued = result.requeued or result.retried > 0
    return result


def _ignore_strangers(
    result: Applied, results: Mapping[uuid.UUID, Finished], jobs: Mapping[uuid.UUID, Any]
) -> None:
    for job_id in results.keys() - jobs.keys():
        result.ignore(job_id, "not a job of this group")


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
    await history.record_setup(conn, group_id, install_ms)
    if build is not None:
        await conn.execute(_READY_BUILD, worker_id, build)
    result.applied += 1


@dataclass(frozen=True)
class SetupReport:
    install_ms: int
    build: str | None


@dataclass(frozen=True)
class Reported:
    """What a batch did: its results, the group's jobs cancelled meanwhile (the worker must
    stop them), and whether the group is done."""

    applied: Applied
    cancelled: list[str]
    group_finished: bool


async def report_events(
    conn: TxConn,
    *,
    group_id: uuid.UUID,
    lease_token: int,
    org_scope: str | None,
    started: Sequence[uuid.UUID],
    finished: Sequence[Finished],
    setups: Sequence[SetupReport] = (),
    backoff_s: float,
) -> Reported:
    """The events endpoint's transaction: lock the lease and read the finished jobs (one
    statement), apply the batch (one), record setups, settle the group (one). Raises
    `UnknownGroup` or `StaleLease` (from `lock_lease`) before anything is written."""
    lease = await lock_lease(
        conn,
        group_id,
        lease_token,
        org_scope=org_scope,
        job_ids=list({e.job_id: None for e in finished}),
    )
    result = await apply_events(
        conn,
        group_id=group_id,
        started=started,
        finished=finished,
        backoff_s=backoff_s,
        jobs=lease.jobs,
    )
    for setup in setups:
        await setup_done(
            conn,
            result,
            group_id=group_id,
            worker_id=lease.worker_id,
            install_ms=setup.install_ms,
            build=setup.build,
        )
    settled = await settle_group(conn, group_id, notify=result.requeued)
    return Reported(applied=result, cancelled=settled.cancelled, group_finished=settled.finished)
