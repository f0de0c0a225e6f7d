"""Waking long-polling claims when jobs become PENDING (PostgreSQL LISTEN/NOTIFY).

One connection per server process listens on `qgjob_pending`. Waiters take the current
event *before* they look for work, so a notification that lands between "found nothing"
and "wait" still wakes them. If the listening connection is lost, claims fall back to
polling until it is back.

A connection can also die without closing: a network path that drops packets, a NAT or
firewall that forgot it, a database host that vanished. Nothing arrives and nothing fails,
so notifications would silently stop. The listener therefore asks the database a trivial
question every `probe_every_s`; no answer within `probe_timeout_s` counts as lost, and it
reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from app.database import DATABASE_ERRORS

logger = logging.getLogger(__name__)
CHANNEL = "qgjob_pending"


class Wakeups:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def current(self) -> asyncio.Event:
        return self._event

    def wake(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, event: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)


async def listen_forever(
    dsn: str,
    wakeups: Wakeups,
    *,
    retry_s: float = 1.0,
    probe_every_s: float = 15.0,
    probe_timeout_s: float = 5.0,
) -> None:
    """Keep a LISTEN connection open, reconnecting after failures, until cancelled."""
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn)
            lost = asyncio.Event()

            def on_notify(*_: Any) -> None:
                wakeups.wake()

            conn.add_termination_listener(lambda _, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, on_notify)
            logger.info("listening channel=%s", CHANNEL)
            wakeups.wake()  # anything queued while we were not listening
            if await _until_lost(conn, lost, every_s=probe_every_s, timeout_s=probe_timeout_s):
                logger.warning("listen connection lost; claims poll until it is back")
            else:
                logger.warning(
                    "listen connection did not answer within %.1f s; reconnecting, claims "
                    "poll until it is back",
                    probe_timeout_s,
                )
                conn.terminate()
        except DATABASE_ERRORS as exc:
            logger.warning("cannot listen channel=%s error=%s", CHANNEL, exc)
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
        await asyncio.sleep(retry_s)


async def _until_lost(
    conn: asyncpg.Connection, lost: asyncio.Event, *, every_s: float, timeout_s: float
) -> bool:
    """Return when the connection closes (True) or stops answering a probe (False)."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lost.wait(), every_s)
            return True
        try:
            await conn.fetchval("SELECT 1", timeout=timeout_s)
        except TimeoutError:
            return False
