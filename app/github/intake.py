"""How deliveries come in: committed many per statement, and ahead of the inbox's work.

GitHub waits at most 10 s for the 202 and counts a slow answer as a failed delivery; the
route answers only once the delivery is committed. Under a burst, one INSERT and one commit
per delivery made the commits queue for connections and for the WAL flush, and the inbox's
processing of the same burst took turns with the acknowledgements on the one event loop.

- `record` commits a delivery together with the others waiting at that moment: at most
  `writers` statements are in flight, and whatever arrives meanwhile goes into the next one
  (a group commit). A lone delivery is written at once, so nothing waits for company.
- `receiving()` counts the deliveries being acknowledged; while there are any, or there were
  some a moment ago, the inbox keeps one delivery in work instead of all its slots. One, not
  none, so a steady stream of deliveries cannot starve the inbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import asyncpg

from app.errors import lost_connection
from app.group_commit import GroupCommit, Waiting
from app.store.deliveries import NewDelivery, record_deliveries

WRITERS = 4  # INSERT statements in flight at once; also the size of the route's own pool
MAX_BATCH = 200  # deliveries per statement
QUIET_S = 0.05  # no delivery for this long: the burst is over, the inbox takes every slot
BUSY_SLOTS = 1  # deliveries the inbox keeps in work while the route is busy

_Waiting = Waiting[NewDelivery, bool]


class Intake:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        writers: int = WRITERS,
        max_batch: int = MAX_BATCH,
        quiet_s: float = QUIET_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._batches = GroupCommit(
            self._commit, servers=writers, max_batch=max_batch, name="github-intake"
        )
        self._quiet_s = quiet_s
        self._clock = clock
        self._in_flight = 0
        self._last_s = -quiet_s

    # -- recording ----------------------------------------------------------------------------

    async def record(self, delivery: NewDelivery) -> bool:
        """Commit `delivery`; False when its delivery id was seen before. Database errors
        are raised to the caller as they come."""
        return await self._batches.submit(delivery)

    async def _commit(self, batch: list[_Waiting]) -> None:
        distinct: dict[str, NewDelivery] = {}
        for delivery, _ in batch:
            distinct.setdefault(delivery.delivery_id, delivery)
        try:
            fresh = await record_deliveries(self._pool, list(distinct.values()))
        except Exception as exc:
            if len(distinct) > 1 and not lost_connection(exc):
                # One delivery the database refuses (a value it cannot store) must not fail
                # the others: write them one at a time, each with its own answer.
                for one in _by_id(batch).values():
                    await self._commit(one)
                return
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        for delivery, answer in batch:
            # Of two equal ids in one batch, the first is the fresh one.
            new = delivery.delivery_id in fresh
            fresh.discard(delivery.delivery_id)
            if not answer.done():
                answer.set_result(new)

    async def aclose(self) -> None:
        """Wait for the statements in flight (their requests are waiting for them)."""
        await self._batches.aclose()

    # -- who goes first -----------------------------------------------------------------------

    @contextmanager
    def receiving(self) -> Iterator[None]:
        """Around the acknowledgement of one delivery."""
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self._last_s = self._clock()

    def busy(self) -> bool:
        """Whether deliveries are being acknowledged now or were a moment ago."""
        return self._in_flight > 0 or self._clock() - self._last_s < self._quiet_s

    def slots(self, slots: int) -> int:
        """How many deliveries the inbox may keep in work now, out of its `slots`."""
        return min(slots, BUSY_SLOTS) if self.busy() else slots

    @property
    def quiet_s(self) -> float:
        return self._quiet_s


def _by_id(batch: list[_Waiting]) -> dict[str, list[_Waiting]]:
    groups: dict[str, list[_Waiting]] = {}
    for waiting in batch:
        groups.setdefault(waiting[0].delivery_id, []).append(waiting)
    return groups
