"""What `qgjob submit` needs beyond one API call: reading many tests, several targets, and
`--wait` (follow the run, then write the JUnit XML and the Markdown summary for CI)."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from rich.console import Console

from qgjob.cli.context import call_api
from qgjob.cli.inputs import BadInput, parse_choice
from qgjob.cli.output import (
    as_json,
    failure,
    info,
    make_console,
    print_error,
    print_json,
    success,
)
from qgjob.cli.progress import Waited, wait_for_run
from qgjob.cli.reports import append_text, save_text
from qgjob.cli.summary import render_summary
from qgjob.client import QgjobClient
from qgjob.errors import QgjobError
from qgjob.models import Run
from qgjob.settings import Settings
from qgjob.text import counted
from qgjob.types import JobStatus, Outcome, Target

MAX_ECHOED_TESTS = 20  # the submit banner lists this many tests, then a count
CANCEL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WaitOptions:
    timeout_s: float | None
    interval_s: float
    junit: Path | None
    summary: Path | None
    json_output: bool


def parse_targets(raw: list[str]) -> list[Target]:
    """`--target a --target b,c` → [a, b, c], each checked, duplicates dropped."""
    chosen: dict[Target, None] = {}
    for item in raw:
        for part in item.split(","):
            if part.strip():
                chosen[parse_choice(Target, part, option="--target")] = None
    if not chosen:
        raise BadInput("--target must name at least one of emulator, device, browserstack")
    return list(chosen)


def read_test_list(path: Path) -> list[str]:
    """Spec paths from a file, one per line; blank lines and `#` comments are skipped."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise BadInput(f"--tests-from: cannot read {path}: {reason}") from None
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def drop_repeats(paths: list[str]) -> tuple[list[str], dict[str, int]]:
    """Each path once, in the order first given; and how often each repeated one was given
    (the service makes one job per test and target however often it is named)."""
    times = Counter(paths)
    return list(times), {path: n for path, n in times.items() if n > 1}


def repeat_notes(repeats: dict[str, int]) -> list[str]:
    """One line per repeated test, up to `MAX_ECHOED_TESTS`, then a count."""
    notes = [
        f"{path} was given {'twice' if n == 2 else f'{n} times'}; submitting it once"
        for path, n in list(repeats.items())[:MAX_ECHOED_TESTS]
    ]
    if len(repeats) > MAX_ECHOED_TESTS:
        more = counted(len(repeats) - MAX_ECHOED_TESTS, "more test")
        notes.append(f"… and {more} given more than once; each is submitted once")
    return notes


def submit_and_wait(
    settings: Settings,
    out: Console,
    *,
    submit: Callable[[QgjobClient], Awaitable[Run]],
    options: WaitOptions,
) -> int:
    """Submit, follow the run to its end, write the reports; the exit code."""

    async def go(client: QgjobClient) -> tuple[Waited, str | None]:
        run = await submit(client)
        if not options.json_output:
            success(out, f"Run submitted: {run.run_id} ({counted(len(run.all_jobs), 'job')})")
            info(out, "Waiting for it to finish...")
        try:
            waited = await wait_for_run(
                client,
                run.run_id,
                console=out,
                timeout_s=options.timeout_s,
                interval_s=options.interval_s,
                show=not options.json_output,
            )
        except asyncio.CancelledError:  # Ctrl-C, or CI cancelling the job (SIGINT)
            await cancel_on_interrupt(client, run.run_id, out)
            raise
        junit = None if options.junit is None else await client.get_run_junit(run.run_id)
        return waited, junit

    waited, junit = call_api(settings, go)
    if options.junit is not None and junit is not None:
        notes = make_console(stderr=True) if options.json_output else out
        save_text(options.junit, junit, option="--junit", console=notes)
    if options.summary is not None:
        text = render_summary(
            waited.run,
            elapsed_s=waited.elapsed_s,
            timed_out=waited.timed_out,
            server_url=settings.server_url,
        )
        append_text(options.summary, text, option="--summary")
    if options.json_output:
        print_json(out, {**as_json(waited.run), "timed_out": waited.timed_out})
    else:
        report_end(out, waited, timeout_s=options.timeout_s)
    return waited.exit_code


async def cancel_on_interrupt(client: QgjobClient, run_id: UUID, out: Console) -> None:
    """Nobody will read the results: free the devices by cancelling the unfinished jobs."""
    try:
        await asyncio.wait_for(client.cancel_run(run_id), CANCEL_TIMEOUT_S)
    except (QgjobError, TimeoutError) as exc:
        print_error(f"interrupted; could not cancel run {run_id}: {exc}")
        return
    failure(out, f"Interrupted: run {run_id} cancelled")


def report_end(out: Console, waited: Waited, *, timeout_s: float | None) -> None:
    """The closing lines of `submit --wait`: each failed test, then the verdict."""
    run = waited.run
    jobs = run.all_jobs
    counts = run.counts
    for job in jobs:
        if job.status is JobStatus.FAILED:
            reason = (job.error or str(job.outcome or "failed")).strip().splitlines()
            failure(out, f"{job.test_path} [{job.target}]: {reason[0] if reason else 'failed'}")
    flaky = sum(1 for job in jobs if job.outcome is Outcome.FLAKY)
    if waited.timed_out:
        # The limit as given: the time measured overshoots it by up to one poll.
        limit_s = waited.elapsed_s if timeout_s is None else timeout_s
        failure(
            out,
            f"Run {run.run_id} timed out after {_seconds(limit_s)} s; "
            f"{counted(counts.cancelled, 'unfinished job')} cancelled",
        )
    elif waited.exit_code == 0:
        note = f", {flaky} flaky" if flaky else ""
        passed = counted(len(jobs), "test")
        success(out, f"{'All ' if len(jobs) > 1 else ''}{passed} passed{note} (run {run.run_id})")
    else:
        failure(
            out,
            f"Run {run.run_id} {run.status.lower()}: {counts.failed} failed, "
            f"{counts.cancelled} cancelled of {counted(counts.total, 'job')}",
        )


def _seconds(value: float) -> str:
    """`0.5`, `30`, `1800`: seconds as a person would write them."""
    return f"{value:.3f}".rstrip("0").rstrip(".")
