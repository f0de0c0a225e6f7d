"""The `local` executor: a shell command per job on this host, and one per group to prepare.

`--command` runs once per job with the placeholders `{test_path}`, `{app_version_id}`,
`{target}`, `{job_id}` and `{attempt}` replaced by shell-quoted values (a test path with
spaces or quotes stays one word), and the same values in `QGJOB_*` environment variables.
A placeholder inside quotes in the template is refused: its quoted value would end the
template's quotes early and let the shell expand what the value holds (a test path is the
submitter's text).
Exit 0 is `passed`, anything else `failed`; the last MiB of stdout+stderr is the job's log.
A job that runs past its timeout, or that is cancelled, is stopped with its whole process tree.

`--prepare-command` runs once per group, before its first job, with `{app_version_id}` and
`{target}`; a non-zero exit is an infrastructure error, so the group goes to another worker.
With a build cache (`qgjob worker --needs-build`) the group's build is fetched first and its
path is in `QGJOB_BUILD_PATH` for both commands. A job whose run's repository the service
granted a token for runs in a checkout of it (`dispatch.sources`), else in `--workspace`.
Other `{…}` text (shell `${VAR}`, awk programs) is left as it is.

A command with no shell syntax at all (only words of letters, digits and `-_./:,+@%=`, and
placeholders) whose program is found on `PATH` is run without the shell: its words are
split on spaces and each placeholder is replaced by its raw value inside its word, which
gives the program exactly the arguments the shell would have given it after quoting.
This saves a shell per job (a second exec when the program is not a shell builtin).
Anything else (quotes, `$`, `;`, `|`, `>`, globs, `~`, an assignment first, a word that
is only a shell builtin such as `exit` or `cd`) goes through `/bin/sh -c` as before, and
so do programs the shell has built in (`true`, `echo`, …): that is one exec either way.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import os
import re
import shlex
import shutil
from collections.abc import Collection, Mapping
from pathlib import Path
from uuid import UUID

from dispatch.buildcache import BuildCache
from dispatch.errors import InfrastructureError
from dispatch.executors.base import JobResult, JobSpec, PrepareResult
from dispatch.processes import DEFAULT_TAIL_BYTES, SHELL, Completed, Stop, run_argv
from dispatch.sources import Sources
from qgjob.types import Outcome
from qgjob.worker_api import ClaimedGroup

logger = logging.getLogger(__name__)

JOB_PLACEHOLDERS = ("test_path", "app_version_id", "target", "job_id", "attempt")
PREPARE_PLACEHOLDERS = ("app_version_id", "target")
# `{name}` not preceded by `$`, so that the shell's `${name}` is left alone.
_PLACEHOLDER = re.compile(r"(?<!\$)\{([a-z_]+)\}")
# A template that the shell would only split into words: no quoting, expansion, redirection,
# globbing, comments or control operators (checked once the placeholders are taken out).
_PLAIN_WORDS = re.compile(r"[A-Za-z0-9_./:,+@%= -]+")
# Programs that `/bin/sh` runs itself without an exec: through the shell they cost one exec
# (of the shell, always in the page cache), the same count as running them directly.
_SHELL_BUILTINS = frozenset({"true", "false", "echo", "printf", "test", "pwd", "kill"})
# The environment the worker itself was given that a test command must not see.
_WITHHELD_ENV = ("QGJOB_TOKEN",)
_ERROR_TAIL_CHARS = 4000
_KEPT_BUILD_PATHS = 64


def check_template(template: str, *, allowed: Collection[str], option: str) -> str:
    """`template` if its placeholders are all `allowed`; ValueError naming the culprit if not.
    Other `{name}` text is the shell's or a program's (`awk '{print}'`) unless it is a near
    miss of a placeholder (`{test_paht}`), which would otherwise reach the shell as it is."""
    if not template.strip():
        raise ValueError(f"{option} must not be empty")
    accepted = ", ".join("{" + a + "}" for a in allowed)
    quoted = _quoted_spans(template)
    for match in _PLACEHOLDER.finditer(template):
        name = match[1]
        if name in JOB_PLACEHOLDERS and name not in allowed:
            raise ValueError(f"{option} cannot use {{{name}}}; it accepts {accepted}")
        if name in allowed and any(start < match.start() < end for start, end in quoted):
            raise ValueError(
                f"{option} has {{{name}}} inside quotes; write it bare (e.g. "
                f"--command 'npx appwright test {{test_path}}'): qgjob quotes each value "
                "for the shell itself, and a value inside quotes could run as shell code"
            )
        if name not in JOB_PLACEHOLDERS and (
            near := difflib.get_close_matches(name, allowed, n=1, cutoff=0.75)
        ):
            raise ValueError(
                f"{option} has {{{name}}}: did you mean {{{near[0]}}}? It accepts {accepted}"
            )
    return template


def _quoted_spans(template: str) -> list[tuple[int, int]]:
    """Where `template` is inside shell quotes ('…' or "…"), as (open, close) offsets; an
    unclosed quote runs to the end. Backslash escapes count outside single quotes."""
    spans: list[tuple[int, int]] = []
    quote: str | None = None
    opened = 0
    index = 0
    while index < len(template):
        char = template[index]
        if char == "\\" and quote != "'":
            index += 2
            continue
        if quote is None and char in "'\"":
            quote, opened = char, index
        elif char == quote:
            spans.append((opened, index))
            quote = None
        index += 1
    if quote is not None:
        spans.append((opened, len(template)))
    return spans


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace the known placeholders with their shell-quoted values."""

    def value(match: re.Match[str]) -> str:
        name = match[1]
        return shlex.quote(values[name]) if name in values else match[0]

    return _PLACEHOLDER.sub(value, template)


