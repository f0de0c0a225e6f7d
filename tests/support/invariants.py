"""DESIGN §3, checked against what the database holds after (or during) a run.

Fault tests and the store state machine call `check_invariants` and get back a list of
violations (empty when all hold), each one line naming the ids involved, so that a failure
says what broke rather than only that something did.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from app.database import Conn

ENDED = ("COMPLETED", "FAILED", "CANCELLED")
LIVE_JOB = ("ASSIGNED", "RUNNING")


async def check_invariants(conn: Conn) -> list[str]:
    problems: list[str] = []
    problems += await _groups_never_mix(conn)
    problems += await _one_live_group_per_job(conn)
    problems += await _workers_within_capacity(conn)
    problems += await _jobs_agree_with_attempts(conn)
    problems += await _ended_jobs_have_no_open_attempt(conn)
    return problems


async def _ended_jobs_have_no_open_attempt(conn: Conn) -> list[str]:
    """Every attempt of a job that has ended has ended too (a cancel closes the open one)."""
    rows = await conn.fetch(
        """SELECT j.job_id, j.status::text, a.attempt FROM jobs j
           JOIN job_attempts a USING (job_id)
           WHERE j.status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND a.finished_at IS NULL"""
    )
    return [f"job {r['job_id']} is {r['status']} but attempt {r['attempt']} is open" for r in rows]


async def _groups_never_mix(conn: Conn) -> list[str]:
    rows = await conn.fetch(
        """SELECT a.job_id, a.group_id FROM job_attempts a
           JOIN jobs j USING (job_id) JOIN groups g ON g.group_id = a.group_id
           WHERE (g.org_id, g.app_version_id, g.target) <> (j.org_id, j.app_version_id, j.target)
              OR g.worker_id <> a.worker_id"""
    )
    return [f"group {r['group_id']} holds job {r['job_id']} of another key/worker" for r in rows]


async def _one_live_group_per_job(conn: Conn) -> list[str]:
    problems = []
    # Now: a job that is ASSIGNED/RUNNING sits in exactly one LEASED group, the one it names.
    rows = await conn.fetch(
        """SELECT j.job_id, j.status::text, g.status::text AS group_status
           FROM jobs j LEFT JOIN groups g ON g.group_id = j.group_id
           WHERE j.status IN ('ASSIGNED', 'RUNNING')
             AND (g.group_id IS NULL OR g.status <> 'LEASED')"""
    )
    problems += [
        f"job {r['job_id']} is {r['status']} but its group is {r['group_status']}" for r in rows
    ]
    # Over time: the groups of a job's attempts never overlap (one ended before the next began).
    spans = await conn.fetch(
        """SELECT a.job_id, a.attempt, g.group_id, g.created_at, g.finished_at
           FROM job_attempts a JOIN groups g ON g.group_id = a.group_id
           ORDER BY a.job_id, a.attempt"""
    )
    last: dict[object, tuple[object, datetime | None]] = {}
    for r in spans:
        before = last.get(r["job_id"])
        if before is not None:
            group_id, finished_at = before
            if finished_at is None or finished_at > r["created_at"]:
                problems.append(
                    f"job {r['job_id']} attempt {r['attempt']} in group {r['group_id']} began "
                    f"while group {group_id} still held it"
                )
        last[r["job_id"]] = (r["group_id"], r["finished_at"])
    return problems


async def _workers_within_capacity(conn: Conn) -> list[str]:
    rows = await conn.fetch(
        """SELECT w.worker_id, w.capacity, g.created_at, g.finished_at
           FROM groups g JOIN workers w USING (worker_id) ORDER BY g.created_at"""
    )
    by_worker: dict[object, list[tuple[datetime, int]]] = defaultdict(list)
    capacity: dict[object, int] = {}
    for r in rows:
        capacity[r["worker_id"]] = r["capacity"]
        by_worker[r["worker_id"]].append((r["created_at"], +1))
        if r["finished_at"] is not None:
            by_worker[r["worker_id"]].append((r["finished_at"], -1))
    problems = []
    for worker_id, edges in by_worker.items():
        live = peak = 0
        for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start
            live += step
            peak = max(peak, live)
        if peak > capacity[worker_id]:
            most = capacity[worker_id]
            problems.append(f"worker {worker_id} held {peak} groups at once, capacity {most}")
    return problems


async def _jobs_agree_with_attempts(conn: Conn) -> list[str]:
    problems = []
    rows = await conn.fetch(
        """SELECT j.job_id, j.status::text, j.outcome::text, j.attempts, j.max_attempts,
                  coalesce(array_agg(a.attempt ORDER BY a.attempt)
                           FILTER (WHERE a.attempt IS NOT NULL), '{}') AS numbers,
                  count(a.*) FILTER (WHERE a.outcome IS NOT NULL
                                     AND a.outcome <> 'error') AS results
           FROM jobs j LEFT JOIN job_attempts a USING (job_id)
           GROUP BY j.job_id"""
    )
    for r in rows:
        numbers = list(r["numbers"])
        if numbers != list(range(1, len(numbers) + 1)):
            problems.append(f"job {r['job_id']} has attempts {numbers}: one was lost or reused")
        if r["attempts"] != len(numbers):
            problems.append(
                f"job {r['job_id']} counts {r['attempts']} attempts, keeps {len(numbers)}"
            )
        if r["attempts"] > r["max_attempts"]:
            problems.append(f"job {r['job_id']} ran {r['attempts']} > {r['max_attempts']} times")
        if r["results"] > 1:
            problems.append(f"job {r['job_id']} has {r['results']} test results recorded")
        if r["status"] in ENDED and r["status"] != "CANCELLED" and r["outcome"] is None:
            problems.append(f"job {r['job_id']} is {r['status']} without an outcome")
        if r["status"] not in ENDED and r["outcome"] is not None:
            problems.append(f"job {r['job_id']} is {r['status']} with outcome {r['outcome']}")
    return problems
