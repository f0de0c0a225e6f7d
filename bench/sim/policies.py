"""The three policies compared: per-job FIFO, the seed's whole group per worker, and ours.

`OurPolicy` does what the store will do at claim time — build a `QueueSnapshot` with
estimates from the duration history, call `dispatch.scheduling.decide_claim` — and nothing
else: the policy itself is imported, never reimplemented here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.sim.engine import Claim, SimState
from bench.sim.model import SimJob, SimWorker
from dispatch.estimates import SetupKey
from dispatch.grouping import DefaultGrouping, GroupKey, JobFacts, group_key
from dispatch.scheduling import (
    PendingJob,
    PendingKey,
    QueueSnapshot,
    RunningGroup,
    SchedulerConfig,
    WorkerView,
    decide_claim,
)
from qgjob.types import Target

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """The virtual clock's instant `seconds` after the simulation began."""
    return EPOCH + timedelta(seconds=seconds)


def _oldest_pending(state: SimState, worker: SimWorker) -> SimJob | None:
    return next((job for job in state.pending.values() if job.target in worker.targets), None)


@dataclass(frozen=True)
class FifoPolicy:
    """One job per lease, oldest first, and every job installs the build."""

    name: str = "fifo"

    def claim(self, state: SimState, worker: SimWorker, *, now_s: float) -> Claim | None:
        job = _oldest_pending(state, worker)
        if job is None:
            return None
        return Claim(job.key, (job.job_id,), always_setup=True, reason="oldest job")


@dataclass(frozen=True)
class SeedPolicy:
    """The seed: the oldest key goes whole to one worker, which installs once per group."""

    name: str = "seed"

    def claim(self, state: SimState, worker: SimWorker, *, now_s: float) -> Claim | None:
        oldest = _oldest_pending(state, worker)
        if oldest is None:
            return None
        job_ids = tuple(j.job_id for j in state.pending.values() if j.key == oldest.key)
        return Claim(oldest.key, job_ids, always_setup=True, reason="oldest group, whole")


def _estimates(state: SimState, jobs: Iterable[SimJob]) -> dict[str, float]:
    """Estimated seconds per job id, one history scan per (org, target) as the store would."""
    by_scope: defaultdict[tuple[str, Target], list[SimJob]] = defaultdict(list)
    for job in jobs:
        by_scope[(job.org_id, job.target)].append(job)
    estimates: dict[str, float] = {}
    for (org_id, target), scoped in by_scope.items():
        paths = state.history.estimates_s(
            org_id=org_id, target=target, test_paths={job.test_path for job in scoped}
        )
        estimates.update({job.job_id: paths[job.test_path] for job in scoped})
    return estimates


def snapshot_of(state: SimState) -> QueueSnapshot:
    """The `QueueSnapshot` the store would build from this state."""
    leased = [job for lease in state.leases.values() for job in lease.queue]
    estimates = _estimates(state, [*state.pending.values(), *leased])
    strategy = DefaultGrouping()
    by_key: dict[GroupKey, list[SimJob]] = {}
    for job in state.pending.values():
        facts = JobFacts(job.org_id, job.app_version_id, job.target)
        by_key.setdefault(group_key(strategy, facts), []).append(job)
    pending = tuple(
        PendingKey(
            key=key,
            priority=max((job.priority for job in jobs), key=lambda p: p.rank),
            oldest_enqueued_at=at(min(state.enqueued_s[job.job_id] for job in jobs)),
            jobs=tuple(PendingJob(job.job_id, estimates[job.job_id]) for job in jobs),
            setup_s=state.history.setup_estimate_s(SetupKey(key.org_id, key.target)),
            last_claimed_at=at(state.claimed_s[key]) if key in state.claimed_s else None,
        )
        for key, jobs in by_key.items()
    )
    running = tuple(
        RunningGroup(
            key=lease.key,
            worker_id=worker_id,
            remaining_s=sum(estimates[job.job_id] for job in lease.queue),
        )
        for (worker_id, _), lease in state.leases.items()
    )
    workers = tuple(worker_view(state, worker) for worker in state.workload.workers)
    return QueueSnapshot(pending=pending, running=running, workers=workers)


def worker_view(state: SimState, worker: SimWorker) -> WorkerView:
    """What the worker reports about itself when it claims."""
    return WorkerView(
        worker_id=worker.worker_id,
        targets=worker.targets,
        ready=frozenset(state.ready.get(worker.worker_id, ())),
        capacity=worker.capacity,
        free_slots=state.free_slots(worker),
    )


@dataclass(frozen=True)
class OurPolicy:
    """`dispatch.scheduling.decide_claim` over the snapshot the store would build."""

    config: SchedulerConfig = field(default_factory=SchedulerConfig)
    name: str = "ours"

    def claim(self, state: SimState, worker: SimWorker, *, now_s: float) -> Claim | None:
        snapshot = snapshot_of(state)
        decision = decide_claim(
            snapshot, worker_view(state, worker), now=at(now_s), config=self.config
        )
        if decision is None:
            return None
        return Claim(decision.key, decision.job_ids, reason=decision.reason)
