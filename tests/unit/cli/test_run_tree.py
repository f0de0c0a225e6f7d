"""`qgjob run`'s tree labels a run's groups by what happened to them."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from qgjob.cli.fleet import run_tree
from qgjob.models import Run
from tests.unit.cli.test_specs_and_summary import job, run_of


def _undispatched(status: str, *jobs: dict[str, Any]) -> dict[str, Any]:
    """A group of a run's jobs that no worker took (as GET /v1/runs/{id} shows it)."""
    return {
        "group_id": None,
        "status": status,
        "app_version_id": "v1",
        "target": "emulator",
        "worker_id": None,
        "worker_name": None,
        "install_ms": None,
        "jobs": list(jobs),
    }


def test_jobs_cancelled_before_dispatch_are_not_shown_as_waiting() -> None:
    cancelled = job("tests/a.spec.ts", "CANCELLED", None, attempts=0)
    waiting = job("tests/b.spec.ts", "PENDING", None, attempts=0)
    retry = job("tests/c.spec.ts", "PENDING", None, attempts=1)  # its worker was lost
    shown = run_of(cancelled, waiting, retry, status="CANCELLED").model_dump(mode="json")
    shown["groups"] = [
        _undispatched("CANCELLED", cancelled),
        _undispatched("WAITING", waiting, retry),
    ]
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(run_tree(Run.model_validate(shown)))
    assert "Cancelled before dispatch · app v1 · emulator · worker - · CANCELLED" in out.getvalue()
    assert "Waiting for a worker (1 to retry) · app v1 · emulator · worker - · WAITING" in (
        out.getvalue()
    )
