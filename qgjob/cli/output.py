"""How the CLI shows things: ℹ/✓/✗ lines, rich tables, JSON, and one-line errors.

Renderers are pure (a record in, a rich renderable or a string out); the few functions that
print take the console to print on. Results go to stdout; errors go to stderr. User data is
always wrapped in `Text`, never parsed as rich markup, so a test path with brackets prints as is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from qgjob.errors import (
    ApiError,
    QgjobError,
    ServerUnreachable,
    Unauthorized,
    UnexpectedResponse,
)
from qgjob.models import Job, Run, Stats
from qgjob.types import JobStatus, RunStatus

# Pipes and files are not narrow terminals: keep ids and paths on one line there.
_PIPE_WIDTH = 160

_STATUS_STYLE = {
    "PENDING": "yellow",
    "ASSIGNED": "cyan",
    "RUNNING": "cyan",
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELLED": "dim",
}


def make_console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = _PIPE_WIDTH
    return console


def info(console: Console, message: str) -> None:
    console.print(Text.assemble(("ℹ ", "blue"), message))


def success(console: Console, message: str) -> None:
    console.print(Text.assemble(("✓ ", "green"), message))


def failure(console: Console, message: str) -> None:
    console.print(Text.assemble(("✗ ", "red"), message))


def print_json(console: Console, data: Any) -> None:
    """Plain JSON (no colour, no wrapping) so that it can be piped into `jq`."""
    console.out(json.dumps(data, indent=2, ensure_ascii=False), highlight=False)


def print_error(message: str) -> None:
    make_console(stderr=True).print(Text(f"Error: {message}", style="red"))


def as_json(record: BaseModel) -> dict[str, Any]:
    """A record as the service sent it: its fields, and only those."""
    return record.model_dump(mode="json", exclude_unset=True)


# The API fields the commands send and the options they come from, so that the service's
# refusal of a field speaks of what the user typed (`describe_error(options=…)`).
FIELD_OPTIONS = {
    "org_id": "--org-id",
    "app_version_id": "--app-version-id",
    "tests": "--test",
    "targets": "--target",
    "priority": "--priority",
    "source": "--source",
    "repo": "--repo",
    "ref": "--ref",
    "head_sha": "--head-sha",
    "status": "--status",
    "run_id": "--run-id",
    "url": "--url",
    "sha256": "--sha256",
    "filename": "--filename",
}


def describe_error(exc: Exception, *, options: Mapping[str, str] | None = None) -> str:
    """One sentence for the user: what went wrong and, when we know, what to do about it.

    `options` names the command-line option behind each API field (`{"org_id": "--org-id"}`),
    so that a refusal by the service speaks of what the user typed.
    """
    if isinstance(exc, ServerUnreachable):
        return (
            f"{exc}; is it running? Start one with `qgjob server`, "
            "or point --server-url / QGJOB_SERVER_URL at a running one"
        )
    if isinstance(exc, Unauthorized):
        hint = "pass a token with --token or QGJOB_TOKEN"
        # The service's own message may already say how to create one; say it once.
        if "qgjob token create" not in exc.message:
            hint += " (create one with `qgjob token create`)"
        return f"the server refused the credentials: {exc.message} (HTTP 401); {hint}"
    if isinstance(exc, ApiError):
        option = (options or {}).get(exc.field or "")
        return f"{_about(exc, option)} (HTTP {exc.status} {exc.code})"
    if isinstance(exc, UnexpectedResponse):
        return f"{exc} (is the server a qgjob of the same version?)"
    if isinstance(exc, QgjobError):
        return str(exc) or type(exc).__name__
    return str(exc)


def _about(exc: ApiError, option: str | None) -> str:
    """The service's message, naming `option` instead of the field when there is one."""
    field = exc.field
    if field is None:
        return exc.message
    if option is None:
        # The service's message often names the field already; say it once.
        return exc.message if exc.message.startswith(field) else f"{field}: {exc.message}"
    message = exc.message.removeprefix(f"{field}: ")
    if message.startswith(f"{field} "):
        return option + message[len(field) :]
    return f"{option}: {message}"


def status_text(status: JobStatus | RunStatus) -> Text:
    return Text(str(status), style=_STATUS_STYLE.get(str(status), ""))


def format_time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _key_value_table(title: str, rows: Sequence[tuple[str, str | Text]]) -> Table:
    table = Table(title=title, show_header=True, title_justify="left")
    table.add_column("Field", style="bold", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else Text(value))
    return table


