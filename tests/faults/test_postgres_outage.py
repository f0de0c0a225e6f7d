"""PostgreSQL stopped and started again in the middle of a run.

A real `qgjob server` process and real workers run against a PostgreSQL of the test's own
(tests/support/own_postgres.py). While jobs are running the database is shut down (`pg_ctl
stop -m fast`: every connection is cut), the test waits until the service has noticed (its
readiness probe fails) and the workers have (they log a failed call), then starts it again.
Nobody touches the service or the workers: they must reconnect on their own, every job must
finish exactly once, and a job submitted after the outage must be claimed and run too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.database import create_pool
from tests.support.crew import ORG, Crew, ended, new_token, results_per_job, statuses, submit_run
from tests.support.invariants import check_invariants
from tests.support.own_postgres import OwnPostgres, own_postgres
from tests.support.servers import ServerProcess, child_env, free_port
from tests.support.waiting import eventually, soon

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def own_pg() -> Iterator[OwnPostgres]:
    with own_postgres() as pg:
        yield pg


async def ready(url: str) -> int:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(url + "/readyz")).status_code
    except httpx.HTTPError:
        return 0


async def test_service_and_workers_recover_from_a_database_restart(
    own_pg: OwnPostgres, tmp_path: Path, crew: Crew
) -> None:
    dsn = await own_pg.create_database("outage")
    env = child_env(
        {
            "QGJOB_DATABASE_URL": dsn,
            "QGJOB_DATA_DIR": str(tmp_path / "data"),
            # The lease outlives the outage: workers keep their groups and deliver late.
            "QGJOB_LEASE_TTL_S": "20",
            "QGJOB_CLAIM_TIMEOUT_S": "2",
            "QGJOB_REAPER_INTERVAL_S": "0.2",
            "QGJOB_RETRY_BACKOFF_S": "0.2",
        }
    )
    server = ServerProcess(env=env, port=free_port(), log_path=tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    try:
        admin = (tmp_path / "data" / "admin.token").read_text().strip()
        submitter = await new_token(server.url, admin, ORG, "submitter")
        worker_token = await new_token(server.url, admin, ORG, "worker")
        for version in ("v1", "v2"):
            tests = [f"t/{version}/{i}.ts" for i in range(6)]
            await submit_run(server.url, submitter, version, tests)
        workers = [
            await crew.start(name, url=server.url, token=worker_token, command="sleep 0.3")
            for name in ("left", "right")
        ]
        pool = await create_pool(dsn, size=2)
        try:
            done: int = await eventually(
                lambda: pool.fetchval(
                    "SELECT nullif(count(*), 0) FROM jobs WHERE status = 'COMPLETED'"
                ),
                what="a first job to complete",
            )
            assert done < 12
        finally:
            await pool.close()

        await asyncio.to_thread(own_pg.stop)
        try:
            await eventually(
                lambda: _not(ready(server.url), 200), what="the service to notice the outage"
            )
            await eventually(
                soon(lambda: all(_complained(w.log()) for w in workers)),
                what="both workers to notice the outage",
            )
        finally:
            await asyncio.to_thread(own_pg.start)

        await eventually(lambda: _is(ready(server.url), 200), what="the service to be ready again")
        late = await submit_run(server.url, submitter, "v3", ["t/v3/after-the-outage.ts"])
        pool = await create_pool(dsn, size=2)
        try:
            await eventually(lambda: ended(pool, 13), what="every job to end", timeout_s=60)
            assert await statuses(pool) == {"COMPLETED": 13}
            assert set((await results_per_job(pool)).values()) == {1}
            assert await check_invariants(pool) == []
            status = await pool.fetchval(
                "SELECT status::text FROM jobs WHERE job_id = $1", late["jobs"][0]["job_id"]
            )
            assert status == "COMPLETED"
        finally:
            await pool.close()
        assert server.proc is not None and server.proc.poll() is None, "the service died"
        assert all(w.running for w in workers), "a worker died"
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[max(0, log.find("Traceback") - 300) :][:6000]


async def _not(answer: asyncio.Future[int] | object, unwanted: int) -> bool:
    return await answer != unwanted  # type: ignore[misc]


async def _is(answer: asyncio.Future[int] | object, wanted: int) -> bool:
    return await answer == wanted  # type: ignore[misc]


def _complained(log: str) -> bool:
    return any(
        sign in log for sign in ("service unavailable", "results not sent", "heartbeat failed")
    )
