"""Two `qgjob server` replicas on one database, workers pointed at both.

Every replica claims for its workers and runs the lease reaper; PostgreSQL is the only
thing they share. Many small keys make many claims race each other across the replicas,
and a worker killed mid-group gives both reapers an expired lease to fight over. Nothing
may be claimed twice, run twice or lost (DESIGN §3, tests/support/invariants.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from app.lifecycle import LOST_WORKER
from tests.support.crew import ORG, Crew, ended, new_token, results_per_job, statuses, submit_run
from tests.support.invariants import check_invariants
from tests.support.servers import ServerProcess, child_env, free_port
from tests.support.waiting import eventually

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]

VERSIONS = 20
PER_VERSION = 3


@pytest.fixture
def replicas(database_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    started = []
    try:
        for name in ("east", "west"):
            env = child_env(
                {
                    "QGJOB_DATABASE_URL": database_url,
                    "QGJOB_DATA_DIR": str(tmp_path / f"data-{name}"),
                    "QGJOB_LEASE_TTL_S": "2",
                    "QGJOB_HEARTBEAT_INTERVAL_S": "0.5",
                    "QGJOB_CLAIM_TIMEOUT_S": "2",
                    "QGJOB_REAPER_INTERVAL_S": "0.1",
                    "QGJOB_RETRY_BACKOFF_S": "0.1",
                }
            )
            server = ServerProcess(env=env, port=free_port(), log_path=tmp_path / f"{name}.log")
            started.append(server)
            server.start()
        yield started
    finally:
        for server in started:
            if server.proc is not None:
                server.stop()


async def test_two_replicas_never_claim_or_reap_the_same_work_twice(
    replicas: list[ServerProcess], pool: asyncpg.Pool, tmp_path: Path, crew: Crew
) -> None:
    east, west = replicas
    admin = (tmp_path / "data-east" / "admin.token").read_text().strip()
    submitter = await new_token(east.url, admin, ORG, "submitter")
    worker_token = await new_token(west.url, admin, ORG, "worker")
    total = VERSIONS * PER_VERSION
    for v in range(VERSIONS):
        server = replicas[v % 2]
        await submit_run(server.url, submitter, f"v{v}", [f"t/{i}.ts" for i in range(PER_VERSION)])

    workers = {}
    for i in range(4):
        server = replicas[i % 2]
        workers[f"w{i}"] = await crew.start(
            f"w{i}",
            url=server.url,
            token=worker_token,
            command="sleep 0.1",
            extra=("--capacity", "2"),
        )
    victim = await eventually(
        lambda: pool.fetchval(
            """SELECT w.name FROM groups g JOIN workers w USING (worker_id)
               WHERE g.status = 'LEASED' AND EXISTS (
                   SELECT 1 FROM jobs j WHERE j.group_id = g.group_id
                   AND j.status IN ('ASSIGNED', 'RUNNING'))
               LIMIT 1"""
        ),
        what="a worker holding a group",
    )
    await workers[victim].kill9()

    await eventually(lambda: ended(pool, total), what="every job to end", timeout_s=90)
    assert await statuses(pool) == {"COMPLETED": total}
    assert set((await results_per_job(pool)).values()) == {1}
    assert await check_invariants(pool) == []
    # The victim's lease expired once, by one reaper: each job it held lost one attempt.
    expired = await pool.fetch(
        "SELECT group_id FROM groups g JOIN workers w USING (worker_id) "
        "WHERE w.name = $1 AND g.status = 'EXPIRED'",
        victim,
    )
    assert expired
    lost = await pool.fetch(
        "SELECT job_id, count(*) AS n FROM job_attempts WHERE error = $1 GROUP BY job_id",
        LOST_WORKER,
    )
    assert lost and {r["n"] for r in lost} == {1}
    # Both replicas did real work: each leased groups to the workers pointed at it.
    for server in replicas:
        assert "group leased" in server.log_path.read_text()
