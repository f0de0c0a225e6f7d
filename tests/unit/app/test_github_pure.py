"""The service side of the GitHub App, its pure parts: reports, render decisions, settings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.github.reports import failure_line, state_of, target_run
from app.github.service import default_details_url
from app.github.tracker import next_render
from app.github.triggers import Trigger
from app.store.checkruns import LiveCheckRun
from github_app.summary import RunState
from qgjob.settings import Settings, SettingsError
from qgjob.types import Outcome, Target

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def job(path: str, status: str, outcome: str | None = None, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "test_path": path, "status": status, "outcome": outcome, "duration_ms": None,
        "attempts": 1, "error": None, "started_at": None, "finished_at": None,
        "group_id": None, "worker_id": None, "install_ms": None,
    }  # fmt: skip
    row.update(extra)
    return row


def test_state_follows_the_jobs() -> None:
    assert state_of(total=3, finished=0, started=0, reason=None) is RunState.QUEUED
    assert state_of(total=3, finished=0, started=1, reason=None) is RunState.IN_PROGRESS
    assert state_of(total=3, finished=3, started=3, reason=None) is RunState.FINISHED
    assert state_of(total=3, finished=3, started=0, reason="superseded") is RunState.CANCELLED


def test_failure_line_is_read_from_the_error_at_the_spec_path() -> None:
    assert failure_line("tests/a.spec.ts", "boom\n at /w/tests/a.spec.ts:42:7") == 42
    assert failure_line("tests/a.spec.ts", "at tests/b.spec.ts:3:1") is None
    assert failure_line("tests/a.spec.ts", None) is None


def test_target_run_counts_groups_workers_and_setup_saved() -> None:
    g1, g2, w = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    start = NOW - timedelta(seconds=90)
    rows = [
        job("a", "COMPLETED", "passed", group_id=g1, worker_id=w, install_ms=2000,
            started_at=start, finished_at=NOW - timedelta(seconds=30)),
        job("b", "FAILED", "failed", group_id=g1, worker_id=w, install_ms=2000,
            started_at=start, finished_at=NOW, error="x at b:7"),
        job("c", "COMPLETED", "flaky", group_id=g1, worker_id=w, install_ms=2000,
            started_at=start, finished_at=NOW),
        job("d", "COMPLETED", "passed", group_id=g2, worker_id=w, install_ms=5000,
            started_at=start, finished_at=NOW),
    ]  # fmt: skip
    run = target_run(
        rows, run_id="r", target=Target.EMULATOR, head_sha="s" * 40,
        details_url="https://q/ui/runs/r", reason=None, now=NOW,
    )  # fmt: skip
    assert run.state is RunState.FINISHED
    assert (run.groups, run.workers, run.setup_saved_ms) == (2, 1, 4000)
    assert run.duration_ms == 90_000
    assert [s.outcome for s in run.specs] == [
        Outcome.PASSED, Outcome.FAILED, Outcome.FLAKY, Outcome.PASSED,
    ]  # fmt: skip
    assert run.specs[1].line == 7


def test_a_cancelled_job_has_no_outcome_and_a_requeued_one_is_pending() -> None:
    rows = [job("a", "CANCELLED"), job("b", "PENDING", attempts=1, started_at=NOW)]
    run = target_run(
        rows, run_id="r", target=Target.DEVICE, head_sha="s", details_url="u", reason=None, now=NOW
    )
    assert run.state is RunState.IN_PROGRESS
    assert [s.outcome for s in run.specs] == [None, None]


def live(**changes: Any) -> LiveCheckRun:
    values: dict[str, Any] = {
        "check_key": 1, "installation_id": 1, "run_id": uuid.uuid4(), "org_id": "o",
        "target": "emulator", "head_sha": "s", "state": "queued", "done": 0,
        "rendered_at": NOW - timedelta(seconds=1), "reason": None, "timed_out": False,
        "total": 10,
        "finished": 0, "started": 0,
    }  # fmt: skip
    values.update(changes)
    return LiveCheckRun(**values)


def test_progress_is_rendered_at_most_once_per_interval() -> None:
    decide = lambda row: next_render(row, now=NOW, progress_interval_s=5.0)  # noqa: E731
    assert decide(live()) is None
    assert decide(live(started=1)) is RunState.IN_PROGRESS
    assert decide(live(state="in_progress", started=2, finished=1, done=0)) is None
    old = NOW - timedelta(seconds=6)
    assert decide(live(state="in_progress", started=2, finished=1, rendered_at=old)) is not None
    assert decide(live(state="in_progress", started=2, finished=1, done=1, rendered_at=old)) is None
    assert decide(live(state="in_progress", finished=10, done=9)) is RunState.FINISHED
    ended = {"finished": 10, "reason": "the run took longer than its 60 minutes"}
    assert decide(live(**ended)) is RunState.CANCELLED
    assert decide(live(**ended, timed_out=True)) is RunState.TIMED_OUT
    # Marked timed out while jobs are still being cancelled: not final yet.
    assert decide(live(started=3, finished=9, timed_out=True, reason="…")) is not RunState.TIMED_OUT
    assert decide(live(finished=10, reason="superseded by abc")) is RunState.CANCELLED


def test_a_trigger_survives_its_json_round_trip() -> None:
    trigger = Trigger(
        kind="pull_request", installation_id=1, org_id="o", repo="o/r", head_sha="s",
        branch="b", pr_number=3, is_fork=True, fork_repo="f/r",
        targets=(Target.EMULATOR,), specs=("tests/a.spec.ts",),
    )  # fmt: skip
    assert Trigger.from_json(trigger.to_json()) == trigger


def test_details_url_defaults_to_the_public_url() -> None:
    assert default_details_url("https://q.example/")("r1", "org") == "https://q.example/ui/runs/r1"
    assert Settings(public_url=None).details_base_url == "http://127.0.0.1:8000"


def test_github_settings_come_all_together_or_not_at_all() -> None:
    assert not Settings.from_env({}).github_enabled
    env = {
        "QGJOB_GITHUB_APP_ID": "42",
        "QGJOB_GITHUB_PRIVATE_KEY": "pem",
        "QGJOB_GITHUB_WEBHOOK_SECRET": "s",
        "QGJOB_GITHUB_API_URL": "https://ghe.example/api/v3/",
    }
    settings = Settings.from_env(env)
    assert settings.github_enabled and settings.github_api_url == "https://ghe.example/api/v3"
    assert "pem" not in repr(settings)
    with pytest.raises(SettingsError, match="QGJOB_GITHUB_WEBHOOK_SECRET"):
        Settings.from_env({"QGJOB_GITHUB_APP_ID": "42", "QGJOB_GITHUB_PRIVATE_KEY": "pem"})


def test_deliveries_are_kept_at_least_as_long_as_github_redelivers() -> None:
    assert Settings().github_delivery_retention_days == 14
    kept = Settings.from_env({"QGJOB_GITHUB_DELIVERY_RETENTION_DAYS": "3"})
    assert kept.github_delivery_retention_days == 3
    with pytest.raises(SettingsError, match=r"RETENTION_DAYS must be at least 3, got 1\.5: Git"):
        Settings.from_env({"QGJOB_GITHUB_DELIVERY_RETENTION_DAYS": "1.5"})
    with pytest.raises(SettingsError, match="RETENTION_DAYS must be a number of days"):
        Settings.from_env({"QGJOB_GITHUB_DELIVERY_RETENTION_DAYS": "two weeks"})


def test_a_leased_job_counts_as_started_as_in_the_trackers_sql() -> None:
    run = target_run(
        [job("a", "ASSIGNED"), job("b", "PENDING")], run_id="r", target=Target.EMULATOR,
        head_sha="s", details_url="u", reason=None, now=NOW,
    )  # fmt: skip
    assert run.state is RunState.IN_PROGRESS
