"""The GitHub App end to end: a fake GitHub on 127.0.0.1, signed deliveries, a scripted worker.

`GitHubRig` holds the fake's state and the service's URL; `deliver` signs and posts a
webhook payload the way GitHub does; `ScriptedWorker` plays a worker over the real worker
protocol (register, claim, job started, job finished) with outcomes chosen per spec path.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from github_app.signatures import sign
from qgjob.settings import Secret, Settings
from qgjob.types import Outcome, Target
from qgjob.worker_api import JobFinished, JobSource, JobStarted, SetupDone, WorkerApi
from tests.standins.github import FakeGitHub, FakeRepo
from tests.support.waiting import eventually

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = (REPO_ROOT / ".." / "shared").resolve()
PAYLOADS = SHARED / "github" / "payloads" / "payload-examples" / "api.github.com"
OPENAPI = SHARED / "github" / "openapi-subset.json"
APP_ID = 29310  # the app id in the recorded check_suite payloads
WEBHOOK_SECRET = "It's a Secret to Everybody"
REPO = "Codertocat/Hello-World"
PUSH_SHA = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"  # push/with-new-branch
PR_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"  # pull_request/*, check_suite/rerequested


def payload(name: str) -> dict[str, Any]:
    """A recorded webhook payload, e.g. `payload("push/with-new-branch")`."""
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.payload.json").read_text())
    return data


def fork_pull_request(action: str = "opened") -> dict[str, Any]:
    """`pull_request/opened` as if its head lived in a fork, `forker/Hello-World`."""
    data = copy.deepcopy(payload(f"pull_request/{action}"))
    head = data["pull_request"]["head"]
    head["label"] = "forker:changes"
    head["repo"]["full_name"] = "forker/Hello-World"
    head["repo"]["fork"] = True
    head["repo"]["id"] = 9999
    head["repo"]["owner"]["login"] = "forker"
    head["user"]["login"] = "forker"
    return data


def github_settings(base: Settings, *, api_url: str, private_key: bytes) -> Settings:
    """`base` with the App configured against the fake, and short loops for tests."""
    import dataclasses

    return dataclasses.replace(
        base,
        github_app_id=str(APP_ID),
        github_private_key=Secret(private_key.decode()),
        github_webhook_secret=Secret(WEBHOOK_SECRET),
        github_api_url=api_url,
        public_url="https://qgjob.example.test",
        github_write_spacing_s=0.02,
        github_progress_interval_s=0.3,
        github_poll_interval_s=0.05,
        github_timeout_s=1.0,
    )


def add_commit(repo: FakeRepo, sha: str, specs: Mapping[str, str], *, config: str | None = None,
               branch: str | None = None) -> str:  # fmt: skip
    files: dict[str, str] = {"README.md": "# Hello\n", "src/app.ts": "export {}\n", **specs}
    if config is not None:
        files["qgjob.toml"] = config
    return repo.commit(files, sha=sha, branch=branch)


@dataclass
class GitHubRig:
    state: FakeGitHub
    service_url: str
    pool: Any
    delivered: list[str] = field(default_factory=list)
    state_url: str = ""  # the fake GitHub's base URL

    async def deliver(
        self,
        event: str,
        body: Mapping[str, Any] | bytes,
        *,
        delivery_id: str | None = None,
        secret: str = WEBHOOK_SECRET,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        delivery_id = delivery_id or str(uuid.uuid4())
        sent = {
            "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/abc123",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery_id,
            "X-GitHub-Hook-ID": "1",
            "X-Hub-Signature-256": sign(raw, secret=secret),
            **(headers or {}),
        }
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(
                f"{self.service_url}/github/webhooks", content=raw, headers=sent
            )
        self.delivered.append(delivery_id)
        return answer

    async def outcome(self, delivery_id: str) -> str | None:
        """The delivery's recorded outcome once processed."""
        row = await self.pool.fetchrow(
            "SELECT processed_at, outcome FROM webhook_deliveries WHERE delivery_id = $1",
            delivery_id,
        )
        return None if row is None or row["processed_at"] is None else str(row["outcome"])

    async def processed(self, delivery_id: str, *, timeout_s: float = 30) -> str:
        return await eventually(lambda: self.outcome(delivery_id), what=f"delivery {delivery_id}",
                                timeout_s=timeout_s)  # fmt: skip


@dataclass
class ScriptedWorker:
    """A worker over the real protocol that reports `outcomes[path]` (default passed)."""

    url: str
    token: str
    outcomes: Mapping[str, Outcome] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    target: Target = Target.EMULATOR
    sources: list[JobSource] = field(default_factory=list)  # what each claimed group said

    async def run_until_idle(self, *, idle_s: float = 1.0, hold_s: float = 0.0) -> int:
        """Claim and finish groups until none comes for `idle_s`; returns jobs finished.
        `hold_s` keeps each group running (started, not finished) that long."""
        done = 0
        async with WorkerApi(self.url, self.token) as api:
            worker_id = await api.register(
                name=f"scripted-{uuid.uuid4().hex[:6]}", target_types=[self.target],
                labels={}, capacity=1,
            )  # fmt: skip
            while True:
                group = await api.claim(worker_id, wait_s=idle_s)
                if group is None:
                    return done
                if group.source is not None:
                    self.sources.append(group.source)
                await api.send_events(group.group_id, group.lease_token, [
                    SetupDone(install_ms=1500), *(JobStarted(j.job_id) for j in group.jobs)
                ])  # fmt: skip
                if hold_s:
                    await asyncio.sleep(hold_s)
                finished = [
                    JobFinished(
                        j.job_id, self.outcomes.get(j.test_path, Outcome.PASSED), duration_ms=1200,
                        error=self.errors.get(j.test_path),
                    )
                    for j in group.jobs
                ]  # fmt: skip
                await api.send_events(group.group_id, group.lease_token, finished)
                done += len(finished)
