"""`qgjob status`: show a job or a run once, or follow it in place until it ends.

Following is polling: fetch, redraw (rich `Live`), sleep, until the status is terminal.
The exit code then tells how it ended: 0 if it completed, 1 if it failed or was cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.live import Live

from qgjob.cli.context import EXIT_FAILURE, call_api
from qgjob.cli.output import as_json, failure, job_table, print_json, run_view, success
from qgjob.client import QgjobClient
from qgjob.models import Job, Run
from qgjob.settings import Settings
from qgjob.text import counted
from qgjob.types import JobStatus, RunStatus

R = TypeVar("R", bound=BaseModel)

TERMINAL_RUN_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


async def follow(
    fetch: Callable[[], Awaitable[R]],
    *,
    is_done: Callable[[R], bool],
    interval_s: float,
    on_update: Callable[[R], None],
) -> R:
    """Fetch until `is_done`, calling `on_update` with every answer; return the last one."""
    while True:
        current = await fetch()
        on_update(current)
        if is_done(current):
            return current
        await asyncio.sleep(interval_s)


def _show(
    settings: Settings,
    out: Console,
    *,
    fetch: Callable[[QgjobClient], Awaitable[R]],
    render: Callable[[R], RenderableType],
    is_done: Callable[[R], bool],
    watch: bool,
    interval_s: float,
    json_output: bool,
) -> R:
    async def go(client: QgjobClient) -> R:
        if not watch:
            return await fetch(client)
        if json_output:
            return await follow(
                lambda: fetch(client),
                is_done=is_done,
                interval_s=interval_s,
                on_update=lambda _: None,
            )
        with Live(console=out, auto_refresh=False) as live:
            last = await follow(
                lambda: fetch(client),
                is_done=is_done,
                interval_s=interval_s,
                on_update=lambda current: live.update(render(current), refresh=True),
            )
        if not out.is_terminal:
            out.line()  # rich ends the final frame with a newline only on a terminal
        return last

    current = call_api(settings, go)
    if json_output:
        print_json(out, as_json(current))
    elif not watch:
        out.print(render(current))
    return current


def show_job(
    settings: Settings,
    out: Console,
    *,
    job_id: UUID,
    watch: bool,
    interval_s: float,
    json_output: bool,
) -> int:
    """Show one job (following it with `watch`); the exit code for how it ended."""
    job: Job = _show(
        settings,
        out,
        fetch=lambda client: client.get_job(job_id),
        render=job_table,
        is_done=lambda current: current.status.is_terminal,
        watch=watch,
        interval_s=interval_s,
        json_output=json_output,
    )
    if not watch:
        return 0
    outcome = f" (outcome {job.outcome})" if job.outcome else ""
    if job.status is JobStatus.COMPLETED:
        if not json_output:
            success(out, f"Job completed{outcome}")
        return 0
    if not json_output:
        reason = f": {job.error}" if job.error else ""
        failure(out, f"Job {job.status.lower()}{outcome}{reason}")
    return EXIT_FAILURE


def show_run(
    settings: Settings,
    out: Console,
    *,
    run_id: UUID,
    watch: bool,
    interval_s: float,
    json_output: bool,
) -> int:
    """Show one run and its jobs (following it with `watch`); the exit code for how it ended."""
    run: Run = _show(
        settings,
        out,
        fetch=lambda client: client.get_run(run_id),
        render=run_view,
        is_done=lambda current: current.status in TERMINAL_RUN_STATUSES,
        watch=watch,
        interval_s=interval_s,
        json_output=json_output,
    )
    if not watch:
        return 0
    if run.status is RunStatus.COMPLETED:
        if not json_output:
            total = counted(run.counts.total, "job")
            success(out, f"Run completed: {run.counts.completed} of {total}")
        return 0
    if not json_output:
        failure(
            out,
            f"Run {run.status.lower()}: {run.counts.failed} failed, "
            f"{run.counts.cancelled} cancelled of {counted(run.counts.total, 'job')}",
        )
    return EXIT_FAILURE
