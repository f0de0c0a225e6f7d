"""Applying a batch of events (app/store/events.py) over real HTTP: what lands, what is refused."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from tests.conftest import Api
from tests.integration.test_leases import claim, events, finished, register, submit

pytestmark = pytest.mark.timeout(60)


async def test_a_result_for_a_job_cancelled_while_it_ran_is_kept_on_its_attempt_only(
    api: Api, pool: asyncpg.Pool
) -> None:
    async with api.client() as client:
        await submit(client, "v1", 2)
        worker = await register(client)
        group = await claim(client, worker)
        assert group is not None
        a, b = (j["job_id"] for j in group["jobs"])
        await events(client, group, {"type": "job_started", "job_id": a})
        assert (await client.post(f"/v1/jobs/{a}/cancel")).status_code == 200
        late = await events(client, group, finished(a, log="ran to the end\n"), finished(b))
        job_a = (await client.get(f"/v1/jobs/{a}")).json()
        job_b = (await client.get(f"/v1/jobs/{b}")).json()
    assert late.status_code == 200
    assert late.json()["applied"] == 1
    assert late.json()["ignored"] == [
        {"job_id": a, "reason": "job is CANCELLED; attempt recorded only"}
    ]
    assert job_a["status"] == "CANCELLED" and job_a["outcome"] is None
    assert job_b["status"] == "COMPLETED" and job_b["outcome"] == "passed"
    attempt = await pool.fetchrow(
        "SELECT outcome::text, log FROM job_attempts WHERE job_id = $1", uuid.UUID(a)
    )
    assert attempt is not None
    assert attempt["outcome"] == "passed" and attempt["log"] == "ran to the end\n"


async def test_a_batch_applies_each_job_once_and_names_what_it_ignored(api: Api) -> None:
    async with api.client() as client:
        run = await submit(client, "v1", 3)
        other = await submit(client, "v2", 1)
        worker = await register(client, capacity=2)
        group = await claim(client, worker)
        assert group is not None
        a, b, c = (j["job_id"] for j in group["jobs"])
        stranger = other["jobs"][0]["job_id"]
        first = await events(
            client,
            group,
            {"type": "job_started", "job_id": a},
            finished(a),
            finished(b, "error", error="device went away"),
            finished(stranger),
        )
        again = await events(client, group, finished(a, "failed"), finished(c))
        shown = (await client.get(f"/v1/runs/{run['run_id']}")).json()
    assert first.status_code == 200
    assert first.json()["applied"] == 2
    assert first.json()["ignored"] == [{"job_id": stranger, "reason": "not a job of this group"}]
    assert again.json()["applied"] == 1
    assert again.json()["ignored"] == [
        {"job_id": a, "reason": "this attempt's result is already recorded"}
    ]
    jobs = [job for shown_group in shown["groups"] for job in shown_group["jobs"]]
    statuses = {j["job_id"]: (j["status"], j["outcome"]) for j in jobs}
    assert statuses[a] == ("COMPLETED", "passed")
    assert statuses[b] == ("PENDING", None)  # an infrastructure error is retried
    assert statuses[c] == ("COMPLETED", "passed")
