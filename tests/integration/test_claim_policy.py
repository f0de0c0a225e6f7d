"""The claim applies the scheduling policy on real PostgreSQL, over real HTTP.

One test per rule of DESIGN §5 (priority and aging, fairness and caps, affinity, splitting
with longest-first batches, retries to another worker), duration and setup history, the
`waiting_reason` of a pending job for each reason, and concurrent claims that never lease a
job twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from app.main import create_app
from qgjob.settings import Settings
from tests.conftest import Api
from tests.support.cli import run_cli
from tests.support.servers import child_env, serve_in_loop

pytestmark = pytest.mark.timeout(90)

Serve = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def serve(settings: Settings) -> Serve:
    """A service with some settings changed (`serve(org_caps=...)`)."""

    @asynccontextmanager
    async def start(**changes: Any) -> AsyncIterator[Api]:
        changed = dataclasses.replace(settings, **changes)
        async with serve_in_loop(create_app(changed)) as url:
            admin = changed.local_token_path.read_text().strip()
            yield Api(url=url, settings=changed, admin_token=admin)

    return start


async def submit(
    client: httpx.AsyncClient,
    app_version: str,
    tests: list[str] | int,
    *,
    org: str = "acme",
    **extra: Any,
) -> dict[str, Any]:
    paths = [f"tests/t{i}.spec.ts" for i in range(tests)] if isinstance(tests, int) else tests
    body = {"org_id": org, "app_version_id": app_version, "tests": paths, **extra}
    answer = await client.post("/v1/runs", json=body)
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    return run


async def register(
    client: httpx.AsyncClient, *, capacity: int = 1, targets: tuple[str, ...] = ("emulator",)
) -> str:
    answer = await client.post(
        "/v1/workers", json={"name": "w", "target_types": list(targets), "capacity": capacity}
    )
    assert answer.status_code == 201, answer.text
    worker_id: str = answer.json()["worker_id"]
    return worker_id


async def claim(
    client: httpx.AsyncClient, worker_id: str, *, ready: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    answer = await client.post(
        f"/v1/workers/{worker_id}/claim", json={"wait_s": 0, "ready_builds": list(ready)}
    )
    if answer.status_code == 204:
        return None
    assert answer.status_code == 200, answer.text
    group: dict[str, Any] = answer.json()
    return group


async def history(pool: asyncpg.Pool, org: str, durations_s: dict[str, float]) -> None:
    """Give specs a duration history (as if each had run 3 times)."""
    await pool.execute(
        """INSERT INTO spec_history (org_id, target, test_path, durations_ms)
           SELECT $1, 'emulator', p, array_fill(ms, ARRAY[3])
           FROM unnest($2::text[], $3::int[]) AS d(p, ms)""",
        org,
        list(durations_s),
        [round(s * 1000) for s in durations_s.values()],
    )


async def setup_history(pool: asyncpg.Pool, org: str, setup_s: float) -> None:
    await pool.execute(
        "INSERT INTO target_history (org_id, target, setups_ms) VALUES ($1, 'emulator', $2)",
        org,
        [round(setup_s * 1000)],
    )


async def age(pool: asyncpg.Pool, run: dict[str, Any], seconds: float) -> None:
    await pool.execute(
        "UPDATE jobs SET created_at = created_at - make_interval(secs => $2) WHERE run_id = $1",
        run["run_id"],
        seconds,
    )


async def waiting(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    answer = await client.get(f"/v1/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    reason: dict[str, Any] = answer.json()["waiting_reason"]
    return reason


# --- priority and aging ---------------------------------------------------------------------


async def test_priority_first_then_aging_lets_an_old_low_job_pass(
    serve: Serve, pool: asyncpg.Pool
) -> None:
    async with serve(aging_s=600.0) as api, api.client() as client:
        low = await submit(client, "low", 1, priority="low")
        await submit(client, "normal", 1)
        await submit(client, "high", 1, priority="high")
        worker = await register(client)
        first = await claim(client, worker)
        assert first is not None and first["app_version_id"] == "high"
        await client.post(
            f"/v1/groups/{first['group_id']}/release",
            json={"lease_token": first["lease_token"], "reason": "test"},
        )
        await age(pool, low, 700)  # past the aging bound: overdue, ahead of every fresh key
        second = await claim(client, worker)
    assert second is not None and second["app_version_id"] == "low"


# --- fairness and caps ----------------------------------------------------------------------


async def test_the_org_with_fewer_running_groups_goes_first(serve: Serve) -> None:
    async with serve() as api, api.client() as client:
        await submit(client, "a1", 1, org="acme")
        await submit(client, "a2", 1, org="acme")
        await submit(client, "g1", 1, org="globex")
        first = await claim(client, await register(client))
        second = await claim(client, await register(client))
    assert first is not None and second is not None
    assert first["app_version_id"] == "a1"  # oldest first while nobody runs anything
    assert second["app_version_id"] == "g1"  # acme runs a group, globex none: globex first


async def test_an_org_at_its_cap_gets_no_more_groups(serve: Serve) -> None:
    async with serve(org_caps=(("acme", 1),)) as api, api.client() as client:
        await submit(client, "a1", 1, org="acme")
        a2 = await submit(client, "a2", 1, org="acme")
        first = await claim(client, await register(client))
        second = await claim(client, await register(client))
        capped = await waiting(client, a2["jobs"][0]["job_id"])
    assert first is not None and first["app_version_id"] == "a1"
    assert second is None
    assert capped["code"] == "org_at_cap" and "cap of 1" in capped["message"]


# --- affinity -------------------------------------------------------------------------------


async def test_a_worker_stays_on_a_key_whose_build_it_has(serve: Serve, pool: asyncpg.Pool) -> None:
    async with serve() as api, api.client() as client:
        tests = [f"tests/t{i}.spec.ts" for i in range(12)]
        await history(pool, "acme", dict.fromkeys(tests, 100.0))
        await submit(client, "v1", tests)
        await submit(client, "v2", tests)
        w1, w2, w3 = [await register(client) for _ in range(3)]
        assert (await claim(client, w1))["app_version_id"] == "v1"  # type: ignore[index]
        assert (await claim(client, w2))["app_version_id"] == "v2"  # type: ignore[index]
        # Both keys are served and need help; w3 has v2 installed: no setup for it there.
        third = await claim(client, w3, ready=("v2",))
    assert third is not None and third["app_version_id"] == "v2"


# --- splitting ------------------------------------------------------------------------------


async def test_a_large_key_is_split_longest_first_while_it_pays(
    serve: Serve, pool: asyncpg.Pool
) -> None:
    tests = [f"tests/t{i}.spec.ts" for i in range(8)]
    durations = {path: 10.0 * (i + 1) for i, path in enumerate(tests)}  # 10 s .. 80 s
    async with serve(max_batch_s=0.0) as api, api.client() as client:
        await history(pool, "acme", durations)
        await setup_history(pool, "acme", 20.0)
        await submit(client, "v1", tests)
        workers = [await register(client) for _ in range(3)]
        groups = [await claim(client, w) for w in workers]
    leased = [g for g in groups if g is not None]
    assert len(leased) == 3  # R = 360 s > k·S = 40 s: a third worker still pays off
    first = [durations[j["test_path"]] for j in leased[0]["jobs"]]
    assert first == sorted(first, reverse=True) and first[0] == 80.0  # longest first
    assert sum(first) < sum(durations.values())  # a share, not the whole key
    every = [j["job_id"] for g in leased for j in g["jobs"]]
    assert len(every) == len(set(every))


async def test_no_worker_joins_a_key_its_setup_would_slow_down(
    serve: Serve, pool: asyncpg.Pool
) -> None:
    tests = [f"tests/t{i}.spec.ts" for i in range(4)]
    async with serve(max_batch_s=20.0) as api, api.client() as client:
        await history(pool, "acme", dict.fromkeys(tests, 10.0))
        await setup_history(pool, "acme", 300.0)
        await submit(client, "v1", tests)
        first = await claim(client, await register(client))
        second = await claim(client, await register(client))
    assert first is not None and len(first["jobs"]) == 2  # batches of 20 s
    assert second is None  # R = 20 s left < k·S = 300 s: joining would finish later


# --- retries --------------------------------------------------------------------------------


async def test_an_infrastructure_retry_goes_to_another_worker(serve: Serve) -> None:
    async with serve(retry_backoff_s=0.0) as api, api.client() as client:
        await submit(client, "v1", 1)
        failing, other = await register(client), await register(client)
        group = await claim(client, failing)
        assert group is not None
        released = await client.post(
            f"/v1/groups/{group['group_id']}/release",
            json={"lease_token": group["lease_token"], "reason": "x", "error": "adb offline"},
        )
        assert released.status_code == 200, released.text
        again_same = await claim(client, failing)
        again_other = await claim(client, other)
    assert again_same is None
    assert again_other is not None and again_other["jobs"][0]["attempt"] == 2


# --- history --------------------------------------------------------------------------------


async def test_finished_jobs_and_setups_feed_the_estimates(
    serve: Serve, pool: asyncpg.Pool
) -> None:
    async with serve() as api, api.client() as client:
        await submit(client, "v1", ["tests/a.spec.ts", "tests/b.spec.ts"])
        worker = await register(client)
        group = await claim(client, worker)
        assert group is not None
        by_path = {j["test_path"]: j["job_id"] for j in group["jobs"]}
        a, b = by_path["tests/a.spec.ts"], by_path["tests/b.spec.ts"]
        events = [
            {"type": "setup_done", "install_ms": 4000, "build": "v1"},
            {"type": "job_finished", "job_id": a, "outcome": "passed", "duration_ms": 7000},
            {"type": "job_finished", "job_id": b, "outcome": "skipped", "duration_ms": 9000},
        ]
        answer = await client.post(
            f"/v1/groups/{group['group_id']}/events",
            json={"lease_token": group["lease_token"], "events": events},
        )
        assert answer.status_code == 200, answer.text
        await submit(client, "v2", ["tests/a.spec.ts", "tests/new.spec.ts"])
        again = await claim(client, worker)
        assert again is not None
    specs = {
        r["test_path"]: (list(r["durations_ms"]), list(r["outcomes"]))
        for r in await pool.fetch("SELECT * FROM spec_history WHERE org_id = 'acme'")
    }
    ran = {p: specs[p][0] for p in specs}
    assert ran == {"tests/a.spec.ts": [7000], "tests/b.spec.ts": []}  # ran nothing: no sample
    assert specs["tests/b.spec.ts"][1] == ["skipped"]
    scope = await pool.fetchrow("SELECT * FROM target_history WHERE org_id = 'acme'")
    assert list(scope["setups_ms"]) == [4000] and list(scope["durations_ms"]) == [7000]
    expected = {
        r["test_path"]: r["expected_ms"]
        for r in await pool.fetch(
            "SELECT test_path, expected_ms FROM jobs WHERE app_version_id = 'v2'"
        )
    }
    # p80 of its history; a spec never seen: the mean of what the org's specs took lately.
    assert expected == {"tests/a.spec.ts": 7000, "tests/new.spec.ts": 7000}


# --- waiting reasons ------------------------------------------------------------------------


async def test_waiting_reasons(serve: Serve, pool: asyncpg.Pool) -> None:
    async with serve() as api, api.client() as client:
        alone = await submit(client, "v1", 1)
        no_worker = await waiting(client, alone["jobs"][0]["job_id"])
        worker = await register(client)
        free = await waiting(client, alone["jobs"][0]["job_id"])
        high = [await submit(client, f"h{n}", 1, priority="high") for n in range(2)]
        behind = await waiting(client, alone["jobs"][0]["job_id"])
        for run in high:
            await client.post(f"/v1/runs/{run['run_id']}/cancel")
        await pool.execute(
            "UPDATE jobs SET not_before = now() + interval '1 hour' WHERE run_id = $1",
            alone["run_id"],
        )
        backing_off = await waiting(client, alone["jobs"][0]["job_id"])
        done = await claim(client, worker)
    assert no_worker["code"] == "no_worker_for_target" and "emulator" in no_worker["message"]
    assert free["code"] == "waiting_for_free_worker"
    assert behind["code"] == "behind_higher_priority" and behind["ahead"] == 2
    assert backing_off["code"] == "backing_off" and backing_off["until"] is not None
    assert done is None  # backing off: not claimable yet


async def test_a_job_that_is_not_pending_has_no_waiting_reason(serve: Serve) -> None:
    async with serve() as api, api.client() as client:
        run = await submit(client, "v1", 1)
        await claim(client, await register(client))
        job = (await client.get(f"/v1/jobs/{run['jobs'][0]['job_id']}")).json()
    assert job["status"] == "ASSIGNED" and job["waiting_reason"] is None


# --- concurrency ----------------------------------------------------------------------------


async def test_concurrent_claims_never_lease_a_job_twice(serve: Serve, pool: asyncpg.Pool) -> None:
    # Leases long enough that none expires (and is leased again) on a loaded machine.
    async with serve(max_batch_s=30.0, lease_ttl_s=120.0) as api, api.client() as client:
        for version in ("v1", "v2", "v3"):
            await submit(client, version, 20)
        workers = [await register(client, capacity=3) for _ in range(6)]
        rounds = [
            await asyncio.gather(*(claim(client, w) for w in workers for _ in range(3)))
            for _ in range(2)
        ]
    groups = [g for batch in rounds for g in batch if g is not None]
    leased = [j["job_id"] for g in groups for j in g["jobs"]]
    assert groups and len(leased) == len(set(leased))
    twice = await pool.fetchval(
        """SELECT count(*) FROM (
               SELECT a.job_id FROM job_attempts a JOIN groups g USING (group_id)
               WHERE g.status = 'LEASED' GROUP BY a.job_id HAVING count(*) > 1) AS t"""
    )
    live = await pool.fetchval(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM groups WHERE status = 'LEASED' "
        "GROUP BY worker_id) AS t"
    )
    assert twice == 0 and live <= 3


# --- the CLI --------------------------------------------------------------------------------


async def test_qgjob_status_shows_why_a_job_waits(api: Api) -> None:
    async with api.client() as client:
        run = await submit(client, "v1", 1)
    env = child_env({"QGJOB_SERVER_URL": api.url, "QGJOB_TOKEN": api.admin_token})
    job_id = run["jobs"][0]["job_id"]
    shown = await asyncio.to_thread(run_cli, "status", f"--job-id={job_id}", env=env)
    as_json = await asyncio.to_thread(run_cli, "status", f"--job-id={job_id}", "--json", env=env)
    assert shown.code == 0, shown.stderr
    assert "Waiting" in shown.stdout and "no online worker serves emulator" in shown.stdout
    assert as_json.json()["waiting_reason"]["code"] == "no_worker_for_target"


async def test_a_job_waits_for_its_build_until_it_is_registered(serve: Serve) -> None:
    async with serve() as api, api.client() as client:
        run = await submit(client, "v9", 1)
        job_id = run["jobs"][0]["job_id"]
        answer = await client.post(
            "/v1/workers",
            json={"name": "p", "target_types": ["emulator"], "capacity": 1, "needs_build": True},
        )
        picky = answer.json()["worker_id"]
        before = await claim(client, picky)
        reason = await waiting(client, job_id)
        build = {"org_id": "acme", "app_version_id": "v9", "url": "https://cdn.example/a.apk",
                 "sha256": "ab" * 32, "size": 10}  # fmt: skip
        assert (await client.post("/v1/builds", json=build)).status_code == 201
        after = await waiting(client, job_id)
        group = await claim(client, picky)
    assert before is None
    assert reason["code"] == "waiting_for_build" and "v9" in reason["message"]
    assert after["code"] == "waiting_for_free_worker"
    assert group is not None and group["build"]["sha256"] == "ab" * 32


# --- grouping -------------------------------------------------------------------------------


async def test_an_org_may_split_its_groups_by_repository(serve: Serve) -> None:
    # Leases of at least 1,000 expected seconds: each key whole.
    split = serve(grouping=(("acme", ("repo",)),), max_batch_s=0.0, min_batch_s=1000.0)
    async with split as api, api.client() as client:
        await submit(client, "v1", 2, repo="acme/app", source="api")
        await submit(client, "v1", 2, repo="acme/lib", source="api")
        await submit(client, "v1", 2, org="globex", repo="globex/app", source="api")
        await submit(client, "v1", 2, org="globex", repo="globex/lib", source="api")
        worker = await register(client, capacity=4)
        groups = [await claim(client, worker) for _ in range(4)]
    leased = [g for g in groups if g is not None]
    by_org: dict[str, list[set[str | None]]] = {}
    for group in leased:
        repos = {job["source"]["repo"] if job["source"] else None for job in group["jobs"]}
        by_org.setdefault(group["org_id"], []).append(repos)
    assert sorted(map(sorted, by_org["acme"])) == [["acme/app"], ["acme/lib"]]  # type: ignore[type-var]
    assert by_org["globex"] == [{"globex/app", "globex/lib"}]  # the default key: one group
