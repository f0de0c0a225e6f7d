"""The worker protocol over real HTTP: claims, leases, fencing, events, release, expiry."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from qgjob.settings import Settings
from tests.conftest import Api
from tests.support.scheduling import whole_keys

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A claim takes a key whole, as these protocol tests expect (tests/support/scheduling.py;
    tests/integration/test_claim_policy.py tests the batching)."""
    return whole_keys(settings)


async def submit(
    client: httpx.AsyncClient, app_version: str, n: int, **extra: Any
) -> dict[str, Any]:
    body = {
        "org_id": extra.pop("org_id", "qualgent"),
        "app_version_id": app_version,
        "tests": [f"tests/t{i}.spec.ts" for i in range(n)],
        **extra,
    }
    answer = await client.post("/v1/runs", json=body)
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    return run


async def register(
    client: httpx.AsyncClient, *, capacity: int = 1, targets: list[str] | None = None
) -> str:
    answer = await client.post(
        "/v1/workers",
        json={"name": "w", "target_types": targets or ["emulator"], "capacity": capacity},
    )
    assert answer.status_code == 201, answer.text
    worker_id: str = answer.json()["worker_id"]
    return worker_id


async def claim(
    client: httpx.AsyncClient, worker_id: str, wait_s: float = 0
) -> dict[str, Any] | None:
    answer = await client.post(f"/v1/workers/{worker_id}/claim", json={"wait_s": wait_s})
    if answer.status_code == 204:
        return None
    assert answer.status_code == 200, answer.text
    group: dict[str, Any] = answer.json()
    return group


