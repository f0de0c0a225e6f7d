"""Read queries that only the web pages need: recent runs, queue depth, a job's attempts,
and the token behind a signed-in session. Everything else the pages show comes from the
store functions the API uses (`jobs.get_run`, `jobs.get_job`, `workers.list_workers`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.database import Conn
from app.store.jobs import RUN_COLUMNS, Wire, derive_run_status, to_wire
from app.store.tokens import Principal
from qgjob.types import Role

_RECENT_RUNS = f"""
SELECT {", ".join("r." + c.strip() for c in RUN_COLUMNS.split(","))}, c.*
FROM runs r
CROSS JOIN LATERAL (
    SELECT count(*) AS total,
           count(*) FILTER (WHERE j.status = 'PENDING') AS pending,
           count(*) FILTER (WHERE j.status = 'ASSIGNED') AS assigned,
           count(*) FILTER (WHERE j.status = 'RUNNING') AS running,
           count(*) FILTER (WHERE j.status = 'COMPLETED') AS completed,
           count(*) FILTER (WHERE j.status = 'FAILED') AS failed,
           count(*) FILTER (WHERE j.status = 'CANCELLED') AS cancelled,
           max(j.finished_at) AS last_finished_at
    FROM jobs j WHERE j.run_id = r.run_id
) c
WHERE ($1::text IS NULL OR r.org_id = $1)
  AND ($3::timestamptz IS NULL OR (r.created_at, r.run_id) < ($3, $4::uuid))
ORDER BY r.created_at DESC, r.run_id DESC
LIMIT $2
"""
_COUNTS = ("total", "pending", "assigned", "running", "completed", "failed", "cancelled")


@dataclass(frozen=True)
class RunCursor:
    """Where a page of runs ends: the runs older than this one come next."""

    created_at: datetime
    run_id: uuid.UUID

    def text(self) -> str:
        return f"{self.created_at.isoformat()}_{self.run_id}"

    @classmethod
    def parse(cls, text: str) -> RunCursor:
        """ValueError when `text` is not what `text()` makes."""
        stamp, _, run_id = text.rpartition("_")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("a cursor's time has a zone")
        return cls(created_at, uuid.UUID(run_id))


async def recent_runs(
    conn: Conn, *, org_scope: str | None, limit: int, before: RunCursor | None = None
) -> list[Wire]:
    """The newest runs (older than `before`, if given) with their job counts and status."""
    runs = []
    cursor = (None, None) if before is None else (before.created_at, before.run_id)
    for row in await conn.fetch(_RECENT_RUNS, org_scope, limit, *cursor):
        run = to_wire(row)
        counts = {name: run.pop(name) for name in _COUNTS}
        last_finished_at = run.pop("last_finished_at")
        run["counts"] = counts
        run["status"] = derive_run_status(counts).value
        live = counts["pending"] + counts["assigned"] + counts["running"]
        run["finished_at"] = last_finished_at if counts["total"] and not live else None
        runs.append(run)
    return runs


# Pending jobs come from the partial index of pending work; running ones from live groups.
_QUEUE_DEPTH = """
SELECT t.target::text AS target,
       (SELECT count(*) FROM jobs j
        WHERE j.status = 'PENDING' AND j.target = t.target
          AND ($1::text IS NULL OR j.org_id = $1)) AS pending,
       (SELECT count(*) FROM groups g JOIN jobs j ON j.group_id = g.group_id
        WHERE g.status = 'LEASED' AND g.target = t.target
          AND j.status IN ('ASSIGNED', 'RUNNING')
          AND ($1::text IS NULL OR g.org_id = $1)) AS running
FROM unnest(enum_range(NULL::target)) AS t(target)
ORDER BY t.target
"""


async def queue_depth(conn: Conn, *, org_scope: str | None) -> list[Wire]:
    """Per target: jobs waiting for a worker and jobs on one now."""
    return [dict(row) for row in await conn.fetch(_QUEUE_DEPTH, org_scope)]


_ATTEMPTS = """
SELECT a.attempt, a.group_id, a.worker_id, w.name AS worker_name, a.outcome::text AS outcome,
       a.error, a.duration_ms, a.artifacts, a.log IS NOT NULL AS has_log,
       a.started_at, a.finished_at
FROM job_attempts a LEFT JOIN workers w ON w.worker_id = a.worker_id
WHERE a.job_id = $1
ORDER BY a.attempt
"""


async def job_attempts(conn: Conn, job_id: uuid.UUID) -> list[Wire]:
    """Every attempt of a job, oldest first (the caller has checked the job's org)."""
    return [to_wire(row) for row in await conn.fetch(_ATTEMPTS, job_id)]


_RUN_ARTIFACTS = """
SELECT job_id, artifacts FROM jobs WHERE run_id = $1 AND artifacts <> '{}'::jsonb
"""


async def run_artifacts(conn: Conn, run_id: uuid.UUID) -> dict[str, dict[str, str]]:
    """Job id → its artifacts (name → url), for the jobs of a run that have any."""
    rows = await conn.fetch(_RUN_ARTIFACTS, run_id)
    return {str(row["job_id"]): dict(row["artifacts"]) for row in rows}


# Everything the live part of a run's page shows, digested: each job's row as the page
# reads it and the group that holds it. Computing it reads the run's jobs through their index
# and nothing else, far cheaper than loading and arranging the run: an unchanged page is
# answered 304 from this alone. NULL when the run is unknown, not the org's, or has no job.
_RUN_FINGERPRINT = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE j.status IN ('PENDING', 'ASSIGNED', 'RUNNING')) AS live,
       md5(string_agg(
           ROW(j.job_id, j.status, j.outcome, j.attempts, j.max_attempts, j.duration_ms,
               j.error, j.artifacts, j.group_id, j.started_at, j.finished_at,
               g.status, g.install_ms, g.worker_id)::text,
           ',' ORDER BY j.job_id)) AS digest
FROM runs r
JOIN jobs j ON j.run_id = r.run_id
LEFT JOIN groups g ON g.group_id = j.group_id
WHERE r.run_id = $1 AND ($2::text IS NULL OR r.org_id = $2)
"""


@dataclass(frozen=True)
class RunFingerprint:
    digest: str
    done: bool  # no job of the run can change any more


async def run_fingerprint(
    conn: Conn, run_id: uuid.UUID, *, org_scope: str | None
) -> RunFingerprint | None:
    row = await conn.fetchrow(_RUN_FINGERPRINT, run_id, org_scope)
    if row is None or not row["total"]:
        return None
    return RunFingerprint(digest=row["digest"], done=row["live"] == 0)


_LIVE_GRANT = """
SELECT token_id, role, org_id, name FROM api_tokens WHERE token_id = $1 AND revoked_at IS NULL
"""


async def live_token(conn: Conn, token_id: uuid.UUID) -> Principal | None:
    """What a session's token grants, or None once it has been revoked."""
    row = await conn.fetchrow(_LIVE_GRANT, token_id)
    if row is None:
        return None
    return Principal(
        token_id=row["token_id"], role=Role(row["role"]), org_id=row["org_id"], name=row["name"]
    )
