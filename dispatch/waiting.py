"""Why is a PENDING job still waiting? One reason, for `GET /v1/jobs/{id}` and `qgjob status`.

Pure, over the same `QueueSnapshot` the claim policy reads, and checked in the order a person
would want to hear it: the job's own retry backoff first, then what no worker can fix (no
worker serves its target, its build is not there yet), then the org's cap, then the queue
itself (higher-priority groups ahead of it, or simply no free worker yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dispatch.scheduling import SchedulerConfig, effective_tier
from dispatch.snapshot import PendingJob, PendingKey, QueueSnapshot

__all__ = ["WaitingCode", "WaitingReason", "waiting_reason"]


class WaitingCode(StrEnum):
    """Machine-readable reason a pending job has not been claimed."""

    BACKING_OFF = "backing_off"
    NO_WORKER = "no_worker_for_target"
    WAITING_FOR_BUILD = "waiting_for_build"
    ORG_AT_CAP = "org_at_cap"
    BEHIND_HIGHER_PRIORITY = "behind_higher_priority"
    WAITING_FOR_WORKER = "waiting_for_free_worker"


@dataclass(frozen=True)
class WaitingReason:
    """A code, a sentence for people, and the figures behind it."""

    code: WaitingCode
    message: str
    ahead: int = 0
    until: datetime | None = None

    def __str__(self) -> str:
        return self.message


def _find(snapshot: QueueSnapshot, job_id: str) -> tuple[PendingKey, PendingJob] | None:
    for pending in snapshot.pending:
        for job in pending.jobs:
            if job.job_id == job_id:
                return pending, job
    return None


def _ready_now(pending: PendingKey, now: datetime) -> bool:
    return pending.build_available and any(
        job.not_before is None or job.not_before <= now for job in pending.jobs
    )


def waiting_reason(
    job_id: str, snapshot: QueueSnapshot, *, now: datetime, config: SchedulerConfig
) -> WaitingReason | None:
    """Why `job_id` waits, or None when it is not pending in `snapshot`."""
    found = _find(snapshot, job_id)
    if found is None:
        return None
    pending, job = found
    key = pending.key
    if job.not_before is not None and job.not_before > now:
        wait_s = (job.not_before - now).total_seconds()
        return WaitingReason(
            WaitingCode.BACKING_OFF,
            f"backing off before retry (attempt {job.attempt + 1}) for {wait_s:.0f}s more",
            until=job.not_before,
        )
    if not any(key.target in worker.targets for worker in snapshot.workers):
        return WaitingReason(WaitingCode.NO_WORKER, f"no online worker serves {key.target}")
    if not pending.build_available:
        return WaitingReason(
            WaitingCode.WAITING_FOR_BUILD, f"waiting for build {key.app_version_id} to be uploaded"
        )
    cap = config.org_cap(key.org_id)
    org_groups = sum(1 for group in snapshot.running if group.key.org_id == key.org_id)
    if cap is not None and org_groups >= cap:
        return WaitingReason(
            WaitingCode.ORG_AT_CAP,
            f"org {key.org_id} is at its cap of {cap} running group(s)",
            ahead=org_groups,
        )

    def tier(item: PendingKey) -> int:
        return effective_tier(
            item.priority, item.waiting_since, now=now, bound_s=config.aging_bound_s
        )

    rivals = [
        item
        for item in snapshot.pending
        if item.key != key and item.key.target == key.target and _ready_now(item, now)
    ]
    mine = tier(pending)
    higher = sum(1 for item in rivals if tier(item) > mine)
    if higher:
        return WaitingReason(
            WaitingCode.BEHIND_HIGHER_PRIORITY,
            f"behind {higher} higher-priority group(s) for {key.target}",
            ahead=higher,
        )
    level = sum(
        1
        for item in rivals
        if tier(item) == mine and item.oldest_enqueued_at < pending.oldest_enqueued_at
    )
    leases = sum(1 for group in snapshot.running if group.key == key)
    where = f"its group runs on {leases} worker(s); " if leases else ""
    line = f"{level} older group(s) ahead" if level else "next in line"
    return WaitingReason(
        WaitingCode.WAITING_FOR_WORKER,
        f"{where}{line} for a free {key.target} worker",
        ahead=level,
    )
