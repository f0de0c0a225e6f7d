"""What `qgjob worker --executor …` builds: the local, adb or BrowserStack executor.

The shell (`qgjob.cli.workers.worker`) parses options into an `ExecutorChoice`; `check`
refuses combinations that cannot work with one clear line (BadInput), before anything
starts; `make_executor` builds the executor once the worker's API client is open (the
BrowserStack executor keeps its uploads on the service through it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from qgjob.cli.inputs import BadInput
from qgjob.settings import Settings
from qgjob.types import Target
from qgjob.worker_api import WorkerApi

if TYPE_CHECKING:
    from dispatch.buildcache import BuildCache
    from dispatch.executors.base import Executor
    from dispatch.sources import Sources

# The projects of examples/appwright.config.ts, one per target.
DEFAULT_PROJECTS = {
    Target.EMULATOR: "android-emulator",
    Target.DEVICE: "android-device",
    Target.BROWSERSTACK: "android-browserstack",
}


class ExecutorKind(StrEnum):
    """What runs the jobs."""

    LOCAL = "local"
    ADB = "adb"
    BROWSERSTACK = "browserstack"


# A hung --prepare-command must not hold its group for ever (its lease stays renewed).
DEFAULT_PREPARE_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class ExecutorChoice:
    kind: ExecutorKind
    targets: tuple[Target, ...]
    capacity: int
    command: str | None = None
    prepare_command: str | None = None
    prepare_timeout_s: float = DEFAULT_PREPARE_TIMEOUT_S
    job_timeout_s: float | None = None
    device: str | None = None
    project: str | None = None
    package: str | None = None
    workspace: Path | None = None
    retries: int = 1
    test_timeout_s: float = 600.0
    boot_timeout_s: float = 300.0
    allow_missing_build: bool = False

    @property
    def needs_build(self) -> bool:
        """Whether the worker must only take groups with an uploaded build."""
        return self.kind is not ExecutorKind.LOCAL and not self.allow_missing_build

    def project_root(self) -> Path | None:
        """Where jobs run when the run names no repository to check out."""
        if self.kind is ExecutorKind.LOCAL:
            return self.workspace
        return (self.workspace or Path.cwd()).resolve()

    @property
    def appwright_project(self) -> str:
        return self.project or DEFAULT_PROJECTS[self.targets[0]]


def check(choice: ExecutorChoice, env: Mapping[str, str]) -> None:
    """BadInput naming what is wrong with the options, if anything is."""
    kind = choice.kind
    if kind is ExecutorKind.LOCAL:
        if choice.command is None:
            raise BadInput(
                "--executor local needs --command, the shell command run for each job "
                "(e.g. --command 'npx appwright test {test_path} --project android')"
            )
        return
    if choice.command is not None or choice.prepare_command is not None:
        raise BadInput(f"--command and --prepare-command are for --executor local, not {kind}")
    if choice.retries < 0:
        raise BadInput(f"--retries must be 0 or more (got {choice.retries})")
    if not 0 < choice.test_timeout_s < math.inf:
        raise BadInput("--test-timeout must be a positive number of seconds")
    if not 0 < choice.boot_timeout_s < math.inf:
        raise BadInput(
            f"--boot-timeout must be a number of seconds above 0 (got {choice.boot_timeout_s:g})"
        )
    if choice.workspace is not None and not (choice.workspace / "appwright.config.ts").is_file():
        raise BadInput(
            f"--workspace must be an AppWright project (a directory with appwright.config.ts); "
            f"{choice.workspace} has none"
        )
    if kind is ExecutorKind.ADB:
        _check_adb(choice)
    else:
        _check_browserstack(choice, env)


def _check_adb(choice: ExecutorChoice) -> None:
    allowed = (Target.EMULATOR, Target.DEVICE)
    if len(choice.targets) != 1 or choice.targets[0] not in allowed:
        given = ", ".join(choice.targets)
        raise BadInput(
            f"--executor adb serves one --target, emulator or device (got {given}); "
            "start one worker per device"
        )
    if choice.capacity != 1:
        raise BadInput(
            "--executor adb drives one device: --capacity must be 1 (start one worker per device)"
        )


def _check_browserstack(choice: ExecutorChoice, env: Mapping[str, str]) -> None:
    if list(choice.targets) != [Target.BROWSERSTACK]:
        raise BadInput("--executor browserstack serves --target browserstack only")
    if choice.device is not None or choice.package is not None:
        raise BadInput("--device and --package are for --executor adb")
    if not env.get("BROWSERSTACK_USERNAME") or not env.get("BROWSERSTACK_ACCESS_KEY"):
        raise BadInput(
            "--executor browserstack needs BROWSERSTACK_USERNAME and BROWSERSTACK_ACCESS_KEY "
            "in the environment"
        )


def make_executor(
    choice: ExecutorChoice,
    *,
    settings: Settings,
    api: WorkerApi,
    env: Mapping[str, str],
    builds: BuildCache | None,
    sources: Sources,
) -> Executor:
    """The executor for `choice` (checked first with `check`), fetching builds through
    `builds` and finding specs through `sources`; it closes both when it is closed."""
    from dispatch.executors.appwright import AppwrightOptions, default_lock_dir
    from dispatch.executors.local import LocalExecutor

    if choice.kind is ExecutorKind.LOCAL:
        return LocalExecutor(
            command=choice.command or "",
            prepare_command=choice.prepare_command,
            prepare_timeout_s=choice.prepare_timeout_s,
            job_timeout_s=choice.job_timeout_s,
            env=env,
            cwd=choice.workspace,
            builds=builds,
            sources=sources,
        )
    workspace = choice.project_root() or Path.cwd()
    appwright = AppwrightOptions(
        project=choice.appwright_project,
        workspace=workspace,
        npx=settings.npx,
        retries=choice.retries,
        test_timeout_s=choice.test_timeout_s,
        job_timeout_s=choice.job_timeout_s or 1800.0,
    )
    lock_dir = settings.lock_dir or default_lock_dir()
    placeholders = settings.data_dir / "placeholder-builds"
    if choice.kind is ExecutorKind.ADB:
        from dispatch.executors.adb import AdbExecutor, AdbOptions

        return AdbExecutor(
            options=AdbOptions(
                target=choice.targets[0],
                adb=settings.adb,
                device=choice.device,
                package=choice.package,
                boot_timeout_s=choice.boot_timeout_s,
                allow_missing_build=choice.allow_missing_build,
            ),
            appwright=appwright,
            builds=builds,
            sources=sources,
            lock_dir=lock_dir,
            placeholder_dir=placeholders,
            env=env,
        )
    from dispatch.browserstack_api import BrowserStackApi, Credentials
    from dispatch.executors.browserstack import BrowserStackExecutor, BrowserStackOptions
    from qgjob.browserstack_apps import BrowserStackApps

    credentials = Credentials.from_env(env)
    assert credentials is not None, "check() first"
    return BrowserStackExecutor(
        api=BrowserStackApi(base_url=settings.browserstack_api_url, credentials=credentials),
        apps=BrowserStackApps(api),
        appwright=appwright,
        builds=builds,
        sources=sources,
        lock_dir=lock_dir,
        env=env,
        options=BrowserStackOptions(allow_missing_build=choice.allow_missing_build),
        placeholder_dir=placeholders,
    )


async def startup_problem(executor: Executor) -> str | None:
    """What stops this executor from ever working, found before claiming any group: refused
    BrowserStack credentials. Transient trouble (BrowserStack down) is left to the groups."""
    from dispatch.errors import InfrastructureError, JobError
    from dispatch.executors.browserstack import BrowserStackExecutor

    if not isinstance(executor, BrowserStackExecutor):
        return None
    try:
        await executor.api.plan()
    except JobError as exc:
        return exc.reason
    except InfrastructureError:
        return None
    return None
