"""A worker's view of one lease, and the side task that keeps it alive.

`Lease` is what the group's job loop, its heartbeat and its outbox share: the fencing token,
whether the lease is lost, which jobs the service cancelled, and one cancel event per job.
`keep_alive` renews the lease every `interval_s`; when the service says the lease is gone
(409 `stale_lease`) it marks the lease lost, which stops the running job; the job ids the
service lists as cancelled stop those jobs (or keep them from starting). While the service
cannot be reached the lease is kept until it has run out, plus `CLOCK_SLACK_S`: then it is
lost too, so that a worker does not resend results, or try to hand the group back, for
ever; the service has given the jobs to another worker by then (`docs/reliability.md`).

When it runs out is measured on this host's monotonic clock from the service's answers
(`lease_ttl_s`: how long the lease lasts from that answer), so a wall clock set wrong does
not count; with a server too old to say, the service's `lease_expires_at` is compared with
this host's wall clock. A worker that was paused past its lease (`expired()`) asks the
service before it starts another job of the group (`confirm()`).
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
        self.lost = asyncio.Event()
        self._deadline = _deadline(group.lease_expires_at, group.lease_ttl_s)
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

    def renewed(self, expires_at: datetime, ttl_s: float | None) -> None:
        self._deadline = _deadline(expires_at, ttl_s)

    def expired(self, *, slack_s: float = 0.0) -> bool:
        """Whether the lease has run out (`slack_s` ago), by this host's reckoning."""
        return time.monotonic() > self._deadline + slack_s

    def lose(self, reason: str) -> None:
        """Stop everything under this lease: it is no longer ours."""
        if self.lost.is_set():
            return
        logger.warning("lease gone group_id=%s reason=%s", self.group_id, reason)
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
            if lease.expired(slack_s=CLOCK_SLACK_S):
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
        lease.renewed(renewal.lease_expires_at, renewal.lease_ttl_s)
        lease.note_cancelled(renewal.cancelled_job_ids)


async def confirm(api: WorkerApi, lease: Lease) -> bool:
    """Before more work under a lease that has run out by this host's reckoning (the worker
    was paused, or its heartbeats failed): renew it now. False when it is gone; also when
    the service cannot be reached, since another worker may have the jobs by now."""
    if lease.lost.is_set():
        return False
    if not lease.expired():
        return True
    try:
        renewal = await api.heartbeat(lease.group_id, lease.token)
    except StaleLease:
        lease.lose("the lease ran out before the next job (the service gave it away)")
        return False
    except QgjobError as exc:
        lease.lose(f"the lease ran out before the next job, and renewing it failed: {exc}")
        return False
    lease.renewed(renewal.lease_expires_at, renewal.lease_ttl_s)
    lease.note_cancelled(renewal.cancelled_job_ids)
    return True


def _deadline(expires_at: datetime, ttl_s: float | None) -> float:
    """When a lease runs out on this host's monotonic clock."""
    if ttl_s is not None:
        return time.monotonic() + ttl_s
    return time.monotonic() + (expires_at.timestamp() - time.time())
