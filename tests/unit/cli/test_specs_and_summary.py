"""Spec discovery by glob (qgjob.specs), the Markdown run summary (qgjob.cli.summary) and the
progress line of `submit --wait` (qgjob.cli.progress): pure functions and a temp directory."""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from qgjob.cli.inputs import BadInput
from qgjob.cli.progress import PlainProgress, Waited, clock, live_view, progress_line
from qgjob.cli.submitting import parse_targets
from qgjob.cli.summary import render_discovery, render_summary
from qgjob.models import Run
from qgjob.specs import expand_braces, find_specs
from qgjob.types import Target

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC).isoformat()


@pytest.mark.parametrize(
    ("pattern", "expanded"),
    [
        ("a.{ts,js}", ["a.ts", "a.js"]),
        ("{x,y}/{1,2}", ["x/1", "x/2", "y/1", "y/2"]),
        ("a.{ts,{js,mjs}}", ["a.ts", "a.js", "a.mjs"]),
        ("a{b}c", ["a{b}c"]),
        ("a{b,c", ["a{b,c"]),
    ],
)
def test_expand_braces(pattern: str, expanded: list[str]) -> None:
    assert expand_braces(pattern) == expanded


def test_find_specs_matches_like_minimatch(tmp_path: Path) -> None:
    for path in (
        "tests/a.spec.ts",
        "tests/deep/er/b.spec.js",
        "tests/c.test.ts",
        "tests/node_modules/pkg/d.spec.ts",
        "tests/.cache/e.spec.ts",
        "other/f.spec.ts",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    (tmp_path / "tests" / "dir.spec.ts").mkdir()
    found = find_specs(tmp_path, "tests/**/*.spec.{ts,js}")
    assert found == ["tests/a.spec.ts", "tests/deep/er/b.spec.js"]
    assert find_specs(tmp_path, "./tests/*.spec.ts") == ["tests/a.spec.ts"]
    assert find_specs(tmp_path, "**/f.spec.ts") == ["other/f.spec.ts"]
    for bad in ("", "../x/*.ts", "/etc/*"):
        with pytest.raises(ValueError, match="glob"):
            find_specs(tmp_path, bad)


def job(path: str, status: str, outcome: str | None, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": str(uuid.uuid4()),
        "run_id": None,
        "status": status,
        "outcome": outcome,
        "org_id": "acme",
        "app_version_id": "v1",
        "test_path": path,
        "target": "emulator",
        "priority": "normal",
        "worker_id": None,
        "group_id": None,
        "attempts": 1,
        "max_attempts": 3,
        "error": None,
        "duration_ms": 1500,
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": NOW,
        "finished_at": NOW,
        **extra,
    }


def run_of(*jobs: dict[str, Any], status: str = "COMPLETED") -> Run:
    counts = {s: 0 for s in ("pending", "assigned", "running", "completed", "failed", "cancelled")}
    for j in jobs:
        counts[j["status"].lower()] += 1
    return Run.model_validate(
        {
            "run_id": str(uuid.uuid4()),
            "org_id": "acme",
            "source": "actions",
            "app_version_id": "v1",
            "targets": ["emulator"],
            "priority": "normal",
            "status": status,
            "created_at": NOW,
            "finished_at": NOW,
            "counts": {"total": len(jobs), **counts},
            "groups": [
                {
                    "group_id": str(uuid.uuid4()),
                    "status": "FINISHED",
                    "app_version_id": "v1",
                    "target": "emulator",
                    "worker_name": "lab-1",
                    "install_ms": 4200,
                    "jobs": list(jobs),
                }
            ],
        }
    )


def test_a_passing_summary_has_submission_execution_and_verdict() -> None:
    run = run_of(
        job("tests/a|b.spec.ts", "COMPLETED", "passed"), job("t`x`.ts", "COMPLETED", "flaky")
    )
    text = render_summary(run, elapsed_s=75, server_url="https://qgjob.example.com")
    assert [line for line in text.splitlines() if line.startswith("#")] == [
        "## 📤 Job Submission",
        "## 🧪 Test Execution",
        "### emulator · `v1` on `lab-1` (finished)",
        "## ✅ Build Passed",
    ]
    assert "| `tests/a\\|b.spec.ts` | COMPLETED | ✅ passed | 1.5 s | 1 |" in text
    assert "| ``t`x`.ts`` | COMPLETED | ⚠️ flaky |" in text
    assert "Setup (install/upload): 4.2 s" in text
    assert "**Totals:** 1 passed · 1 flaky — 1m 15s" in text
    assert "All 2 tests passed (1 flaky: passed on a retry)." in text


def test_a_failing_summary_names_each_failed_spec_and_its_error() -> None:
    error = "expect(received).toBe(expected)\n\nExpected: 1\nReceived: 2 ```"
    run = run_of(
        job("tests/a.spec.ts", "COMPLETED", "passed"),
        job("tests/b.spec.ts", "FAILED", "failed", error=error),
        job("tests/c.spec.ts", "FAILED", "timed_out", error=None),
        status="FAILED",
    )
    text = render_summary(run, elapsed_s=3)
    failed = text.split("## ❌ Build Failed\n", 1)[1]
    assert "2 of 3 tests failed." in failed
    assert "- **`tests/b.spec.ts`** (emulator): `expect(received).toBe(expected)`" in failed
    assert "- **`tests/c.spec.ts`** (emulator): `timed_out`" in failed
    assert "<details><summary>tests/b.spec.ts (emulator)</summary>" in failed
    assert "Received: 2 `\u200b``" in failed  # a fence in the error cannot close the block
    assert "Build Passed" not in text


def test_a_summary_of_one_test_speaks_of_it_in_the_singular() -> None:
    passed = render_summary(run_of(job("tests/a.spec.ts", "COMPLETED", "passed")), elapsed_s=1)
    assert "\n1 test passed.\n" in passed
    failed = render_summary(
        run_of(job("tests/a.spec.ts", "FAILED", "failed"), status="FAILED"), elapsed_s=1
    )
    assert "1 of 1 test failed." in failed
    cancelled = run_of(
        job("tests/a.spec.ts", "CANCELLED", None),
        job("tests/b.spec.ts", "COMPLETED", "passed"),
        status="CANCELLED",
    )
    assert "1 of 2 jobs was cancelled." in render_summary(cancelled, elapsed_s=1)
    timed_out = render_summary(cancelled, elapsed_s=1, timed_out=True)
    assert "1 of 2 jobs was cancelled unfinished." in timed_out


def test_discovery_lists_the_specs_and_the_glob() -> None:
    text = render_discovery(["tests/a.spec.ts"], pattern="tests/**/*.spec.{ts,js}")
    assert text.startswith("## 🔍 Test Discovery\n\nFound **1** spec file matching ")
    assert "- `tests/a.spec.ts`" in text
    assert "Found **0** spec files" in render_discovery([], pattern="x")


def test_progress_line_and_exit_codes() -> None:
    run = run_of(
        job("a", "COMPLETED", "passed"),
        job("b", "FAILED", "failed"),
        job("c", "PENDING", None),
        status="RUNNING",
    )
    assert progress_line(run, elapsed_s=83) == (
        "[01:23] 1 group (0 running) · 2/3 done · 1 failed · 0 running · 1 pending"
    )
    assert clock(3725) == "1:02:05"
    assert Waited(run=run, timed_out=True, elapsed_s=1).exit_code == 3
    assert (
        Waited(run=run_of(job("a", "COMPLETED", "flaky")), timed_out=False, elapsed_s=1).exit_code
        == 0
    )
    failed = run_of(job("b", "FAILED", "failed"), status="FAILED")
    assert Waited(run=failed, timed_out=False, elapsed_s=1).exit_code == 1
    cancelled = run_of(job("b", "CANCELLED", None), status="CANCELLED")
    assert Waited(run=cancelled, timed_out=False, elapsed_s=1).exit_code == 1


def test_targets_and_test_lists() -> None:
    assert parse_targets(["emulator", "browserstack, device", "EMULATOR"]) == [
        Target.EMULATOR,
        Target.BROWSERSTACK,
        Target.DEVICE,
    ]
    with pytest.raises(BadInput, match="--target must be one of"):
        parse_targets(["phone"])
    with pytest.raises(BadInput, match="at least one"):
        parse_targets([" , "])


def test_plain_progress_prints_a_line_only_when_something_changed() -> None:
    out = Console(file=io.StringIO(), width=200, force_terminal=False)
    progress = PlainProgress(out, started=time.monotonic())
    waiting = run_of(job("a", "PENDING", None), status="PENDING")
    done = run_of(job("a", "COMPLETED", "passed"))
    for run in (waiting, waiting, waiting, done, done):
        progress.update(run)
    lines = out.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 2
    assert lines[0].endswith("0/1 done · 0 failed · 0 running · 1 pending")
    assert lines[1].endswith("1/1 done · 0 failed · 0 running · 0 pending")


def test_the_terminal_view_shows_the_run_and_each_group() -> None:
    out = Console(record=True, width=120, force_terminal=True)
    run = run_of(job("a", "COMPLETED", "passed"), job("b", "RUNNING", None), status="RUNNING")
    out.print(live_view(run, elapsed_s=5))
    text = out.export_text()
    assert "[00:05] 1 group (0 running) · 1/2 done · 0 failed · 1 running · 0 pending" in text
    assert "emulator · v1 · lab-1: 1/2 done, 0 failed" in text
