"""The simulator driving the real policy: ordering properties, and issue 5's targets for seed 1.

Everything here runs on the simulator's virtual clock; nothing sleeps or reads the wall clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest

from bench.schedule_sim import per_org_slowdown
from bench.sim.engine import SimResult, simulate
from bench.sim.model import (
    RunSubmission,
    SimJob,
    SimWorker,
    Workload,
    lower_bound_s,
    run_bound_s,
)
from bench.sim.policies import FifoPolicy, OurPolicy, SeedPolicy
from bench.sim.workloads import SETUP_S, workload_a, workload_b, workload_c
from dispatch.estimates import DurationHistory, SpecKey
from dispatch.grouping import GroupKey
from qgjob.types import Priority, Target


def _lease_ends(result: SimResult) -> list[float]:
    return [max(result.finished_s[j] for j in lease.job_ids) for lease in result.leases]


@pytest.mark.parametrize("build", [workload_a, workload_b, workload_c])
def test_every_job_runs_once_in_leases_of_one_key(build: Callable[[int], Workload]) -> None:
    workload = build(2)
    result = simulate(workload, OurPolicy())
    leased = [job_id for lease in result.leases for job_id in lease.job_ids]
    jobs = {job.job_id: job for run in workload.runs for job in run.jobs}
    assert sorted(leased) == sorted(jobs)
    for lease in result.leases:
        assert {jobs[j].key for j in lease.job_ids} == {lease.key}


def test_the_simulation_is_deterministic() -> None:
    first = simulate(workload_b(3), OurPolicy())
    second = simulate(workload_b(3), OurPolicy())
    assert first.finished_s == second.finished_s
    assert first.leases == second.leases


def _priority_workload() -> Workload:
    def run(name: str, priority: Priority, at_s: float, count: int) -> RunSubmission:
        jobs = tuple(
            SimJob(f"{name}/{n}", name, "acme", name, Target.EMULATOR, f"t{n}", 40.0, priority)
            for n in range(count)
        )
        return RunSubmission(name, "acme", at_s, jobs)

    runs = (
        run("normal", Priority.NORMAL, 0.0, 40),
        run("low", Priority.LOW, 100.0, 10),
        run("high", Priority.HIGH, 100.0, 10),
    )
    workers = tuple(SimWorker(f"emu-{n}", frozenset({Target.EMULATOR})) for n in range(3))
    return Workload("prio", "priorities", runs, workers, SETUP_S, DurationHistory())


def test_a_higher_priority_key_never_waits_unserved_while_a_lower_one_gets_a_lease() -> None:
    workload = _priority_workload()
    result = simulate(workload, OurPolicy())
    rank = {run.run_id: run.jobs[0].priority.rank for run in workload.runs}
    submitted = {run.run_id: run.submitted_s for run in workload.runs}
    ends = _lease_ends(result)
    leased_before: set[str] = set()
    for i, lease in enumerate(result.leases):
        for run in workload.runs:
            other = run.jobs[0].key
            if rank[run.run_id] <= rank[lease.key.app_version_id]:
                continue
            waiting = submitted[run.run_id] <= lease.at_s and any(
                job.job_id not in leased_before for job in run.jobs
            )
            served = any(
                result.leases[j].key == other
                and (ends[j] > lease.at_s or result.leases[j].at_s == lease.at_s)
                for j in range(i)
            )
            assert not waiting or served, f"{other} waited while lease {i} served {lease.key}"
        leased_before.update(lease.job_ids)
    first_start = {
        run.run_id: min(result.started_s[job.job_id] for job in run.jobs) for run in workload.runs
    }
    assert first_start["high"] <= first_start["low"]


def test_leases_take_jobs_longest_expected_first_and_shrink_to_single_jobs() -> None:
    workload = workload_b(1)
    push = GroupKey("acme", "main-1", Target.EMULATOR)
    result = simulate(workload, OurPolicy())
    expected = {
        job.job_id: workload.history.estimate_s(SpecKey(job.org_id, job.test_path, job.target))
        for run in workload.runs
        for job in run.jobs
    }
    leases = [lease for lease in result.leases if lease.key == push]
    order = [expected[j] for lease in leases for j in lease.job_ids]
    assert order == sorted(order, reverse=True)
    sizes = [len(lease.job_ids) for lease in leases]
    assert sizes[0] > 1
    assert sizes[-8:] == [1] * 8


def test_build_affinity_keeps_setups_near_one_per_worker() -> None:
    workload = workload_a(1)
    ours = simulate(workload, OurPolicy())
    fifo = simulate(workload, FifoPolicy())
    setups = sum(1 for lease in ours.leases if lease.setup_s > 0)
    assert len(workload.workers) <= setups <= 2 * len(workload.workers)
    assert ours.setup_total_s * 10 < fifo.setup_total_s


def test_issue_targets_for_seed_1() -> None:
    a, b, c = workload_a(1), workload_b(1), workload_c(1)
    ours_a = simulate(a, OurPolicy())
    assert ours_a.makespan_s <= 1.10 * lower_bound_s(a)
    assert 2 * ours_a.makespan_s <= simulate(a, SeedPolicy()).makespan_s
    assert simulate(c, OurPolicy()).makespan_s <= 1.10 * lower_bound_s(c)
    ours_b = simulate(b, OurPolicy())
    slowdown = per_org_slowdown(ours_b, b)
    assert set(slowdown) == {"acme", "globex", "initech", "umbrella"}
    assert max(slowdown.values()) <= 1.5 * min(slowdown.values())
    trickle = {org: s for org, s in ours_b.per_org_feedback_s().items() if org != "acme"}
    assert max(trickle.values()) <= 1.5 * min(trickle.values())


def test_slowdown_is_feedback_over_the_runs_own_bound() -> None:
    workload = workload_b(1)
    result = simulate(workload, SeedPolicy())
    acme = next(run for run in workload.runs if run.org_id == "acme")
    expected = result.feedback_s[acme.run_id] / run_bound_s(workload, acme)
    assert per_org_slowdown(result, workload)["acme"] == pytest.approx(expected)
    assert run_bound_s(workload, acme) >= 5 * max(
        run_bound_s(workload, run) for run in workload.runs if run.org_id != "acme"
    )


def test_lower_bound_is_below_every_policy() -> None:
    workload = workload_c(4)
    bound = lower_bound_s(workload)
    by_policy: dict[str, float] = defaultdict(float)
    for policy in (FifoPolicy(), SeedPolicy(), OurPolicy()):
        by_policy[policy.name] = simulate(workload, policy).makespan_s
    assert all(bound <= makespan for makespan in by_policy.values())
