"""Runs started from GitHub and their check runs: what exists, what changed, what to show.

The tracker learns of job state changes by scanning, not by hooks on the hot path: one
aggregate over the jobs of check runs that are not completed yet (`github_check_runs_live`
keeps that set small), compared with what was last rendered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.database import Conn, TxConn

# A run its pull request's close ended does not count: reopening the pull request runs again.
_COMMIT_HAS_RUN = """
SELECT EXISTS (SELECT 1 FROM github_runs
               WHERE repo = $1 AND head_sha = $2 AND ended IS DISTINCT FROM 'closed')
"""


async def commit_has_run(conn: Conn, *, repo: str, head_sha: str) -> bool:
    found: bool = await conn.fetchval(_COMMIT_HAS_RUN, repo, head_sha)
    return found


_COMMIT_HAS_CHECK_RUN = """
SELECT EXISTS (SELECT 1 FROM github_check_runs WHERE repo = $1 AND head_sha = $2 AND name = $3)
"""


async def commit_has_check_run(conn: Conn, *, repo: str, head_sha: str, name: str) -> bool:
    """Whether a check run named `name` was owed for this commit already."""
    found: bool = await conn.fetchval(_COMMIT_HAS_CHECK_RUN, repo, head_sha, name)
    return found


async def lock_commit(conn: TxConn, *, repo: str, head_sha: str) -> None:
    """Serialise run creation for one commit until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 5))", f"{repo}@{head_sha}"
    )


_INSERT_GITHUB_RUN = """
INSERT INTO github_runs (run_id, installation_id, repo, head_sha, branch, pr_number, trigger,
                         timeout_minutes, deadline_at, from_fork)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(mins => $8), $9)
"""


async def insert_github_run(
    conn: Conn,
    *,
    run_id: uuid.UUID,
    installation_id: int,
    repo: str,
    head_sha: str,
    branch: str | None,
    pr_number: int | None,
    trigger: str,
    timeout_minutes: int,
    from_fork: bool,
) -> None:
    await conn.execute(
        _INSERT_GITHUB_RUN, run_id, installation_id, repo, head_sha, branch, pr_number, trigger,
        timeout_minutes, from_fork,
    )  # fmt: skip


# A GitHub run (`g`) that still has jobs to run or running.
_RUN_IS_LIVE = """EXISTS (SELECT 1 FROM jobs j WHERE j.run_id = g.run_id
                       AND j.status IN ('PENDING', 'ASSIGNED', 'RUNNING'))"""

# Older live runs of the same branch of the repository or of the same pull request,
# whichever event made them: GitHub sends a push, a check suite and (for a pull request within
# the repository) a pull_request for one commit, and whichever is processed first makes its
# run. A fork's branch (`$5`, `from_fork`) is not the repository's: matched by number only.
_SUPERSEDE = f"""
UPDATE github_runs g SET superseded_by = $3
WHERE g.repo = $1 AND g.superseded_by IS NULL AND g.head_sha <> $3
  AND ((NOT $5 AND NOT g.from_fork AND g.branch = $2) OR g.pr_number = $4)
  AND {_RUN_IS_LIVE}
RETURNING g.run_id
"""
_MARK_ENDED = """
UPDATE github_check_runs SET reason = $2, timed_out = $3
WHERE run_id = ANY($1::uuid[]) AND state <> 'completed'
"""


async def supersede_runs(
    conn: TxConn,
    *,
    repo: str,
    branch: str | None,
    pr_number: int | None,
    head_sha: str,
    from_fork: bool = False,
) -> list[uuid.UUID]:
    """Mark the older live runs of this branch or pull request superseded by `head_sha`;
    the caller cancels their jobs. `from_fork`: `branch` is a fork's (a pull request from
    it), so only the pull request's runs are older runs of it."""
    if branch is None and pr_number is None:
        return []
    rows = await conn.fetch(_SUPERSEDE, repo, branch, head_sha, pr_number, from_fork)
    run_ids = [r["run_id"] for r in rows]
    await mark_ended(conn, run_ids, reason=f"superseded by {head_sha[:7]}")
    return run_ids


