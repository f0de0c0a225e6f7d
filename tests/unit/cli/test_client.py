"""QgjobClient against the stand-in API (in process) and against scripted transports."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from qgjob.client import QgjobClient
from qgjob.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    ServerError,
    ServerUnreachable,
    TransientError,
    Unauthorized,
    UnexpectedResponse,
    ValidationFailed,
)
from qgjob.types import JobStatus, Priority, Role, RunSource, Target
from tests.unit.cli.standin import StandinState, build_app

BASE = "http://qgjob.test"


@pytest.fixture
async def client(state: StandinState) -> AsyncIterator[QgjobClient]:
    transport = httpx.ASGITransport(app=build_app(state))
    async with QgjobClient(BASE, "good-token", transport=transport) as client:
        yield client


def scripted(
    *answers: httpx.Response | Exception,
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that gives `answers` in turn and records the requests it saw."""
    seen: list[httpx.Request] = []
    pending = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


async def test_submit_run_sends_the_documented_body_and_parses_the_run(
    client: QgjobClient, state: StandinState
) -> None:
    run = await client.submit_run(
        org_id="qualgent",
        app_version_id="xyz123",
        tests=["tests/a.spec.js", "tests/b.spec.js"],
        targets=[Target.DEVICE],
        priority=Priority.HIGH,
        source=RunSource.CLI,
    )
    sent = state.requests[-1]
    assert sent["json"] == {
        "org_id": "qualgent",
        "app_version_id": "xyz123",
        "tests": ["tests/a.spec.js", "tests/b.spec.js"],
        "targets": ["device"],
        "priority": "high",
        "source": "cli",
    }
    assert sent["authorization"] == "Bearer good-token"
    uuid.UUID(sent["idempotency_key"])  # a fresh key on every submit, so retries are safe
    assert [job.test_path for job in run.all_jobs] == ["tests/a.spec.js", "tests/b.spec.js"]
    assert {job.status for job in run.all_jobs} == {JobStatus.PENDING}
    assert all(job.run_id == run.run_id and job.target is Target.DEVICE for job in run.all_jobs)


async def test_submit_job_then_get_cancel_and_list(
    client: QgjobClient, state: StandinState
) -> None:
    job = await client.submit_job(
        org_id="qualgent", app_version_id="v1", test_path="tests/a.spec.js", idempotency_key="k-1"
    )
    assert state.requests[-1]["idempotency_key"] == "k-1"
    assert state.requests[-1]["json"]["target"] == "emulator"
    assert (await client.get_job(job.job_id)).test_path == "tests/a.spec.js"
    cancelled = await client.cancel_job(job.job_id)
    assert cancelled.status is JobStatus.CANCELLED
    page = await client.list_jobs(org_id="qualgent", status=JobStatus.CANCELLED, limit=10)
    assert [j.job_id for j in page.jobs] == [job.job_id]
    assert state.requests[-1]["query"] == {
        "org_id": "qualgent",
        "status": "CANCELLED",
        "limit": "10",
    }


async def test_get_run_reads_jobs_from_groups_and_cancel_run(client: QgjobClient) -> None:
    submitted = await client.submit_run(
        org_id="qualgent", app_version_id="v1", tests=["a.spec.js", "b.spec.js"]
    )
    run = await client.get_run(submitted.run_id)
    assert run.jobs is None
    assert run.groups is not None
    assert sorted(job.test_path for job in run.all_jobs) == ["a.spec.js", "b.spec.js"]
    cancelled = await client.cancel_run(submitted.run_id)
    assert cancelled.counts.cancelled == 2


async def test_stats_and_create_token(client: QgjobClient) -> None:
    await client.submit_run(org_id="qualgent", app_version_id="v1", tests=["a.spec.js"])
    stats = await client.stats()
    assert (stats.jobs.total, stats.jobs.pending, stats.workers.active) == (1, 1, 2)
    issued = await client.create_token(org_id="acme", role=Role.WORKER, name="lab-1")
    assert issued.token.startswith("qgj_")
    assert issued.role is Role.WORKER
    assert issued.token not in repr(issued)  # the secret never shows in a repr


async def test_unknown_job_is_not_found(client: QgjobClient) -> None:
    with pytest.raises(NotFound) as caught:
        await client.get_job(uuid.uuid4())
    assert caught.value.status == 404
    assert caught.value.code == "not_found"


async def test_cancelling_a_finished_job_is_a_conflict(
    client: QgjobClient, state: StandinState
) -> None:
    job = await client.submit_job(org_id="qualgent", app_version_id="v1", test_path="a.spec.js")
    state.jobs[str(job.job_id)]["status"] = "COMPLETED"
    with pytest.raises(Conflict, match="is already COMPLETED and cannot be cancelled"):
        await client.cancel_job(job.job_id)


