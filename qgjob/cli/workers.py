"""`qgjob worker`, `workers`, `logs` and `run`: run a worker, and see what workers did.

`qgjob worker` runs the worker agent (`dispatch.agent`) in the foreground until SIGTERM or
Ctrl-C (drain), or a second Ctrl-C (stop at once, exit 130). The other three read the
service: the fleet, a job's captured output, and a run as the tree of groups that ran it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from qgjob.cli.context import JsonFlag, call_api, reporting_errors, resolve_token, settings_of
from qgjob.cli.executors import (
    DEFAULT_PREPARE_TIMEOUT_S,
    ExecutorChoice,
    ExecutorKind,
    check,
    make_executor,
    startup_problem,
)
from qgjob.cli.fleet import run_tree, workers_table
from qgjob.cli.inputs import (
    BadInput,
    parse_choice,
    parse_size,
    parse_uuid,
    require_positive_float,
    require_text,
)
from qgjob.cli.output import as_json, info, make_console, print_error, print_json
from qgjob.cli.reports import save_text
from qgjob.logs import configure_logging
from qgjob.settings import Settings, default_cache_dir
from qgjob.text import strip_ansi
from qgjob.types import Target
from qgjob.worker_api import WorkerApi, WorkerRecord

app = typer.Typer()

MAX_CAPACITY = 64
MAX_CLAIM_WAIT_S = 60.0


@app.command()
def worker(
    ctx: typer.Context,
    targets: Annotated[
        list[str],
        typer.Option("--target", help="emulator|device|browserstack; repeat for several."),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="Name shown by `qgjob workers` (default: host).")
    ] = None,
    capacity: Annotated[int, typer.Option("--capacity", help="Groups run at once.")] = 1,
    executor: Annotated[
        str, typer.Option("--executor", help="What runs the jobs: local, adb or browserstack.")
    ] = ExecutorKind.LOCAL.value,
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            help="Shell command per job; placeholders {test_path} {app_version_id} {target} "
            "{job_id} {attempt} are replaced by shell-quoted values.",
        ),
    ] = None,
    prepare_command: Annotated[
        str | None,
        typer.Option(
            "--prepare-command",
            help="Shell command run once per group before its jobs ({app_version_id} "
            "{target}); failing sends the group to another worker.",
        ),
    ] = None,
    job_timeout: Annotated[
        float | None,
        typer.Option(
            "--job-timeout",
            help="Seconds before a job's process tree is killed (default: 1800 for adb and "
            "browserstack, none for local).",
        ),
    ] = None,
    prepare_timeout: Annotated[
        float,
        typer.Option(
            "--prepare-timeout",
            help="Seconds before --prepare-command's process tree is killed; the group goes "
            "back to the queue.",
        ),
    ] = DEFAULT_PREPARE_TIMEOUT_S,
    heartbeat_interval: Annotated[
        float | None,
        typer.Option(
            "--heartbeat-interval",
            help="Seconds between heartbeats (default: QGJOB_HEARTBEAT_INTERVAL_S or 10).",
        ),
    ] = None,
    labels: Annotated[
        list[str] | None,
        typer.Option("--label", help="KEY=VALUE describing this worker; repeat for several."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option("--device", help="adb: the serial to use (default: the first free one)."),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            help="adb/browserstack: the AppWright project (default: android-emulator, "
            "android-device or android-browserstack, after the target).",
        ),
    ] = None,
    package: Annotated[
        str | None,
        typer.Option(
            "--package",
            help="adb: the app's package name, to uninstall it on a signature or version conflict.",
        ),
    ] = None,
    needs_build: Annotated[
        bool,
        typer.Option(
            "--needs-build",
            help="Take only groups whose build was uploaded; fetch it into the build cache "
            "before the group (its path is in QGJOB_BUILD_PATH).",
        ),
    ] = False,
    build_cache: Annotated[
        Path | None,
        typer.Option(
            "--build-cache",
            envvar="QGJOB_BUILD_CACHE",
            help="Directory of downloaded builds, shared by the workers of this host "
            "(default: the user cache dir).",
            show_default=False,
        ),
    ] = None,
    build_cache_size: Annotated[
        str,
        typer.Option("--build-cache-size", help="Evict least recently used builds past this."),
    ] = "20GiB",
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            help="A checkout of the test project on this host: jobs run there (specs of "
            "runs with a repository the service grants access to are checked out instead). "
            "Default: the current directory.",
        ),
    ] = None,
    retries: Annotated[
        int, typer.Option("--retries", help="adb/browserstack: AppWright's --retries.")
    ] = 1,
    test_timeout: Annotated[
        float,
        typer.Option("--test-timeout", help="adb/browserstack: seconds per test attempt."),
    ] = 600.0,
    boot_timeout: Annotated[
        float,
        typer.Option("--boot-timeout", help="adb: seconds to wait for an emulator to boot."),
    ] = 300.0,
    allow_missing_build: Annotated[
        bool,
        typer.Option(
            "--allow-missing-build",
            help="adb/browserstack, for `qgjob up` only: a group with no uploaded build gets "
            "a placeholder file (SIMULATED) instead of failing.",
        ),
    ] = False,
) -> None:
    """Run a worker: claim groups of jobs from the server and run them until stopped."""
    with reporting_errors():
        settings = settings_of(ctx)
        kind = parse_choice(ExecutorKind, executor, option="--executor")
        chosen = tuple(dict.fromkeys(parse_choice(Target, t, option="--target") for t in targets))
        if not 1 <= capacity <= MAX_CAPACITY:
            raise BadInput(f"--capacity must be between 1 and {MAX_CAPACITY} (got {capacity})")
        interval_s = require_positive_float(
            settings.heartbeat_interval_s if heartbeat_interval is None else heartbeat_interval,
            option="--heartbeat-interval",
        )
        timeout_s = (
            None
            if job_timeout is None
            else require_positive_float(job_timeout, option="--job-timeout")
        )
        prepare_timeout_s = require_positive_float(prepare_timeout, option="--prepare-timeout")
        worker_name = require_text(name, option="--name") if name is not None else _host_name()
        if workspace is not None and not workspace.is_dir():
            raise BadInput(f"--workspace must be an existing directory (got {str(workspace)!r})")
        choice = ExecutorChoice(
            kind=kind,
            targets=chosen,
            capacity=capacity,
            command=command,
            prepare_command=prepare_command,
            prepare_timeout_s=prepare_timeout_s,
            job_timeout_s=timeout_s,
            device=device,
            project=project,
            package=package,
            workspace=workspace,
            retries=retries,
            test_timeout_s=test_timeout,
            boot_timeout_s=boot_timeout,
            allow_missing_build=allow_missing_build,
        )
        check(choice, os.environ)
        cache_bytes = parse_size(build_cache_size, option="--build-cache-size")
        cache_root = default_cache_dir()
        builds_dir = build_cache or cache_root / "builds"
        if builds_dir.exists() and not builds_dir.is_dir():
            raise BadInput(f"--build-cache must be a directory (got the file {str(builds_dir)!r})")
        from dispatch.agent import Agent, AgentConfig, serve
        from dispatch.buildcache import BuildCache
        from dispatch.executors.local import LocalExecutor
        from dispatch.processes import watch_children_with_pidfds
        from dispatch.sources import Sources

        if kind is ExecutorKind.LOCAL:
            try:
                LocalExecutor(command=command or "", prepare_command=prepare_command)
            except ValueError as exc:
                raise BadInput(str(exc)) from None
        config = AgentConfig(
            name=worker_name[:100],
            targets=chosen,
            capacity=capacity,
            labels=_parse_labels(labels or []),
            heartbeat_interval_s=interval_s,
            claim_wait_s=min(settings.claim_timeout_s, MAX_CLAIM_WAIT_S),
            needs_build=needs_build or choice.needs_build,
        )
        _configure_logging(settings)
        root = choice.project_root()
        if (
            kind is not ExecutorKind.LOCAL
            and workspace is None
            and root is not None
            and not (root / "appwright.config.ts").is_file()
        ):
            logging.getLogger(__name__).warning(
                "no --workspace, and %s is not an AppWright project (no appwright.config.ts): "
                "only runs that name a repository the service can read will find their specs",
                root,
            )

        async def go() -> int:
            watch_children_with_pidfds()
            async with WorkerApi(settings.server_url, resolve_token(settings)) as api:
                runner = make_executor(
                    choice,
                    settings=settings,
                    api=api,
                    env=os.environ,
                    # Only a worker that needs builds downloads them (local commands may not);
                    # the adb and BrowserStack executors always install the group's build.
                    builds=(
                        BuildCache(builds_dir, cache_bytes, api=api, pin_limit=capacity)
                        if needs_build or choice.kind is not ExecutorKind.LOCAL
                        else None
                    ),
                    sources=Sources(
                        cache_dir=cache_root / "sources",
                        workspace=choice.project_root(),
                        npm=settings.npm,
                        keep_for_s=settings.source_keep_s,
                    ),
                )
                problem = await startup_problem(runner)
                if problem is not None:
                    await runner.close()
                    print_error(problem)
                    return 1
                return await serve(Agent(api, runner, config))

        code = asyncio.run(go())
    raise typer.Exit(code)


@app.command("workers")
def list_workers(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """List workers: status, targets, capacity, current groups and last heartbeat."""
    out = make_console()
    with reporting_errors():
        settings = settings_of(ctx)
        found = _call_workers(settings)
    if json_output:
        print_json(out, {"workers": [as_json(w) for w in found]})
        return
    if not found:
        info(out, "No workers have registered.")
        return
    out.print(workers_table(found))


class ColorMode(StrEnum):
    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"


@app.command()
def logs(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Option("--job-id", help="The job whose output to print.")],
    attempt: Annotated[
        int | None, typer.Option("--attempt", help="Which attempt (default: the latest).")
    ] = None,
    color: Annotated[
        str,
        typer.Option(
            "--color",
            help="Keep the colours the test wrote (its terminal escape codes): auto (only on "
            "a terminal, and not when NO_COLOR is set), always or never.",
        ),
    ] = ColorMode.AUTO.value,
) -> None:
    """Print the output (stdout and stderr) a job's command wrote."""
    with reporting_errors():
        settings = settings_of(ctx)
        wanted = parse_uuid(job_id, option="--job-id")
        if attempt is not None and attempt < 1:
            raise BadInput(f"--attempt must be a whole number of at least 1 (got {attempt})")
        keep_color = _keeps_color(parse_choice(ColorMode, color, option="--color"))

        async def go() -> str:
            async with WorkerApi(settings.server_url, resolve_token(settings)) as api:
                return await api.job_log(wanted, attempt=attempt)

        text = asyncio.run(go())
    sys.stdout.write(text if keep_color else strip_ansi(text))
    sys.stdout.flush()


