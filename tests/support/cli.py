"""Running the real `qgjob` CLI as a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.support.servers import REPO


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str, env: Mapping[str, str], timeout_s: float = 60) -> CliResult:
    done = subprocess.run(
        [sys.executable, "-m", "qgjob", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)
