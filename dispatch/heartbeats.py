"""A worker's view of one lease, and the side task that keeps it alive.

`Lease` is what the group's job loop, its heartbeat and its outbox share: the fencing token,
whether the lease is lost, which jobs the service cancelled, and one cancel event per job.
`keep_alive` renews the lease every `interval_s`; when the service says the lease is gone
(409 `stale_lease`) it marks the lease lost, which stops the running job; the job ids the
service lists as cancelled stop those jobs (or keep them from starting). While the service
cannot be reached the lease is kept until it has run out (by this host's clock, plus
`CLOCK_SLACK_S` for a clock that differs from the service's): then it is lost too, so that
a worker does not resend results, or try to hand the group back, for ever; the service has
given the jobs to another worker by then (`docs/reliability.md`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from dispatch.backoff import Backoff
from qgjob.errors import QgjobError, StaleLease, TransientError
from qgjob.worker_api import ClaimedGroup, WorkerApi

logger = logging.getLogger(__name__)

CLOCK_SLACK_S = 10.0


class Lease:
    """What this worker knows about its lease on one group."""

    def __init__(self, group: ClaimedGroup) -> None:
        self.group = group
        self.expires_at: datetime = group.lease_expires_at  # the service's last word
        self.lost = asyncio.Event()
        self.cancelled: set[UUID] = set()
        self._job_cancels: dict[UUID, asyncio.Event] = {}

    @property
    def group_id(self) -> UUID:
        return self.group.group_id

    @property
    def token(self) -> int:
        return self.group.lease_token

    def cancel_event(self, job_id: UUID) -> asyncio.Event:
        """The event that stops this job; already set if it must not run at all."""
        event = self._job_cancels.setdefault(job_id, asyncio.Event())
        if job_id in self.cancelled or self.lost.is_set():
            event.set()
        return event

    def forget(self, job_id: UUID) -> None:
        self._job_cancels.pop(job_id, None)

    def note_cancelled(self, job_ids: Iterable[UUID]) -> None:
        for job_id in set(job_ids) - self.cancelled:
            self.cancelled.add(job_id)
            logger.info("job cancelled by the service job_id=%s group_id=%s", job_id, self.group_id)
            if job_id in self._job_cancels:
                self._job_cancels[job_id].set()

    def lose(self, reason: str) -> None:
        """Stop everything under this lease: it is no longer ours."""
        if self.lost.is_set():
            return
        logger.info("lease gone group_id=%s reason=%s", self.group_id, reason)
        self.lost.set()
        for event in self._job_cancels.values():
            event.set()


async def keep_alive(api: WorkerApi, lease: Lease, *, interval_s: float) -> None:
    """Renew the lease every `interval_s` until cancelled or until the lease is lost."""
    # Retries after a failed heartbeat come sooner than the interval, so that a blip shorter
    # than the lease's TTL costs nothing.
    retry = Backoff(base_s=min(0.5, interval_s / 2), cap_s=interval_s)
    delay = interval_s
    while not lease.lost.is_set():
        await asyncio.sleep(delay)
        try:
            renewal = await api.heartbeat(lease.group_id, lease.token)
        except StaleLease:
            lease.lose("the service says the lease expired or was superseded")
            return
        except TransientError as exc:
            if time.time() > lease.expires_at.timestamp() + CLOCK_SLACK_S:
                lease.lose(f"the lease ran out while the service could not be reached ({exc})")
                return
            delay = retry.next_delay()
            logger.warning(
                "heartbeat failed group_id=%s retry_in_s=%.2f error=%s", lease.group_id, delay, exc
            )
            continue
        except QgjobError as exc:  # 404 (group gone), 401/403: no point in going on
            lease.lose(f"heartbeat refused: {exc}")
            return
        retry.reset()
        delay = interval_s
        lease.expires_at = renewal.lease_expires_at
        lease.note_cancelled(renewal.cancelled_job_ids)
