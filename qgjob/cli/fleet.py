"""How the CLI shows workers and the groups they ran: the workers table and the run tree.

Pure renderers, like `qgjob.cli.output`: a record in, a rich renderable out. User data is
wrapped in `Text` so that brackets in a name or a test path are never read as markup.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from qgjob.cli.output import format_time, status_text
from qgjob.models import Job, Run, RunGroup
from qgjob.types import WorkerStatus
from qgjob.worker_api import WorkerRecord

_WORKER_STYLE = {
    WorkerStatus.IDLE: "green",
    WorkerStatus.BUSY: "cyan",
    WorkerStatus.DRAINING: "yellow",
    WorkerStatus.OFFLINE: "dim",
}
_GROUP_STYLE = {
    "WAITING": "yellow",
    "CANCELLED": "dim",
    "LEASED": "cyan",
    "FINISHED": "green",
    "RELEASED": "dim",
    "EXPIRED": "red",
}


class GroupLease(BaseModel):
    """The lease fields `GET /v1/runs/{id}` adds to each of a run's groups."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    group_id: UUID | None = None
    status: Literal["WAITING", "CANCELLED", "LEASED", "FINISHED", "RELEASED", "EXPIRED"] = "WAITING"
    worker_id: UUID | None = None
    worker_name: str | None = None
    install_ms: int | None = None

    @classmethod
    def of(cls, group: RunGroup) -> GroupLease:
        return cls.model_validate(group.model_extra or {})


def workers_table(workers: list[WorkerRecord]) -> Table:
    """The table of `qgjob workers`."""
    table = Table(title="Workers", title_justify="left")
    for name in ("Name", "Worker ID", "Status", "Targets", "Capacity"):
        table.add_column(name, no_wrap=True, justify="right" if name == "Capacity" else "left")
    table.add_column("Current groups", overflow="fold")
    table.add_column("Last heartbeat", no_wrap=True)
    for worker in workers:
        groups = ", ".join(
            f"{g.app_version_id}/{g.target} ({str(g.group_id)[:8]})" for g in worker.current_groups
        )
        table.add_row(
            Text(worker.name),
            str(worker.worker_id),
            Text(str(worker.status), style=_WORKER_STYLE.get(worker.status, "")),
            ", ".join(str(t) for t in worker.target_types),
            str(worker.capacity),
            Text(groups or "-"),
            format_time(worker.last_heartbeat),
        )
    return table


def run_tree(run: Run) -> Tree:
    """`qgjob run --run-id`: the run, each group that ran (or waits to run) its jobs, and
    the jobs with their status, outcome and duration."""
    counts = run.counts
    root = Tree(
        Text.assemble(
            ("Run ", "bold"),
            str(run.run_id),
            " ",
            status_text(run.status),
            f" · {run.org_id} · {counts.total} job{'s' if counts.total != 1 else ''}",
            f" · by {run.submitted_by}" if run.submitted_by else "",
        )
    )
    for group in run.groups or []:
        lease = GroupLease.of(group)
        branch = root.add(_group_label(group, lease))
        for job in group.jobs:
            branch.add(_job_label(job))
        if lease.status == "FINISHED":
            executed = sum(1 for job in group.jobs if job.outcome is not None)
            plural = "s" if executed != 1 else ""
            branch.add(Text(f"App installed once, {executed} test{plural} executed", "green"))
    return root


def _group_label(group: RunGroup, lease: GroupLease) -> Text:
    which = f"Group {str(lease.group_id)[:8]}" if lease.group_id else "Waiting for a worker"
    retries = sum(1 for job in group.jobs if job.attempts > 0)
    if lease.status == "WAITING" and retries:
        which += f" ({retries} to retry)"
    if lease.status == "CANCELLED":
        which = "Cancelled before dispatch"
    label = Text.assemble(
        (which, "bold"),
        " · app ",
        Text(group.app_version_id),
        f" · {group.target} · worker ",
        Text(lease.worker_name or "-"),
        " · ",
        (lease.status, _GROUP_STYLE.get(lease.status, "")),
    )
    if lease.install_ms is not None:
        label.append(f" · install {_seconds(lease.install_ms)}")
    return label


def _job_label(job: Job) -> Text:
    duration = _seconds(job.duration_ms) if job.duration_ms is not None else "-"
    return Text.assemble(
        status_text(job.status),
        " ",
        str(job.outcome or "-"),
        " ",
        duration,
        "  ",
        Text(job.test_path),
        (f"  {job.job_id}", "dim"),
    )


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.1f} s"
