"""`GET /metrics` over real HTTP on a real database: who may scrape, and that every series
moves when the thing it counts happens (queue depth, claims, expiries, retries, results)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from qgjob.settings import Secret, Settings
from tests.conftest import Api
from tests.integration.test_leases import claim, events, finished, register, submit
from tests.support.scheduling import whole_keys
from tests.support.servers import serve_in_loop

pytestmark = pytest.mark.timeout(60)
SCRAPE_SECRET = "scrape-only-secret-for-tests"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A claim takes a key whole, as these tests expect (tests/support/scheduling.py).
    return dataclasses.replace(whole_keys(settings), metrics_token=Secret(SCRAPE_SECRET))


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with serve_in_loop(create_app(settings)) as url:
        admin = settings.local_token_path.read_text().strip()
        yield Api(url=url, settings=settings, admin_token=admin)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(api: Api, token: str | None = None) -> Samples:
    async with api.client(token) as client:
        answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_only_fleet_admins_and_the_scrape_secret_may_scrape(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        assert (await anonymous.get("/metrics")).status_code == 401
        wrong = await anonymous.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    submitter = await api.token("acme")
    org_admin = await api.token("acme", role="admin")
    async with api.client(submitter) as client:
        assert (await client.get("/metrics")).status_code == 403
    async with api.client(org_admin) as client:
        refused = await client.get("/metrics")
    assert refused.status_code == 403
    assert "fleet-wide" in refused.json()["error"]["message"]
    await scrape(api)  # the local admin token is fleet-wide
    await scrape(api, SCRAPE_SECRET)


async def test_queue_claims_results_and_retries_are_counted(api: Api) -> None:
    async with api.client() as client:
        await submit(client, "v1", 3, org_id="acme")
        await submit(client, "v1", 2, org_id="globex", targets=["browserstack"])
        before = await scrape(api, SCRAPE_SECRET)
        assert value(before, "qgjob_queue_depth", org_id="acme", target="emulator") == 3
        assert value(before, "qgjob_queue_depth", org_id="globex", target="browserstack") == 2
        assert value(before, "qgjob_jobs", status="PENDING") == 5
        assert value(before, "qgjob_groups_leased") == 0

        worker = await register(client)
        group = await claim(client, worker)
        assert group is not None and len(group["jobs"]) == 3
        leased = await scrape(api)
        assert value(leased, "qgjob_queue_depth", org_id="acme", target="emulator") == 0
        assert value(leased, "qgjob_jobs", status="ASSIGNED") == 3
        assert value(leased, "qgjob_groups_leased") == 1
        assert value(leased, "qgjob_claims_total", target="emulator") == 1
        assert value(leased, "qgjob_claim_latency_seconds_count", target="emulator") == 3
        assert value(leased, "qgjob_claim_turn_claims_count") >= 1  # a turn per long-poll try
        assert value(leased, "qgjob_claim_turn_claims_bucket", le="1.0") >= 1
        turns = value(leased, "qgjob_claim_turn_claims_count")
        assert value(leased, "qgjob_claim_turn_seconds_count") == turns
        assert value(leased, "qgjob_claim_turn_seconds_sum") > 0
        assert value(leased, "qgjob_workers", status="busy") == 1

        first, second, third = (job["job_id"] for job in group["jobs"])
        answer = await events(
            client,
            group,
            finished(first, "passed"),
            finished(second, "error", error="adb: device offline"),
            finished(first, "failed"),  # a second result for the same job: ignored
        )
        assert answer.status_code == 200, answer.text
        after = await scrape(api)
        assert value(after, "qgjob_job_results_total", outcome="passed") == 1
        assert value(after, "qgjob_job_results_total", outcome="error") == 1
        assert value(after, "qgjob_job_results_total", outcome="failed") == 0
        assert value(after, "qgjob_job_retries_total", reason="infrastructure_error") == 1

        released = await client.post(
            f"/v1/groups/{group['group_id']}/release",
            json={"lease_token": group["lease_token"], "reason": "draining"},
        )
        assert released.status_code == 200, released.text
        assert third in released.json()["released_job_ids"]
    final = await scrape(api)
    assert value(final, "qgjob_job_retries_total", reason="released") == 1
    route = "/v1/groups/{group_id}/events"
    assert value(final, "qgjob_http_requests_total", method="POST", route=route, status="200") == 1


async def test_an_expired_lease_is_counted_with_its_retries(api: Api) -> None:
    async with api.client() as client:
        await submit(client, "v1", 2)
        worker = await register(client)
        assert await claim(client, worker) is not None
    # No heartbeat: the lease (TTL 2 s) expires and the reaper (every 0.2 s) takes it back.
    for _ in range(150):
        samples = await scrape(api)
        if value(samples, "qgjob_lease_expirations_total") >= 1:
            break
        await asyncio.sleep(0.1)
    assert value(samples, "qgjob_lease_expirations_total") == 1
    assert value(samples, "qgjob_job_retries_total", reason="lease_expired") == 2


async def test_every_answer_carries_a_request_id(api: Api) -> None:
    async with api.client() as client:
        made = await client.get("/v1/stats")
        kept = await client.get("/v1/stats", headers={"X-Request-Id": "ci-run-42.step-3"})
        unsafe = await client.get("/v1/stats", headers={"X-Request-Id": "a b\tc"})
        missing = await client.get("/v1/no/such/thing")
    assert len(made.headers["x-request-id"]) == 32
    assert kept.headers["x-request-id"] == "ci-run-42.step-3"
    assert unsafe.headers["x-request-id"] != "a b\tc"
    assert missing.status_code == 404 and missing.headers["x-request-id"]
    samples = await scrape(api)
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert value(samples, "qgjob_http_requests_total", **unmatched) == 1
