"""The events of one group that the service has not acknowledged yet, sent in order.

A result is put here the moment a job ends and a side task sends it after a short linger
(`LINGER_S`, as TCP's Nagle does): the events of jobs that end within it, and whatever
piles up while a request is in flight, go in one request. Short jobs thus cost the service
one request and one transaction per batch rather than per job, and a result is still
reported within a few tens of milliseconds of its job's end. Once the group's work is done
(`flushed()`), what is left goes at once. When the service cannot be reached the events
stay queued and are sent again with backoff: the service records a result once and
ignores a repeat, so resending is safe. When the lease is lost the queue is dropped: the
service refuses (409) anything sent under a stale lease, and those jobs run again
elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from dispatch.backoff import Backoff
from dispatch.heartbeats import Lease
from qgjob.errors import QgjobError, StaleLease, TransientError
from qgjob.worker_api import GroupEvent, JobFinished, WorkerApi

logger = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 500
LINGER_S = 0.05
MAX_BATCH_LOG_CHARS = 8 * 1024 * 1024  # well under the service's 16 MiB body limit


class Outbox:
    """Unsent events of one group; `run()` is its sender, `flushed()` waits for it."""

    def __init__(
        self,
        api: WorkerApi,
        lease: Lease,
        *,
        backoff: Backoff | None = None,
        linger_s: float = LINGER_S,
    ) -> None:
        self.api = api
        self.lease = lease
        self.backoff = backoff or Backoff()
        self.linger_s = linger_s
        self._pending: list[GroupEvent] = []
        self._wake = asyncio.Event()
        self._hurry = asyncio.Event()  # someone waits in flushed(): no more lingering
        self._idle = asyncio.Event()
        self._idle.set()

    def put(self, event: GroupEvent) -> None:
        if self.lease.lost.is_set():
            return
        self._pending.append(event)
        self._idle.clear()
        self._wake.set()

    async def flushed(self) -> bool:
        """Wait until every event is acknowledged or the lease is lost; True if all went."""
        self._hurry.set()
        lost = asyncio.ensure_future(self.lease.lost.wait())
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({lost, idle}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            idle.cancel()
        return not self._pending

    async def run(self) -> None:
        """Send queued events until cancelled (cancel it only once `flushed()`)."""
        while True:
            await self._wake.wait()
            if len(self._pending) < MAX_BATCH_EVENTS and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), self.linger_s)
            self._wake.clear()
            await self._send_pending()
            if self.lease.lost.is_set():
                self._pending.clear()
            if not self._pending:
                self._idle.set()

    async def _send_pending(self) -> None:
        while self._pending and not self.lease.lost.is_set():
            batch = _batch(self._pending)
            try:
                receipt = await self.api.send_events(self.lease.group_id, self.lease.token, batch)
            except StaleLease:
                self.lease.lose("the service refused results under a stale lease")
                return
            except TransientError as exc:
                delay = self.backoff.next_delay()
                logger.warning(
                    "results not sent group_id=%s events=%d retry_in_s=%.2f error=%s",
                    self.lease.group_id,
                    len(self._pending),
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                continue
            except QgjobError as exc:
                # Refused for good (a 4xx that is not about the lease): sending it again
                # would be refused again, so drop this batch rather than block the rest.
                logger.error(
                    "results refused group_id=%s events=%d error=%r",
                    self.lease.group_id,
                    len(batch),
                    exc,
                )
                del self._pending[: len(batch)]
                continue
            self.backoff.reset()
            del self._pending[: len(batch)]
            for ignored in receipt.ignored:
                logger.info(
                    "event ignored by the service job_id=%s group_id=%s reason=%s",
                    ignored.job_id,
                    self.lease.group_id,
                    ignored.reason,
                )
            self.lease.note_cancelled(receipt.cancelled_job_ids)


def _batch(pending: list[GroupEvent]) -> list[GroupEvent]:
    """The oldest events that fit in one request (always at least one)."""
    batch: list[GroupEvent] = []
    log_chars = 0
    for event in pending[:MAX_BATCH_EVENTS]:
        size = len(event.log or "") if isinstance(event, JobFinished) else 0
        if batch and log_chars + size > MAX_BATCH_LOG_CHARS:
            break
        batch.append(event)
        log_chars += size
    return batch
