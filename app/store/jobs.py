"""Submitting, reading and cancelling jobs and runs.

Rows leave this module as plain dicts in wire form (UUIDs and timestamps as strings), the
shape the API returns; `app.api.schemas` documents it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.database import Conn, TxConn, in_transaction
from qgjob.types import JobStatus, Priority, RunSource, RunStatus, Target

Wire = dict[str, Any]

JOB_COLUMNS = """job_id, run_id, status, outcome, org_id, app_version_id, test_path, target,
    priority, worker_id, group_id, attempts, max_attempts, error, duration_ms,
    created_at, updated_at, started_at, finished_at, artifacts"""
RUN_COLUMNS = """run_id, org_id, source, app_version_id, targets, priority, repo, ref, head_sha,
    submitted_by, created_at"""

_LIVE = ("PENDING", "ASSIGNED", "RUNNING")


@dataclass(frozen=True)
class NewRun:
    org_id: str
    app_version_id: str
    tests: Sequence[str]
    targets: Sequence[Target]
    priority: Priority
    source: RunSource
    max_attempts: int
    repo: str | None = None
    ref: str | None = None
    head_sha: str | None = None
    submitted_by: str | None = None  # a token's label or a GitHub login (migration 0013)


def to_wire(row: asyncpg.Record | dict[str, Any]) -> Wire:
    out: Wire = {}
    for key, value in row.items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[key] = value
    return out


# One statement inserts the org (if new), the run and its jobs: atomic without an explicit
# transaction, and a single round trip on the hot submit path.
_INSERT_RUN = f"""
WITH org AS (INSERT INTO orgs (org_id) VALUES ($3) ON CONFLICT DO NOTHING),
run AS (
    INSERT INTO runs (run_id, org_id, source, app_version_id, targets, priority, repo, ref,
                      head_sha, submitted_by)
    VALUES ($2, $3, $9, $4, $10::target[], $5, $11, $12, $13, $14)
)
INSERT INTO jobs (job_id, run_id, org_id, app_version_id, test_path, target, priority,
                  max_attempts)
SELECT j.job_id, $2, $3, $4, j.test_path, j.target, $5, $6
FROM unnest($1::uuid[], $7::text[], $8::target[]) AS j(job_id, test_path, target)
RETURNING {JOB_COLUMNS}
"""


async def insert_run(conn: Conn, new: NewRun) -> Wire:
    """Insert a run and its jobs (tests × targets), atomically, in one statement."""
    run_id = uuid.uuid4()
    order: dict[uuid.UUID, int] = {}
    paths: list[str] = []
    targets: list[str] = []
    for target in new.targets:
        for path in new.tests:
            order[uuid.uuid4()] = len(order)
            paths.append(path)
            targets.append(target.value)
    rows = await conn.fetch(
        _INSERT_RUN,
        list(order),
        run_id,
        new.org_id,
        new.app_version_id,
        new.priority.value,
        new.max_attempts,
        paths,
        targets,
        new.source.value,
        [t.value for t in new.targets],
        new.repo,
        new.ref,
        new.head_sha,
        new.submitted_by,
    )
    jobs = [to_wire(r) for r in sorted(rows, key=lambda r: order[r["job_id"]])]
    run = {
        "run_id": str(run_id),
        "org_id": new.org_id,
        "source": new.source.value,
        "app_version_id": new.app_version_id,
        "targets": [t.value for t in new.targets],
        "priority": new.priority.value,
        "repo": new.repo,
        "ref": new.ref,
        "head_sha": new.head_sha,
        "submitted_by": new.submitted_by,
        "created_at": jobs[0]["created_at"],
    }
    wire = run_to_wire(run, jobs)
    wire["jobs"] = wire.pop("_jobs")
    return wire


def run_to_wire(run: asyncpg.Record | Wire, jobs: list[Wire]) -> Wire:
    """A run with status and counts derived from its jobs."""
    out = to_wire(run)
    counts = {key: 0 for key in ("pending", "assigned", "running", "completed", "failed")}
    counts["cancelled"] = 0
    finished: list[str] = []
    for job in jobs:
        counts[job["status"].lower()] += 1
        if job["finished_at"] is not None:
            finished.append(job["finished_at"])
    counts_wire: Wire = {"total": len(jobs), **counts}
    out["counts"] = counts_wire
    out["status"] = derive_run_status(counts_wire).value
    live = counts["pending"] + counts["assigned"] + counts["running"]
    out["finished_at"] = max(finished) if jobs and live == 0 and finished else None
    out["_jobs"] = jobs
    return out


def derive_run_status(counts: dict[str, int]) -> RunStatus:
    if counts["pending"] + counts["assigned"] + counts["running"]:
        started = counts["assigned"] + counts["running"] + counts["completed"] + counts["failed"]
        return RunStatus.RUNNING if started else RunStatus.PENDING
    if counts["failed"]:
        return RunStatus.FAILED
    if counts["cancelled"]:
        return RunStatus.CANCELLED
    return RunStatus.COMPLETED


_GET_JOB = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE job_id = $1 AND ($2::text IS NULL OR org_id = $2)
"""