def plain_argv(template: str, values: Mapping[str, str]) -> list[str] | None:
    """The argument list the shell would run for `template`, when it is plain words (see the
    module docstring); None when it needs the shell."""
    bare = _PLACEHOLDER.sub(lambda m: "x" if m[1] in values else "{", template)
    if not _PLAIN_WORDS.fullmatch(bare) or "=" in bare.split()[0]:
        return None

    def value(match: re.Match[str]) -> str:
        return values[match[1]]

    return [_PLACEHOLDER.sub(value, word) for word in template.split(" ") if word]


class LocalExecutor:
    """Runs each job as a shell command on this host (see the module docstring)."""

    def __init__(
        self,
        *,
        command: str,
        prepare_command: str | None = None,
        job_timeout_s: float | None = None,
        prepare_timeout_s: float | None = None,
        kill_grace_s: float = 5.0,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_limit_bytes: int = DEFAULT_TAIL_BYTES,
        builds: BuildCache | None = None,
        sources: Sources | None = None,
    ) -> None:
        self.command = check_template(command, allowed=JOB_PLACEHOLDERS, option="--command")
        self.prepare_command = (
            None
            if prepare_command is None
            else check_template(
                prepare_command, allowed=PREPARE_PLACEHOLDERS, option="--prepare-command"
            )
        )
        self.job_timeout_s = job_timeout_s
        self.prepare_timeout_s = prepare_timeout_s
        self.kill_grace_s = kill_grace_s
        base = dict(os.environ if env is None else env)
        self._env = {k: v for k, v in base.items() if k not in _WITHHELD_ENV}
        self.cwd = cwd
        self.log_limit_bytes = log_limit_bytes
        self.builds = builds
        self.sources = sources
        self._build_paths: dict[UUID, Path] = {}  # group → its build file, newest last

    def __repr__(self) -> str:
        return f"LocalExecutor(command={self.command!r}, prepare={self.prepare_command!r})"

    async def prepare(self, group: ClaimedGroup) -> PrepareResult:
        build_env = await self._fetch_build(group)
        if self.prepare_command is None:
            return PrepareResult(install_ms=0, build=group.app_version_id)
        values = {"app_version_id": group.app_version_id, "target": str(group.target)}
        done = await self._run(
            self.prepare_command,
            values,
            env={"QGJOB_" + name.upper(): value for name, value in values.items()} | build_env,
            timeout_s=self.prepare_timeout_s,
            cancel=None,
        )
        if done.stopped is Stop.TIMEOUT:
            raise InfrastructureError(
                f"the prepare command timed out after {self.prepare_timeout_s:g} s"
                + _tail(done.output),
                code="prepare_timeout",
            )
        if done.exit_code != 0:
            raise InfrastructureError(
                f"the prepare command {_exit(done.exit_code)}" + _tail(done.output),
                code="prepare_failed",
            )
        return PrepareResult(install_ms=done.duration_ms, build=group.app_version_id)

    async def run(self, job: JobSpec, *, cancel: asyncio.Event) -> JobResult:
        values = {
            "test_path": job.test_path,
            "app_version_id": job.app_version_id,
            "target": str(job.target),
            "job_id": str(job.job_id),
            "attempt": str(job.attempt),
        }
        env = {"QGJOB_" + name.upper(): value for name, value in values.items()}
        if (build := self._build_paths.get(job.group_id)) is not None:
            env["QGJOB_BUILD_PATH"] = str(build)
        cwd = self.cwd
        if self.sources is not None and job.source is not None and job.source.token:
            cwd = (await self.sources.checkout(job.source)).root
        done = await self._run(
            self.command,
            values,
            env=env,
            timeout_s=self.job_timeout_s,
            cancel=cancel,
            cwd=cwd,
        )
        return _result(done, timeout_s=self.job_timeout_s)

    async def close(self) -> None:
        if self.builds is not None:
            await self.builds.close()
        if self.sources is not None:
            await self.sources.close()

    async def _fetch_build(self, group: ClaimedGroup) -> dict[str, str]:
        """With a build cache, the group's build is fetched before anything runs; its path
        is in `QGJOB_BUILD_PATH` for the prepare command and every job of the group."""
        if self.builds is None or group.build is None:
            return {}
        path = await self.builds.fetch(group.build)
        self._build_paths[group.group_id] = path
        while len(self._build_paths) > _KEPT_BUILD_PATHS:
            del self._build_paths[next(iter(self._build_paths))]
        return {"QGJOB_BUILD_PATH": str(path), "QGJOB_BUILD_SHA256": group.build.sha256}

    async def _run(
        self,
        template: str,
        values: Mapping[str, str],
        *,
        env: Mapping[str, str],
        timeout_s: float | None,
        cancel: asyncio.Event | None,
        cwd: Path | None = None,
    ) -> Completed:
        env = {**self._env, **env}
        argv = plain_argv(template, values)
        program = None
        if argv is not None and argv[0] not in _SHELL_BUILTINS:
            program = shutil.which(argv[0], path=env.get("PATH"))
        if argv is None or program is None:  # shell syntax or a builtin: the shell runs it
            argv, program = [SHELL, "-c", fill(template, values)], SHELL
        try:
            return await run_argv(
                argv,
                executable=program,
                env=env,
                cwd=cwd or self.cwd,
                timeout_s=timeout_s,
                cancel=cancel,
                kill_grace_s=self.kill_grace_s,
                tail_bytes=self.log_limit_bytes,
            )
        except OSError as exc:  # no shell, a working directory that is gone, out of fds
            raise InfrastructureError(f"cannot start the command: {exc}", code="spawn") from exc


def _result(done: Completed, *, timeout_s: float | None) -> JobResult:
    if done.stopped is Stop.TIMEOUT:
        outcome, error = Outcome.TIMED_OUT, f"timed out after {timeout_s:g} s; process tree killed"
    elif done.stopped is Stop.CANCELLED:
        outcome, error = Outcome.ERROR, "cancelled while running; process tree killed"
    elif done.exit_code == 0:
        outcome, error = Outcome.PASSED, None
    else:
        outcome, error = Outcome.FAILED, f"the command {_exit(done.exit_code)}"
    return JobResult(outcome=outcome, duration_ms=done.duration_ms, error=error, log=done.output)


def _exit(code: int) -> str:
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def _tail(output: str) -> str:
    text = output.strip()
    if not text:
        return " (no output)"
    if len(text) > _ERROR_TAIL_CHARS:
        text = "…" + text[-_ERROR_TAIL_CHARS:]
    return f"; its output ends with:\n{text}"
