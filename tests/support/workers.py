"""`qgjob worker` and other CLI commands as real subprocesses, driven from the test's loop.

The `api` fixture serves the service in the test's own event loop, so nothing here may block
it: processes are started and awaited with asyncio, never with `subprocess.run`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.servers import REPO


@dataclass
class WorkerProcess:
    """One `python -m qgjob worker …` process, with its stderr+stdout in `log_path`."""

    args: list[str]
    env: dict[str, str]
    log_path: Path
    proc: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "qgjob",
                "worker",
                *self.args,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=REPO,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def send(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def wait(self, *, timeout_s: float = 30) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout_s)
        except TimeoutError:
            raise AssertionError(
                f"worker still running after {timeout_s} s; its log:\n{self.log()[-4000:]}"
            ) from None

    async def kill9(self) -> None:
        self.send(signal.SIGKILL)
        await self.wait(timeout_s=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(frozen=True)
class CliAnswer:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


async def run_cli_async(*args: str, env: Mapping[str, str], timeout_s: float = 60) -> CliAnswer:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "qgjob",
        *args,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return CliAnswer(proc.returncode, out.decode(), err.decode())
