"""The GitHub side of `/metrics`: webhook deliveries by event and outcome, and every call the
App makes to (a fake) GitHub, by templated route, with its failures by kind."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qgjob.settings import Settings
from tests.acceptance import test_github_app as github_fixtures
from tests.support.github import GitHubRig, payload

# The fake GitHub and the service configured against it, as the GitHub App tests set them up.
app_key = github_fixtures.app_key
fake = github_fixtures.fake
rig = github_fixtures.rig

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]


async def samples(rig: GitHubRig, settings: Settings) -> dict[tuple[str, tuple[Any, ...]], float]:
    admin = settings.local_token_path.read_text().strip()
    async with httpx.AsyncClient(base_url=rig.service_url, timeout=30) as client:
        answer = await client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(found: dict[tuple[str, tuple[Any, ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_deliveries_and_github_calls_are_counted(rig: GitHubRig, settings: Settings) -> None:
    push = payload("push/with-new-branch")
    assert (await rig.deliver("push", push, secret="forged")).status_code == 401
    assert (await rig.deliver("ping", {"zen": "hi", "hook_id": 1})).status_code == 202
    assert (await rig.deliver("push", push, delivery_id="m-1")).status_code == 202
    assert (await rig.deliver("push", push, delivery_id="m-1")).status_code == 202
    await rig.processed("m-1")
    found = await samples(rig, settings)
    deliveries = "qgjob_webhook_deliveries_total"
    assert value(found, deliveries, event="unverified", outcome="bad_signature") == 1
    assert value(found, deliveries, event="ping", outcome="ignored") == 1
    assert value(found, deliveries, event="push", outcome="accepted") == 1
    assert value(found, deliveries, event="push", outcome="duplicate") == 1
    calls = {
        labels: count
        for (name, labels), count in found.items()
        if name == "qgjob_github_api_calls_total"
    }
    routes = {dict(labels)["route"] for labels in calls}
    assert "/app/installations/{id}/access_tokens" in routes, routes
    assert all("Hello-World" not in route and "Codertocat" not in route for route in routes)
    assert sum(calls.values()) >= 2
