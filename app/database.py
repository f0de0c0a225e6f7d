"""Connecting to PostgreSQL: the pool, its codecs, and the database the server runs on."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

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
SERVER_SETTINGS = {"random_page_cost": "1.1"}


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