async def one_leased_job(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """A job of its own submitted, and leased to a new worker: its group and the job."""
    await submit(client, "v1", 1)
    group = await claim(client, await register(client))
    assert group is not None
    (job,) = group["jobs"]
    return group, job


def finished(job_id: str, outcome: str = "passed", **extra: Any) -> dict[str, Any]:
    return {"type": "job_finished", "job_id": job_id, "outcome": outcome, "duration_ms": 5, **extra}


async def events(
    client: httpx.AsyncClient, group: dict[str, Any], *evs: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        f"/v1/groups/{group['group_id']}/events",
        json={"lease_token": group["lease_token"], "events": list(evs)},
    )


async def test_claim_leases_one_key_and_nothing_else(api: Api) -> None:
    async with api.client() as client:
        runs = [
            await submit(client, "v1", 3),
            await submit(client, "v2", 2),
            await submit(client, "v3", 2, targets=["browserstack"]),
        ]
        job_version = {j["job_id"]: r["app_version_id"] for r in runs for j in r["jobs"]}
        worker = await register(client, capacity=5)
        groups = []
        while (group := await claim(client, worker)) is not None:
            groups.append(group)
    for group in groups:  # one key per group: its jobs all have the group's build
        assert {job_version[j["job_id"]] for j in group["jobs"]} == {group["app_version_id"]}
    leased = [j["job_id"] for g in groups for j in g["jobs"]]
    assert len(leased) == len(set(leased))
    assert {job_version[j] for j in leased} == {"v1", "v2"}  # not browserstack's v3
    assert groups[0]["app_version_id"] == "v1"  # the oldest key first
    assert len({g["lease_token"] for g in groups}) == len(groups)


async def test_priority_then_age_and_capacity(api: Api) -> None:
    async with api.client() as client:
        await submit(client, "old-normal", 1)
        await submit(client, "new-high", 1, priority="high")
        worker = await register(client, capacity=1)
        first = await claim(client, worker)
        blocked = await claim(client, worker)
    assert first is not None and first["app_version_id"] == "new-high"
    assert blocked is None  # capacity 1, one live group


async def test_claim_long_poll_wakes_on_submit(api: Api) -> None:
    async with api.client() as client:
        worker = await register(client)
        waiting = asyncio.create_task(claim(client, worker, wait_s=20))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await submit(client, "v1", 1)
        group = await asyncio.wait_for(waiting, 15)
    assert group is not None and group["app_version_id"] == "v1"


async def test_result_lifecycle_and_result_recorded_once(api: Api, pool: asyncpg.Pool) -> None:
    async with api.client() as client:
        run = await submit(client, "v1", 2)
        worker = await register(client)
        group = await claim(client, worker)
        assert group is not None
        a, b = (j["job_id"] for j in group["jobs"])
        setup = {"type": "setup_done", "install_ms": 1500, "build": "v1"}
        started = await events(client, group, setup, {"type": "job_started", "job_id": a})
        assert started.json()["applied"] == 2
        running = (await client.get(f"/v1/jobs/{a}")).json()
        assert running["status"] == "RUNNING" and running["worker_id"] == worker
        assert running["started_at"] is not None
        done = await events(client, group, finished(a, log="hello\n"), finished(a))
        assert done.json()["applied"] == 1
        assert len(done.json()["ignored"]) == 1
        await events(client, group, finished(b, "failed", error="expected Welcome"))
        after = (await client.get(f"/v1/runs/{run['run_id']}")).json()
        log = await client.get(f"/v1/jobs/{a}/log")
        late = await events(client, group, finished(b))  # group finished: lease gone
        workers = (await client.get("/v1/workers")).json()["workers"]
    assert after["status"] == "FAILED"
    assert after["counts"]["completed"] == 1 and after["counts"]["failed"] == 1
    (shown,) = after["groups"]
    assert shown["status"] == "FINISHED" and shown["install_ms"] == 1500
    assert shown["worker_id"] == worker
    assert log.text == "hello\n"
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "stale_lease"
    assert workers[0]["status"] == "idle" and workers[0]["ready_builds"] == ["v1"]
    rows = await pool.fetch(
        "SELECT job_id, outcome FROM job_attempts WHERE finished_at IS NOT NULL"
    )
    assert sorted(r["outcome"] for r in rows) == ["failed", "passed"]


async def test_infrastructure_error_retries_then_fails(api: Api) -> None:
    async with api.client() as client:
        await submit(client, "v1", 1)
        worker = await register(client)
        for attempt in (1, 2, 3):
            group = None
            for _ in range(100):  # waits out the backoff
                group = await claim(client, worker, wait_s=0.2)
                if group is not None:
                    break
            assert group is not None
            (job,) = group["jobs"]
            assert job["attempt"] == attempt
            if attempt == 1:
                early = await client.get(f"/v1/jobs/{job['job_id']}/log")
            await events(client, group, finished(job["job_id"], "error", error="adb went away"))
        final = (await client.get(f"/v1/jobs/{job['job_id']}")).json()
        never = await client.get(f"/v1/jobs/{job['job_id']}/log")
    assert early.status_code == 404
    assert early.json()["error"]["message"] == f"job {job['job_id']} has no log yet"
    assert never.status_code == 404 and never.json()["error"]["code"] == "no_log"
    assert never.json()["error"]["message"] == (
        f"job {job['job_id']} ended FAILED without a log: adb went away (gave up after 3 attempts)"
    )
    assert final["status"] == "FAILED"
    assert final["outcome"] == "error"
    assert final["attempts"] == 3
    assert "adb went away" in final["error"] and "3 attempts" in final["error"]


async def test_an_error_the_worker_says_no_retry_fixes_fails_at_once(api: Api) -> None:
    async with api.client() as client:
        group, job = await one_leased_job(client)
        missing = "spec t/0.spec.ts is not in the project at workspace /w"
        answer = await events(
            client, group, finished(job["job_id"], "error", error=missing, retry=False)
        )
        final = (await client.get(f"/v1/jobs/{job['job_id']}")).json()
    assert answer.json()["applied"] == 1
    assert (final["status"], final["outcome"], final["attempts"]) == ("FAILED", "error", 1)
    assert final["error"] == missing


async def test_stale_token_is_refused_and_changes_nothing(api: Api) -> None:
    async with api.client() as client:
        group, job = await one_leased_job(client)
        forged = {**group, "lease_token": group["lease_token"] + 1000}
        refused = await events(client, forged, finished(job["job_id"]))
        beat = await client.post(
            f"/v1/groups/{group['group_id']}/heartbeat", json={"lease_token": forged["lease_token"]}
        )
        still = (await client.get(f"/v1/jobs/{job['job_id']}")).json()
    assert refused.status_code == beat.status_code == 409
    assert still["status"] == "ASSIGNED"


async def test_expired_lease_requeues_keeps_results_and_fences_the_old_worker(
    api: Api, pool: asyncpg.Pool
) -> None:
    async with api.client() as client:
        await submit(client, "v1", 2)
        lost = await register(client)
        group = await claim(client, lost)
        assert group is not None
        done, unfinished = (j["job_id"] for j in group["jobs"])
        await events(client, group, finished(done), {"type": "job_started", "job_id": unfinished})
        # No heartbeats: the 2 s lease runs out and the reaper takes it back.
        rescuer = await register(client)
        regained = None
        for _ in range(100):
            regained = await claim(client, rescuer, wait_s=0.5)
            if regained is not None:
                break
        assert regained is not None
        assert [j["job_id"] for j in regained["jobs"]] == [unfinished]
        assert regained["jobs"][0]["attempt"] == 2
        late = await events(client, group, finished(unfinished))
        await events(client, regained, finished(unfinished))
        kept = (await client.get(f"/v1/jobs/{done}")).json()
        redone = (await client.get(f"/v1/jobs/{unfinished}")).json()
        workers = {w["worker_id"]: w for w in (await client.get("/v1/workers")).json()["workers"]}
    assert late.status_code == 409
    assert kept["status"] == "COMPLETED" and kept["attempts"] == 1
    assert redone["status"] == "COMPLETED" and redone["worker_id"] == rescuer
    assert workers[lost]["status"] == "offline"
    attempts = await pool.fetch(
        "SELECT attempt, outcome, error FROM job_attempts WHERE job_id = $1 ORDER BY attempt",
        redone["job_id"],
    )
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [(1, "error"), (2, "passed")]
    assert "lease expired" in attempts[0]["error"]


async def test_heartbeat_keeps_lease_and_reports_cancellations(api: Api) -> None:
    async with api.client() as client:
        run = await submit(client, "v1", 2)
        worker = await register(client)
        group = await claim(client, worker)
        assert group is not None
        a, b = (j["job_id"] for j in group["jobs"])
        await events(client, group, {"type": "job_started", "job_id": a})
        for _ in range(6):  # 3 s of heartbeats outlive the 2 s TTL
            beat = await client.post(
                f"/v1/groups/{group['group_id']}/heartbeat",
                json={"lease_token": group["lease_token"]},
            )
            assert beat.status_code == 200
            await asyncio.sleep(0.5)
        await client.post(f"/v1/runs/{run['run_id']}/cancel")
        beat = await client.post(
            f"/v1/groups/{group['group_id']}/heartbeat", json={"lease_token": group["lease_token"]}
        )
        late = await events(client, group, finished(a, "failed"))
    assert sorted(beat.json()["cancelled_job_ids"]) == sorted([a, b])
    # The group ended with its jobs; the late result is fenced off.
    assert late.status_code == 409


async def test_release_without_error_hands_back_unstarted_jobs(api: Api) -> None:
    async with api.client() as client:
        await submit(client, "v1", 3)
        worker = await register(client)
        group = await claim(client, worker)
        assert group is not None
        a, b, c = (j["job_id"] for j in group["jobs"])
        await events(client, group, {"type": "job_started", "job_id": a})
        answer = await client.post(
            f"/v1/groups/{group['group_id']}/release",
            json={"lease_token": group["lease_token"], "reason": "draining"},
        )
        assert sorted(answer.json()["released_job_ids"]) == sorted([b, c])
        assert answer.json()["group_finished"] is False
        again = (await client.get(f"/v1/jobs/{b}")).json()
        await events(client, group, finished(a))
        closed = await client.post(
            f"/v1/groups/{group['group_id']}/heartbeat", json={"lease_token": group["lease_token"]}
        )
    assert again["status"] == "PENDING" and again["attempts"] == 0
    assert closed.status_code == 409  # the group ended when its last job did


async def test_release_with_error_counts_an_attempt(api: Api) -> None:
    async with api.client() as client:
        await submit(client, "v1", 1)
        worker = await register(client)
        group = await claim(client, worker)
        assert group is not None
        answer = await client.post(
            f"/v1/groups/{group['group_id']}/release",
            json={
                "lease_token": group["lease_token"],
                "reason": "prepare failed",
                "error": "install failed: INSTALL_FAILED_INSUFFICIENT_STORAGE",
            },
        )
        job = (await client.get(f"/v1/jobs/{group['jobs'][0]['job_id']}")).json()
    assert answer.json()["group_finished"] is True
    assert job["status"] == "PENDING" and job["attempts"] == 1
    assert "INSUFFICIENT_STORAGE" in job["error"]


async def test_an_idle_worker_that_long_polls_stays_idle(api: Api, pool: asyncpg.Pool) -> None:
    """A worker with no group has no lease to renew: its claims are its heartbeats."""
    ttl = api.settings.lease_ttl_s
    async with api.client() as client:
        worker = await register(client)
        loop = asyncio.get_running_loop()
        until = loop.time() + 3 * ttl
        while loop.time() < until:
            assert await claim(client, worker, wait_s=ttl) is None
            status = await pool.fetchval(
                "SELECT status::text FROM workers WHERE worker_id = $1", uuid.UUID(worker)
            )
            assert status == "idle"
        listed = (await client.get("/v1/workers")).json()["workers"]
        assert [(w["worker_id"], w["status"]) for w in listed] == [(worker, "idle")]
        # Once it stops asking, the reaper marks it offline; its next claim brings it back.
        await pool.execute(
            "UPDATE workers SET last_heartbeat = now() - interval '1 hour' WHERE worker_id = $1",
            uuid.UUID(worker),
        )
        offline = "SELECT status::text FROM workers WHERE worker_id = $1"
        while await pool.fetchval(offline, uuid.UUID(worker)) != "offline":
            await asyncio.sleep(0.05)
        assert await claim(client, worker) is None
        assert await pool.fetchval(offline, uuid.UUID(worker)) == "idle"


async def test_worker_endpoints_respect_orgs_and_roles(api: Api) -> None:
    worker_a = await api.token("org-a", role="worker")
    worker_b = await api.token("org-b", role="worker")
    submitter = await api.token("org-a")
    async with api.client(worker_a) as a, api.client(worker_b) as b, api.client(submitter) as s:
        await submit(s, "v1", 1, org_id="org-a")
        wb = await register(b)
        assert await claim(b, wb) is None  # org-b's worker never sees org-a's jobs
        wa = await register(a)
        assert (await b.post(f"/v1/workers/{wa}/claim", json={"wait_s": 0})).status_code == 404
        group = await claim(a, wa)
        assert group is not None
        foreign = await b.post(
            f"/v1/groups/{group['group_id']}/heartbeat", json={"lease_token": group["lease_token"]}
        )
        assert foreign.status_code == 404
        assert (
            await s.post("/v1/workers", json={"name": "x", "target_types": ["emulator"]})
        ).status_code == 403
        listed = (await b.get("/v1/workers")).json()["workers"]
    assert [w["worker_id"] for w in listed] == [wb]


async def test_bad_protocol_bodies(api: Api) -> None:
    async with api.client() as client:
        bad_target = await client.post("/v1/workers", json={"name": "w", "target_types": ["ios"]})
        no_targets = await client.post("/v1/workers", json={"name": "w", "target_types": []})
        worker = await register(client)
        await submit(client, "v1", 1)
        group = await claim(client, worker)
        assert group is not None
        bad_event = await events(
            client, group, {"type": "job_exploded", "job_id": group["jobs"][0]["job_id"]}
        )
        bad_outcome = await events(client, group, finished(group["jobs"][0]["job_id"], "meh"))
    assert bad_target.status_code == no_targets.status_code == 422
    assert bad_event.status_code == bad_outcome.status_code == 422


async def test_cancel_closes_the_running_attempt_and_draining_workers_get_nothing(
    api: Api, pool: asyncpg.Pool
) -> None:
    async with api.client() as client:
        await submit(client, "v1", 1)
        worker = await register(client)
        group = await claim(client, worker)
        assert group is not None
        (job,) = group["jobs"]
        await events(client, group, {"type": "job_started", "job_id": job["job_id"]})
        await client.post(f"/v1/jobs/{job['job_id']}/cancel")
        attempt = await pool.fetchrow(
            "SELECT finished_at, error FROM job_attempts WHERE job_id = $1",
            uuid.UUID(job["job_id"]),
        )
        await submit(client, "v2", 1)
        await client.post(f"/v1/workers/{worker}/status", json={"status": "draining"})
        drained = await claim(client, worker)
    assert attempt is not None
    assert attempt["finished_at"] is not None
    assert attempt["error"] == "cancelled"
    assert drained is None
