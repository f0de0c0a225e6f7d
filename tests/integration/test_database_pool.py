"""The pool hands connections back without asyncpg's reset query: nothing must leak."""

from __future__ import annotations

import asyncio

from app.database import create_pool


async def test_a_transaction_left_open_is_rolled_back_on_release(database_url: str) -> None:
    pool = await create_pool(database_url, size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")  # unmanaged: as a request cut off mid-way leaves it
            await conn.execute("INSERT INTO orgs (org_id) VALUES ('left-open')")
        async with pool.acquire() as conn:  # size 1: the same connection
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM orgs WHERE org_id = 'left-open'") == 0
    finally:
        await pool.close()


async def test_a_cancelled_request_leaves_no_lock_behind(database_url: str) -> None:
    """A claim holds the transaction-scoped turn lock; cancelled mid-way, the next user of
    the connection (and every other connection) can take the lock at once."""
    pool = await create_pool(database_url, size=1)
    try:

        async def hold() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(42)")
                await asyncio.sleep(30)

        task = asyncio.create_task(hold())
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT pg_try_advisory_xact_lock(42)")
        other = await pool.acquire()  # the pool's one connection again
        try:
            assert await other.fetchval("SELECT count(*) FROM pg_locks WHERE objid = 42") == 0
        finally:
            await pool.release(other)
    finally:
        await pool.close()


async def test_an_idle_transaction_cannot_hold_its_locks_for_ever(database_url: str) -> None:
    """A replica frozen mid-turn (paused, cut off) held the claim lock of every replica for
    as long as it stayed frozen: its session is now ended after a minute idle in a
    transaction (found by an audit)."""
    pool = await create_pool(database_url, size=1)
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "1min"
            # The setting ends such a session: a short one here, the same mechanism.
            await conn.execute("SET idle_in_transaction_session_timeout = '200ms'")
            await conn.execute("BEGIN")
            await asyncio.sleep(0.6)
            ended = False
            try:
                await conn.fetchval("SELECT 1")
            except Exception:  # the server closed the session (asyncpg reports it variously)
                ended = True
            assert ended
    finally:
        await pool.close()