def _keeps_color(mode: ColorMode) -> bool:
    """Whether to print a log's escape codes: a file or a pipe gets plain text by default,
    as does a terminal when NO_COLOR is set (https://no-color.org)."""
    if mode is ColorMode.AUTO:
        return sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    return mode is ColorMode.ALWAYS


@app.command("run")
def show_run_tree(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Option("--run-id", help="The run to show.")],
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Also save the run's results as JUnit XML to this file."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Show a run as a tree: each group (app version, target, worker) and its jobs."""
    out = make_console()
    with reporting_errors():
        settings = settings_of(ctx)
        wanted = parse_uuid(run_id, option="--run-id")
        found = call_api(settings, lambda client: client.get_run(wanted))
        if junit is not None:
            document = call_api(settings, lambda client: client.get_run_junit(wanted))
            save_text(junit, document, option="--junit", console=None if json_output else out)
    if json_output:
        print_json(out, as_json(found))
        return
    out.print(run_tree(found))


def _call_workers(settings: Settings) -> list[WorkerRecord]:
    async def go() -> list[WorkerRecord]:
        async with WorkerApi(settings.server_url, resolve_token(settings)) as api:
            return await api.list_workers()

    return asyncio.run(go())


def _host_name() -> str:
    return socket.gethostname() or "worker"


def _parse_labels(raw: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(
                f"--label must look like KEY=VALUE, e.g. --label model=pixel8 (got {item!r})"
            )
        labels[key.strip()] = value.strip()
    return labels


def _configure_logging(settings: Settings) -> None:
    configure_logging(level=settings.log_level, log_format=settings.log_format, stream=sys.stderr)
