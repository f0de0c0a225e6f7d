"""`kill -9` of the server during a burst of idempotent submits, then the clients retry.

Six clients submit one job per `Idempotency-Key` at once; the server process is killed
outright in the middle. After a restart every client retries every key it sent, and each
key is sent twice at the same moment (a client that timed out and a retry racing each
other). DESIGN §3.5: a 2xx answer means the job is committed, and a repeat returns the
first answer and creates nothing new: every key ends with exactly one job, and the keys
answered before the kill come back with the very same job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.servers import ServerProcess, child_env, free_port

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

CLIENTS = 6
KEYS_PER_CLIENT = 80


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = child_env({"QGJOB_DATABASE_URL": database_url, "QGJOB_DATA_DIR": str(tmp_path / "d")})
    proc = ServerProcess(env=env, port=free_port(), log_path=tmp_path / "server.log")
    proc.start()
    yield proc
    proc.stop()


async def submit_each(client: httpx.AsyncClient, keys: list[str], answered: dict[str, str]) -> None:
    """One job per key, in order, until the server goes away; records the 201 answers."""
    for key in keys:
        body = {"org_id": "qualgent", "app_version_id": "v1", "test_path": f"tests/{key}.ts"}
        try:
            answer = await client.post("/v1/jobs", json=body, headers={"Idempotency-Key": key})
        except httpx.HTTPError:
            return
        if answer.status_code == 201:
            answered[key] = answer.json()["job_id"]


async def test_kill_9_mid_burst_then_retries_leave_one_job_per_key(
    server: ServerProcess, database_url: str
) -> None:
    token = Path(server.env["QGJOB_DATA_DIR"], "admin.token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    slices = [[f"c{c}-k{i:04}" for i in range(KEYS_PER_CLIENT)] for c in range(CLIENTS)]
    answered: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client:
        burst = [asyncio.create_task(submit_each(client, keys, answered)) for keys in slices]
        while len(answered) < 60:
            assert not all(t.done() for t in burst), "the burst ended before the kill"
            await asyncio.sleep(0.02)
        server.kill9()
        await asyncio.wait_for(asyncio.gather(*burst), 30)
    total = CLIENTS * KEYS_PER_CLIENT
    assert 60 <= len(answered) < total

    await asyncio.to_thread(server.start)
    again: dict[str, str] = {}
    twin: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as client:
        await asyncio.gather(
            *(submit_each(client, keys, again) for keys in slices),
            *(submit_each(client, keys, twin) for keys in slices),
        )
    assert len(again) == len(twin) == total, "every retry is answered 201"
    assert again == twin, "two racing repeats of a key get the same job"
    assert {k: again[k] for k in answered} == answered, "answered keys keep their first job"

    conn = await asyncpg.connect(database_url)
    try:
        jobs = await conn.fetchval("SELECT count(*) FROM jobs")
        distinct = await conn.fetchval("SELECT count(DISTINCT test_path) FROM jobs")
    finally:
        await conn.close()
    assert jobs == distinct == total
