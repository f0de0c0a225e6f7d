"""Running one spec with AppWright and reading what happened from its JSON report.

Both device executors (`adb`, `browserstack`) end the same way: one
`npx appwright test <abs spec> --project <name> --reporter=list,json --retries N --timeout MS
--workers 1` in the AppWright project's directory, with `CI=1`, `PLAYWRIGHT_HTML_OPEN=never`
and `PLAYWRIGHT_JSON_OUTPUT_FILE` pointing into a fresh directory. AppWright splits its
arguments on spaces, so a spec path with a space is refused up front. Positional arguments
are regular expressions over absolute paths: the spec is escaped and anchored so that
`login.spec.ts` never also selects `relogin.spec.ts`.

The run has a wall-clock limit, past which its whole process tree (node, Appium, helpers) is
killed: the job is `timed_out`. Results come from the report only (`dispatch.results`); a
missing report, or one where no test ran and `errors[]` say why, is an `InfrastructureError`.

`HostLock` serialises AppWright on a host for local devices: its Appium listens on the fixed
port 4723 and every test ends with `pkill -f appium`, so two runs would kill each other.
The lock is a file lock, so it holds across every worker process on the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import re
import shlex
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from dispatch.errors import InfrastructureError, JobError
from dispatch.executors.base import JobResult, JobSpec
from dispatch.processes import DEFAULT_TAIL_BYTES, Completed, Stop, run_shell
from dispatch.results import Report, SpecResult, read_report
from dispatch.sources import Sources
from qgjob.types import Outcome

logger = logging.getLogger(__name__)

DEFAULT_NPX = "npx"
_LOCK_POLL_S = 0.1
_REGEX_SPECIALS = re.compile(r"([\\^$.|?*+()\[\]{}])")


def default_lock_dir() -> Path:
    """Where host-wide locks live: one directory per user, shared by all their workers."""
    return Path(tempfile.gettempdir()) / f"qgjob-locks-{os.getuid()}"


class HostLock:
    """An exclusive lock named `name`, held across the processes of this host (flock)."""

    def __init__(self, directory: Path, name: str) -> None:
        self.path = directory / f"{name}.lock"

    def try_acquire(self) -> int | None:
        """The locked file descriptor, or None when someone else holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Wait (cancellably) for the lock, hold it for the block."""
        # Another process holds it: there is nothing to wait on but the file, so poll.
        while (fd := self.try_acquire()) is None:  # noqa: ASYNC110
            await asyncio.sleep(_LOCK_POLL_S)
        try:
            yield
        finally:
            release(fd)


def release(fd: int) -> None:
    """Let go of a lock taken with `HostLock.try_acquire`."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


@dataclass(frozen=True)
class AppwrightOptions:
    """How AppWright is run: the program, the project and the limits."""

    project: str
    workspace: Path  # the AppWright project (appwright.config.ts, tests/, node_modules/)
    npx: str = DEFAULT_NPX  # may be several words, e.g. "python3 tests/standins/fake_npx.py"
    retries: int = 0
    test_timeout_s: float = 600.0  # Playwright's --timeout, per test attempt
    job_timeout_s: float = 1800.0  # wall clock for the whole run, then the tree is killed
    kill_grace_s: float = 5.0
    log_limit_bytes: int = DEFAULT_TAIL_BYTES

    @classmethod
    def npx_from(cls, env: Mapping[str, str]) -> str:
        """The npx program: `QGJOB_NPX`, else `npx`."""
        return env.get("QGJOB_NPX") or DEFAULT_NPX


@dataclass(frozen=True)
class SpecRun:
    """One AppWright run of one spec: the spec's result (None when stopped), its output."""

    spec: SpecResult | None
    report: Report | None
    completed: Completed
    outcome: Outcome
    error: str | None


async def locate(job: JobSpec, *, workspace: Path, sources: Sources | None) -> tuple[Path, Path]:
    """(project root, absolute spec path) of a job: a checkout of the run's repository when
    `sources` has one for it (`dispatch.sources`), else the workspace."""
    if sources is not None:
        project = await sources.project(job.source)
        return project.root.resolve(), _usable(project.spec(job.test_path))
    return workspace, spec_path(workspace, job.test_path)


def spec_path(workspace: Path, test_path: str) -> Path:
    """The spec's absolute path in the workspace; JobError when it is not there or unusable."""
    path = Path(test_path)
    absolute = path if path.is_absolute() else workspace / path
    absolute = Path(os.path.normpath(absolute))
    if not absolute.is_file():
        raise JobError(
            f"spec {test_path} is not in the workspace {workspace} (looked for {absolute})",
            code="spec_not_found",
        )
    return _usable(absolute)


