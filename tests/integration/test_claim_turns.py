"""Claims that wait together share a turn of the claim lock, and decide as if they had not.

`claim_groups` serves several claims in one transaction on a snapshot carried from one
claim to the next; `ClaimTurns` queues a process's claims while a turn runs. Every lease
must come out as it would from a turn of its own: same key, same jobs.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from app.policy import Policy
from app.store.claim_turns import ClaimTurns
from app.store.leases import (
    CLAIM_LOCK_ID,
    ClaimRequest,
    UnknownWorker,
    claim_group,
    claim_groups,
)
from app.store.workers import register_worker
from dispatch.scheduling import SchedulerConfig
from qgjob.types import Target
from tests.support.runs import queue_run

pytestmark = pytest.mark.timeout(60)


async def queue(pool: asyncpg.Pool, app_version_id: str, durations_s: list[float]) -> None:
    """A run of one app version whose specs have a duration history."""
    tests = [f"tests/{app_version_id}/t{i:03}.spec.ts" for i in range(len(durations_s))]
    await pool.execute(
        """INSERT INTO spec_history (org_id, target, test_path, durations_ms)
           SELECT 'acme', 'emulator', p, array_fill(ms, ARRAY[3])
           FROM unnest($1::text[], $2::int[]) AS d(p, ms)""",
        tests,
        [round(s * 1000) for s in durations_s],
    )
    await queue_run(pool, app_version_id, tests)


async def worker(pool: asyncpg.Pool, capacity: int = 1) -> uuid.UUID:
    return await register_worker(
        pool, org_id=None, name="w", target_types=[Target.EMULATOR], labels={}, capacity=capacity
    )


def asking(worker_id: uuid.UUID) -> ClaimRequest:
    return ClaimRequest(
        worker_id=worker_id, targets=[Target.EMULATOR], lease_ttl_s=30, policy=Policy()
    )


Leased = tuple[str, list[str]] | None


def leased(group: Any) -> Leased:
    if group is None:
        return None
    return group["app_version_id"], sorted(job["job_id"] for job in group["jobs"])


async def rolled_back(pool: asyncpg.Pool, claims: Any) -> list[Any]:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            return list(await claims(conn))
        finally:
            await transaction.rollback()


async def both_ways(
    pool: asyncpg.Pool, requests: list[ClaimRequest]
) -> tuple[list[Leased], list[Leased]]:
    """What the claims lease served in one turn, and each in a turn of its own (both rolled
    back, so that both ways decide on the same queue)."""

    async def shared(conn: asyncpg.Connection) -> list[Any]:
        return await claim_groups(conn, requests)

    async def one_turn_each(conn: asyncpg.Connection) -> list[Any]:
        return [await claim_group(conn, request) for request in requests]

    together = [leased(g) for g in await rolled_back(pool, shared)]
    alone = [leased(g) for g in await rolled_back(pool, one_turn_each)]
    return together, alone


async def test_a_shared_turn_leases_what_turns_of_their_own_would(pool: asyncpg.Pool) -> None:
    # One large key worth splitting (8 x 120 s against a 60 s setup), a small old one, and
    # a mid-sized one; five claims, a worker of capacity 2 among them asking twice.
    await queue(pool, "small", [10.0] * 3)
    await queue(pool, "large", [120.0] * 8)
    await queue(pool, "mid", [30.0] * 6)
    await pool.execute(
        "UPDATE jobs SET created_at = created_at - interval '5 minutes'"
        " WHERE app_version_id = 'small'"
    )
    one, two, three = await worker(pool), await worker(pool), await worker(pool, capacity=2)
    requests = [asking(w) for w in (one, two, three, three, one)]
    together, alone = await both_ways(pool, requests)
    assert together == alone
    keys = [lease[0] for lease in together if lease is not None]
    assert len(set(keys)) == 3 and len(keys) == 4  # the carried snapshot was used, and split
    assert together[4] is None  # worker one is busy with its first lease
    jobs = [job for lease in together if lease is not None for job in lease[1]]
    assert len(jobs) == len(set(jobs))


async def test_claims_sent_together_are_served_in_one_turn(pool: asyncpg.Pool) -> None:
    for version in ("a", "b", "c", "d"):
        await queue(pool, version, [10.0] * 5)
    workers = [await worker(pool) for _ in range(4)]
    turns = ClaimTurns(pool)
    groups = await asyncio.gather(*(turns.claim(asking(w)) for w in workers))
    assert all(group is not None for group in groups)
    # now() is the transaction's start: leases opened in one turn share it.
    opened = await pool.fetch("SELECT DISTINCT created_at FROM groups")
    assert len(opened) == 1
    jobs = [job["job_id"] for group in groups if group for job in group["jobs"]]
    assert len(jobs) == len(set(jobs))


async def test_an_unknown_worker_fails_alone(pool: asyncpg.Pool) -> None:
    await queue(pool, "a", [10.0] * 5)
    known = await worker(pool)
    turns = ClaimTurns(pool)
    stranger, group = await asyncio.gather(
        turns.claim(asking(uuid.uuid4())), turns.claim(asking(known)), return_exceptions=True
    )
    assert isinstance(stranger, UnknownWorker)
    assert isinstance(group, dict) and len(group["jobs"]) == 5


async def test_a_claim_abandoned_during_its_turn_hands_its_lease_back(
    pool: asyncpg.Pool,
) -> None:
    await queue(pool, "a", [10.0] * 5)
    me = await worker(pool)
    turns = ClaimTurns(pool)
    async with pool.acquire() as holder:
        # Another claim holds the turn: ours waits for the lock inside its turn.
        holding = holder.transaction()
        await holding.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", CLAIM_LOCK_ID)
        asked = asyncio.create_task(turns.claim(asking(me)))
        while not await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ):
            await asyncio.sleep(0.01)
        asked.cancel()  # the worker went away
        await holding.rollback()
    for _ in range(200):
        status = await pool.fetchval("SELECT status FROM groups")
        if status == "RELEASED":
            break
        await asyncio.sleep(0.02)
    assert status == "RELEASED"
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE status = 'PENDING'") == 5
    assert await pool.fetchval("SELECT count(*) FROM job_attempts") == 0
    with pytest.raises(asyncio.CancelledError):
        await asked


async def test_a_key_whose_listed_jobs_were_all_leased_is_read_again(pool: asyncpg.Pool) -> None:
    # Claims list at most 4 jobs of a key: the first lease takes all 4 of 10 listed, and
    # the next claim of the turn must still see the 6 left.
    policy = replace(
        Policy(),
        first_look_jobs_per_key=2,
        max_jobs_per_key=4,
        scheduler=SchedulerConfig(max_batch_s=None),
    )
    await queue(pool, "large", [120.0] * 10)
    one, two = await worker(pool), await worker(pool)
    requests = [replace(asking(w), policy=policy) for w in (one, two)]
    together, alone = await both_ways(pool, requests)
    assert together == alone
    assert [len(lease[1]) if lease else 0 for lease in together] == [4, 3]  # 6 left: half


async def test_a_key_counted_to_its_limit_is_not_read_again_while_its_listing_tells(
    pool: asyncpg.Pool,
) -> None:
    # 20 jobs, counted up to 6: each lease's listing holds the next first look and a count
    # that stays at the limit, so a turn of three claims lists the key three times (the
    # chosen key in full, once per claim) and never reads it again after a lease.
    policy = replace(
        Policy(),
        first_look_jobs_per_key=2,
        max_jobs_per_key=4,
        max_jobs_counted=6,
        scheduler=SchedulerConfig(max_batch_s=None),
    )
    await queue(pool, "large", [120.0] * 20)
    workers = [await worker(pool) for _ in range(3)]
    requests = [replace(asking(w), policy=policy) for w in workers]
    together, alone = await both_ways(pool, requests)
    assert together == alone
    assert all(lease is not None for lease in together)
    listings: list[int] = []

    def counted(record: Any) -> None:
        if "LIMIT $5) AS capped" in record.query:  # one key's listing
            listings.append(record.args[3])

    async def shared(conn: asyncpg.Connection) -> list[Any]:
        conn.add_query_logger(counted)
        return await claim_groups(conn, requests)

    await rolled_back(pool, shared)
    assert listings == [4 + 2] * 3  # the full listing and a first look beyond it


async def test_a_job_the_take_skipped_stays_queued_for_the_next_claim(
    pool: asyncpg.Pool,
) -> None:
    # A job of the chosen key is locked by another transaction (a cancel, say) while the
    # turn takes: the lease goes without it, and the next claim of the turn sees it still
    # queued (not taken with the others), as a turn of its own would.
    await queue(pool, "large", [120.0] * 8)
    one, two = await worker(pool), await worker(pool)
    first = await pool.fetchval(
        "SELECT job_id FROM jobs ORDER BY priority DESC, created_at, job_id LIMIT 1"
    )
    async with pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT 1 FROM jobs WHERE job_id = $1 FOR UPDATE", first)
        together, alone = await both_ways(pool, [asking(one), asking(two)])
    assert together == alone
    leased_jobs = [job for lease in together if lease is not None for job in lease[1]]
    assert len(leased_jobs) == len(set(leased_jobs)) > 0
    assert str(first) not in leased_jobs
