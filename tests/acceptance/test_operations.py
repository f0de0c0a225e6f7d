"""`qgjob server` as operators run it: JSON logs with request ids and no tokens, /metrics,
and a graceful stop on SIGTERM that answers the long-polls it holds instead of cutting them."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import ServerProcess, child_env, free_port

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = child_env(
        {
            "QGJOB_DATABASE_URL": database_url,
            "QGJOB_DATA_DIR": str(tmp_path / "data"),
            "QGJOB_LOG_FORMAT": "json",
            # Shorter than the claim's wait: a long-poll cut at the end of the grace period
            # would fail, so a 204 proves the shutdown answered it.
            "QGJOB_SHUTDOWN_GRACE_S": "3",
            "QGJOB_CLAIM_TIMEOUT_S": "60",
        }
    )
    proc = ServerProcess(env=env, port=free_port(), log_path=tmp_path / "server.log")
    proc.start()
    yield proc
    proc.stop()


def admin_token(server: ServerProcess) -> str:
    return Path(server.env["QGJOB_DATA_DIR"], "admin.token").read_text().strip()


async def test_sigterm_answers_held_long_polls_then_exits_0_with_json_logs(
    server: ServerProcess,
) -> None:
    token = admin_token(server)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=90) as client:
        registered = await client.post(
            "/v1/workers",
            json={"name": "poller", "target_types": ["emulator"]},
            headers={"X-Request-Id": "register-1"},
        )
        assert registered.status_code == 201, registered.text
        worker_id = registered.json()["worker_id"]
        submitted = await client.post(
            "/v1/jobs", json={"org_id": "acme", "app_version_id": "v1", "test_path": "a.spec.ts"}
        )
        job_id = submitted.json()["job_id"]
        group = (await client.post(f"/v1/workers/{worker_id}/claim", json={"wait_s": 5})).json()
        result = {"type": "job_finished", "job_id": job_id, "outcome": "passed", "duration_ms": 9}
        reported = await client.post(
            f"/v1/groups/{group['group_id']}/events",
            json={"lease_token": group["lease_token"], "events": [result]},
        )
        assert reported.status_code == 200, reported.text
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert 'qgjob_workers{status="idle"} 1.0' in metrics.text
        claim = asyncio.create_task(
            client.post(f"/v1/workers/{worker_id}/claim", json={"wait_s": 45})
        )
        # Let the claim reach the server: a request sent after it has been answered.
        await asyncio.sleep(0.5)
        assert (await client.get("/healthz")).status_code == 200
        assert not claim.done()
        server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        answer = await asyncio.wait_for(claim, 40)
    assert answer.status_code == 204
    assert await asyncio.to_thread(server.proc.wait, 40) == 0  # type: ignore[union-attr]
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line]
    registered_line = next(e for e in lines if e["message"].startswith("worker registered"))
    assert registered_line["request_id"] == "register-1"
    assert registered_line["worker_id"] == worker_id
    result_line = next(e for e in lines if e["message"].startswith("job result"))
    assert (result_line["job_id"], result_line["outcome"]) == (job_id, "passed")
    assert result_line["group_id"] == group["group_id"] and result_line["request_id"]
    messages = [e["message"] for e in lines]
    assert "shutting down signal=SIGTERM" in messages
    assert "stopped: background loops ended, database pool closed" in messages
    assert token not in server.log_path.read_text()
