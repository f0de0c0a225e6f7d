"""A claim's first look lists a few jobs per key; the key it chooses is listed in full.

The lease must come out as if every key had been listed in full: the same key and the same
jobs. Each claim below runs in a transaction that is rolled back, so that both ways of
listing decide on the same queue.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import timedelta

import asyncpg

from app.policy import Policy
from app.store.leases import ClaimRequest, claim_group
from app.store.workers import register_worker
from dispatch.scheduling import SchedulerConfig
from qgjob.types import Target
from tests.support.runs import queue_run

# Leases as large as the policy allows (no 180 s cap), so that a batch shows how many jobs
# the claim saw.
WHOLE = Policy(scheduler=SchedulerConfig(max_batch_s=None))


async def queue(pool: asyncpg.Pool, app_version_id: str, jobs: int) -> None:
    await queue_run(
        pool, app_version_id, [f"tests/{app_version_id}/t{i:03}.spec.ts" for i in range(jobs)]
    )


async def leased_then_undone(
    pool: asyncpg.Pool, worker_id: uuid.UUID, policy: Policy
) -> tuple[str, list[str]] | None:
    """What a claim would lease with `policy`: its app version and its jobs (rolled back)."""
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            request = ClaimRequest(
                worker_id=worker_id, targets=[Target.EMULATOR], lease_ttl_s=30, policy=policy
            )
            group = await claim_group(conn, request)
        finally:
            await transaction.rollback()
    if group is None:
        return None
    return group["app_version_id"], [job["job_id"] for job in group["jobs"]]


async def worker(pool: asyncpg.Pool) -> uuid.UUID:
    return await register_worker(
        pool, org_id=None, name="w", target_types=[Target.EMULATOR], labels={}, capacity=1
    )


async def test_the_chosen_key_is_listed_in_full(pool: asyncpg.Pool) -> None:
    await queue(pool, "big", 60)
    me = await worker(pool)
    full = await leased_then_undone(pool, me, WHOLE)
    first_look = await leased_then_undone(pool, me, replace(WHOLE, first_look_jobs_per_key=4))
    assert full is not None and len(full[1]) == 60
    assert first_look == full


async def test_many_keys_decide_as_if_all_were_listed(pool: asyncpg.Pool) -> None:
    for n, size in enumerate([5, 30, 12, 45, 3, 20]):
        await queue(pool, f"v{n}", size)
    # Ages apart, so that "oldest first" has one answer: v2 is the oldest.
    await pool.execute(
        "UPDATE jobs SET created_at = now() - $2::interval WHERE app_version_id = $1",
        "v2",
        timedelta(minutes=5),
    )
    first, second = await worker(pool), await worker(pool)
    for me in (first, second):
        full = await leased_then_undone(pool, me, WHOLE)
        for look in (1, 4, 16):
            listed = await leased_then_undone(
                pool, me, replace(WHOLE, first_look_jobs_per_key=look)
            )
            assert listed == full, look
    # The oldest key, half of its 12 jobs: two workers share it.
    assert full is not None and full[0] == "v2" and len(full[1]) == 6


async def test_concurrent_first_looks_never_lease_a_job_twice(pool: asyncpg.Pool) -> None:
    for n in range(5):
        await queue(pool, f"v{n}", 40)
    policy = replace(Policy(), first_look_jobs_per_key=3)
    workers = [await worker(pool) for _ in range(6)]

    async def drain(worker_id: uuid.UUID) -> list[str]:
        taken: list[str] = []
        while True:
            async with pool.acquire() as conn, conn.transaction():
                request = ClaimRequest(
                    worker_id=worker_id, targets=[Target.EMULATOR], lease_ttl_s=30, policy=policy
                )
                group = await claim_group(conn, request)
                if group is None:
                    return taken
                taken += [job["job_id"] for job in group["jobs"]]
                # Done at once: the worker is free for its next claim.
                await conn.execute(
                    "UPDATE jobs SET status = 'COMPLETED' WHERE group_id = $1",
                    uuid.UUID(group["group_id"]),
                )
                await conn.execute(
                    "UPDATE groups SET status = 'FINISHED' WHERE group_id = $1",
                    uuid.UUID(group["group_id"]),
                )

    leased = [job for taken in await asyncio.gather(*map(drain, workers)) for job in taken]
    assert len(leased) == len(set(leased)) == 200
