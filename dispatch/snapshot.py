"""The policy's view of the queue at one instant, and what a claim decision changes in it.

The store builds a `QueueSnapshot` inside the claim transaction (pending jobs per group key
with their estimates, live leases, online workers); `dispatch.scheduling.decide_claim` reads
it and returns a `ClaimDecision`; `apply_claim` is the snapshot after that lease, to decide
the asking worker's next free slot (or, in the simulator, the next worker) without a reload.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from dispatch.grouping import BuildRef, GroupKey
from qgjob.types import Priority, Target

__all__ = [
    "ClaimDecision",
    "PendingJob",
    "PendingKey",
    "QueueSnapshot",
    "RunningGroup",
    "WorkerView",
    "apply_claim",
]


@dataclass(frozen=True)
class PendingJob:
    """A PENDING job as the policy sees it.

    `expected_s` comes from `dispatch.estimates`; `attempt` counts attempts already made;
    `infra_retry` says the last one ended in an infrastructure error on `last_worker_id`;
    `not_before` is the end of the retry backoff (None: claimable now).
    """

    job_id: str
    expected_s: float
    attempt: int = 0
    last_worker_id: str | None = None
    infra_retry: bool = False
    not_before: datetime | None = None


@dataclass(frozen=True)
class PendingKey:
    """The pending jobs of one group key. `setup_s` None means the configured default;
    `last_claimed_at` is when a lease last took jobs of this key (None: never).

    A store may list only a key's oldest jobs in `jobs`; `unlisted_s` is its estimate of the
    others (they count as work left, but a lease takes only listed jobs).
    """

    key: GroupKey
    priority: Priority
    oldest_enqueued_at: datetime
    jobs: tuple[PendingJob, ...]
    build_available: bool = True
    setup_s: float | None = None
    last_claimed_at: datetime | None = None
    unlisted_s: float = 0.0

    @property
    def waiting_since(self) -> datetime:
        """Since when the key has waited unserved: its oldest job's enqueue, or its last lease.

        Aging counts from here, so a key that is being served does not age past fresh work.
        """
        if self.last_claimed_at is None:
            return self.oldest_enqueued_at
        return max(self.oldest_enqueued_at, self.last_claimed_at)

    @property
    def pending_s(self) -> float:
        return sum(job.expected_s for job in self.jobs) + self.unlisted_s


@dataclass(frozen=True)
class RunningGroup:
    """A live lease: its key, its worker and the estimated work it has not started yet."""

    key: GroupKey
    worker_id: str
    remaining_s: float


@dataclass(frozen=True)
class WorkerView:
    """An online worker: what it serves, which builds it has ready, how many slots are free."""

    worker_id: str
    targets: frozenset[Target]
    ready: frozenset[BuildRef] = frozenset()
    capacity: int = 1
    free_slots: int = 1


@dataclass(frozen=True)
class QueueSnapshot:
    """Pending work per key, live leases, and the online workers, at one instant."""

    pending: tuple[PendingKey, ...]
    running: tuple[RunningGroup, ...] = ()
    workers: tuple[WorkerView, ...] = ()


@dataclass(frozen=True)
class ClaimDecision:
    """What to lease: jobs of one key, longest expected first, and the setup to expect."""

    key: GroupKey
    job_ids: tuple[str, ...]
    setup_expected_s: float
    reason: str


def apply_claim(
    snapshot: QueueSnapshot, decision: ClaimDecision, *, worker_id: str, now: datetime
) -> QueueSnapshot:
    """The snapshot after `decision` is leased to `worker_id` at `now`.

    The leased jobs leave their key (which records the lease time), a running group appears,
    and the worker has one free slot fewer.
    """
    taken = set(decision.job_ids)
    leased_s = 0.0
    pending: list[PendingKey] = []
    for item in snapshot.pending:
        if item.key == decision.key:
            leased_s = sum(job.expected_s for job in item.jobs if job.job_id in taken)
            jobs = tuple(job for job in item.jobs if job.job_id not in taken)
            if not jobs:
                continue
            item = replace(item, jobs=jobs, last_claimed_at=now)
        pending.append(item)
    lease = RunningGroup(key=decision.key, worker_id=worker_id, remaining_s=leased_s)
    workers = tuple(
        replace(w, free_slots=w.free_slots - 1) if w.worker_id == worker_id else w
        for w in snapshot.workers
    )
    return QueueSnapshot(
        pending=tuple(pending), running=(*snapshot.running, lease), workers=workers
    )
