"""The claim policy: which pending key an asking worker serves, and how many of its jobs.

Pure: the store builds a `QueueSnapshot` (dispatch.snapshot, re-exported here) inside the
claim transaction, calls `decide_claim`, and leases exactly the `job_ids` returned
(re-checking they are still PENDING). One decision per free slot; `apply_claim` gives the
snapshot to ask with for the next slot. `dispatch.waiting` explains why a job still waits.

Which key (DESIGN §5, domain.md §5), decided in this order:
1. Effective priority: `high` > `normal` > `low`, raised by aging — one level per half
   `aging_bound_s` a key has waited unserved (since its oldest job or its last lease) and,
   past the whole bound, *overdue*: above every fresh key, overdue keys oldest first.
2. Fairness: the org with fewer running groups (leases) first; an optional cap per org.
3. Among what is left, a key only pays to join while R > k·S (R its estimated unstarted
   work, k its live leases, S this worker's setup for it, 0 when the build is ready on the
   worker — affinity). A key nobody serves goes first (oldest first). Otherwise the policy
   plans as if the slots of the target shared the work perfectly: that ends in H = (ΣR +
   setups still owed) / slots. A key *needs help* when its k leases cannot finish it within H
   (R > k·H). The worker stays on a key whose build it has while that key needs it, and
   otherwise goes where the shortfall R − k·H is largest, if it exceeds the S it costs.
   Switching only on a real shortfall keeps workers from trading builds back and forth.
4. Age, then the key itself, so that decisions are deterministic.

How many jobs: longest expected first (LPT) until the lease holds its share of the claimable
work, min(claimable / slots, `max_batch_s`) — guided self-scheduling, so leases shrink as the
key drains and its tail runs in parallel, and no worker is committed for long when other
work may arrive — but at least `min_batch_s`: splitting a few seconds of work over several
leases costs more in claims than it gains. A retry of an infrastructure error is not given
back to the worker it failed on while another worker serves that target.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from dispatch.grouping import GroupKey
from dispatch.snapshot import (
    ClaimDecision,
    PendingJob,
    PendingKey,
    QueueSnapshot,
    RunningGroup,
    WorkerView,
    apply_claim,
)
from qgjob.types import Priority, Target

__all__ = [
    "OVERDUE_TIER",
    "ClaimDecision",
    "PendingJob",
    "PendingKey",
    "QueueSnapshot",
    "RunningGroup",
    "SchedulerConfig",
    "WorkerView",
    "apply_claim",
    "decide_claim",
    "effective_tier",
    "join_gain_s",
    "lpt_batch",
]

OVERDUE_TIER = Priority.HIGH.rank + 1


@dataclass(frozen=True)
class SchedulerConfig:
    """Policy knobs; `org_caps` overrides `default_org_cap` per org (None: no cap)."""

    aging_bound_s: float = 1800.0
    default_org_cap: int | None = None
    org_caps: Mapping[str, int] = field(default_factory=dict)
    default_setup_s: float = 60.0
    max_batch_s: float | None = 180.0
    min_batch_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.aging_bound_s > 0:
            raise ValueError(f"aging_bound_s must be > 0 seconds, got {self.aging_bound_s}")
        caps = [self.default_org_cap, *self.org_caps.values()]
        if any(cap is not None and cap < 1 for cap in caps):
            raise ValueError(f"org caps must be at least 1 running group, got {caps}")
        if self.max_batch_s is not None and not self.max_batch_s > 0:
            raise ValueError(f"max_batch_s must be > 0 seconds or None, got {self.max_batch_s}")
        if not self.min_batch_s >= 0:
            raise ValueError(f"min_batch_s must be >= 0 seconds, got {self.min_batch_s}")

    def org_cap(self, org_id: str) -> int | None:
        return self.org_caps.get(org_id, self.default_org_cap)


def effective_tier(
    priority: Priority, waiting_since: datetime, *, now: datetime, bound_s: float
) -> int:
    """Priority rank raised by aging: +1 per half bound waited, OVERDUE_TIER past the bound."""
    waited_s = (now - waiting_since).total_seconds()
    if waited_s >= bound_s:
        return OVERDUE_TIER
    return min(priority.rank + max(0, int(waited_s // (bound_s / 2))), Priority.HIGH.rank)


def join_gain_s(*, remaining_s: float, workers: int, setup_s: float) -> float:
    """Seconds a key's expected finish moves earlier if one more worker joins its `workers`.

    R/k − (R+S)/(k+1), positive exactly when R > k·S; infinite when nobody serves the key.
    """
    if workers == 0:
        return math.inf
    return remaining_s / workers - (remaining_s + setup_s) / (workers + 1)


@dataclass(frozen=True)
class _Candidate:
    pending: PendingKey
    tier: int
    org_groups: int
    leases: int
    remaining_s: float
    setup_s: float
    claimable: tuple[PendingJob, ...]

    @property
    def standing(self) -> tuple[int, float, int]:
        """Priority and fairness: the lowest standing is served first."""
        since = self.pending.waiting_since.timestamp()
        return (-self.tier, since if self.tier == OVERDUE_TIER else 0.0, self.org_groups)

    @property
    def tiebreak(self) -> tuple[float, GroupKey]:
        """Age (oldest first), then the key, so that decisions are deterministic."""
        return (self.pending.oldest_enqueued_at.timestamp(), self.pending.key)


def _candidates(
    snapshot: QueueSnapshot, worker: WorkerView, *, now: datetime, config: SchedulerConfig
) -> list[_Candidate]:
    leases = Counter(group.key for group in snapshot.running)
    org_groups = Counter(group.key.org_id for group in snapshot.running)
    leased_s: defaultdict[GroupKey, float] = defaultdict(float)
    for group in snapshot.running:
        leased_s[group.key] += group.remaining_s
    found = []
    for pending in snapshot.pending:
        key = pending.key
        cap = config.org_cap(key.org_id)
        if key.target not in worker.targets or not pending.build_available:
            continue
        if cap is not None and org_groups[key.org_id] >= cap:
            continue
        others = any(
            w.worker_id != worker.worker_id and key.target in w.targets for w in snapshot.workers
        )
        claimable = _claimable(pending, worker, now=now, others_serve=others)
        setup_s = 0.0 if key.build in worker.ready else _setup_s(pending, config)
        remaining_s = pending.pending_s + leased_s[key]
        gain_s = join_gain_s(remaining_s=remaining_s, workers=leases[key], setup_s=setup_s)
        if not claimable or gain_s <= 0:
            continue
        tier = effective_tier(
            pending.priority, pending.waiting_since, now=now, bound_s=config.aging_bound_s
        )
        found.append(
            _Candidate(
                pending=pending,
                tier=tier,
                org_groups=org_groups[key.org_id],
                leases=leases[key],
                remaining_s=remaining_s,
                setup_s=setup_s,
                claimable=claimable,
            )
        )
    return found


def _claimable(
    pending: PendingKey, worker: WorkerView, *, now: datetime, others_serve: bool
) -> tuple[PendingJob, ...]:
    def ok(job: PendingJob) -> bool:
        if job.not_before is not None and job.not_before > now:
            return False
        return not (others_serve and job.infra_retry and job.last_worker_id == worker.worker_id)

    return tuple(job for job in pending.jobs if ok(job))


def _setup_s(pending: PendingKey, config: SchedulerConfig) -> float:
    return config.default_setup_s if pending.setup_s is None else pending.setup_s


def _slots(snapshot: QueueSnapshot, worker: WorkerView, target: Target) -> int:
    others = sum(
        w.capacity
        for w in snapshot.workers
        if w.worker_id != worker.worker_id and target in w.targets
    )
    return max(1, others + worker.capacity)


def _horizons_s(
    contenders: list[_Candidate], snapshot: QueueSnapshot, worker: WorkerView
) -> dict[Target, float]:
    """Per target: when the contenders's work would end if its slots shared it perfectly."""
    keys = {c.pending.key for c in contenders}
    horizons: dict[Target, float] = {}
    for target in {c.pending.key.target for c in contenders}:
        mine = [c for c in contenders if c.pending.key.target == target]
        work_s = sum(c.remaining_s + (c.setup_s if c.leases == 0 else 0.0) for c in mine)
        busy = sum(1 for g in snapshot.running if g.key.target == target and g.key not in keys)
        horizons[target] = work_s / max(1, _slots(snapshot, worker, target) - busy)
    return horizons


