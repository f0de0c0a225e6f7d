"""The discrete-event engine: a virtual clock, worker slots, leases, setups and jobs.

No sleeping and no wall clock: events (run arrives, setup done, job done) come off a heap
in (time, sequence) order, so a run is deterministic for a workload. Events at the same
instant are applied together (three runs submitted at t = 0 are all visible to the first
claim); then each idle slot asks the policy for a lease — the slots just freed first, then
the others in worker order, as workers polling the service would. The engine owns the truth
(real durations, which build each device holds); policies see `SimState` and estimates only.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from bench.sim.model import SimJob, SimWorker, Workload
from dispatch.estimates import DurationHistory, SetupKey, SpecKey
from dispatch.grouping import BuildRef, GroupKey

Slot = tuple[str, int]


@dataclass(frozen=True)
class Claim:
    """A policy's answer: jobs of one key for one slot, and whether setup is always paid."""

    key: GroupKey
    job_ids: tuple[str, ...]
    always_setup: bool = False
    reason: str = ""


class Policy(Protocol):
    """A way to answer a slot's claim."""

    @property
    def name(self) -> str: ...

    def claim(self, state: SimState, worker: SimWorker, *, now_s: float) -> Claim | None: ...


@dataclass
class ActiveLease:
    """A lease being worked through by one slot."""

    key: GroupKey
    queue: list[SimJob]
    current: SimJob | None = None


@dataclass
class SimState:
    """What the service knows at an instant: pending jobs, leases, ready builds, history."""

    workload: Workload
    history: DurationHistory
    pending: dict[str, SimJob] = field(default_factory=dict)
    enqueued_s: dict[str, float] = field(default_factory=dict)
    leases: dict[Slot, ActiveLease] = field(default_factory=dict)
    ready: dict[str, set[BuildRef]] = field(default_factory=dict)
    claimed_s: dict[GroupKey, float] = field(default_factory=dict)

    def free_slots(self, worker: SimWorker) -> int:
        busy = sum(1 for worker_id, _ in self.leases if worker_id == worker.worker_id)
        return worker.capacity - busy


@dataclass(frozen=True)
class LeaseRecord:
    """One lease as it happened, for tests and for the curious."""

    at_s: float
    worker_id: str
    key: GroupKey
    job_ids: tuple[str, ...]
    setup_s: float
    reason: str


@dataclass(frozen=True)
class SimResult:
    """The outcome of one workload under one policy."""

    policy: str
    started_s: Mapping[str, float]
    finished_s: Mapping[str, float]
    feedback_s: Mapping[str, float]
    run_org: Mapping[str, str]
    leases: tuple[LeaseRecord, ...]
    setup_total_s: float

    @property
    def makespan_s(self) -> float:
        return max(self.finished_s.values(), default=0.0)

    @property
    def mean_feedback_s(self) -> float:
        return sum(self.feedback_s.values()) / max(1, len(self.feedback_s))

    def per_org_feedback_s(self) -> dict[str, float]:
        by_org: dict[str, list[float]] = {}
        for run_id, seconds in self.feedback_s.items():
            by_org.setdefault(self.run_org[run_id], []).append(seconds)
        return {org: sum(v) / len(v) for org, v in sorted(by_org.items())}


class _Event(IntEnum):
    JOB_DONE = 0
    SETUP_DONE = 1
    ARRIVE = 2


