"""The claim policy: priority and aging, org fairness and caps, affinity, splitting, LPT."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatch.grouping import GroupKey
from dispatch.scheduling import (
    OVERDUE_TIER,
    ClaimDecision,
    PendingJob,
    PendingKey,
    QueueSnapshot,
    RunningGroup,
    SchedulerConfig,
    WorkerView,
    apply_claim,
    decide_claim,
    effective_tier,
    join_gain_s,
    lpt_batch,
)
from qgjob.types import Priority, Target

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CONFIG = SchedulerConfig(default_setup_s=60.0, max_batch_s=None)
EMU = Target.EMULATOR


def key(app: str = "v1", *, org: str = "acme", target: Target = EMU) -> GroupKey:
    return GroupKey(org, app, target)


def pending(
    group: GroupKey,
    durations: Sequence[float] = (30.0,),
    *,
    priority: Priority = Priority.NORMAL,
    age_s: float = 0.0,
    **fields: object,
) -> PendingKey:
    jobs = tuple(
        PendingJob(f"{group.text}#{n}", expected_s) for n, expected_s in enumerate(durations)
    )
    item = PendingKey(
        key=group,
        priority=priority,
        oldest_enqueued_at=NOW - timedelta(seconds=age_s),
        jobs=jobs,
        setup_s=60.0,
    )
    return replace(item, **fields)  # type: ignore[arg-type]


def worker(
    worker_id: str = "w1",
    *,
    targets: Sequence[Target] = (EMU,),
    ready: Sequence[GroupKey] = (),
    capacity: int = 1,
    free_slots: int | None = None,
) -> WorkerView:
    return WorkerView(
        worker_id=worker_id,
        targets=frozenset(targets),
        ready=frozenset(k.build for k in ready),
        capacity=capacity,
        free_slots=capacity if free_slots is None else free_slots,
    )


def leases(group: GroupKey, count: int, *, remaining_s: float = 0.0) -> tuple[RunningGroup, ...]:
    return tuple(RunningGroup(group, f"busy-{group.text}-{n}", remaining_s) for n in range(count))


def decide(
    items: Sequence[PendingKey],
    asking: WorkerView | None = None,
    *,
    running: Sequence[RunningGroup] = (),
    others: Sequence[WorkerView] = (),
    config: SchedulerConfig = CONFIG,
    now: datetime = NOW,
) -> ClaimDecision | None:
    asking = asking or worker()
    snapshot = QueueSnapshot(tuple(items), tuple(running), (asking, *others))
    return decide_claim(snapshot, asking, now=now, config=config)


def chosen(decision: ClaimDecision | None) -> GroupKey | None:
    return None if decision is None else decision.key


# Priority and aging


def test_high_before_normal_before_low() -> None:
    low, normal, high = key("low"), key("normal"), key("high")
    items = [
        pending(low, priority=Priority.LOW, age_s=50),
        pending(normal, priority=Priority.NORMAL, age_s=40),
        pending(high, priority=Priority.HIGH, age_s=10),
    ]
    assert chosen(decide(items)) == high
    assert chosen(decide(items[:2])) == normal
    assert chosen(decide(items[:1])) == low


@pytest.mark.parametrize(
    ("priority", "waited_s", "tier"),
    [
        (Priority.LOW, 0, 0),
        (Priority.LOW, 899, 0),
        (Priority.LOW, 900, 1),
        (Priority.LOW, 1799, 1),
        (Priority.LOW, 1800, OVERDUE_TIER),
        (Priority.NORMAL, 900, 2),
        (Priority.HIGH, 1799, 2),
        (Priority.HIGH, 1800, OVERDUE_TIER),
    ],
)
def test_effective_tier_ages_by_half_bounds(priority: Priority, waited_s: float, tier: int) -> None:
    since = NOW - timedelta(seconds=waited_s)
    assert effective_tier(priority, since, now=NOW, bound_s=1800) == tier


def test_an_overdue_low_key_beats_fresh_high_keys() -> None:
    low = pending(key("low"), priority=Priority.LOW, age_s=1800)
    highs = [pending(key(f"h{n}"), priority=Priority.HIGH, age_s=n) for n in range(5)]
    assert chosen(decide([*highs, low])) == low.key
    assert chosen(decide([*highs, replace(low, oldest_enqueued_at=NOW)])) != low.key


def test_aging_counts_from_the_last_lease() -> None:
    served = pending(key("low"), priority=Priority.LOW, age_s=3600, last_claimed_at=NOW)
    fresh = pending(key("normal"), priority=Priority.NORMAL)
    assert chosen(decide([served, fresh])) == fresh.key


@settings(max_examples=200)
@given(
    ages=st.lists(st.floats(min_value=0, max_value=1799), min_size=1, max_size=8),
    org_groups=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=8),
    low_waited_s=st.floats(min_value=1800, max_value=7200),
)
def test_a_low_key_past_the_bound_is_next_whatever_high_work_there_is(
    ages: list[float], org_groups: list[int], low_waited_s: float
) -> None:
    highs = [
        pending(key(f"h{n}", org=f"org{n}"), priority=Priority.HIGH, age_s=age)
        for n, age in enumerate(ages)
    ]
    running = [
        group
        for n, count in enumerate(org_groups)
        for group in leases(key("other", org=f"org{n}"), count)
    ]
    low = pending(key("low", org="starved"), priority=Priority.LOW, age_s=low_waited_s)
    running += list(leases(key("busy", org="starved"), 3))
    assert chosen(decide([*highs, low], running=running)) == low.key


# Fairness between orgs


def test_org_with_fewer_running_groups_goes_first() -> None:
    busy, idle = key("a1", org="busy"), key("b1", org="idle")
    items = [pending(busy, age_s=100), pending(idle, age_s=0)]
    running = leases(key("a0", org="busy"), 2)
    assert chosen(decide(items, running=running)) == idle
    assert chosen(decide(items)) == busy  # no running groups: the older key


def test_org_cap_holds_an_org_back() -> None:
    capped, other = key("a1", org="capped"), key("b1", org="other")
    items = [pending(capped, priority=Priority.HIGH), pending(other)]
    running = leases(key("a0", org="capped"), 2)
    config = replace(CONFIG, org_caps={"capped": 2})
    assert chosen(decide(items, running=running)) == capped
    assert chosen(decide(items, running=running, config=config)) == other
    assert decide(items[:1], running=running, config=config) is None
    assert chosen(decide(items[:1], running=running[:1], config=config)) == capped


# Build affinity and splitting


def test_ready_build_means_no_setup() -> None:
    group = key()
    warm = decide([pending(group)], worker(ready=[group]))
    cold = decide([pending(group)])
    assert warm is not None
    assert cold is not None
    assert (warm.key, warm.setup_expected_s) == (group, 0.0)
    assert (cold.key, cold.setup_expected_s) == (group, 60.0)
    assert "build ready" in warm.reason


def test_affinity_breaks_a_tie_between_keys_nobody_serves() -> None:
    first, second = key("v1"), key("v2")
    items = [pending(first), pending(second)]
    assert chosen(decide(items)) == first
    assert chosen(decide(items, worker(ready=[second]))) == second


def test_a_worker_stays_on_its_build_while_that_key_needs_it() -> None:
    mine, other = key("mine"), key("other")
    # `other` is further behind, but `mine` cannot finish in time without this worker either:
    # moving would cost a setup and leave `mine` short instead.
    items = [pending(mine, [100.0] * 10, age_s=0), pending(other, [100.0] * 12, age_s=60)]
    running = (*leases(mine, 1), *leases(other, 1))
    others = [worker("w2"), worker("w3")]
    decision = decide(items, worker(ready=[mine]), running=running, others=others)
    assert decision is not None
    assert decision.key == mine
    assert decision.setup_expected_s == 0.0


def test_a_worker_leaves_its_build_for_a_key_far_behind() -> None:
    mine, behind = key("mine"), key("behind")
    items = [pending(mine, [50.0] * 2), pending(behind, [100.0] * 20)]
    running = (*leases(mine, 2), *leases(behind, 1))
    others = [worker(f"w{n}") for n in range(2, 5)]
    decision = decide(items, worker(ready=[mine]), running=running, others=others)
    assert decision is not None
    assert decision.key == behind
    assert decision.setup_expected_s == 60.0


def test_a_key_nobody_serves_starts_before_joins() -> None:
    big, new = key("big"), key("new")
    items = [pending(big, [100.0] * 30, age_s=600), pending(new, [30.0] * 3)]
    assert chosen(decide(items, running=leases(big, 3), others=[worker("w2")])) == new
    # Even a worker whose build is ready for a key that needs it starts the new run first.
    fleet = [worker(f"w{n}") for n in range(2, 12)]
    assert chosen(decide(items, worker(ready=[big]), running=leases(big, 3), others=fleet)) == new


@pytest.mark.parametrize(
    ("remaining_s", "workers", "joins"),
    [(100.0, 2, False), (120.0, 2, False), (121.0, 2, True), (61.0, 1, True), (59.0, 1, False)],
)
def test_joining_pays_only_while_r_exceeds_k_times_s(
    remaining_s: float, workers: int, joins: bool
) -> None:
    group = key()
    items = [pending(group, [remaining_s])]
    running = leases(group, workers)
    assert (decide(items, running=running) is not None) is joins
    assert (join_gain_s(remaining_s=remaining_s, workers=workers, setup_s=60.0) > 0) is joins
    # With the build ready there is no setup to amortise: joining always pays.
    assert decide(items, worker(ready=[group]), running=running) is not None


def test_leased_unstarted_work_counts_towards_r() -> None:
    group = key()
    items = [pending(group, [50.0])]
    assert decide(items, running=leases(group, 2)) is None
    assert decide(items, running=leases(group, 2, remaining_s=100.0)) is not None


# Inside a key: LPT and shrinking batches


def test_jobs_come_longest_expected_first() -> None:
    group = key()
    durations = [10.0, 90.0, 30.0, 70.0, 50.0]
    decision = decide([pending(group, durations)], config=CONFIG)
    assert decision is not None
    expected = [durations[int(job_id.split("#")[1])] for job_id in decision.job_ids]
    assert expected == sorted(durations, reverse=True)


def test_a_lease_takes_its_share_of_the_fleet() -> None:
    group = key()
    others = [worker(f"w{n}") for n in range(2, 5)]  # 4 slots
    decision = decide([pending(group, [10.0] * 16)], others=others)
    assert decision is not None
    assert len(decision.job_ids) == 4


def test_batches_shrink_as_the_key_drains_so_the_tail_runs_in_parallel() -> None:
    group = key()
    fleet = [worker(f"w{n}", ready=[group]) for n in range(4)]
    snapshot = QueueSnapshot((pending(group, [10.0] * 16),), (), tuple(fleet))
    sizes = []
    for turn in range(16):
        asking = replace(fleet[turn % 4], free_slots=1)
        snapshot = replace(
            snapshot, workers=tuple(asking if w.worker_id == asking.worker_id else w for w in fleet)
        )
        decision = decide_claim(snapshot, asking, now=NOW, config=CONFIG)
        if decision is None:
            break
        sizes.append(len(decision.job_ids))
        claimed = apply_claim(snapshot, decision, worker_id=asking.worker_id, now=NOW)
        snapshot = replace(claimed, running=())
    assert sizes == [4, 3, 3, 2, 1, 1, 1, 1]


def test_max_batch_caps_a_lease() -> None:
    group = key()
    config = replace(CONFIG, max_batch_s=25.0)
    decision = decide([pending(group, [10.0] * 40)], config=config)
    assert decision is not None
    assert len(decision.job_ids) == 3


def test_lpt_batch_always_takes_one_job() -> None:
    jobs = (PendingJob("a", 500.0), PendingJob("b", 1.0))
    assert lpt_batch(jobs, share_s=0.0) == (jobs[0],)


# Retries, backoff, builds, targets


def test_an_infrastructure_retry_avoids_the_worker_it_failed_on() -> None:
    group = key()
    retry = PendingJob("j1", 30.0, attempt=1, last_worker_id="w1", infra_retry=True)
    items = [replace(pending(group), jobs=(retry,))]
    assert decide(items, worker("w1"), others=[worker("w2")]) is None
    assert chosen(decide(items, worker("w2"), others=[worker("w1")])) == group
    # Nobody else serves the target: better the same worker than no run at all.
    assert chosen(decide(items, worker("w1"), others=[worker("w2", targets=[Target.DEVICE])]))


def test_a_test_failure_retry_may_go_back_to_the_same_worker() -> None:
    retry = PendingJob("j1", 30.0, attempt=1, last_worker_id="w1", infra_retry=False)
    items = [replace(pending(key()), jobs=(retry,))]
    assert decide(items, worker("w1"), others=[worker("w2")]) is not None


def test_backing_off_jobs_wait() -> None:
    later = PendingJob("j1", 30.0, attempt=1, not_before=NOW + timedelta(seconds=5))
    items = [replace(pending(key()), jobs=(later,))]
    assert decide(items) is None
    assert decide(items, now=NOW + timedelta(seconds=5)) is not None


def test_unavailable_builds_targets_and_full_workers_get_nothing() -> None:
    group = key()
    assert decide([pending(group, build_available=False)]) is None
    assert decide([pending(key(target=Target.DEVICE))]) is None
    assert decide([pending(group)], worker(free_slots=0)) is None
    assert decide([]) is None


def test_apply_claim_moves_jobs_into_a_lease() -> None:
    group = key()
    snapshot = QueueSnapshot((pending(group, [10.0, 20.0, 30.0]),), (), (worker(capacity=2),))
    decision = ClaimDecision(group, (f"{group.text}#2",), 60.0, "test")
    after = apply_claim(snapshot, decision, worker_id="w1", now=NOW)
    assert [job.job_id for job in after.pending[0].jobs] == [f"{group.text}#0", f"{group.text}#1"]
    assert after.pending[0].last_claimed_at == NOW
    assert after.running == (RunningGroup(group, "w1", 30.0),)
    assert after.workers[0].free_slots == 1


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="aging_bound_s"):
        SchedulerConfig(aging_bound_s=0)
    with pytest.raises(ValueError, match="org caps"):
        SchedulerConfig(org_caps={"acme": 0})
    with pytest.raises(ValueError, match="max_batch_s"):
        SchedulerConfig(max_batch_s=0)


# Properties over arbitrary snapshots

job_lists = st.lists(st.floats(min_value=1, max_value=600), min_size=1, max_size=12)
pending_keys = st.builds(
    lambda org, app, target, durations, priority, age_s, available, backoff: pending(
        key(app, org=org, target=target),
        durations,
        priority=priority,
        age_s=age_s,
        build_available=available,
        jobs=tuple(
            PendingJob(
                f"{org}/{app}/{target}#{n}",
                expected,
                not_before=NOW + timedelta(seconds=30) if backoff and n % 2 else None,
            )
            for n, expected in enumerate(durations)
        ),
    ),
    st.sampled_from(["acme", "globex"]),
    st.sampled_from(["v1", "v2", "v3"]),
    st.sampled_from(list(Target)),
    job_lists,
    st.sampled_from(list(Priority)),
    st.floats(min_value=0, max_value=4000),
    st.booleans(),
    st.booleans(),
)


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[QueueSnapshot, WorkerView]:
    items = draw(st.lists(pending_keys, max_size=6, unique_by=lambda p: p.key))
    keys = [p.key for p in items] or [key()]
    running = draw(
        st.lists(
            st.builds(
                RunningGroup,
                st.sampled_from(keys),
                st.sampled_from(["w2", "w3"]),
                st.floats(0, 500),
            ),
            max_size=6,
        )
    )
    targets = draw(st.frozensets(st.sampled_from(list(Target)), min_size=1))
    ready = draw(st.frozensets(st.sampled_from([k.build for k in keys])))
    asking = WorkerView("w1", targets, ready, capacity=2, free_slots=draw(st.integers(0, 2)))
    fleet = (asking, WorkerView("w2", frozenset(Target)), WorkerView("w3", frozenset({EMU})))
    return QueueSnapshot(tuple(items), tuple(running), fleet), asking


@settings(max_examples=300)
@given(snapshots(), st.sampled_from([None, 1, 3]))
def test_a_decision_is_always_a_valid_lease(
    case: tuple[QueueSnapshot, WorkerView], cap: int | None
) -> None:
    snapshot, asking = case
    config = replace(CONFIG, default_org_cap=cap, max_batch_s=120.0)
    decision = decide_claim(snapshot, asking, now=NOW, config=config)
    if decision is None:
        return
    item = next(p for p in snapshot.pending if p.key == decision.key)
    jobs = {job.job_id: job for job in item.jobs}
    assert asking.free_slots >= 1
    assert decision.key.target in asking.targets
    assert item.build_available
    assert decision.job_ids, "a lease is never empty"
    assert len(set(decision.job_ids)) == len(decision.job_ids)
    assert set(decision.job_ids) <= set(jobs), "a lease never mixes keys"
    waits = [jobs[j].not_before for j in decision.job_ids]
    assert all(not_before is None or not_before <= NOW for not_before in waits)
    estimates = [jobs[j].expected_s for j in decision.job_ids]
    assert estimates == sorted(estimates, reverse=True)
    assert decision.setup_expected_s == (0.0 if decision.key.build in asking.ready else 60.0)
    if cap is not None:
        org_groups = sum(1 for g in snapshot.running if g.key.org_id == decision.key.org_id)
        assert org_groups < cap