def _choose(
    candidates: list[_Candidate], snapshot: QueueSnapshot, worker: WorkerView
) -> tuple[_Candidate, str]:
    best = min(c.standing for c in candidates)
    contenders = [c for c in candidates if c.standing == best]
    unserved = [c for c in contenders if c.leases == 0]
    if unserved:
        # Oldest first; at equal age a build already here, then the larger key (LPT).
        first = min(unserved, key=lambda c: (c.tiebreak[0], c.setup_s, -c.remaining_s, c.tiebreak))
        return first, "start: nobody serves it"
    horizons = _horizons_s(contenders, snapshot, worker)

    def shortfall_s(c: _Candidate) -> float:
        return c.remaining_s - c.leases * horizons[c.pending.key.target]

    def order(c: _Candidate) -> tuple[float, float, tuple[float, GroupKey]]:
        return (-shortfall_s(c), c.setup_s, c.tiebreak)

    ready = [c for c in contenders if c.setup_s == 0]
    needy = [c for c in contenders if shortfall_s(c) > c.setup_s]  # worth the setup it costs
    if ready and shortfall_s(stay := min(ready, key=order)) > 0:
        return stay, f"stay: build ready, {shortfall_s(stay):.0f}s short without this worker"
    if needy:
        pick = min(needy, key=order)
        return pick, f"help: {shortfall_s(pick):.0f}s short of the plan"
    if ready:
        return min(ready, key=order), "stay: build ready"
    pick = min(contenders, key=lambda c: (-c.remaining_s / c.leases, c.tiebreak))
    return pick, "join the key that would finish last"


