"""A run's jobs on one target turned into the `TargetRun` a check run shows (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from github_app.summary import RunState, SpecRow, TargetRun
from qgjob.types import Outcome, Target

_TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


def state_of(
    *, total: int, finished: int, started: int, reason: str | None, timed_out: bool = False
) -> RunState:
    """Where a check run stands given its jobs' counts; `reason` says why qgjob ended it
    early (cancelled, or `timed_out`), None when it ran its course."""
    if total and finished >= total:
        if timed_out:
            return RunState.TIMED_OUT
        return RunState.CANCELLED if reason else RunState.FINISHED
    if started or finished:
        return RunState.IN_PROGRESS
    return RunState.QUEUED


def _started(row: Mapping[str, Any]) -> bool:
    """Leased to a worker (its group has started) or run at least once; the same rule as the
    tracker's SQL (`live_check_runs`)."""
    return row["status"] in ("ASSIGNED", "RUNNING") or row["started_at"] is not None


def failure_line(path: str, error: str | None) -> int | None:
    """The line of `path` an error message points at (`…/login.spec.ts:42:7`), if any."""
    if not error:
        return None
    match = re.search(re.escape(path) + r":(\d+)", error)
    return int(match[1]) if match else None


def target_run(
    rows: Sequence[Mapping[str, Any]],
    *,
    run_id: str,
    target: Target,
    head_sha: str,
    details_url: str,
    reason: str | None,
    now: datetime,
    timed_out: bool = False,
) -> TargetRun:
    """The `TargetRun` of one run on one target from its job rows (see `report_rows`)."""
    specs = tuple(
        SpecRow(
            path=row["test_path"],
            outcome=Outcome(row["outcome"])
            if row["status"] in _TERMINAL and row["outcome"]
            else None,
            duration_ms=row["duration_ms"],
            attempts=row["attempts"],
            error=row["error"],
            line=failure_line(row["test_path"], row["error"]),
        )
        for row in rows
    )
    finished = sum(1 for row in rows if row["status"] in _TERMINAL)
    started = sum(1 for row in rows if _started(row))
    state = state_of(
        total=len(rows), finished=finished, started=started, reason=reason, timed_out=timed_out
    )
    starts = [row["started_at"] for row in rows if row["started_at"] is not None]
    ends = [row["finished_at"] for row in rows if row["finished_at"] is not None]
    started_at = min(starts) if starts else None
    completed_at = (
        max(ends) if ends and state not in (RunState.QUEUED, RunState.IN_PROGRESS) else None
    )
    duration_ms = None
    if started_at is not None:
        duration_ms = int(((completed_at or now) - started_at).total_seconds() * 1000)
    per_group: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["group_id"] is not None and row["worker_id"] is not None:
            per_group.setdefault(row["group_id"], []).append(row)
    # Each group paid its setup once; without grouping every further job would have paid it.
    saved = sum((jobs[0]["install_ms"] or 0) * (len(jobs) - 1) for jobs in per_group.values())
    return TargetRun(
        run_id=run_id,
        target=target,
        head_sha=head_sha,
        details_url=details_url,
        state=state,
        specs=specs,
        duration_ms=duration_ms,
        groups=len(per_group),
        workers=len({jobs[0]["worker_id"] for jobs in per_group.values()}),
        setup_saved_ms=saved,
        started_at=started_at,
        completed_at=completed_at,
        reason=reason,
    )
