"""Why a pending job waits: one reason, checked in the order a person wants to hear it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from dispatch.grouping import GroupKey
from dispatch.scheduling import (
    PendingJob,
    PendingKey,
    QueueSnapshot,
    RunningGroup,
    SchedulerConfig,
    WorkerView,
)
from dispatch.waiting import WaitingCode, WaitingReason, waiting_reason
from qgjob.types import Priority, Target

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CONFIG = SchedulerConfig()
EMU = WorkerView("w1", frozenset({Target.EMULATOR}))


def item(
    app: str, *, org: str = "acme", priority: Priority = Priority.NORMAL, age_s: float = 0
) -> PendingKey:
    key = GroupKey(org, app, Target.EMULATOR)
    return PendingKey(
        key=key,
        priority=priority,
        oldest_enqueued_at=NOW - timedelta(seconds=age_s),
        jobs=(PendingJob(f"{app}-job", 30.0),),
    )


def reason(
    snapshot: QueueSnapshot, job_id: str = "mine-job", config: SchedulerConfig = CONFIG
) -> WaitingReason | None:
    return waiting_reason(job_id, snapshot, now=NOW, config=config)


def test_backing_off_comes_first() -> None:
    job = PendingJob("mine-job", 30.0, attempt=2, not_before=NOW + timedelta(seconds=42))
    snapshot = QueueSnapshot((replace(item("mine"), jobs=(job,)),), (), ())
    got = reason(snapshot)
    assert got is not None
    assert got.code is WaitingCode.BACKING_OFF
    assert got.until == job.not_before
    assert "attempt 3" in got.message
    assert "42s" in got.message


def test_no_worker_for_the_target() -> None:
    device_only = WorkerView("d1", frozenset({Target.DEVICE}))
    got = reason(QueueSnapshot((item("mine"),), (), (device_only,)))
    assert got is not None
    assert got.code is WaitingCode.NO_WORKER
    assert str(got) == "no online worker serves emulator"


def test_waiting_for_the_build() -> None:
    snapshot = QueueSnapshot((replace(item("mine"), build_available=False),), (), (EMU,))
    got = reason(snapshot)
    assert got is not None
    assert got.code is WaitingCode.WAITING_FOR_BUILD


def test_org_at_its_cap() -> None:
    running = (RunningGroup(GroupKey("acme", "other", Target.EMULATOR), "w9", 0.0),)
    snapshot = QueueSnapshot((item("mine"),), running, (EMU,))
    got = reason(snapshot, config=SchedulerConfig(default_org_cap=1))
    assert got is not None
    assert got.code is WaitingCode.ORG_AT_CAP
    uncapped = reason(snapshot)
    assert uncapped is not None
    assert uncapped.code is not WaitingCode.ORG_AT_CAP


def test_behind_higher_priority_groups() -> None:
    items = (
        item("mine", priority=Priority.LOW),
        item("h1", org="o1", priority=Priority.HIGH),
        item("h2", org="o2", priority=Priority.NORMAL),
        item("h3", org="o3", priority=Priority.LOW, age_s=60),
    )
    got = reason(QueueSnapshot(items, (), (EMU,)))
    assert got is not None
    assert got.code is WaitingCode.BEHIND_HIGHER_PRIORITY
    assert got.ahead == 2
    assert "behind 2 higher-priority group(s)" in got.message


def test_aging_lifts_a_job_out_of_the_queue_behind() -> None:
    items = (item("mine", priority=Priority.LOW, age_s=1800), item("h1", priority=Priority.HIGH))
    got = reason(QueueSnapshot(items, (), (EMU,)))
    assert got is not None
    assert got.code is WaitingCode.WAITING_FOR_WORKER


def test_next_in_line_or_behind_older_groups() -> None:
    alone = reason(QueueSnapshot((item("mine"),), (), (EMU,)))
    assert alone is not None
    assert alone.code is WaitingCode.WAITING_FOR_WORKER
    assert alone.message == "next in line for a free emulator worker"
    queued = reason(QueueSnapshot((item("mine"), item("old", age_s=10)), (), (EMU,)))
    assert queued is not None
    assert queued.ahead == 1


def test_unknown_job_has_no_reason() -> None:
    assert reason(QueueSnapshot((item("mine"),), (), (EMU,)), job_id="nope") is None