async def test_missing_token_is_unauthorized(state: StandinState) -> None:
    transport = httpx.ASGITransport(app=build_app(state))
    async with QgjobClient(BASE, None, transport=transport) as client:
        with pytest.raises(Unauthorized, match="missing credentials"):
            await client.stats()
    assert state.requests[-1]["authorization"] is None


async def test_non_admin_token_creation_is_forbidden(state: StandinState) -> None:
    transport = httpx.ASGITransport(app=build_app(state))
    async with QgjobClient(BASE, "submit-token", transport=transport) as client:
        with pytest.raises(Forbidden):
            await client.create_token(org_id="qualgent", role=Role.ADMIN)


async def test_422_keeps_the_field() -> None:
    body = {"error": {"code": "invalid_input", "message": "unknown field", "field": "colour"}}
    transport, _ = scripted(httpx.Response(422, json=body))
    async with QgjobClient(BASE, "t", transport=transport) as client:
        with pytest.raises(ValidationFailed) as caught:
            await client.stats()
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        422,
        "invalid_input",
        "colour",
    )
    assert caught.value.message == "unknown field"


async def test_error_without_the_documented_body_still_maps_by_status() -> None:
    transport, _ = scripted(httpx.Response(502, text="<html>Bad Gateway</html>"))
    async with QgjobClient(BASE, "t", transport=transport, retries=0) as client:
        with pytest.raises(ServerError) as caught:
            await client.stats()
    assert isinstance(caught.value, TransientError)
    assert isinstance(caught.value, ApiError)
    assert caught.value.code == "http_502"
    assert "502" in caught.value.message


async def test_answer_of_the_wrong_shape_is_unexpected() -> None:
    transport, _ = scripted(httpx.Response(200, json={"jobs": {"total": "many"}}))
    async with QgjobClient(BASE, "t", transport=transport) as client:
        with pytest.raises(UnexpectedResponse, match="not a valid Stats"):
            await client.stats()


async def test_connection_refused_is_server_unreachable(refused_url: str) -> None:
    async with QgjobClient(refused_url, "t", retries=0) as client:
        with pytest.raises(ServerUnreachable) as caught:
            await client.stats()
    assert caught.value.url == refused_url
    assert refused_url in str(caught.value)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_a_submit_is_retried_with_the_same_idempotency_key() -> None:
    run = {
        "run_id": str(uuid.uuid4()), "org_id": "o", "source": "cli", "app_version_id": "v",
        "targets": ["emulator"], "priority": "normal", "status": "PENDING",
        "created_at": "2026-01-01T00:00:00+00:00", "finished_at": None,
        "counts": dict.fromkeys(
            ("total", "pending", "assigned", "running", "completed", "failed", "cancelled"), 0
        ),
        "jobs": [],
    }  # fmt: skip
    transport, seen = scripted(httpx.ReadError("connection reset"), httpx.Response(201, json=run))
    async with QgjobClient(BASE, "t", transport=transport) as client:
        answer = await client.submit_run(org_id="o", app_version_id="v", tests=["a.spec.js"])
    assert str(answer.run_id) == run["run_id"]
    assert len(seen) == 2
    keys = {request.headers["Idempotency-Key"] for request in seen}
    assert len(keys) == 1  # the service sees one submission, not two
    assert json.loads(seen[0].content) == json.loads(seen[1].content)


async def test_a_cancel_whose_answer_was_lost_is_not_repeated() -> None:
    transport, seen = scripted(httpx.ReadError("connection reset"))
    async with QgjobClient(BASE, "t", transport=transport) as client:
        with pytest.raises(ServerUnreachable):
            await client.cancel_job(uuid.uuid4())
    assert len(seen) == 1


def test_errors_can_be_rebuilt_from_their_fields() -> None:
    error = copy.copy(ValidationFailed(422, "invalid_input", "bad", "tests"))
    assert isinstance(error, ValidationFailed)
    assert (error.status, error.code, error.message, error.field) == (
        422,
        "invalid_input",
        "bad",
        "tests",
    )
    unreachable = copy.copy(ServerUnreachable("http://h:1", "refused"))
    assert (unreachable.url, unreachable.reason) == ("http://h:1", "refused")


async def test_a_request_that_never_reached_the_server_is_retried() -> None:
    stats = {
        "jobs": dict.fromkeys(
            ("total", "pending", "running", "completed", "failed", "cancelled"), 0
        ),
        "workers": {"total": 0, "active": 0},
        "groups": {"total": 0},
    }
    transport, seen = scripted(httpx.ConnectError("refused"), httpx.Response(200, json=stats))
    async with QgjobClient(BASE, "t", transport=transport) as client:
        assert (await client.stats()).workers.total == 0
    assert len(seen) == 2
