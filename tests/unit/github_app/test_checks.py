"""Check-run rendering: states, conclusions, annotations in pages of 50, GitHub's limits.

Every body is validated against the request schemas in `openapi-subset.json`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from github_app.checks import (
    CheckRunRequests,
    render_check_run,
    render_config_failure,
    render_fork_blocked,
)
from github_app.summary import RunState, SpecRow, TargetRun, format_duration
from qgjob.types import Outcome, Target
from tests.standins.github import load_request_validators
from tests.unit.github_app.conftest import OPENAPI, require_shared

CREATE = "POST /repos/{owner}/{repo}/check-runs"
UPDATE = "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}"
SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
STARTED = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def validators() -> dict[str, Any]:
    return load_request_validators(require_shared(OPENAPI))


def valid(requests: CheckRunRequests, validators: dict[str, Any]) -> CheckRunRequests:
    """Raise unless every body of `requests` is what GitHub accepts."""
    validators[CREATE].validate(requests.create_body)
    validators[UPDATE].validate(requests.update_body)
    for body in requests.more:
        validators[UPDATE].validate(body)
    return requests


def run(state: RunState, *outcomes: Outcome | None, **changes: Any) -> TargetRun:
    specs = tuple(
        SpecRow(f"tests/s{i:04d}.spec.ts", outcome, 1200 + i, 1, None, None)
        for i, outcome in enumerate(outcomes)
    )
    base = TargetRun(
        run_id="run-123",
        target=Target.EMULATOR,
        head_sha=SHA,
        details_url="https://qgjob.example/runs/run-123",
        state=state,
        specs=specs,
        duration_ms=192_000,
        groups=2,
        workers=2,
        setup_saved_ms=100_000,
        started_at=STARTED,
        completed_at=datetime(2026, 11, 21, 10, 3, 12, tzinfo=UTC),
    )
    return replace(base, **changes)


P, F, FL, T, E, S = (
    Outcome.PASSED,
    Outcome.FAILED,
    Outcome.FLAKY,
    Outcome.TIMED_OUT,
    Outcome.ERROR,
    Outcome.SKIPPED,
)


def test_queued(validators: dict[str, Any]) -> None:
    requests = valid(render_check_run(run(RunState.QUEUED, None, None, None)), validators)
    body = requests.create_body
    assert body["name"] == "qgjob / emulator"
    assert body["head_sha"] == SHA
    assert body["external_id"] == "run-123"
    assert body["details_url"] == "https://qgjob.example/runs/run-123"
    assert body["status"] == "queued"
    assert "conclusion" not in body
    assert "actions" not in body
    assert body["output"]["title"] == "Queued: 3 specs"
    assert "head_sha" not in requests.update_body
    assert requests.more == ()


def test_in_progress(validators: dict[str, Any]) -> None:
    requests = valid(render_check_run(run(RunState.IN_PROGRESS, P, F, None)), validators)
    body = requests.update_body
    assert body["status"] == "in_progress"
    assert body["started_at"] == "2026-11-21T10:00:00Z"
    assert body["output"]["title"] == "Running: 2 of 3 specs done, 1 failed"
    assert "| `tests/s0001.spec.ts` | ❌ failed |" in body["output"]["text"]
    assert "annotations" not in body["output"]  # only the completed render annotates


@pytest.mark.parametrize(
    ("state", "outcomes", "conclusion", "title"),
    [
        (RunState.FINISHED, (P, P), "success", "2 passed"),
        (RunState.FINISHED, (P, FL), "success", "1 flaky, 1 passed"),
        (RunState.FINISHED, (S, P), "success", "1 passed, 1 skipped"),
        (RunState.FINISHED, (P, F, FL), "failure", "1 failed, 1 flaky, 1 passed"),
        (RunState.FINISHED, (P, T), "failure", "1 failed, 1 passed"),
        (RunState.FINISHED, (E,), "failure", "1 failed"),
        (RunState.FINISHED, (P, None), "cancelled", "1 passed, 1 pending"),
        (RunState.FINISHED, (), "neutral", "No specs matched"),
        (RunState.CANCELLED, (P, None), "cancelled", "Cancelled: superseded by 1a2b3c4"),
        (RunState.TIMED_OUT, (P, None), "timed_out", "Timed out: superseded by 1a2b3c4"),
    ],
)
def test_conclusions(
    validators: dict[str, Any],
    state: RunState,
    outcomes: tuple[Outcome | None, ...],
    conclusion: str,
    title: str,
) -> None:
    reason = "superseded by 1a2b3c4" if state is not RunState.FINISHED else None
    body = valid(render_check_run(run(state, *outcomes, reason=reason)), validators).create_body
    assert body["status"] == "completed"
    assert body["conclusion"] == conclusion
    assert body["completed_at"] == "2026-11-21T10:03:12Z"
    assert body["output"]["title"] == title
    has_failures = any(o in (F, T, E) for o in outcomes)
    assert ("actions" in body) is has_failures
    if has_failures:
        assert body["actions"] == [
            {
                "label": "Re-run failed",
                "identifier": "rerun_failed",
                "description": "Run the failed specs again",
            }
        ]


def test_summary_has_counts_duration_groups_workers_and_setup_saved() -> None:
    summary = render_check_run(run(RunState.FINISHED, P, F, FL)).body["output"]["summary"]
    assert "**3 specs** on `emulator`: 1 failed, 1 flaky, 1 passed" in summary
    assert "Duration: 3m 12s" in summary
    assert "2 groups on 2 workers" in summary
    assert "Setup time saved by grouping: 1m 40s" in summary
    assert "(https://qgjob.example/runs/run-123)" in summary


def test_annotations_come_fifty_per_request(validators: dict[str, Any]) -> None:
    outcomes = [F] * 100 + [T] * 20 + [FL] * 10 + [P] * 5
    finished = run(RunState.FINISHED, *outcomes)
    finished = replace(
        finished,
        specs=tuple(
            replace(s, line=i + 1, error=f"boom {i}") for i, s in enumerate(finished.specs)
        ),
    )
    requests = valid(render_check_run(finished), validators)
    first = requests.create_body["output"]["annotations"]
    pages = [first] + [body["output"]["annotations"] for body in requests.more]
    assert [len(page) for page in pages] == [50, 50, 30]
    flat = [note for page in pages for note in page]
    assert [n["annotation_level"] for n in flat] == ["failure"] * 120 + ["warning"] * 10
    assert flat[0] == {
        "path": "tests/s0000.spec.ts",
        "start_line": 1,
        "end_line": 1,
        "annotation_level": "failure",
        "title": "failed: tests/s0000.spec.ts",
        "message": "boom 0",
    }
    assert flat[125]["path"] == "tests/s0125.spec.ts"
    assert flat[125]["start_line"] == 126
    for body in requests.more:  # further pages keep the title and summary GitHub requires
        assert body["output"]["summary"] == requests.body["output"]["summary"]
        assert set(body) == {"output"}


def test_annotation_budget_and_missing_line() -> None:
    finished = run(RunState.FINISHED, *([F] * 120))
    requests = render_check_run(finished, max_annotations=60)
    assert len(requests.body["output"]["annotations"]) == 50
    assert [len(b["output"]["annotations"]) for b in requests.more] == [10]
    assert requests.body["output"]["annotations"][0]["start_line"] == 1  # no line known


def test_large_runs_stay_within_githubs_limits(validators: dict[str, Any]) -> None:
    error = "Error: expected | to be visible\n" + "x" * 70_000
    finished = run(RunState.FINISHED, *([F] * 3000), reason="🚀" * 300)
    finished = replace(
        finished,
        state=RunState.CANCELLED,
        specs=tuple(replace(s, error=error) for s in finished.specs),
    )
    requests = valid(render_check_run(finished), validators)
    output = requests.body["output"]
    assert len(output["title"]) <= 255
    assert len(output["summary"].encode()) <= 65535
    assert len(output["text"].encode()) <= 65535
    assert "more specs: see [the run page](https://qgjob.example/runs/run-123)" in output["text"]
    assert "expected \\| to be visible" in output["text"]  # a pipe cannot break the table
    for body in (requests.body, *requests.more):
        for note in body["output"]["annotations"]:
            assert len(note["message"].encode()) < 64 * 1024
            assert len(note["title"]) <= 255
    assert sum(len(b["output"]["annotations"]) for b in requests.more) == 450


def test_fork_pull_request_waits_for_a_maintainer(validators: dict[str, Any]) -> None:
    requests = render_fork_blocked(
        run_id="run-9",
        target=Target.BROWSERSTACK,
        head_sha=SHA,
        details_url="https://qgjob.example/runs/run-9",
        head_repo="contributor/app",
    )
    body = valid(requests, validators).create_body
    assert body["name"] == "qgjob / browserstack"
    assert body["conclusion"] == "action_required"
    assert body["details_url"] == "https://qgjob.example/runs/run-9"
    assert "`contributor/app`" in body["output"]["summary"]
    assert "run_forks = true" in body["output"]["summary"]


def test_broken_config_fails_and_shows_the_error(validators: dict[str, Any]) -> None:
    error = "qgjob.toml: unknown target 'ios'; accepted targets are emulator```"
    requests = valid(render_config_failure(head_sha=SHA, error=error), validators)
    body = requests.create_body
    assert body["name"] == "qgjob"
    assert body["conclusion"] == "failure"
    assert body["output"]["title"] == "Invalid qgjob.toml"
    assert "unknown target 'ios'" in body["output"]["summary"]
    assert body["output"]["summary"].count("```") == 2  # the error cannot close the fence
    named = render_config_failure(
        head_sha=SHA, error="x", details_url="https://q/runs/1", target=Target.DEVICE
    )
    assert named.create_body["name"] == "qgjob / device"
    assert named.create_body["details_url"] == "https://q/runs/1"


def test_schema_check_is_real(validators: dict[str, Any]) -> None:
    """The validation used above does refuse what GitHub refuses."""
    body = render_check_run(run(RunState.FINISHED, P)).create_body
    del body["conclusion"]
    with pytest.raises(jsonschema.ValidationError):
        validators[CREATE].validate(body)
    too_many = render_check_run(run(RunState.FINISHED, F)).create_body
    too_many["output"]["annotations"] *= 51
    with pytest.raises(jsonschema.ValidationError):
        validators[CREATE].validate(too_many)


@pytest.mark.parametrize(
    ("duration_ms", "text"),
    [(None, "—"), (850, "850ms"), (12_340, "12.3s"), (192_000, "3m 12s"), (3_725_000, "1h 02m")],
)
def test_format_duration(duration_ms: int | None, text: str) -> None:
    assert format_duration(duration_ms) == text