@dataclass
class _Engine:
    workload: Workload
    policy: Policy
    state: SimState
    events: list[tuple[float, int, _Event, Slot, int]] = field(default_factory=list)
    seq: int = 0
    started_s: dict[str, float] = field(default_factory=dict)
    finished_s: dict[str, float] = field(default_factory=dict)
    leases: list[LeaseRecord] = field(default_factory=list)
    setup_total_s: float = 0.0

    def push(self, at_s: float, kind: _Event, slot: Slot = ("", 0), index: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at_s, self.seq, kind, slot, index))

    def run(self) -> None:
        for index, run in enumerate(self.workload.runs):
            self.push(run.submitted_s, _Event.ARRIVE, index=index)
        while self.events:
            now_s = self.events[0][0]
            freed: list[Slot] = []
            while self.events and self.events[0][0] == now_s:  # simultaneous events together
                _, _, kind, slot, index = heapq.heappop(self.events)
                if kind is _Event.ARRIVE:
                    for job in self.workload.runs[index].jobs:
                        self.state.pending[job.job_id] = job
                        self.state.enqueued_s[job.job_id] = now_s
                elif kind is _Event.SETUP_DONE:
                    self.setup_done(slot, now_s)
                else:
                    self.job_done(slot, now_s)
                    freed.append(slot)
            self.fill_idle(now_s, first=freed)
        if self.state.pending or self.state.leases:
            raise RuntimeError(
                f"policy {self.policy.name} stranded {len(self.state.pending)} pending jobs"
            )

    def fill_idle(self, now_s: float, *, first: list[Slot]) -> None:
        slots = [(w, s) for w in self.workload.workers for s in range(w.capacity)]
        slots.sort(key=lambda ws: (ws[0].worker_id, ws[1]) not in first)
        for worker, number in slots:
            slot = (worker.worker_id, number)
            if slot in self.state.leases or not self.state.pending:
                continue
            claim = self.policy.claim(self.state, worker, now_s=now_s)
            if claim is not None:
                self.start_lease(worker, slot, claim, now_s)

    def start_lease(self, worker: SimWorker, slot: Slot, claim: Claim, now_s: float) -> None:
        jobs = [self.state.pending.pop(job_id) for job_id in claim.job_ids]
        if not jobs or any(job.key != claim.key for job in jobs):
            raise RuntimeError(f"policy {self.policy.name} made a bad claim: {claim}")
        lease = ActiveLease(key=claim.key, queue=jobs)
        self.state.claimed_s[claim.key] = now_s
        self.state.leases[slot] = lease
        ready = self.state.ready.setdefault(worker.worker_id, set())
        needs_setup = claim.always_setup or claim.key.build not in ready
        setup_s = self.workload.setup_s[claim.key.target] if needs_setup else 0.0
        self.leases.append(
            LeaseRecord(now_s, worker.worker_id, claim.key, claim.job_ids, setup_s, claim.reason)
        )
        if setup_s > 0:
            self.setup_total_s += setup_s
            self.push(now_s + setup_s, _Event.SETUP_DONE, slot)
        else:
            self.next_job(slot, now_s)

    def setup_done(self, slot: Slot, now_s: float) -> None:
        worker = next(w for w in self.workload.workers if w.worker_id == slot[0])
        key = self.state.leases[slot].key
        ready = self.state.ready[worker.worker_id]
        if not worker.keeps_builds:
            ready -= {build for build in ready if build.target == key.target}
        ready.add(key.build)
        setup_s = self.workload.setup_s[key.target]
        self.state.history = self.state.history.setup_recorded(
            SetupKey(key.org_id, key.target), setup_s
        )
        self.next_job(slot, now_s)

    def job_done(self, slot: Slot, now_s: float) -> None:
        lease = self.state.leases[slot]
        job = lease.current
        assert job is not None
        self.finished_s[job.job_id] = now_s
        self.state.history = self.state.history.recorded(
            SpecKey(job.org_id, job.test_path, job.target), job.duration_s
        )
        self.next_job(slot, now_s)

    def next_job(self, slot: Slot, now_s: float) -> None:
        lease = self.state.leases[slot]
        if not lease.queue:
            del self.state.leases[slot]
            return
        lease.current = lease.queue.pop(0)
        self.started_s[lease.current.job_id] = now_s
        self.push(now_s + lease.current.duration_s, _Event.JOB_DONE, slot)


def simulate(workload: Workload, policy: Policy) -> SimResult:
    """Run `workload` to completion under `policy` on the virtual clock."""
    engine = _Engine(workload, policy, SimState(workload, workload.history))
    engine.run()
    feedback = {
        run.run_id: max(engine.finished_s[job.job_id] for job in run.jobs) - run.submitted_s
        for run in workload.runs
        if run.jobs
    }
    return SimResult(
        policy=policy.name,
        started_s=engine.started_s,
        finished_s=engine.finished_s,
        feedback_s=feedback,
        run_org={run.run_id: run.org_id for run in workload.runs},
        leases=tuple(engine.leases),
        setup_total_s=engine.setup_total_s,
    )
