"""Submitting, reading, listing and cancelling over real HTTP on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from app.api.schemas import Job, JobPage, Run, Stats
from qgjob.types import Target
from qgjob.worker_api import WorkerApi
from tests.conftest import Api

JOB = {"org_id": "qualgent", "app_version_id": "xyz123", "test_path": "tests/onboarding.spec.js"}


async def test_submit_job_returns_pending_job_with_every_field(api: Api) -> None:
    async with api.client() as client:
        answer = await client.post("/v1/jobs", json=JOB)
    assert answer.status_code == 201
    job = Job.model_validate(answer.json())
    assert job.status == "PENDING"
    assert job.target == "emulator"
    assert job.priority == "normal"
    assert job.attempts == 0
    assert job.outcome is None and job.worker_id is None and job.started_at is None


async def test_seed_paths_submit_and_read(api: Api) -> None:
    async with api.client() as client:
        created = await client.post("/submit-job", json={**JOB, "priority": "high"})
        assert created.status_code == 201
        job_id = created.json()["job_id"]
        status = await client.get(f"/status/{job_id}")
    assert status.status_code == 200
    assert status.json()["priority"] == "high"


async def test_run_of_1000_tests_is_one_transaction(api: Api, pool: asyncpg.Pool) -> None:
    tests = [f"tests/spec_{i:04}.spec.ts" for i in range(1000)]
    body = {"org_id": "qualgent", "app_version_id": "v1", "tests": tests}
    async with api.client() as client:
        answer = await client.post("/v1/runs", json=body)
    assert answer.status_code == 201
    run = Run.model_validate(answer.json())
    assert run.jobs is not None
    assert [j.test_path for j in run.jobs] == tests
    assert run.counts.total == 1000 and run.counts.pending == 1000
    assert await pool.fetchval("SELECT count(*) FROM jobs WHERE run_id = $1", run.run_id) == 1000


async def test_run_crosses_tests_and_targets_and_groups_them(api: Api) -> None:
    body = {
        "org_id": "qualgent",
        "app_version_id": "v2",
        "tests": ["tests/a.spec.ts", "tests/b.spec.ts"],
        "targets": ["emulator", "browserstack"],
        "priority": "high",
    }
    async with api.client() as client:
        created = (await client.post("/v1/runs", json=body)).json()
        run = (await client.get(f"/v1/runs/{created['run_id']}")).json()
    assert len(created["jobs"]) == 4
    assert {(g["app_version_id"], g["target"]) for g in run["groups"]} == {
        ("v2", "emulator"),
        ("v2", "browserstack"),
    }
    assert all(len(g["jobs"]) == 2 for g in run["groups"])
    assert run["status"] == "PENDING"


async def test_idempotency_key_returns_first_answer_and_creates_nothing(
    api: Api, pool: asyncpg.Pool
) -> None:
    headers = {"Idempotency-Key": "submit-1"}
    async with api.client() as client:
        first = await client.post("/v1/jobs", json=JOB, headers=headers)
        again = await client.post("/v1/jobs", json=JOB, headers=headers)
        other = await client.post(
            "/v1/jobs", json={**JOB, "test_path": "tests/other.spec.js"}, headers=headers
        )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await pool.fetchval("SELECT count(*) FROM jobs") == 1


async def test_concurrent_repeats_of_one_key_create_one_run(api: Api, pool: asyncpg.Pool) -> None:
    body = {"org_id": "qualgent", "app_version_id": "v3", "tests": ["tests/a.spec.ts"]}
    async with api.client() as client:
        answers = await asyncio.gather(
            *(
                client.post("/v1/runs", json=body, headers={"Idempotency-Key": "k"})
                for _ in range(8)
            )
        )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert await pool.fetchval("SELECT count(*) FROM runs") == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**JOB, "colour": "red"}, 422, "colour"),
        ({**JOB, "target": "ios"}, 422, "target"),
        ({**JOB, "priority": "urgent"}, 422, "priority"),
        ({**JOB, "test_path": ""}, 422, "test_path"),
        ({**JOB, "test_path": "   "}, 422, "test_path"),
        ({**JOB, "test_path": "../../etc/passwd"}, 422, "test_path"),
        ({**JOB, "test_path": "/abs/a.spec.ts"}, 422, "test_path"),
        ({**JOB, "org_id": "bad org!"}, 422, "org_id"),
        ({k: v for k, v in JOB.items() if k != "app_version_id"}, 422, "app_version_id"),
        (["not", "an", "object"], 422, None),
    ],
)
async def test_bad_job_bodies_are_refused_naming_the_field(
    api: Api, body: object, status: int, field: str | None
) -> None:
    async with api.client() as client:
        answer = await client.post("/v1/jobs", json=body)
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["message"]
    assert error.get("field") == field


async def test_malformed_json_is_400_and_oversized_body_is_413(api: Api) -> None:
    async with api.client() as client:
        malformed = await client.post("/v1/jobs", content=b'{"org_id": ')
        huge = await client.post("/v1/runs", content=b"{" + b" " * (1024 * 1024 + 10) + b"}")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "bad_request"
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "payload_too_large"


async def test_unknown_and_malformed_ids(api: Api) -> None:
    async with api.client() as client:
        unknown = await client.get(f"/v1/jobs/{uuid.uuid4()}")
        malformed = await client.get("/v1/jobs/not-a-uuid")
        no_route = await client.get("/v1/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert malformed.status_code == 422
    assert malformed.json()["error"]["field"] == "job_id"
    assert no_route.status_code == 404
    assert "error" in no_route.json()


async def test_missing_and_wrong_tokens_are_401(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as anonymous:
        missing = await anonymous.get("/v1/stats")
        wrong = await anonymous.get("/v1/stats", headers={"Authorization": "Bearer qgj_nope"})
        basic = await anonymous.get("/v1/stats", headers={"Authorization": "Basic abc"})
    assert [r.status_code for r in (missing, wrong, basic)] == [401, 401, 401]
    assert all(r.json()["error"]["code"] == "unauthorized" for r in (missing, wrong, basic))


async def test_org_isolation(api: Api) -> None:
    token_a = await api.token("org-a")
    token_b = await api.token("org-b")
    async with api.client(token_a) as a, api.client(token_b) as b:
        job = (await a.post("/v1/jobs", json={**JOB, "org_id": "org-a"})).json()
        run_id, job_id = job["run_id"], job["job_id"]
        assert (await b.get(f"/v1/jobs/{job_id}")).status_code == 404
        assert (await b.get(f"/status/{job_id}")).status_code == 404
        assert (await b.get(f"/v1/runs/{run_id}")).status_code == 404
        assert (await b.post(f"/v1/jobs/{job_id}/cancel")).status_code == 404
        assert (await b.post(f"/v1/runs/{run_id}/cancel")).status_code == 404
        listed = await b.get("/v1/jobs", params={"org_id": "org-a"})
        assert listed.status_code == 403
        assert listed.json()["error"]["message"] == (
            "this token belongs to org 'org-b' and cannot see the jobs of 'org-a'"
        )
        assert (await b.get("/v1/jobs")).json()["jobs"] == []  # its own, none
        stats_b = (await b.get("/v1/stats")).json()
        assert stats_b["jobs"]["total"] == 0
        forbidden = await b.post("/v1/jobs", json={**JOB, "org_id": "org-a"})
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["field"] == "org_id"
        assert (await a.get(f"/v1/jobs/{job_id}")).status_code == 200
        assert (await a.get("/v1/stats")).json()["jobs"]["total"] == 1


async def test_roles(api: Api) -> None:
    worker = await api.token("org-a", role="worker")
    submitter = await api.token("org-a")
    async with api.client(worker) as w, api.client(submitter) as s:
        assert (await w.post("/v1/jobs", json={**JOB, "org_id": "org-a"})).status_code == 403
        denied = await s.post("/v1/tokens", json={"org_id": "org-a", "role": "admin"})
        assert denied.status_code == 403
    org_admin = await api.token("org-a", role="admin")
    async with api.client(org_admin) as admin:
        other = await admin.post("/v1/tokens", json={"org_id": "org-b", "role": "submitter"})
        assert other.status_code == 403
        own = await admin.post("/v1/tokens", json={"org_id": "org-a", "role": "submitter"})
        assert own.status_code == 201


async def test_list_pages_through_every_job_once(api: Api) -> None:
    body = {
        "org_id": "qualgent",
        "app_version_id": "v9",
        "tests": [f"t{i}.spec.ts" for i in range(23)],
    }
    async with api.client() as client:
        run = (await client.post("/v1/runs", json=body)).json()
        await client.post("/v1/jobs", json={**JOB, "app_version_id": "other"})
        seen: list[str] = []
        cursor = None
        while True:
            params = {
                "app_version_id": "v9",
                "limit": "5",
                **({"cursor": cursor} if cursor else {}),
            }
            page = JobPage.model_validate((await client.get("/v1/jobs", params=params)).json())
            seen.extend(str(j.job_id) for j in page.jobs)
            cursor = page.next_cursor
            if cursor is None:
                break
        bad = await client.get("/v1/jobs", params={"status": "DONE"})
        bad_cursor = await client.get("/v1/jobs", params={"cursor": "zzz"})
        bad_limit = await client.get("/v1/jobs", params={"limit": "0"})
    assert sorted(seen) == sorted(j["job_id"] for j in run["jobs"])
    assert len(seen) == 23
    assert bad.status_code == bad_cursor.status_code == bad_limit.status_code == 422


async def test_cancel_job_and_run(api: Api) -> None:
    body = {"org_id": "qualgent", "app_version_id": "v4", "tests": ["a.spec.ts", "b.spec.ts"]}
    async with api.client() as client:
        run = (await client.post("/v1/runs", json=body)).json()
        first, second = run["jobs"]
        cancelled = await client.post(f"/v1/jobs/{first['job_id']}/cancel")
        again = await client.post(f"/v1/jobs/{first['job_id']}/cancel")
        partly = (await client.get(f"/v1/runs/{run['run_id']}")).json()
        after = (await client.post(f"/v1/runs/{run['run_id']}/cancel")).json()
        stats = Stats.model_validate((await client.get("/v1/stats")).json())
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["finished_at"] is not None
    assert again.status_code == 409
    assert after["status"] == "CANCELLED"
    assert after["counts"]["cancelled"] == 2
    # Never dispatched: a cancelled job is not shown as waiting beside the one still queued.
    shown = {g["status"]: [j["job_id"] for j in g["jobs"]] for g in partly["groups"]}
    assert shown == {"CANCELLED": [first["job_id"]], "WAITING": [second["job_id"]]}
    (group,) = after["groups"]
    assert (group["status"], group["group_id"], group["worker_id"]) == ("CANCELLED", None, None)
    assert {j["job_id"] for j in group["jobs"]} == {first["job_id"], second["job_id"]}
    assert stats.jobs.cancelled == 2 and stats.jobs.pending == 0


async def test_a_run_cancelled_while_its_group_prepares_shows_the_group(api: Api) -> None:
    body = {"org_id": "qualgent", "app_version_id": "v5", "tests": ["a.spec.ts"]}
    async with api.client() as client:
        run = (await client.post("/v1/runs", json=body)).json()
    async with WorkerApi(api.url, api.admin_token) as worker:
        worker_id = await worker.register(
            name="preparing", target_types=[Target.EMULATOR], labels={}, capacity=1
        )
        group = await worker.claim(worker_id, wait_s=2.0)  # leased; no job started yet
    assert group is not None
    async with api.client() as client:
        await client.post(f"/v1/runs/{run['run_id']}/cancel")
        shown = (await client.get(f"/v1/runs/{run['run_id']}")).json()
    (leased,) = shown["groups"]  # the group it was leased in, not "cancelled before dispatch"
    assert (leased["group_id"], leased["worker_name"]) == (str(group.group_id), "preparing")
    assert [j["status"] for j in leased["jobs"]] == ["CANCELLED"]


async def test_openapi_documents_every_route(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    for path, method in [
        ("/v1/jobs", "post"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{job_id}", "get"),
        ("/v1/runs", "post"),
        ("/v1/runs/{run_id}/cancel", "post"),
        ("/v1/stats", "get"),
    ]:
        assert method in doc["paths"][path]
    refs = {"Job", "Run", "Stats", "ErrorBody", "JobSubmission", "RunSubmission"}
    assert refs <= set(doc["components"]["schemas"])


async def test_a_run_says_which_token_submitted_it(api: Api) -> None:
    async with api.client() as admin:
        named = (
            await admin.post(
                "/v1/tokens", json={"org_id": "qualgent", "role": "submitter", "name": "nightly"}
            )
        ).json()
        unnamed = (
            await admin.post("/v1/tokens", json={"org_id": "qualgent", "role": "submitter"})
        ).json()
    body = {"org_id": "qualgent", "app_version_id": "v1", "tests": ["tests/a.spec.ts"]}
    made_by = {}
    for token in (named, unnamed):
        async with api.client(token["token"]) as client:
            run = (await client.post("/v1/runs", json=body)).json()
            again = (await client.get(f"/v1/runs/{run['run_id']}")).json()
            job = (await client.post("/v1/jobs", json={**JOB, "org_id": "qualgent"})).json()
            single = (await client.get(f"/v1/runs/{job['run_id']}")).json()
        assert run["submitted_by"] == again["submitted_by"] == single["submitted_by"]
        made_by[token["token_id"]] = run["submitted_by"]
    assert made_by[named["token_id"]] == "nightly"
    assert made_by[unnamed["token_id"]] == f"token {uuid.UUID(unnamed['token_id']).hex[:8]}"
