"""`qgjob submit`, `status`, `list`, `cancel` and `stats`: the commands about test jobs.

Each command parses its options (`qgjob.cli.inputs`), makes one call through the client
(`qgjob.cli.context.call_api`) and formats the answer (`qgjob.cli.output`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console

from qgjob.cli.context import JsonFlag, call_api, reporting_errors, settings_of
from qgjob.cli.inputs import (
    BadInput,
    exactly_one,
    parse_choice,
    parse_uuid,
    require_app_version_id,
    require_commit,
    require_org_id,
    require_positive_float,
    require_positive_int,
    require_test_path,
)
from qgjob.cli.output import (
    FIELD_OPTIONS,
    as_json,
    info,
    listed_jobs_table,
    make_console,
    print_json,
    stats_tables,
    submitted_jobs_table,
    success,
)
from qgjob.cli.submitting import (
    MAX_ECHOED_TESTS,
    WaitOptions,
    drop_repeats,
    parse_targets,
    read_test_list,
    repeat_notes,
    submit_and_wait,
)
from qgjob.cli.watching import show_job, show_run
from qgjob.client import MAX_PAGE_SIZE, QgjobClient
from qgjob.errors import Conflict
from qgjob.models import Job, Run
from qgjob.text import counted
from qgjob.types import JobStatus, Priority, RunSource, Target

app = typer.Typer()


def _accepted(enum: type[StrEnum]) -> str:
    return "|".join(member.value for member in enum)


@app.command()
def submit(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Option("--org-id", help="Organization (e.g. qualgent).")],
    app_version_id: Annotated[
        str, typer.Option("--app-version-id", help="App build the tests run against.")
    ],
    tests: Annotated[
        list[str] | None, typer.Option("--test", help="Spec file to run; repeat for several.")
    ] = None,
    tests_from: Annotated[
        Path | None,
        typer.Option("--tests-from", help="File listing spec files, one per line ('-': stdin)."),
    ] = None,
    targets: Annotated[
        list[str] | None,
        typer.Option(
            "--target", help=f"{_accepted(Target)}; repeat or comma-separate for several."
        ),
    ] = None,
    priority: Annotated[str, typer.Option(help=_accepted(Priority))] = Priority.NORMAL.value,
    source: Annotated[
        str, typer.Option("--source", help=f"Who submits: {_accepted(RunSource)}.")
    ] = RunSource.CLI.value,
    repo: Annotated[
        str | None,
        typer.Option("--repo", help="The repository the specs come from, as OWNER/NAME."),
    ] = None,
    ref: Annotated[
        str | None, typer.Option("--ref", help="With --repo: the ref tested (refs/heads/main).")
    ] = None,
    head_sha: Annotated[
        str | None, typer.Option("--head-sha", help="With --repo: the commit tested.")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run to its end; the exit code says how.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="With --wait: give up (exit 3) and cancel after S s."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", help="With --wait: seconds between refreshes.")
    ] = 2.0,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="With --wait: write JUnit XML here.")
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option("--summary", help="With --wait: append a Markdown summary here."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Queue test jobs: one run, one job per --test (per target); --wait follows it.

    With --wait: exit 0 if all passed (flaky too), 1 if any failed, 3 on --timeout.
    """
    out = make_console()
    # A refusal of the i-th test names it as given; filled in once the tests are read.
    options = dict(FIELD_OPTIONS)
    with reporting_errors(options):
        settings = settings_of(ctx)
        org = require_org_id(org_id)
        version = require_app_version_id(app_version_id)
        requested = [require_test_path(path) for path in tests or []]
        if tests_from is not None:
            requested += [
                require_test_path(path, option=f"--tests-from {tests_from}:")
                for path in read_test_list(tests_from)
            ]
        if not requested:
            raise BadInput("pass at least one --test PATH (or --tests-from FILE)")
        paths, repeats = drop_repeats(requested)
        options |= {f"tests.{i}": f"--test {path}" for i, path in enumerate(paths)}
        chosen_targets = parse_targets(targets or [Target.EMULATOR.value])
        chosen_priority = parse_choice(Priority, priority, option="--priority")
        chosen_source = parse_choice(RunSource, source, option="--source")
        commit = require_commit(repo, ref, head_sha)
        follow_options = {"--timeout": timeout, "--junit": junit, "--summary": summary}
        if not wait:
            given = [name for name, value in follow_options.items() if value is not None]
            if given:
                raise BadInput(f"{given[0]} needs --wait (it is about how the run ends)")
        timeout_s = None if timeout is None else require_positive_float(timeout, option="--timeout")
        interval_s = require_positive_float(interval, option="--interval")
        for note in repeat_notes(repeats):
            info(make_console(stderr=True) if json_output else out, note)
        if not json_output:
            info(out, "Submitting test job..." if len(paths) == 1 else "Submitting test run...")
            info(out, f"Organization: {org}")
            info(out, f"App Version: {version}")
            for path in paths[:MAX_ECHOED_TESTS]:
                info(out, f"Test: {path}")
            if len(paths) > MAX_ECHOED_TESTS:
                info(out, f"… and {counted(len(paths) - MAX_ECHOED_TESTS, 'more test')}")
            info(out, f"Target: {', '.join(chosen_targets)}")
            info(out, f"Priority: {chosen_priority}")
            if commit is not None:
                at = "".join(f" @ {part}" for part in (commit.ref, commit.head_sha) if part)
                info(out, f"Repository: {commit.repo}{at}")

        async def call(client: QgjobClient) -> Run:
            return await client.submit_run(
                org_id=org,
                app_version_id=version,
                tests=paths,
                targets=chosen_targets,
                priority=chosen_priority,
                source=chosen_source,
                commit=commit,
            )

        if wait:
            code = submit_and_wait(
                settings,
                out,
                submit=call,
                options=WaitOptions(
                    timeout_s=timeout_s,
                    interval_s=interval_s,
                    junit=junit,
                    summary=summary,
                    json_output=json_output,
                ),
            )
            raise typer.Exit(code)
        run = call_api(settings, call)
    if json_output:
        print_json(out, as_json(run))
        return
    jobs = run.all_jobs
    if len(jobs) == 1:
        job = jobs[0]
        success(out, "Job submitted successfully!")
        info(out, f"Job ID: {job.job_id}")
        info(out, f"Status: {job.status}")
        info(out, f"Check status with: qgjob status --job-id={job.job_id}")
    else:
        success(out, f"Run submitted successfully! ({counted(len(jobs), 'job')})")
        info(out, f"Run ID: {run.run_id}")
        out.print(submitted_jobs_table(jobs))
        info(out, f"Check status with: qgjob status --run-id={run.run_id}")


