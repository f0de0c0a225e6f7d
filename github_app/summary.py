"""The plain summary of one run on one target, which `checks.py` renders into check runs.

The service builds a `TargetRun` from its store (jobs, groups, timings); nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from qgjob.types import Outcome, Target

FAILING_OUTCOMES = frozenset({Outcome.FAILED, Outcome.TIMED_OUT, Outcome.ERROR})


class RunState(StrEnum):
    """Where the run stands on this target, as far as its check run is concerned."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"  # every job reached a terminal status
    CANCELLED = "cancelled"  # e.g. superseded by a newer push
    TIMED_OUT = "timed_out"  # the run as a whole exceeded its deadline


@dataclass(frozen=True)
class SpecRow:
    """One spec file's result on this target; `outcome` None means not finished (or never run)."""

    path: str
    outcome: Outcome | None = None
    duration_ms: int | None = None
    attempts: int = 0
    error: str | None = None
    line: int | None = None  # where the failure is, 1-based, when the report says


@dataclass(frozen=True)
class TargetRun:
    """Everything a check run `qgjob / <target>` shows for one run (`run_id` → `external_id`)."""

    run_id: str
    target: Target
    head_sha: str
    details_url: str
    state: RunState
    specs: tuple[SpecRow, ...] = ()
    duration_ms: int | None = None
    groups: int = 0
    workers: int = 0
    setup_saved_ms: int = 0  # install/upload time grouping avoided
    started_at: datetime | None = None
    completed_at: datetime | None = None
    reason: str | None = None  # shown when cancelled or timed out, e.g. "superseded by 1a2b3c4"


@dataclass(frozen=True)
class Counts:
    """How many specs ended how; `pending` counts those without an outcome yet."""

    total: int
    passed: int
    flaky: int
    failed: int  # failed + timed_out + error
    skipped: int
    pending: int

    @classmethod
    def of(cls, specs: tuple[SpecRow, ...]) -> Counts:
        by_outcome = Counter(spec.outcome for spec in specs)
        return cls(
            total=len(specs),
            passed=by_outcome[Outcome.PASSED],
            flaky=by_outcome[Outcome.FLAKY],
            failed=sum(by_outcome[o] for o in FAILING_OUTCOMES),
            skipped=by_outcome[Outcome.SKIPPED],
            pending=by_outcome[None],
        )

    @property
    def done(self) -> int:
        return self.total - self.pending


def format_duration(duration_ms: int | None) -> str:
    """`850ms`, `12.3s`, `3m 12s`, `1h 02m`; an em dash when unknown."""
    if duration_ms is None:
        return "—"
    if duration_ms < 1000:
        return f"{duration_ms}ms"
    seconds = duration_ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"