async def mark_ended(
    conn: Conn, run_ids: list[uuid.UUID], *, reason: str, timed_out: bool = False
) -> None:
    """The check runs of these runs complete `cancelled` (or `timed_out`) saying `reason`
    once their jobs have all ended; the caller cancels the jobs."""
    if run_ids:
        await conn.execute(_MARK_ENDED, run_ids, reason, timed_out)


# The live runs of a pull request, and the run of its head commit on its head branch: for a
# pull request within the repository GitHub sends a push and a pull_request for the same
# commit, and whichever came first made the one run of that commit.
_CLOSE_PULL_REQUEST = f"""
UPDATE github_runs g SET ended = 'closed'
WHERE g.repo = $1 AND g.ended IS NULL AND g.superseded_by IS NULL
  AND (g.pr_number = $2 OR (g.pr_number IS NULL AND g.head_sha = $3 AND g.branch = $4))
  AND {_RUN_IS_LIVE}
RETURNING g.run_id
"""


async def close_pull_request(
    conn: TxConn, *, repo: str, pr_number: int, head_sha: str, head_ref: str, reason: str
) -> list[uuid.UUID]:
    """Mark the pull request's live runs ended by its close; the caller cancels their jobs."""
    rows = await conn.fetch(_CLOSE_PULL_REQUEST, repo, pr_number, head_sha, head_ref)
    run_ids = [r["run_id"] for r in rows]
    await mark_ended(conn, run_ids, reason=reason)
    return run_ids


_INSERT_CHECK = """
INSERT INTO github_check_runs (installation_id, repo, head_sha, name, run_id, target, state,
                               trigger)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING check_key
"""


async def insert_check_run(
    conn: Conn,
    *,
    installation_id: int,
    repo: str,
    head_sha: str,
    name: str,
    run_id: uuid.UUID | None,
    target: str | None,
    state: str,
    trigger: dict[str, Any] | None = None,
) -> int:
    key: int = await conn.fetchval(
        _INSERT_CHECK, installation_id, repo, head_sha, name, run_id, target, state, trigger
    )
    return key


@dataclass(frozen=True)
class CheckRunRow:
    check_key: int
    installation_id: int
    repo: str
    head_sha: str
    name: str
    run_id: uuid.UUID | None
    target: str | None
    state: str
    trigger: dict[str, Any] | None


_CHECK_COLUMNS = "check_key, installation_id, repo, head_sha, name, run_id, target, state, trigger"


async def find_check_run(
    conn: Conn, *, github_id: int, external_id: str | None
) -> CheckRunRow | None:
    """Our record of a check run, by GitHub's id or by the external id we gave it."""
    row = await conn.fetchrow(
        f"SELECT {_CHECK_COLUMNS} FROM github_check_runs WHERE github_id = $1", github_id
    )
    if row is None and external_id:
        try:
            run_id = uuid.UUID(external_id)
        except ValueError:
            return None
        row = await conn.fetchrow(
            f"SELECT {_CHECK_COLUMNS} FROM github_check_runs WHERE run_id = $1 "
            "ORDER BY check_key LIMIT 1",
            run_id,
        )
    return None if row is None else CheckRunRow(**dict(row))


async def blocked_check_runs(conn: Conn, *, repo: str, head_sha: str) -> list[CheckRunRow]:
    """Check runs of this commit that wait for a maintainer (forks) and can be started."""
    rows = await conn.fetch(
        f"SELECT {_CHECK_COLUMNS} FROM github_check_runs "
        "WHERE repo = $1 AND head_sha = $2 AND run_id IS NULL AND trigger IS NOT NULL "
        "ORDER BY check_key",
        repo,
        head_sha,
    )
    return [CheckRunRow(**dict(r)) for r in rows]


