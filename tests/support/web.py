"""Helpers for tests of the web pages: runs made through the API, groups played through the
worker protocol, and a browser-like client that signs in with the login form."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import httpx

from qgjob.types import Outcome, Target
from qgjob.worker_api import JobFinished, JobStarted, SetupDone, WorkerApi
from tests.conftest import Api

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def submit(api: Api, token: str, org_id: str, tests: list[str], **extra: Any) -> Any:
    async with api.client(token) as client:
        answer = await client.post(
            "/v1/runs",
            json={"org_id": org_id, "app_version_id": "app-1", "tests": tests, **extra},
        )
        answer.raise_for_status()
        return answer.json()


async def play_group(
    api: Api,
    worker_token: str,
    outcomes: Mapping[str, Outcome | None],
    *,
    name: str = "web-worker",
    artifacts: Mapping[str, str] | None = None,
) -> UUID:
    """Register a worker, claim one group, and finish its jobs with `outcomes` by test path
    (None: started and left RUNNING); each log says "log of <path>" in a terminal's colour.
    Returns the worker id."""
    async with WorkerApi(api.url, worker_token) as worker:
        worker_id = await worker.register(
            name=name, target_types=[Target.EMULATOR], labels={"model": "Pixel 8"}, capacity=1
        )
        group = await worker.claim(worker_id, wait_s=2.0)
        assert group is not None, "no group came for the worker"
        events: list[Any] = [SetupDone(install_ms=1500, build="app-1")]
        for job in group.jobs:
            events.append(JobStarted(job_id=job.job_id))
            outcome = outcomes[job.test_path]
            if outcome is not None:
                events.append(
                    JobFinished(
                        job_id=job.job_id,
                        outcome=outcome,
                        duration_ms=2300,
                        error=None if outcome.is_success else f"{job.test_path}: expected 1, got 2",
                        artifacts=dict(artifacts or {}),
                        log=f"\x1b[2mlog\x1b[0m of {job.test_path}\n",
                    )
                )
        await worker.send_events(group.group_id, group.lease_token, events)
        return worker_id


@asynccontextmanager
async def signed_in(api: Api, token: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a session cookie, signed in through the login form."""
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as client:
        answer = await client.post("/ui/login", data={"token": token, "next": "/ui"})
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found is not None, "the page has no CSRF token"
    return found[1]
