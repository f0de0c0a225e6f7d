"""WorkerApi's edge: request shapes, answers parsed into dataclasses, errors translated.

Scripted transports play single answers here; the protocol itself (against the real
service and real worker processes) is covered by tests/acceptance/test_workers.py.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from qgjob.errors import (
    Conflict,
    NotFound,
    ServerError,
    ServerUnreachable,
    StaleLease,
    TransientError,
    UnexpectedResponse,
)
from qgjob.types import Outcome, Target, WorkerStatus
from qgjob.worker_api import (
    MAX_ERROR_CHARS,
    MAX_LOG_CHARS,
    JobFinished,
    JobStarted,
    SetupDone,
    WorkerApi,
)

BASE = "http://qgjob.test"
GROUP = uuid.uuid4()
WORKER = uuid.uuid4()


def api_answering(
    *answers: httpx.Response | Exception,
) -> tuple[WorkerApi, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    pending = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return WorkerApi(BASE, "worker-token", transport=httpx.MockTransport(handle)), seen


def claimed_body() -> dict[str, object]:
    job = {
        "job_id": str(uuid.uuid4()),
        "test_path": "tests/a b.spec.ts",
        "attempt": 2,
        "run_id": str(uuid.uuid4()),
        "source": None,
    }
    return {
        "group_id": str(GROUP),
        "lease_token": 7,
        "lease_expires_at": "2026-01-01T00:00:30+00:00",
        "org_id": "qualgent",
        "app_version_id": "v1",
        "target": "emulator",
        "jobs": [job],
        "source": {"repo": "acme/app", "ref": "main", "head_sha": None},
    }


async def test_claim_waits_longer_than_the_long_poll_and_parses_the_group() -> None:
    api, seen = api_answering(httpx.Response(200, json=claimed_body()))
    async with api:
        group = await api.claim(WORKER, wait_s=25, ready_builds=["v0", "v1"])
    assert group is not None
    assert (group.group_id, group.lease_token, group.target) == (GROUP, 7, Target.EMULATOR)
    assert group.jobs[0].attempt == 2 and group.jobs[0].test_path == "tests/a b.spec.ts"
    assert group.source is not None and group.source.repo == "acme/app"
    request = seen[0]
    assert request.url.path == f"/v1/workers/{WORKER}/claim"
    assert json.loads(request.content) == {"wait_s": 25, "ready_builds": ["v0", "v1"]}
    assert request.headers["Authorization"] == "Bearer worker-token"
    assert request.extensions["timeout"]["read"] > 25


async def test_claim_with_nothing_to_do_is_none() -> None:
    api, _ = api_answering(httpx.Response(204))
    async with api:
        assert await api.claim(WORKER, wait_s=0) is None


async def test_a_stale_lease_is_its_own_error() -> None:
    stale = {"error": {"code": "stale_lease", "message": "the lease on group x is not live"}}
    other = {"error": {"code": "conflict", "message": "no"}}
    api, _ = api_answering(httpx.Response(409, json=stale), httpx.Response(409, json=other))
    async with api:
        with pytest.raises(StaleLease) as caught:
            await api.heartbeat(GROUP, 7)
        assert isinstance(caught.value, Conflict)
        with pytest.raises(Conflict) as plain:
            await api.heartbeat(GROUP, 7)
        assert not isinstance(plain.value, StaleLease)


async def test_outages_are_transient_and_never_retried_inside() -> None:
    api, seen = api_answering(
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"error": {"code": "unavailable", "message": "db down"}}),
    )
    async with api:
        with pytest.raises(ServerUnreachable):
            await api.send_events(GROUP, 7, [JobStarted(uuid.uuid4())])
        with pytest.raises(ServerError) as caught:
            await api.release(GROUP, 7, reason="drain")
    assert isinstance(caught.value, TransientError)
    # One request each: the refused one was not retried here, the worker loop decides.
    assert [r.url.path.rsplit("/", 1)[-1] for r in seen] == ["events", "release"]


async def test_events_go_out_in_the_documented_shape_and_within_limits() -> None:
    job_id = uuid.uuid4()
    receipt = {
        "applied": 2,
        "ignored": [{"job_id": str(job_id), "reason": "already recorded"}],
        "cancelled_job_ids": [str(job_id)],
    }
    api, seen = api_answering(httpx.Response(200, json=receipt))
    huge_log = "a" + "x" * MAX_LOG_CHARS
    async with api:
        answer = await api.send_events(
            GROUP,
            7,
            [
                SetupDone(install_ms=1500, build="v1"),
                JobFinished(
                    job_id=job_id,
                    outcome=Outcome.FAILED,
                    duration_ms=42,
                    error="e" * (MAX_ERROR_CHARS + 10),
                    artifacts={"junit": "file:///tmp/junit.xml"},
                    log=huge_log,
                ),
            ],
        )
    assert answer.applied == 2 and answer.cancelled_job_ids == frozenset({job_id})
    assert answer.ignored[0].reason == "already recorded"
    body = json.loads(seen[0].content)
    assert body["lease_token"] == 7
    setup, finished = body["events"]
    assert setup == {"type": "setup_done", "install_ms": 1500, "build": "v1"}
    assert finished["type"] == "job_finished" and finished["outcome"] == "failed"
    assert len(finished["log"]) == MAX_LOG_CHARS and not finished["log"].startswith("a")
    assert len(finished["error"]) == MAX_ERROR_CHARS


async def test_release_sends_the_error_only_for_infrastructure_failures() -> None:
    answer = {"released_job_ids": [str(uuid.uuid4())], "group_finished": True}
    api, seen = api_answering(httpx.Response(200, json=answer), httpx.Response(200, json=answer))
    async with api:
        await api.release(GROUP, 7, reason="worker draining")
        receipt = await api.release(GROUP, 7, reason="prepare failed", error="adb: offline")
    assert json.loads(seen[0].content) == {"lease_token": 7, "reason": "worker draining"}
    assert json.loads(seen[1].content)["error"] == "adb: offline"
    assert receipt.group_finished and len(receipt.released_job_ids) == 1


async def test_a_malformed_answer_is_unexpected() -> None:
    api, _ = api_answering(httpx.Response(200, json={"lease_expires_at": "soon"}))
    async with api:
        with pytest.raises(UnexpectedResponse, match="heartbeat answer"):
            await api.heartbeat(GROUP, 7)


async def test_status_is_only_draining_or_offline() -> None:
    api, seen = api_answering(httpx.Response(200, json={"status": "draining"}))
    async with api:
        await api.set_status(WORKER, WorkerStatus.DRAINING)
        with pytest.raises(ValueError, match="draining or offline"):
            await api.set_status(WORKER, WorkerStatus.BUSY)
    assert json.loads(seen[0].content) == {"status": "draining"}


async def test_job_log_is_text_and_a_missing_one_is_not_found() -> None:
    missing = {"error": {"code": "no_log", "message": "job has no log yet"}}
    api, seen = api_answering(
        httpx.Response(200, text="line 1\nline 2\n"), httpx.Response(404, json=missing)
    )
    job_id = uuid.uuid4()
    async with api:
        assert await api.job_log(job_id, attempt=2) == "line 1\nline 2\n"
        with pytest.raises(NotFound, match="no log yet"):
            await api.job_log(job_id)
    assert seen[0].url.path == f"/v1/jobs/{job_id}/log" and seen[0].url.params["attempt"] == "2"