async def get_job(conn: Conn, job_id: uuid.UUID, *, org_scope: str | None) -> Wire | None:
    row = await conn.fetchrow(_GET_JOB, job_id, org_scope)
    return None if row is None else to_wire(row)


_LIST_JOBS = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE ($1::text IS NULL OR org_id = $1)
  AND ($2::text IS NULL OR org_id = $2)
  AND ($3::job_status IS NULL OR status = $3)
  AND ($4::text IS NULL OR app_version_id = $4)
  AND ($5::uuid IS NULL OR run_id = $5)
  AND ($6::timestamptz IS NULL OR (created_at, job_id) < ($6, $7))
ORDER BY created_at DESC, job_id DESC
LIMIT $8
"""


@dataclass(frozen=True)
class JobFilter:
    org_id: str | None = None
    status: JobStatus | None = None
    app_version_id: str | None = None
    run_id: uuid.UUID | None = None


def encode_cursor(created_at: str, job_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at, job_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raises ValueError when the cursor is not one this service handed out."""
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(created_at), uuid.UUID(job_id)
    except (TypeError, AttributeError, RecursionError) as exc:  # decoded, but not our shape
        raise ValueError(f"not a cursor of this service: {exc}") from exc


async def list_jobs(
    conn: Conn,
    *,
    org_scope: str | None,
    where: JobFilter,
    limit: int,
    cursor: tuple[datetime, uuid.UUID] | None,
) -> tuple[list[Wire], str | None]:
    rows = await conn.fetch(
        _LIST_JOBS,
        org_scope,
        where.org_id,
        where.status.value if where.status else None,
        where.app_version_id,
        where.run_id,
        cursor[0] if cursor else None,
        cursor[1] if cursor else None,
        limit + 1,
    )
    jobs = [to_wire(r) for r in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(jobs[-1]["created_at"], jobs[-1]["job_id"]) if more else None
    return jobs, next_cursor


_GET_RUN = f"""
SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1 AND ($2::text IS NULL OR org_id = $2)
"""
_RUN_JOBS = f"""
SELECT {", ".join("j." + c.strip() for c in JOB_COLUMNS.split(","))},
       g.status::text AS group_status, g.install_ms, g.worker_id AS group_worker_id,
       w.name AS worker_name
FROM jobs j
LEFT JOIN groups g ON g.group_id = j.group_id
LEFT JOIN workers w ON w.worker_id = g.worker_id
WHERE j.run_id = $1
ORDER BY j.app_version_id, j.target, g.created_at NULLS LAST, j.test_path, j.job_id
"""
_GROUP_FIELDS = ("group_status", "install_ms", "group_worker_id", "worker_name")


async def get_run(conn: Conn, run_id: uuid.UUID, *, org_scope: str | None) -> Wire | None:
    """The run, its counts, and its jobs arranged as the groups that ran them; jobs
    not dispatched yet (or waiting for a retry) sit in a WAITING group per key, and jobs
    cancelled before any worker took them (no attempt) in a CANCELLED one."""
    run = await conn.fetchrow(_GET_RUN, run_id, org_scope)
    if run is None:
        return None
    groups: dict[tuple[str, str, str], Wire] = {}
    jobs: list[Wire] = []
    for row in await conn.fetch(_RUN_JOBS, run_id):
        job = to_wire(row)
        info = {name: job.pop(name) for name in _GROUP_FIELDS}
        jobs.append(job)
        dispatched = job["group_id"] is not None and job["status"] != "PENDING"
        never = job["status"] == "CANCELLED" and job["attempts"] == 0
        dispatched = dispatched and not never
        group_id = job["group_id"] if dispatched else None
        undispatched = "CANCELLED" if never else "WAITING"
        key = (job["app_version_id"], job["target"], group_id or undispatched)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "group_id": group_id,
                "status": info["group_status"] if dispatched else undispatched,
                "app_version_id": job["app_version_id"],
                "target": job["target"],
                "worker_id": info["group_worker_id"] if dispatched else None,
                "worker_name": info["worker_name"] if dispatched else None,
                "install_ms": info["install_ms"] if dispatched else None,
                "jobs": [],
            }
        group["jobs"].append(job)
    wire = run_to_wire(run, jobs)
    del wire["_jobs"]
    wire["groups"] = list(groups.values())
    return wire