def job_table(job: Job) -> Table:
    """The key/value table of `qgjob status --job-id`."""
    rows: list[tuple[str, str | Text]] = [
        ("Job ID", str(job.job_id)),
        ("Status", status_text(job.status)),
        ("Organization", job.org_id),
        ("App Version", job.app_version_id),
        ("Test Path", job.test_path),
        ("Target", str(job.target)),
        ("Priority", str(job.priority)),
        ("Worker ID", job.worker_id or "-"),
        ("Created", format_time(job.created_at)),
        ("Updated", format_time(job.updated_at)),
        ("Started", format_time(job.started_at)),
    ]
    if job.waiting_reason is not None:
        rows.append(("Waiting", job.waiting_reason.message))
    if job.finished_at is not None:
        rows.append(("Finished", format_time(job.finished_at)))
    if job.outcome is not None:
        rows.append(("Outcome", str(job.outcome)))
    if job.duration_ms is not None:
        rows.append(("Duration", f"{job.duration_ms / 1000:.1f} s"))
    if job.attempts:
        rows.append(("Attempts", f"{job.attempts} of {job.max_attempts}"))
    if job.error:
        rows.append(("Error", job.error))
    return _key_value_table("Job Status", rows)


def submitted_jobs_table(jobs: Sequence[Job]) -> Table:
    """The jobs of a run just submitted."""
    table = Table(title="Jobs", title_justify="left")
    table.add_column("Job ID", no_wrap=True)
    table.add_column("Test", overflow="fold")
    table.add_column("Target", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for job in jobs:
        table.add_row(
            str(job.job_id), Text(job.test_path), str(job.target), status_text(job.status)
        )
    return table


def listed_jobs_table(jobs: Sequence[Job], *, title: str = "Jobs") -> Table:
    """The table of `qgjob list` and of a run's jobs."""
    table = Table(title=title, title_justify="left")
    for name in ("Job ID", "Status", "Outcome"):
        table.add_column(name, no_wrap=True)
    table.add_column("Test", overflow="fold")
    for name in ("Target", "Priority", "App Version", "Created"):
        table.add_column(name, no_wrap=True)
    for job in jobs:
        table.add_row(
            str(job.job_id),
            status_text(job.status),
            str(job.outcome or "-"),
            Text(job.test_path),
            str(job.target),
            str(job.priority),
            Text(job.app_version_id),
            format_time(job.created_at),
        )
    return table


def run_view(run: Run) -> RenderableType:
    """`qgjob status --run-id`: the run's key/value table, then its jobs."""
    counts = run.counts
    tally = (
        f"{counts.total} total · {counts.pending} pending · {counts.assigned} assigned · "
        f"{counts.running} running · {counts.completed} completed · {counts.failed} failed · "
        f"{counts.cancelled} cancelled"
    )
    summary = _key_value_table(
        "Run Status",
        [
            ("Run ID", str(run.run_id)),
            ("Status", status_text(run.status)),
            ("Organization", run.org_id),
            ("App Version", run.app_version_id),
            ("Targets", ", ".join(str(t) for t in run.targets)),
            ("Priority", str(run.priority)),
            ("Source", str(run.source)),
            ("Created", format_time(run.created_at)),
            ("Finished", format_time(run.finished_at)),
            ("Jobs", tally),
        ],
    )
    return Group(summary, listed_jobs_table(run.all_jobs))


def stats_tables(stats: Stats) -> tuple[Table, Table]:
    """The two tables of `qgjob stats`."""
    jobs = Table(title="Job Statistics", title_justify="left")
    jobs.add_column("Metric", style="bold")
    jobs.add_column("Count", justify="right")
    for label, value in (
        ("Total", stats.jobs.total),
        ("Pending", stats.jobs.pending),
        ("Running", stats.jobs.running),
        ("Completed", stats.jobs.completed),
        ("Failed", stats.jobs.failed),
        ("Cancelled", stats.jobs.cancelled),
    ):
        jobs.add_row(label, str(value))
    workers = Table(title="Worker Statistics", title_justify="left")
    workers.add_column("Metric", style="bold")
    workers.add_column("Count", justify="right")
    for label, value in (
        ("Total Workers", stats.workers.total),
        ("Active Workers", stats.workers.active),
        ("Groups", stats.groups.total),
    ):
        workers.add_row(label, str(value))
    return jobs, workers
