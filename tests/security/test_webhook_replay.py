"""DESIGN §3.6: a webhook delivery is acted on once, however often GitHub delivers it.

GitHub redelivers with the same `X-GitHub-Delivery` (a manual "Redeliver", a retry after a
timeout), and anyone who captured a delivery can replay it. Here one signed push is sent ten
times at once, split between two replicas of the service, then again after it was processed;
then its body is altered and replayed under the original signature. Exactly one run and one
check run come of it, and the altered replay is refused.
(The single-replica duplicate answer is in tests/acceptance/test_github_app.py.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.main import create_app
from github_app.signatures import sign
from qgjob.settings import Settings
from tests.standins.github import FakeGitHub, generate_app_key, running_fake_github
from tests.support.github import (
    APP_ID,
    OPENAPI,
    PUSH_SHA,
    REPO,
    WEBHOOK_SECRET,
    GitHubRig,
    add_commit,
    github_settings,
    payload,
)
from tests.support.servers import serve_in_loop
from tests.support.waiting import eventually, soon

pytestmark = pytest.mark.skipif(not OPENAPI.exists(), reason="../shared/github is absent")


@pytest.fixture
def fake() -> Iterator[tuple[FakeGitHub, str, bytes]]:
    private, public = generate_app_key()
    state = FakeGitHub(app_id=APP_ID, public_key=public, openapi_path=OPENAPI)
    repo = state.add_repo(REPO, default_branch="master")
    add_commit(repo, PUSH_SHA, {"tests/a.spec.ts": "test('a')\n"}, branch="master")
    state.add_installation(1, account="Codertocat", repositories=[REPO])
    state.add_installation(957387, account="Codertocat", repositories=[REPO])
    with running_fake_github(state) as url:
        yield state, url, private


async def test_replayed_deliveries_are_acted_on_once(
    settings: Settings, fake: tuple[FakeGitHub, str, bytes], pool: Any
) -> None:
    state, api_url, private = fake
    configured = github_settings(settings, api_url=api_url, private_key=private)
    push = payload("push/with-new-branch")
    async with (
        serve_in_loop(create_app(configured)) as one,
        serve_in_loop(create_app(configured)) as two,
    ):
        rigs = [GitHubRig(state, one, pool), GitHubRig(state, two, pool)]
        answers = await asyncio.gather(
            *(rigs[i % 2].deliver("push", push, delivery_id="only-once") for i in range(10))
        )
        assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
        kinds = sorted(a.json()["status"] for a in answers)
        assert kinds == ["duplicate"] * 9 + ["queued"], kinds
        await rigs[0].processed("only-once")
        late = await rigs[1].deliver("push", push, delivery_id="only-once")
        assert late.json()["status"] == "duplicate"

        # The captured delivery, altered (another commit) and replayed under its signature.
        raw = json.dumps(push).encode()
        signature = sign(raw, secret=WEBHOOK_SECRET)
        altered = json.dumps({**push, "after": "f" * 40}).encode()
        async with httpx.AsyncClient(timeout=30) as client:
            forged = await client.post(
                f"{one}/github/webhooks",
                content=altered,
                headers={
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": "another-id",
                    "X-Hub-Signature-256": signature,
                },
            )
        assert forged.status_code == 401

        await eventually(soon(lambda: state.check_runs_on(PUSH_SHA) or None), what="the check run")
        assert await pool.fetchval("SELECT count(*) FROM runs") == 1
        assert await pool.fetchval("SELECT count(*) FROM webhook_deliveries") == 1
        assert len(state.check_runs_on(PUSH_SHA)) == 1
