"""An AppWright project in a temporary directory, and fake_npx run on it as a real process."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.standins import FAKE_NPX

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def spec_source(*titles: str, directive: str = "") -> str:
    """A spec file with one AppWright test per title, each ending in an `expect`."""
    lines = ['import { test, expect } from "appwright";', ""]
    if directive:
        lines += [f"// qgjob-fake: {directive}", ""]
    for title in titles:
        lines += [
            f'test("{title}", async ({{ device }}) => {{',
            '  await device.getByText("Continue").tap();',
            '  await expect(device.getByText("Welcome")).toBeVisible();',
            "});",
            "",
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    report: Path


@dataclass
class Project:
    """A copy of examples/appwright.config.ts with its own tests/ and a build to install."""

    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def tests(self) -> Path:
        return self.root / "tests"

    def spec(self, name: str, source: str) -> Path:
        path = self.tests / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        return path

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 30,
        report_name: str = "results.json",
    ) -> Run:
        report = self.root / "out" / report_name
        full_env = {**self.env, "PLAYWRIGHT_JSON_OUTPUT_FILE": str(report), **(env or {})}
        done = subprocess.run(
            [str(FAKE_NPX), *args],
            cwd=self.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr, report)


def base_env() -> dict[str, str]:
    """Our environment without CI (it changes AppWright's default retries) or QGJOB_*."""
    return {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("QGJOB_")}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "app"
    root.mkdir()
    shutil.copy(EXAMPLES / "appwright.config.ts", root / "appwright.config.ts")
    build = root / "builds" / "app-release.apk"
    build.parent.mkdir()
    build.write_bytes(b"PK\x03\x04 fake apk")
    (root / "tests").mkdir()
    return Project(root=root, env={**base_env(), "QGJOB_BUILD_PATH": str(build)})
