"""Connecting to PostgreSQL: the pool, its codecs, and the database the server runs on."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

logger = logging.getLogger(__name__)
T = TypeVar("T")

# What store functions accept: a pool, or a connection taken from one (inside a transaction).
Conn = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy
# A single connection, for work that must happen inside the caller's transaction.
TxConn = asyncpg.Connection | PoolConnectionProxy


# What a background loop (reaper, sweeps, outbox, LISTEN) treats as "the database could not
# be used this round" and logs as a warning before trying again: an error PostgreSQL
# reported, a connection that is gone (OSError, asyncpg.InterfaceError), a protocol state
# asyncpg lost with its connection (InternalClientError, seen when PostgreSQL restarts while
# a pooled connection is being handed out), or a timeout. Anything else is a bug and is
# logged with its traceback.
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    TimeoutError,
)


# The queue's working set is read from memory, not a spinning disk: PostgreSQL's default
# random_page_cost (4) made the planner prefer a scan of every attempt row over 100 index
# lookups when `job_attempts` held tens of thousands of rows (docs/performance.md).
#
# A transaction left idle (its server process paused, or cut off from the database while it
# held a lock, such as the claim lock of every replica's turns) is ended by PostgreSQL after
# a minute, so that one frozen replica cannot stop the others for longer; no transaction of
# the service waits on anything but the database inside it. TCP keepalives find a vanished
# client sooner than the kernel's two hours.
SERVER_SETTINGS = {
    "random_page_cost": "1.1",
    "idle_in_transaction_session_timeout": "60s",
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}

# Transactions that lock the same rows in different orders (a cancel of a run and a batch
# of its results) may deadlock; PostgreSQL then aborts one of them, which is safe to retry.
CONTENTION_ERRORS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
CONTENTION_TRIES = 3


async def in_transaction(pool: asyncpg.Pool, work: Callable[[TxConn], Awaitable[T]]) -> T:
    """`work` in a transaction of its own, tried again (up to `CONTENTION_TRIES` times, after
    a short random pause) when PostgreSQL aborted it for a deadlock or a serialization
    failure; the last such error is raised."""
    for attempt in range(1, CONTENTION_TRIES + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                return await work(conn)
        except CONTENTION_ERRORS as exc:
            if attempt == CONTENTION_TRIES:
                raise
            logger.info("transaction retried after %s (try %d)", type(exc).__name__, attempt)
            await asyncio.sleep(random.uniform(0.01, 0.05) * attempt)
    raise AssertionError("unreachable")


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is: no request leaves session state on it.

    asyncpg's default reset sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL` on every release, one more round trip per request. Nothing here needs it: locks are
    transaction-scoped (the migration lock is released in a `finally`), LISTEN has a
    connection of its own (app.wakeups), nothing SETs a session variable, and cursors live
    inside transactions. asyncpg still rolls back a transaction left open before this runs.
    """


async def create_pool(dsn: str, *, size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    """A pool whose connections speak JSON natively, plan for data held in memory
    (`SERVER_SETTINGS`), and come back without a reset query.

    It opens one connection at once (so that an unreachable database shows at start) but
    keeps no floor: after an outage, connections are made again as requests need them
    instead of by a background loop that logs a traceback per try while the database is down.
    """
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        init_size=1,
        min_size=0,
        max_size=size,
        init=_init_connection,
        reset=_nothing_to_reset,
        server_settings=SERVER_SETTINGS | kwargs.pop("server_settings", {}),
        **kwargs,
    )
    return pool