@app.command()
def status(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Option("--job-id", help="The job to show.")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="The run to show (instead of a job).")
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Refresh until it ends; exit 1 unless it completed.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between refreshes with --watch.")
    ] = 2.0,
    json_output: JsonFlag = False,
) -> None:
    """Show a job (or a run) and, with --watch, follow it until it ends."""
    out = make_console()
    with reporting_errors():
        settings = settings_of(ctx)
        which = exactly_one({"--job-id": job_id, "--run-id": run_id})
        interval_s = require_positive_float(interval, option="--interval")
        if which == "--job-id":
            wanted_job = parse_uuid(job_id or "", option="--job-id")
            code = show_job(
                settings,
                out,
                job_id=wanted_job,
                watch=watch,
                interval_s=interval_s,
                json_output=json_output,
            )
        else:
            wanted_run = parse_uuid(run_id or "", option="--run-id")
            code = show_run(
                settings,
                out,
                run_id=wanted_run,
                watch=watch,
                interval_s=interval_s,
                json_output=json_output,
            )
    raise typer.Exit(code)


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Option("--org-id", help="Organization whose jobs to list.")],
    status: Annotated[str | None, typer.Option("--status", help=_accepted(JobStatus))] = None,
    app_version_id: Annotated[
        str | None, typer.Option("--app-version-id", help="Only jobs of this app build.")
    ] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Only jobs of this run.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Show at most this many jobs.")] = 50,
    json_output: JsonFlag = False,
) -> None:
    """List jobs, newest first."""
    out = make_console()
    with reporting_errors(FIELD_OPTIONS):
        settings = settings_of(ctx)
        org = require_org_id(org_id)
        wanted_status = (
            None if status is None else parse_choice(JobStatus, status, option="--status")
        )
        version = None if app_version_id is None else require_app_version_id(app_version_id)
        wanted_run = None if run_id is None else parse_uuid(run_id, option="--run-id")
        most = require_positive_int(limit, option="--limit")

        async def call(client: QgjobClient) -> tuple[list[Job], str | None]:
            jobs: list[Job] = []
            cursor: str | None = None
            while True:
                page = await client.list_jobs(
                    org_id=org,
                    status=wanted_status,
                    app_version_id=version,
                    run_id=wanted_run,
                    limit=min(most - len(jobs), MAX_PAGE_SIZE),
                    cursor=cursor,
                )
                jobs.extend(page.jobs)
                cursor = page.next_cursor
                if cursor is None or not page.jobs or len(jobs) >= most:
                    return jobs[:most], cursor

        jobs, cursor = call_api(settings, call)
    if json_output:
        print_json(out, {"jobs": [as_json(job) for job in jobs], "next_cursor": cursor})
        return
    if not jobs:
        info(out, "No jobs match.")
        return
    out.print(listed_jobs_table(jobs))
    more = "; more match (raise --limit to see them)" if cursor else ""
    info(out, f"{counted(len(jobs), 'job')} shown{more}")