def lpt_batch(jobs: tuple[PendingJob, ...], *, share_s: float) -> tuple[PendingJob, ...]:
    """Longest expected first until the batch holds `share_s` seconds (at least one job)."""
    ordered = sorted(jobs, key=lambda job: (-job.expected_s, job.job_id))
    batch: list[PendingJob] = []
    total_s = 0.0
    for job in ordered:
        if batch and total_s >= share_s:
            break
        batch.append(job)
        total_s += job.expected_s
    return tuple(batch)


def decide_claim(
    snapshot: QueueSnapshot, worker: WorkerView, *, now: datetime, config: SchedulerConfig
) -> ClaimDecision | None:
    """The lease `worker` should take now, or None when nothing pays off for it."""
    if worker.free_slots < 1:
        return None
    candidates = _candidates(snapshot, worker, now=now, config=config)
    if not candidates:
        return None
    best, why = _choose(candidates, snapshot, worker)
    slots = _slots(snapshot, worker, best.pending.key.target)
    share_s = (sum(job.expected_s for job in best.claimable) + best.pending.unlisted_s) / slots
    if config.max_batch_s is not None:
        share_s = min(share_s, config.max_batch_s)
    share_s = max(share_s, config.min_batch_s)
    batch = lpt_batch(best.claimable, share_s=share_s)
    return ClaimDecision(
        key=best.pending.key,
        job_ids=tuple(job.job_id for job in batch),
        setup_expected_s=best.setup_s,
        reason=_reason(best, batch, why),
    )


def _reason(best: _Candidate, batch: tuple[PendingJob, ...], why: str) -> str:
    pending = best.pending
    tier = "overdue" if best.tier == OVERDUE_TIER else f"{pending.priority} (tier {best.tier})"
    build = "build ready" if best.setup_s == 0 else f"setup {best.setup_s:.0f}s"
    batch_s = sum(job.expected_s for job in batch)
    return (
        f"{tier}; org {pending.key.org_id} has {best.org_groups} running group(s); {why}; "
        f"k={best.leases} R={best.remaining_s:.0f}s; {build}; "
        f"{len(batch)} of {len(best.claimable)} jobs, {batch_s:.0f}s, longest first"
    )
