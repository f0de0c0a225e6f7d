"""The service's background loops (reaper, sweeps, LISTEN, GitHub inbox, tracker, outbox),
kept running through their own bugs.

Each loop already waits out a database that is away (`app.database.DATABASE_ERRORS`, logged
as a warning). Anything else is a bug; it is logged with its traceback and the loop starts
again after a pause, because a loop that stopped for good would fail silently: leases that
never expire, check runs that never update.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)
RESTART_S = 1.0


def start(
    name: str, loop: Callable[[], Awaitable[None]], *, restart_s: float = RESTART_S
) -> asyncio.Task[None]:
    """Run `loop()` as the task `name`, starting it again whenever it raises."""
    return asyncio.create_task(_kept_running(name, loop, restart_s), name=name)


async def _kept_running(name: str, loop: Callable[[], Awaitable[None]], restart_s: float) -> None:
    while True:
        try:
            await loop()
            return  # a loop that returns has nothing more to do
        except Exception:
            logger.exception(
                "background loop failed unexpectedly loop=%s; restarting in %.1f s",
                name,
                restart_s,
            )
        await asyncio.sleep(restart_s)
