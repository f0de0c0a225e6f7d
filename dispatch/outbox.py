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
elsewhere. A batch is sized by the bytes its logs take once encoded as JSON (a control
character takes six); should the service still find a request too large (413), the batch
is split, and a single result's log is cut from the front until it fits: a result is
never dropped for its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging

from dispatch.backoff import Backoff
from dispatch.heartbeats import Lease
from qgjob.errors import ApiError, QgjobError, StaleLease, TransientError
from qgjob.worker_api import GroupEvent, JobFinished, WorkerApi

logger = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 500
LINGER_S = 0.05
MAX_BATCH_LOG_BYTES = 8 * 1024 * 1024  # encoded; well under the service's 16 MiB body limit
TOO_LARGE = 413
CUT_NOTE = "[qgjob: the start of this log was cut so that the result fits in one request]\n"


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
        self._most = MAX_BATCH_EVENTS  # fewer after a 413, until a batch goes through
        self._dropped = 0  # events the service refused for good

    def put(self, event: GroupEvent) -> None:
        if self.lease.lost.is_set():
            return
        self._pending.append(event)
        self._idle.clear()
        self._wake.set()

    async def flushed(self) -> bool:
        """Wait until every event is acknowledged or the lease is lost; True if all went
        (none refused, none left behind by a lost lease)."""
        self._hurry.set()
        lost = asyncio.ensure_future(self.lease.lost.wait())
        idle = asyncio.ensure_future(self._idle.wait())
        try:
            await asyncio.wait({lost, idle}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            idle.cancel()
        return not self._pending and not self._dropped and not self.lease.lost.is_set()

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
            batch = _batch(self._pending, most=self._most)
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
            except ApiError as exc:
                if exc.status == TOO_LARGE and self._shrink(batch):
                    continue
                self._drop(batch, exc)
                continue
            except QgjobError as exc:
                self._drop(batch, exc)
                continue
            self.backoff.reset()
            self._most = MAX_BATCH_EVENTS
            del self._pending[: len(batch)]
            for ignored in receipt.ignored:
                logger.info(
                    "event ignored by the service job_id=%s group_id=%s reason=%s",
                    ignored.job_id,
                    self.lease.group_id,
                    ignored.reason,
                )
            self.lease.note_cancelled(receipt.cancelled_job_ids)

    def _shrink(self, batch: list[GroupEvent]) -> bool:
        """After a 413: send fewer events at a time, or cut the one result's log. False
        when there is nothing left to make smaller."""
        if len(batch) > 1:
            self._most = max(1, len(batch) // 2)
            logger.warning(
                "results too large for one request group_id=%s events=%d: sending %d at a time",
                self.lease.group_id, len(batch), self._most,
            )  # fmt: skip
            return True
        (event,) = batch
        if not isinstance(event, JobFinished) or not event.log or len(event.log) < 1024:
            return False
        kept = event.log[len(event.log) * 3 // 4 :]  # the end of a log says most
        self._pending[0] = dataclasses.replace(event, log=CUT_NOTE + kept)
        logger.warning(
            "result too large for one request job_id=%s: its log was cut to %d characters",
            event.job_id, len(kept),
        )  # fmt: skip
        return True

    def _drop(self, batch: list[GroupEvent], exc: QgjobError) -> None:
        # Refused for good (a 4xx that is not about the lease): sending it again would be
        # refused again, so drop this batch rather than block the rest.
        logger.error(
            "results refused group_id=%s events=%d error=%r", self.lease.group_id, len(batch), exc
        )
        del self._pending[: len(batch)]
        self._dropped += len(batch)


def _log_bytes(event: GroupEvent) -> int:
    """What the event's log adds to a request's body: its JSON encoding, where a control
    character takes six bytes and other text no more than that."""
    if isinstance(event, JobFinished) and event.log:
        return len(json.dumps(event.log))
    return 0


def _batch(pending: list[GroupEvent], *, most: int = MAX_BATCH_EVENTS) -> list[GroupEvent]:
    """The oldest events (up to `most`) that fit in one request (always at least one)."""
    batch: list[GroupEvent] = []
    log_bytes = 0
    for event in pending[:most]:
        size = _log_bytes(event)
        if batch and log_bytes + size > MAX_BATCH_LOG_BYTES:
            break
        batch.append(event)
        log_bytes += size
    return batch
