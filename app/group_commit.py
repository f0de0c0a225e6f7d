"""Group commit: what callers ask for while a batch is being handled goes into the next one.

Each caller waits for its own answer; up to `servers` batches are handled at once, each
holding at most `max_batch` requests. A lone request is handled at once, so nothing waits
for company. `handle` answers every future of its batch (a result or an exception); the
webhook intake (`app.github.intake`) and the claim turns (`app.store.claim_turns`) are both
made this way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Waiting = tuple[T, asyncio.Future[R]]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        handle: Callable[[list[Waiting[T, R]]], Awaitable[None]],
        *,
        servers: int,
        max_batch: int,
        name: str,
    ) -> None:
        self._handle = handle
        self._servers = servers
        self._max_batch = max_batch
        self._name = name
        self._waiting: deque[Waiting[T, R]] = deque()
        self._serving: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """`item`'s answer, once the batch it joins has been handled."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, answer))
        if len(self._serving) < self._servers:
            task = asyncio.create_task(self._serve(), name=self._name)
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        return await answer

    async def _serve(self) -> None:
        batch: list[Waiting[T, R]] = []
        try:
            while self._waiting:
                size = min(self._max_batch, len(self._waiting))
                batch = [self._waiting.popleft() for _ in range(size)]
                await self._handle(batch)
                batch = []
        except BaseException:
            # Cancelled (the server stops) or broken: nobody waits for an answer that will
            # not come. The requests still queued are left to the other servers, if any.
            for _, answer in batch:
                answer.cancel()
            if len(self._serving) <= 1:
                while self._waiting:
                    self._waiting.popleft()[1].cancel()
            raise

    async def aclose(self) -> None:
        """Wait for the batches in hand (their callers are waiting for them)."""
        await asyncio.gather(*self._serving, return_exceptions=True)
