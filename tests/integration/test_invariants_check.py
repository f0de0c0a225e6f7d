"""The checker the fault tests rely on (tests/support/invariants.py) does see violations.

A database is put, by hand, into states DESIGN §3 forbids; each must be reported.
"""

from __future__ import annotations

import uuid

import asyncpg

from tests.support.invariants import check_invariants


async def test_a_clean_database_has_no_violations(pool: asyncpg.Pool) -> None:
    assert await check_invariants(pool) == []


async def test_each_kind_of_violation_is_reported(pool: asyncpg.Pool) -> None:
    run, job, worker = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    g1, g2 = uuid.uuid4(), uuid.uuid4()
    await pool.execute("INSERT INTO orgs VALUES ('o1')")
    await pool.execute(
        "INSERT INTO runs (run_id, org_id, source, app_version_id, targets, priority) "
        "VALUES ($1, 'o1', 'api', 'v1', '{emulator}', 'normal')",
        run,
    )
    await pool.execute(
        "INSERT INTO workers (worker_id, name, target_types, capacity) "
        "VALUES ($1, 'w', '{emulator}', 1)",
        worker,
    )
    # Two live groups at once on a worker of capacity 1, both holding the same job; the
    # second one is for another app version than the job.
    for group_id, version in ((g1, "v1"), (g2, "v2")):
        await pool.execute(
            "INSERT INTO groups (group_id, org_id, app_version_id, target, key, worker_id, "
            "lease_token, lease_expires_at) "
            "VALUES ($1, 'o1', $2, 'emulator', 'k', $3, 1, now() + interval '1 minute')",
            group_id,
            version,
            worker,
        )
    await pool.execute(
        "INSERT INTO jobs (job_id, run_id, org_id, app_version_id, test_path, target, priority, "
        "status, attempts, max_attempts, group_id) "
        "VALUES ($1, $2, 'o1', 'v1', 't.ts', 'emulator', 'normal', 'COMPLETED', 2, 3, $3)",
        job,
        run,
        g2,
    )
    # Attempts 1 and 3 (2 is missing), both with a test result.
    for attempt, group_id in ((1, g1), (3, g2)):
        await pool.execute(
            "INSERT INTO job_attempts (job_id, attempt, group_id, worker_id, outcome) "
            "VALUES ($1, $2, $3, $4, 'passed')",
            job,
            attempt,
            group_id,
            worker,
        )
    problems = "\n".join(await check_invariants(pool))
    assert f"group {g2} holds job {job} of another key" in problems
    assert "began while group" in problems
    assert "held 2 groups at once, capacity 1" in problems
    assert "has attempts [1, 3]" in problems
    assert "counts 2 attempts, keeps 2" not in problems
    assert "2 test results recorded" in problems
    assert "is COMPLETED without an outcome" in problems
