"""`qgjob submit`, `status`, `list`, `cancel` and `stats`: the commands about test jobs.

Each command parses its options (`qgjob.cli.inputs`), makes one call through the client
(`qgjob.cli.context.call_api`) and formats the answer (`qgjob.cli.output`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from qgjob.cli.context import call_api, reporting_errors, settings_of
from qgjob.cli.inputs import (
    exactly_one,
    parse_choice,
    parse_uuid,
    require_positive_float,
    require_positive_int,
    require_text,
)
from qgjob.cli.output import (
    as_json,
    info,
    listed_jobs_table,
    make_console,
    print_json,
    stats_tables,
    submitted_jobs_table,
    success,
)
from qgjob.cli.watching import show_job, show_run
from qgjob.client import MAX_PAGE_SIZE, QgjobClient
from qgjob.models import Job, Run
from qgjob.types import JobStatus, Priority, RunSource, Target

app = typer.Typer()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]


def _accepted(enum: type[Target] | type[Priority] | type[JobStatus]) -> str:
    return "|".join(member.value for member in enum)


@app.command()
def submit(
    ctx: typer.Context,
    org_id: Annotated[str, typer.Option("--org-id", help="Organization (e.g. qualgent).")],
    app_version_id: Annotated[
        str, typer.Option("--app-version-id", help="App build the tests run against.")
    ],
    tests: Annotated[
        list[str], typer.Option("--test", help="Spec file to run; repeat for several.")
    ],
    target: Annotated[str, typer.Option(help=_accepted(Target))] = Target.EMULATOR.value,
    priority: Annotated[str, typer.Option(help=_accepted(Priority))] = Priority.NORMAL.value,
    json_output: JsonFlag = False,
) -> None:
    """Queue test jobs: one run, one job per --test."""
    out = make_console()
    with reporting_errors():
        settings = settings_of(ctx)
        org = require_text(org_id, option="--org-id")
        version = require_text(app_version_id, option="--app-version-id")
        paths = [require_text(path, option="--test") for path in tests]
        chosen_target = parse_choice(Target, target, option="--target")
        chosen_priority = parse_choice(Priority, priority, option="--priority")
        if not json_output:
            info(out, "Submitting test job..." if len(paths) == 1 else "Submitting test run...")
            info(out, f"Organization: {org}")
            info(out, f"App Version: {version}")
            for path in paths:
                info(out, f"Test: {path}")
            info(out, f"Target: {chosen_target}")
            info(out, f"Priority: {chosen_priority}")

        async def call(client: QgjobClient) -> Run:
            return await client.submit_run(
                org_id=org,
                app_version_id=version,
                tests=paths,
                targets=[chosen_target],
                priority=chosen_priority,
                source=RunSource.CLI,
            )

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
        success(out, f"Run submitted successfully! ({len(jobs)} jobs)")
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
    with reporting_errors():
        settings = settings_of(ctx)
        org = require_text(org_id, option="--org-id")
        wanted_status = (
            None if status is None else parse_choice(JobStatus, status, option="--status")
        )
        version = (
            None
            if app_version_id is None
            else require_text(app_version_id, option="--app-version-id")
        )
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
    info(out, f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} shown{more}")


@app.command()
def cancel(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Option("--job-id", help="The job to cancel.")] = None,
    run_id: Annotated[
        str | None, typer.Option("--run-id", help="The run whose unfinished jobs to cancel.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Cancel a job, or every unfinished job of a run."""
    out = make_console()
    with reporting_errors():
        settings = settings_of(ctx)
        which = exactly_one({"--job-id": job_id, "--run-id": run_id})
        if which == "--job-id":
            wanted_job = parse_uuid(job_id or "", option="--job-id")
            job = call_api(settings, lambda client: client.cancel_job(wanted_job))
            if json_output:
                print_json(out, as_json(job))
            elif job.status is JobStatus.CANCELLED:
                success(out, f"Job {job.job_id} cancelled")
            else:
                success(out, f"Cancellation requested for job {job.job_id}")
                info(out, f"Status: {job.status}")
            return
        wanted_run = parse_uuid(run_id or "", option="--run-id")
        run = call_api(settings, lambda client: client.cancel_run(wanted_run))
    if json_output:
        print_json(out, as_json(run))
        return
    success(out, f"Run {run.run_id} cancelled")
    info(out, f"Cancelled jobs: {run.counts.cancelled} of {run.counts.total}")
    info(out, f"Status: {run.status}")


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
