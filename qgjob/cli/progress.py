"""`qgjob submit --wait`: follow a run to its end, showing progress, within a time limit.

On a terminal the progress redraws in place (rich `Live`): one line for the run (groups,
jobs done/failed, elapsed) and one per group. Elsewhere (CI logs, pipes) it is plain lines,
one whenever the counts change and otherwise one a minute, so that a log shows both what
happened and that the wait is alive.

The exit codes: 0 when every job passed (flaky and skipped count as passed), 1 when any
failed or was cancelled, 3 when the run did not end within `--timeout` (its unfinished jobs
are cancelled then, so that devices are not kept busy for a build nobody waits for; Ctrl-C
does the same, see `qgjob.cli.submitting`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from qgjob.cli.context import EXIT_FAILURE
from qgjob.cli.watching import TERMINAL_RUN_STATUSES, follow
from qgjob.client import QgjobClient
from qgjob.models import Run, RunGroup
from qgjob.types import JobStatus, RunStatus

EXIT_PASSED = 0
EXIT_TIMEOUT = 3
PLAIN_HEARTBEAT_S = 60.0


@dataclass(frozen=True)
class Waited:
    """How the wait ended: the run as last seen, whether time ran out, how long it took."""

    run: Run
    timed_out: bool
    elapsed_s: float

    @property
    def exit_code(self) -> int:
        if self.timed_out:
            return EXIT_TIMEOUT
        return EXIT_PASSED if self.run.status is RunStatus.COMPLETED else EXIT_FAILURE


def clock(elapsed_s: float) -> str:
    minutes, seconds = divmod(int(elapsed_s), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def progress_line(run: Run, *, elapsed_s: float | None = None) -> str:
    """`[01:23] 2 groups (1 running) · 3/10 done · 1 failed · 2 running · 4 pending`."""
    counts = run.counts
    groups = run.groups or []
    dispatched = [g for g in groups if (g.model_extra or {}).get("group_id")]
    leased = sum(1 for g in dispatched if (g.model_extra or {}).get("status") == "LEASED")
    done = counts.completed + counts.failed + counts.cancelled
    parts = [
        f"{len(dispatched)} group{'s' if len(dispatched) != 1 else ''} ({leased} running)",
        f"{done}/{counts.total} done",
        f"{counts.failed} failed",
        f"{counts.assigned + counts.running} running",
        f"{counts.pending} pending",
    ]
    if counts.cancelled:
        parts.append(f"{counts.cancelled} cancelled")
    prefix = "" if elapsed_s is None else f"[{clock(elapsed_s)}] "
    return prefix + " · ".join(parts)


def group_line(group: RunGroup) -> str:
    extra = group.model_extra or {}
    worker = extra.get("worker_name") or "waiting for a worker"
    jobs = group.jobs
    done = sum(1 for job in jobs if job.status.is_terminal)
    failed = sum(1 for job in jobs if job.status is JobStatus.FAILED)
    return (
        f"  {group.target} · {group.app_version_id} · {worker}: "
        f"{done}/{len(jobs)} done, {failed} failed"
    )


def live_view(run: Run, *, elapsed_s: float) -> RenderableType:
    lines = [Text(progress_line(run, elapsed_s=elapsed_s), style="bold")]
    lines += [Text(group_line(group)) for group in run.groups or []]
    return Group(*lines)


class PlainProgress:
    """Prints a line when the counts change, and a heartbeat line once a minute."""

    def __init__(self, console: Console, *, started: float) -> None:
        self.console = console
        self.started = started
        self.last_line: str | None = None
        self.last_printed = started

    def update(self, run: Run) -> None:
        now = time.monotonic()
        line = progress_line(run)
        if line != self.last_line or now - self.last_printed >= PLAIN_HEARTBEAT_S:
            self.console.print(Text(f"[{clock(now - self.started)}] {line}"))
            self.last_line, self.last_printed = line, now


async def wait_for_run(
    client: QgjobClient,
    run_id: UUID,
    *,
    console: Console,
    timeout_s: float | None,
    interval_s: float,
    show: bool,
) -> Waited:
    """Poll the run until it ends or `timeout_s` passes (then cancel what is unfinished)."""
    started = time.monotonic()
    seen: list[Run] = []

    def elapsed() -> float:
        return time.monotonic() - started

    async def follow_with(on_update: Callable[[Run], None]) -> None:
        def remember(run: Run) -> None:
            seen.append(run)
            del seen[:-1]
            on_update(run)

        await follow(
            lambda: client.get_run(run_id),
            is_done=lambda run: run.status in TERMINAL_RUN_STATUSES,
            interval_s=interval_s,
            on_update=remember,
        )

    timed_out = False
    try:
        async with asyncio.timeout(timeout_s):
            if not show:
                await follow_with(lambda run: None)
            elif console.is_terminal:
                with Live(console=console, auto_refresh=False, transient=False) as live:
                    await follow_with(
                        lambda run: live.update(live_view(run, elapsed_s=elapsed()), refresh=True)
                    )
            else:
                await follow_with(PlainProgress(console, started=started).update)
    except TimeoutError:
        timed_out = True
        await client.cancel_run(run_id)
        seen.append(await client.get_run(run_id))
        # It may have ended just as time ran out: then it did not time out.
        timed_out = seen[-1].status is not RunStatus.COMPLETED
    if not seen:  # timed out before the first answer arrived
        seen.append(await client.get_run(run_id))
    return Waited(run=seen[-1], timed_out=timed_out, elapsed_s=elapsed())
