"""The hot statements look up attempts and history by key, whatever those tables hold.

A claim's snapshot reads each listed job's last attempt and duration history; a batch of
results updates each job's open attempt. Both touch a few hundred rows of tables that only
grow. With PostgreSQL's default planner costs, a `job_attempts` of some 20,000 finished
rows was read whole for them (a hash join in the snapshot, a nested loop over every row in
the results statement): 10 ms per claim instead of 1. These tests plan the statements on
such a table, through the service's own pool, and look for a scan of the whole table.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg

from app.policy import Policy
from app.store import events, history, queue
from tests.support.runs import queue_run

TESTS = [f"tests/area{i % 40}/case{i:04}.spec.ts" for i in range(1000)]
FINISHED_ATTEMPTS_PER_JOB = 20
# Tables that grow with every job, attempt and spec seen (runs too, but these tests have two).
HISTORY_TABLES = {"jobs", "job_attempts", "spec_history"}


async def a_service_with_history(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """20,000 finished attempts and a history for every spec, then 100 jobs leased (their
    attempts open), then the statistics a running service would have; the leased jobs."""
    done = await queue_run(pool, "v1", TESTS)
    await pool.execute(
        """
        WITH finished AS (
            UPDATE jobs SET status = 'COMPLETED', outcome = 'passed', attempts = $2
            WHERE run_id = $1 RETURNING job_id)
        INSERT INTO job_attempts (job_id, attempt, group_id, worker_id, outcome, duration_ms,
                                  started_at, finished_at)
        SELECT job_id, n, gen_random_uuid(), gen_random_uuid(), 'passed', 1000 + n, now(), now()
        FROM finished CROSS JOIN generate_series(1, $2) AS n
        """,
        done,
        FINISHED_ATTEMPTS_PER_JOB,
    )
    await pool.execute(
        "INSERT INTO spec_history (org_id, target, test_path, durations_ms, outcomes)"
        " SELECT 'acme', 'emulator', path, '{1000,1100}', '{passed,passed}' FROM unnest($1::text[])"
        " AS path",
        TESTS,
    )
    queued = await queue_run(pool, "v2", TESTS[:300])
    group_id = uuid.uuid4()
    leased = await pool.fetch(
        """
        WITH taken AS (
            UPDATE jobs SET status = 'ASSIGNED', attempts = 1, group_id = $2
            WHERE job_id IN (SELECT job_id FROM jobs WHERE run_id = $1 LIMIT 100)
            RETURNING job_id, attempts)
        INSERT INTO job_attempts (job_id, attempt, group_id, worker_id)
        SELECT job_id, attempts, $2, gen_random_uuid() FROM taken RETURNING job_id, attempt
        """,
        queued,
        group_id,
    )
    await pool.execute("ANALYZE")
    return leased


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


async def whole_table_scans(conn: asyncpg.Connection, sql: str, *args: Any) -> set[str]:
    """The tables that the plan of `sql` (with these arguments) reads from end to end."""
    explained = await conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
    return {
        node["Relation Name"]
        for node in nodes(explained[0]["Plan"])
        if node["Node Type"] == "Seq Scan"
    }


async def test_a_claims_snapshot_looks_up_attempts_and_history(pool: asyncpg.Pool) -> None:
    await a_service_with_history(pool)
    policy = Policy()
    async with pool.acquire() as conn:
        first_look = await whole_table_scans(
            conn,
            queue._PENDING,
            ["emulator"],
            None,
            policy.max_keys,
            policy.first_look_jobs_per_key,
            "",
            "",
            "",
            policy.max_jobs_counted,
        )
        one_key = await whole_table_scans(
            conn,
            queue._PENDING_OF_KEY,
            "acme",
            "v2",
            "emulator",
            policy.max_jobs_per_key,
            policy.max_jobs_counted,
        )
    assert not first_look & HISTORY_TABLES, first_look
    assert not one_key & HISTORY_TABLES, one_key


async def test_recording_results_looks_up_the_open_attempts(pool: asyncpg.Pool) -> None:
    leased = await a_service_with_history(pool)
    n = len(leased)
    async with pool.acquire() as conn:
        scanned = await whole_table_scans(
            conn,
            events._APPLY,
            [r["job_id"] for r in leased],
            [r["attempt"] for r in leased],
            ["passed"] * n,
            [None] * n,
            [1200] * n,
            [{}] * n,
            [None] * n,
            ["COMPLETED"] * n,
            ["passed"] * n,
            [None] * n,
            10.0,
            [],
            uuid.uuid4(),
            history.WINDOW,
            history.SCOPE_WINDOW,
        )
    assert not scanned & HISTORY_TABLES, scanned
