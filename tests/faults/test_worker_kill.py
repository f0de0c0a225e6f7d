"""`kill -9` of workers in the middle of their groups, again and again.

The service runs in the test's loop (the `api` fixture: lease TTL 2 s); workers are real
`qgjob worker` processes. Each kill lands while the victim's group has finished some jobs
and not others. Afterwards every job has exactly one test result, the results recorded
before a kill stay where they were, and DESIGN §3 holds over the whole history
(tests/support/invariants.py). A result the dead worker might still send under its old
lease is refused (409) and changes nothing.
"""

from __future__ import annotations

import asyncpg
import pytest

from app.lifecycle import LOST_WORKER
from qgjob.errors import StaleLease
from qgjob.types import Outcome
from qgjob.worker_api import JobFinished, WorkerApi
from tests.conftest import Api
from tests.support.crew import ORG, Crew, ended, results_per_job, statuses, submit_run
from tests.support.invariants import check_invariants
from tests.support.waiting import eventually

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(90)]

# A worker whose live group has some jobs finished and some not: the moment to kill it.
_MID_GROUP = """
SELECT w.name FROM groups g JOIN workers w USING (worker_id)
WHERE g.status = 'LEASED' AND w.name = ANY($1::text[])
  AND EXISTS (SELECT 1 FROM jobs j WHERE j.group_id = g.group_id AND j.status = 'COMPLETED')
  AND EXISTS (SELECT 1 FROM jobs j WHERE j.group_id = g.group_id
              AND j.status IN ('ASSIGNED', 'RUNNING'))
LIMIT 1
"""


async def test_repeated_kill_9_mid_group_loses_nothing_and_records_nothing_twice(
    api: Api, pool: asyncpg.Pool, crew: Crew
) -> None:
    submitter = await api.token(ORG)
    worker_token = await api.token(ORG, "worker")
    for version in ("v1", "v2", "v3"):
        tests = [f"tests/{version}/t{i}.ts" for i in range(8)]
        await submit_run(api.url, submitter, version, tests)
    total = 24

    async def start(name: str, capacity: int = 1) -> None:
        extra = ("--capacity", str(capacity))
        await crew.start(name, url=api.url, token=worker_token, command="sleep 0.15", extra=extra)

    await start("w0", capacity=2)
    await start("w1")
    by_name = {w.log_path.stem: w for w in crew.started}
    kept: dict[str, str] = {}  # results recorded before each kill: job_id -> worker name
    dead_leases: list[asyncpg.Record] = []
    for round_no in range(2):
        alive_names = [n for n, w in by_name.items() if w.running]
        victim = await eventually(
            lambda names=alive_names: pool.fetchval(_MID_GROUP, names),
            what=f"a worker mid-group (round {round_no})",
        )
        dead_lease = await pool.fetchrow(
            """SELECT g.group_id, g.lease_token FROM groups g JOIN workers w USING (worker_id)
               WHERE w.name = $1 AND g.status = 'LEASED'""",
            victim,
        )
        await by_name[victim].kill9()
        dead_leases.append(dead_lease)
        rows = await pool.fetch(
            """SELECT a.job_id::text, w.name FROM job_attempts a JOIN workers w USING (worker_id)
               WHERE a.outcome = 'passed'"""
        )
        kept.update({r["job_id"]: r["name"] for r in rows})
        replacement = f"w{len(by_name)}"
        await start(replacement)
        by_name[replacement] = crew.started[-1]

    await eventually(lambda: ended(pool, total), what="every job to end", timeout_s=60)
    assert await statuses(pool) == {"COMPLETED": total}
    assert set((await results_per_job(pool)).values()) == {1}
    # What was recorded before a kill is still the job's one result, from the same worker.
    final = await pool.fetch(
        """SELECT a.job_id::text, w.name FROM job_attempts a JOIN workers w USING (worker_id)
           WHERE a.outcome = 'passed'"""
    )
    assert {r["job_id"]: r["name"] for r in final if r["job_id"] in kept} == kept
    # The attempts the kills interrupted are kept, closed as lost, and were retried.
    lost = await pool.fetch(
        "SELECT job_id, error FROM job_attempts WHERE outcome = 'error' ORDER BY job_id"
    )
    assert lost, "the kills should have interrupted some attempts"
    assert {r["error"] for r in lost} == {LOST_WORKER}
    expired = await pool.fetchval("SELECT count(*) FROM groups WHERE status = 'EXPIRED'")
    assert expired >= 2
    assert await check_invariants(pool) == []

    # The dead workers' leases are fenced off: a late result under one is refused, ignored.
    victim_job = next(iter(kept))
    before = await pool.fetch("SELECT * FROM job_attempts ORDER BY job_id, attempt")
    async with WorkerApi(api.url, worker_token) as late:
        for lease in dead_leases:
            with pytest.raises(StaleLease):
                await late.send_events(
                    lease["group_id"],
                    lease["lease_token"],
                    [JobFinished(job_id=victim_job, outcome=Outcome.FAILED, duration_ms=1)],
                )
    assert await pool.fetch("SELECT * FROM job_attempts ORDER BY job_id, attempt") == before
    assert await statuses(pool) == {"COMPLETED": total}
