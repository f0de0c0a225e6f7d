"""`qgjob run`'s tree labels a run's groups by what happened to them."""

from __future__ import annotations

import io
import uuid
from typing import Any

from rich.console import Console

from qgjob.cli.fleet import run_tree
from qgjob.models import Run


def _run(groups: list[dict[str, Any]]) -> Run:
    jobs = [job for group in groups for job in group["jobs"]]
    return Run.model_validate(
        {
            "run_id": str(uuid.uuid4()),
            "org_id": "acme",
            "source": "cli",
            "app_version_id": "v1",
            "targets": ["emulator"],
            "status": "CANCELLED",
            "priority": "normal",
            "counts": {
                "total": len(jobs),
                "pending": 0,
                "assigned": 0,
                "running": 0,
                "completed": 0,
                "failed": 0,
                "cancelled": len(jobs),
            },
            "created_at": "2026-11-21T12:00:00+00:00",
            "finished_at": None,
            "groups": groups,
        }
    )


# A job that never ran has none of these yet.
_UNSET_JOB_FIELDS = (
    "outcome",
    "worker_id",
    "group_id",
    "error",
    "duration_ms",
    "started_at",
    "finished_at",
)


def _job(status: str) -> dict[str, Any]:
    return {
        "job_id": str(uuid.uuid4()),
        "run_id": str(uuid.uuid4()),
        "status": status,
        "org_id": "acme",
        "app_version_id": "v1",
        "test_path": "tests/a.spec.ts",
        "target": "emulator",
        "priority": "normal",
        "attempts": 0,
        "max_attempts": 3,
        "created_at": "2026-11-21T12:00:00+00:00",
        "updated_at": "2026-11-21T12:00:00+00:00",
        **dict.fromkeys(_UNSET_JOB_FIELDS),
    }


def _group(status: str, job_status: str) -> dict[str, Any]:
    return {
        "group_id": None,
        "status": status,
        "app_version_id": "v1",
        "target": "emulator",
        "worker_id": None,
        "worker_name": None,
        "install_ms": None,
        "jobs": [_job(job_status)],
    }


def _shown(run: Run) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(run_tree(run))
    return out.getvalue()


def test_jobs_cancelled_before_dispatch_are_not_shown_as_waiting() -> None:
    shown = _shown(_run([_group("CANCELLED", "CANCELLED"), _group("WAITING", "PENDING")]))
    assert "Cancelled before dispatch · app v1 · emulator · worker - · CANCELLED" in shown
    assert "Not dispatched yet · app v1 · emulator · worker - · WAITING" in shown