async def github_run(conn: Conn, run_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT g.*, r.org_id FROM github_runs g JOIN runs r USING (run_id) WHERE g.run_id = $1",
        run_id,
    )
    return row


async def specs_of(conn: Conn, run_id: uuid.UUID, target: str, *, failed_only: bool) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT test_path FROM jobs WHERE run_id = $1 AND target = $2::target "
        "AND (NOT $3 OR outcome IN ('failed', 'timed_out', 'error')) ORDER BY test_path",
        run_id,
        target,
        failed_only,
    )
    return [r["test_path"] for r in rows]


# Runs whose deadline has come: each is taken once (its deadline cleared, which keeps the
# index small); those still live and not ended otherwise end as timed out.
_EXPIRE = f"""
WITH due AS (
    UPDATE github_runs g
    SET deadline_at = NULL,
        ended = CASE WHEN g.ended IS NULL AND g.superseded_by IS NULL
                      AND {_RUN_IS_LIVE}
                     THEN 'timed_out' ELSE g.ended END
    WHERE g.deadline_at <= now()
    RETURNING g.run_id, g.ended, g.timeout_minutes
)
SELECT run_id, timeout_minutes AS minutes FROM due WHERE ended = 'timed_out'
"""


@dataclass(frozen=True)
class ExpiredRun:
    run_id: uuid.UUID
    minutes: int  # the run's timeout


async def expire_runs(conn: TxConn) -> list[ExpiredRun]:
    """The live runs past their deadline, now marked timed out; the caller cancels their
    jobs and says why on their check runs (`mark_ended`)."""
    return [ExpiredRun(r["run_id"], r["minutes"]) for r in await conn.fetch(_EXPIRE)]


# -- tracking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiveCheckRun:
    check_key: int
    installation_id: int
    run_id: uuid.UUID
    org_id: str
    target: str
    head_sha: str
    state: str
    done: int
    rendered_at: datetime
    reason: str | None
    timed_out: bool
    total: int
    finished: int
    started: int


_LIVE = """
SELECT c.check_key, c.installation_id, c.run_id, min(j.org_id) AS org_id, c.target::text,
       c.head_sha, c.state, c.done, c.rendered_at, c.reason, c.timed_out,
       count(*) AS total,
       count(*) FILTER (WHERE j.status IN ('COMPLETED', 'FAILED', 'CANCELLED')) AS finished,
       count(*) FILTER (WHERE j.status IN ('ASSIGNED', 'RUNNING')
                           OR j.started_at IS NOT NULL) AS started
FROM github_check_runs c
JOIN jobs j ON j.run_id = c.run_id AND j.target = c.target
WHERE c.state <> 'completed' AND c.run_id IS NOT NULL
GROUP BY c.check_key
ORDER BY c.check_key
"""


async def live_check_runs(conn: Conn) -> list[LiveCheckRun]:
    return [LiveCheckRun(**dict(r)) for r in await conn.fetch(_LIVE)]


_MARK_RENDERED = """
UPDATE github_check_runs SET state = $2, done = $3, rendered_at = now() WHERE check_key = $1
"""


async def mark_rendered(conn: Conn, check_key: int, *, state: str, done: int) -> None:
    await conn.execute(_MARK_RENDERED, check_key, state, done)


_REPORT_JOBS = """
SELECT j.test_path, j.status::text, j.outcome::text, j.duration_ms, j.attempts, j.error,
       j.started_at, j.finished_at, j.group_id, g.worker_id, g.install_ms
FROM jobs j LEFT JOIN groups g ON g.group_id = j.group_id
WHERE j.run_id = $1 AND j.target = $2::target
ORDER BY j.test_path
"""


async def report_rows(conn: Conn, run_id: uuid.UUID, target: str) -> list[dict[str, Any]]:
    """The jobs of one run on one target, with the group and worker that ran each."""
    return [dict(r) for r in await conn.fetch(_REPORT_JOBS, run_id, target)]
