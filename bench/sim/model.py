"""What a simulated workload is made of, and the lower bound on its makespan.

A workload is runs (submissions of jobs at a virtual time), the worker fleet, the true setup
time per target, and the duration history the service has before the first run (warm: one
earlier run of every spec; cold: nothing, so unknown specs get the configured default).
True durations are known only to the engine; policies see estimates from the history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from dispatch.estimates import DurationHistory
from dispatch.grouping import GroupKey
from qgjob.types import Priority, Target


@dataclass(frozen=True)
class SimJob:
    """One spec × target × app build of a run, with the duration it will really take."""

    job_id: str
    run_id: str
    org_id: str
    app_version_id: str
    target: Target
    test_path: str
    duration_s: float
    priority: Priority = Priority.NORMAL

    @property
    def key(self) -> GroupKey:
        return GroupKey(self.org_id, self.app_version_id, self.target)


@dataclass(frozen=True)
class RunSubmission:
    """A run: jobs that arrive together and whose last finish is the user's feedback."""

    run_id: str
    org_id: str
    submitted_s: float
    jobs: tuple[SimJob, ...]


@dataclass(frozen=True)
class SimWorker:
    """A worker. Devices and emulators hold one installed build per target (a new install of
    the same app replaces the old one); a cloud account keeps every upload (`keeps_builds`)."""

    worker_id: str
    targets: frozenset[Target]
    capacity: int = 1
    keeps_builds: bool = False


@dataclass(frozen=True)
class Workload:
    """Everything one simulation needs."""

    name: str
    description: str
    runs: tuple[RunSubmission, ...]
    workers: tuple[SimWorker, ...]
    setup_s: Mapping[Target, float]
    history: DurationHistory


def lower_bound_s(workload: Workload) -> float:
    """max(max_g(S + p̂_g), Σ_g(S + P_g)/M) per target class, maxed over classes and runs.

    Machines of different targets are not interchangeable, so the identical-machines bound is
    taken per target with M = that target's slots. With staggered submissions, a run cannot
    finish before its submission + S + its longest job, which is also a bound.
    """
    totals: defaultdict[GroupKey, float] = defaultdict(float)
    longest: defaultdict[GroupKey, float] = defaultdict(float)
    bound = 0.0
    for run in workload.runs:
        for job in run.jobs:
            totals[job.key] += job.duration_s
            longest[job.key] = max(longest[job.key], job.duration_s)
            setup = workload.setup_s[job.target]
            bound = max(bound, run.submitted_s + setup + job.duration_s)
    for target in {key.target for key in totals}:
        slots = sum(w.capacity for w in workload.workers if target in w.targets)
        keys = [key for key in totals if key.target == target]
        setup = workload.setup_s[target]
        bound = max(bound, max(setup + longest[key] for key in keys))
        bound = max(bound, sum(setup + totals[key] for key in keys) / slots)
    return bound


def run_bound_s(workload: Workload, run: RunSubmission) -> float:
    """The shortest feedback `run` could get with the whole fleet to itself: the lower bound
    of a workload made of this run alone, measured from its submission."""
    alone = Workload(
        workload.name,
        workload.description,
        (RunSubmission(run.run_id, run.org_id, 0.0, run.jobs),),
        workload.workers,
        workload.setup_s,
        workload.history,
    )
    return lower_bound_s(alone)
