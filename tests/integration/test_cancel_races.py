"""A cancel that meets a claim or a batch of results of the same jobs (found by an audit).

- A cancel that waited for a claim to commit must close the attempt that claim opened (it
  is not in the cancel's first snapshot).
- A cancel and a batch of results lock the same job and attempt rows in opposite orders;
  when PostgreSQL aborts one of them for the deadlock, it is retried, not answered 500.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from app.store import jobs as store
from app.store.leases import ClaimRequest, claim_group, reap_expired
from app.store.workers import register_worker
from qgjob.types import Target
from tests.support.runs import queue_run

pytestmark = pytest.mark.timeout(60)


async def one_job(pool: asyncpg.Pool) -> uuid.UUID:
    await queue_run(pool, "v1", ["tests/a.spec.ts"])
    job_id: uuid.UUID = await pool.fetchval("SELECT job_id FROM jobs")
    return job_id


async def test_a_cancel_waiting_on_a_claim_closes_the_attempt_it_opened(
    pool: asyncpg.Pool,
) -> None:
    job_id = await one_job(pool)
    worker = await register_worker(
        pool, org_id=None, name="w", target_types=[Target.EMULATOR], labels={}, capacity=1
    )
    async with pool.acquire() as claimer:
        claiming = claimer.transaction()
        await claiming.start()
        request = ClaimRequest(worker_id=worker, targets=[Target.EMULATOR], lease_ttl_s=30)
        assert await claim_group(claimer, request) is not None
        cancel = asyncio.create_task(store.cancel_job(pool, job_id, org_scope=None))
        await asyncio.sleep(0.3)  # the cancel waits for the job's row lock
        await claiming.commit()
    cancelled = await cancel
    assert cancelled is not None and cancelled["status"] == "CANCELLED"
    attempt = await pool.fetchrow(
        "SELECT error, finished_at FROM job_attempts WHERE job_id = $1 AND attempt = 1", job_id
    )
    assert attempt is not None
    assert (attempt["error"], attempt["finished_at"] is not None) == ("cancelled", True)


async def test_a_cancel_that_deadlocks_with_results_is_retried(pool: asyncpg.Pool) -> None:
    job_id = await one_job(pool)
    worker = await register_worker(
        pool, org_id=None, name="w", target_types=[Target.EMULATOR], labels={}, capacity=1
    )
    request = ClaimRequest(worker_id=worker, targets=[Target.EMULATOR], lease_ttl_s=30)
    async with pool.acquire() as conn, conn.transaction():
        assert await claim_group(conn, request) is not None
    run_id = await pool.fetchval("SELECT run_id FROM jobs")
    async with pool.acquire() as results:
        # What a batch of results does: the attempt row first, then the job's row.
        recording = results.transaction()
        await recording.start()
        await results.execute(
            "UPDATE job_attempts SET outcome = 'passed' WHERE job_id = $1 AND attempt = 1", job_id
        )
        cancel = asyncio.create_task(store.cancel_run(pool, run_id, org_scope=None))
        await asyncio.sleep(0.3)  # the cancel holds the job's row and waits for the attempt
        moving = asyncio.create_task(
            results.execute("UPDATE jobs SET status = 'COMPLETED' WHERE job_id = $1", job_id)
        )
        await moving  # PostgreSQL aborted the cancel (it waited first), freeing the job row
        await recording.commit()
    assert await cancel == 0  # tried again after the results: the job had finished meanwhile
    assert await pool.fetchval("SELECT status::text FROM jobs") == "COMPLETED"


async def test_a_job_whose_workers_were_lost_every_time_says_it_gave_up(
    pool: asyncpg.Pool,
) -> None:
    # As a reported error says it (app.lifecycle.final_error): the reaper's wording agrees.
    job_id = await one_job(pool)
    await pool.execute("UPDATE jobs SET max_attempts = 2")
    worker = await register_worker(
        pool, org_id=None, name="w", target_types=[Target.EMULATOR], labels={}, capacity=1
    )
    request = ClaimRequest(worker_id=worker, targets=[Target.EMULATOR], lease_ttl_s=30)
    for _ in range(2):
        await pool.execute("UPDATE jobs SET not_before = now() - interval '1 s'")  # no backoff
        async with pool.acquire() as conn, conn.transaction():
            assert await claim_group(conn, request) is not None
        await pool.execute("UPDATE groups SET lease_expires_at = now() - interval '1 s'")
        async with pool.acquire() as conn, conn.transaction():
            await reap_expired(conn, error="the worker was lost", backoff_s=0, offline_after_s=60)
    job = await pool.fetchrow("SELECT status::text, error FROM jobs WHERE job_id = $1", job_id)
    assert tuple(job) == ("FAILED", "the worker was lost (gave up after 2 attempts)")