@app.command()
def cancel(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Option("--job-id", help="The job to cancel.")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="The run whose unfinished jobs to cancel.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Cancel a job, or every unfinished job of a run; one that has ended is left as it is."""
    out = make_console()
    with reporting_errors():
        settings = settings_of(ctx)
        which = exactly_one({"--job-id": job_id, "--run-id": run_id})
        if which == "--job-id":
            wanted_job = parse_uuid(job_id or "", option="--job-id")
            job, was_live = call_api(settings, lambda client: _cancel_job(client, wanted_job))
            _report_cancelled_job(out, job, was_live=was_live, json_output=json_output)
            return
        wanted_run = parse_uuid(run_id or "", option="--run-id")
        run, cancelled = call_api(settings, lambda client: _cancel_run(client, wanted_run))
    if json_output:
        print_json(out, as_json(run))
    elif not cancelled:
        info(out, f"Run {run.run_id} already {run.status}: nothing to cancel")
    else:
        success(out, f"Run {run.run_id} cancelled")
        info(out, f"Cancelled jobs: {cancelled} of {run.counts.total}")
        info(out, f"Status: {run.status}")


def _report_cancelled_job(out: Console, job: Job, *, was_live: bool, json_output: bool) -> None:
    if json_output:
        print_json(out, as_json(job))
    elif not was_live:
        info(out, f"Job {job.job_id} already {job.status}: nothing to cancel")
    elif job.status is JobStatus.CANCELLED:
        success(out, f"Job {job.job_id} cancelled")
    else:
        success(out, f"Cancellation requested for job {job.job_id}")
        info(out, f"Status: {job.status}")


async def _cancel_job(client: QgjobClient, job_id: UUID) -> tuple[Job, bool]:
    """The job after the request, and whether it was still live (cancelling is idempotent:
    the service refuses a job that has ended with 409, which is no failure here)."""
    try:
        return await client.cancel_job(job_id), True
    except Conflict:
        job = await client.get_job(job_id)
        if not job.status.is_terminal:
            raise
        return job, False


async def _cancel_run(client: QgjobClient, run_id: UUID) -> tuple[Run, int]:
    """The run after the request, and how many of its jobs this request cancelled (the
    service answers with the run only, so the count is the difference)."""
    before = await client.get_run(run_id)
    after = await client.cancel_run(run_id)
    return after, max(0, after.counts.cancelled - before.counts.cancelled)


@app.command()
def stats(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Show job and worker counts (for your org; for all orgs with an admin token)."""
    out = make_console()
    with reporting_errors():
        settings = settings_of(ctx)
        answer = call_api(settings, lambda client: client.stats())
    if json_output:
        print_json(out, as_json(answer))
        return
    for table in stats_tables(answer):
        out.print(table)