_LOG = """
SELECT log FROM job_attempts
WHERE job_id = $1 AND log IS NOT NULL AND ($2::int IS NULL OR attempt = $2)
ORDER BY attempt DESC LIMIT 1
"""


async def get_log(conn: Conn, job_id: uuid.UUID, *, attempt: int | None) -> str | None:
    log: str | None = await conn.fetchval(_LOG, job_id, attempt)
    return log


# Cancelling closes the job's open attempt too, so every attempt ends with a finish time
# (a worker still running it learns of the cancel at its next heartbeat and kills it). The
# attempts are closed by a second statement: when the cancel waited for a claim of the same
# job to commit, the attempt row that claim inserted is not in the first statement's
# snapshot, and would have stayed open for ever.
_CANCEL_JOBS = f"""
UPDATE jobs SET status = 'CANCELLED', updated_at = now(), finished_at = now()
WHERE {{where}} AND status IN {_LIVE} AND ($2::text IS NULL OR org_id = $2)
RETURNING {JOB_COLUMNS}
"""
_CANCEL_JOB = _CANCEL_JOBS.format(where="job_id = $1")
_CANCEL_RUN = _CANCEL_JOBS.format(where="run_id = $1")
_CLOSE_CANCELLED_ATTEMPTS = """
UPDATE job_attempts a SET error = 'cancelled', finished_at = now()
FROM unnest($1::uuid[], $2::int[]) AS c(job_id, attempt)
WHERE a.job_id = c.job_id AND a.attempt = c.attempt AND a.finished_at IS NULL
"""


async def cancel_job(conn: Conn, job_id: uuid.UUID, *, org_scope: str | None) -> Wire | None:
    """The cancelled job, or None when it is unknown or already finished."""
    rows = await _cancel(conn, _CANCEL_JOB, job_id, org_scope)
    return to_wire(rows[0]) if rows else None


async def cancel_run(conn: Conn, run_id: uuid.UUID, *, org_scope: str | None) -> int:
    """How many of the run's live jobs were cancelled."""
    return len(await _cancel(conn, _CANCEL_RUN, run_id, org_scope))


async def _cancel(
    conn: Conn, statement: str, key: uuid.UUID, org_scope: str | None
) -> list[asyncpg.Record]:
    """Cancel in the caller's transaction, or (given the pool) in one of its own, tried
    again should it deadlock with a batch of the same jobs' results."""

    async def cancel(tx: TxConn) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await tx.fetch(statement, key, org_scope)
        if rows:
            await tx.execute(
                _CLOSE_CANCELLED_ATTEMPTS,
                [r["job_id"] for r in rows],
                [r["attempts"] for r in rows],
            )
        return rows

    if isinstance(conn, asyncpg.Pool):
        return await in_transaction(conn, cancel)
    return await cancel(conn)


_STATS = """
SELECT
    (SELECT json_build_object(
        'total', count(*),
        'pending', count(*) FILTER (WHERE status = 'PENDING'),
        'running', count(*) FILTER (WHERE status IN ('ASSIGNED', 'RUNNING')),
        'completed', count(*) FILTER (WHERE status = 'COMPLETED'),
        'failed', count(*) FILTER (WHERE status = 'FAILED'),
        'cancelled', count(*) FILTER (WHERE status = 'CANCELLED'))
     FROM jobs WHERE $1::text IS NULL OR org_id = $1) AS jobs,
    (SELECT json_build_object(
        'total', count(*),
        'active', count(*) FILTER (WHERE status <> 'offline'))
     FROM workers WHERE $1::text IS NULL OR org_id IS NULL OR org_id = $1) AS workers,
    (SELECT json_build_object('total', count(*))
     FROM groups WHERE $1::text IS NULL OR org_id = $1) AS groups
"""


async def stats(conn: Conn, *, org_scope: str | None) -> Wire:
    row = await conn.fetchrow(_STATS, org_scope)
    assert row is not None
    return {"jobs": row["jobs"], "workers": row["workers"], "groups": row["groups"]}
