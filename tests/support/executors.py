"""What executor tests share: an AppWright project on disk, builds, claimed groups.

`DirectoryBuilds` is a real `BuildFetcher` over a directory of files named by sha256 (what
the worker's build cache does over HTTP): it verifies the content and counts fetches.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dispatch.errors import InfrastructureError
from qgjob.types import Target
from qgjob.worker_api import ClaimedBuild, ClaimedGroup, ClaimedJob
from tests.standins import FAKE_ADB, FAKE_NPX

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NPX = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_NPX))}"
ADB = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_ADB))}"


@dataclass
class DirectoryBuilds:
    """Builds stored as `<dir>/<sha256>` (no extension, like the worker's build cache);
    `fetch` checks the sha256."""

    root: Path
    fetches: Counter[str] = field(default_factory=Counter)

    def add(self, app_version_id: str, content: bytes, filename: str = "app.apk") -> ClaimedBuild:
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.root / sha256
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return ClaimedBuild(
            app_version_id=app_version_id,
            sha256=sha256,
            size=len(content),
            filename=filename,
            platform="android",
            download_path=f"/v1/builds/{app_version_id}/download",
        )

    async def fetch(self, build: ClaimedBuild) -> Path:
        self.fetches[build.sha256] += 1
        path = self.root / build.sha256
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != build.sha256:
            raise InfrastructureError(f"build {build.sha256} missing or corrupt", code="build")
        return path


def workspace(root: Path, specs: dict[str, str]) -> Path:
    """An AppWright project: examples/appwright.config.ts and the given specs under tests/."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "appwright.config.ts", root / "appwright.config.ts")
    for name, source in specs.items():
        path = root / "tests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


def spec(directive: str = "", *, title: str = "it works") -> str:
    lines = ['import { test, expect } from "appwright";', ""]
    if directive:
        lines.append(f"// qgjob-fake: {directive}")
    lines += [
        f'test("{title}", async ({{ device }}) => {{',
        '  await expect(device.getByText("Welcome")).toBeVisible();',
        "});",
        "",
    ]
    return "\n".join(lines)


def group(
    *tests: str,
    target: Target,
    build: ClaimedBuild | None,
    org_id: str = "acme",
    app_version_id: str = "v1",
) -> ClaimedGroup:
    return ClaimedGroup(
        group_id=uuid.uuid4(),
        lease_token=1,
        lease_expires_at=datetime.now(UTC) + timedelta(seconds=30),
        org_id=org_id,
        app_version_id=app_version_id,
        target=target,
        jobs=tuple(
            ClaimedJob(
                job_id=uuid.uuid4(), test_path=t, attempt=1, run_id=uuid.uuid4(), source=None
            )
            for t in tests
        ),
        source=None,
        build=build,
    )