def _usable(absolute: Path) -> Path:
    if any(c.isspace() for c in str(absolute)):
        raise JobError(
            f"spec path {absolute} contains a space; AppWright splits its arguments on "
            "spaces, so move the project to a path without spaces",
            code="spec_path_space",
        )
    return absolute


def named_build(blob: Path, *, filename: str, sha256: str, directory: Path) -> Path:
    """A link named `<directory>/<sha256>/<filename>` to a cached build.

    The build cache keeps files by sha256 with no extension, while adb only installs files
    named `*.apk`, AppWright checks `buildPath`'s extension and BrowserStack reads the upload's
    file name: they get this link, re-pointed at the blob each time."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name) or "build"
    link = directory / sha256 / name
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(blob.resolve())
    os.replace(temporary, link)
    return link


def spec_filter(path: Path) -> str:
    """`path` as a Playwright filter matching that file only (escaped, anchored at the end)."""
    return _REGEX_SPECIALS.sub(r"\\\1", path.as_posix()) + "$"


def command(options: AppwrightOptions, spec: Path) -> list[str]:
    """The argv of one run (`--project NAME` as two words: AppWright's globalSetup needs it)."""
    return [
        *shlex.split(options.npx),
        "appwright",
        "test",
        spec_filter(spec),
        "--project",
        options.project,
        "--reporter=list,json",
        "--retries",
        str(options.retries),
        "--timeout",
        str(round(options.test_timeout_s * 1000)),
        "--workers",
        "1",
    ]


async def run_spec(
    options: AppwrightOptions,
    spec: Path,
    *,
    env: Mapping[str, str],
    cancel: asyncio.Event | None,
    cwd: Path | None = None,
) -> SpecRun:
    """Run AppWright on one spec and read its report (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="qgjob-appwright-") as scratch:
        report_path = Path(scratch) / "report.json"
        run_env = {
            **env,
            "CI": "1",
            "PLAYWRIGHT_HTML_OPEN": "never",
            "PLAYWRIGHT_JSON_OUTPUT_FILE": str(report_path),
        }
        argv = command(options, spec)
        logger.info("appwright run project=%s spec=%s", options.project, spec)
        try:
            done = await run_shell(
                shlex.join(argv),
                env=run_env,
                cwd=cwd or options.workspace,
                timeout_s=options.job_timeout_s,
                cancel=cancel,
                kill_grace_s=options.kill_grace_s,
                tail_bytes=options.log_limit_bytes,
            )
        except OSError as exc:
            raise InfrastructureError(
                f"cannot start AppWright ({argv[0]}): {exc}", code="spawn"
            ) from exc
        if done.stopped is Stop.TIMEOUT:
            error = (
                f"AppWright ran past the {options.job_timeout_s:g} s wall-clock limit; "
                "its process tree was killed"
            )
            return SpecRun(None, None, done, Outcome.TIMED_OUT, error)
        if done.stopped is Stop.CANCELLED:
            error = "cancelled while running; process tree killed"
            return SpecRun(None, None, done, Outcome.ERROR, error)
        try:
            report = read_report(report_path)
        except InfrastructureError as exc:
            raise InfrastructureError(
                exc.reason + _tail(done.output), code=exc.code, log=done.output
            ) from exc
    found = report.spec_for(spec)
    if found is None:
        raise InfrastructureError(
            f"AppWright's report has no result for {spec} (exit code {done.exit_code})"
            + _tail(done.output),
            code="spec_not_in_report",
            log=done.output,
        )
    return SpecRun(found, report, done, found.outcome, _error_of(found))


def _error_of(spec: SpecResult) -> str | None:
    if spec.error is None:
        return None
    return f"{spec.location}: {spec.error}" if spec.location else spec.error


def _tail(output: str, *, chars: int = 2000) -> str:
    text = output.strip()
    if not text:
        return " (no output)"
    if len(text) > chars:
        text = "…" + text[-chars:]
    return f"; its output ends with:\n{text}"


def job_result(run: SpecRun, *, artifacts: Mapping[str, str] | None = None) -> JobResult:
    """What the worker reports for a finished run."""
    return JobResult(
        outcome=run.outcome,
        duration_ms=run.spec.duration_ms if run.spec is not None else run.completed.duration_ms,
        error=run.error,
        artifacts=dict(artifacts or {}),
        log=run.completed.output,
    )


async def close_parts(*parts: object) -> None:
    """Close what an executor was given that has an async `close()` (build cache, sources)."""
    for part in parts:
        close = getattr(part, "close", None)
        if close is not None:
            await close()
