"""Results too large for one request are split or cut, never dropped (dispatch.outbox).

A worker's outbox sends the results of a group in batches. Logs full of control characters
grow six-fold in JSON, and a proxy may allow less than the service does: the batches are
sized by encoded bytes, and a 413 makes the outbox send fewer results at a time, then cut
the front of a single result's log, until the service takes them.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

import app.api.groups
from dispatch.heartbeats import Lease
from dispatch.outbox import CUT_NOTE, MAX_BATCH_LOG_BYTES, Outbox, _batch
from qgjob.settings import Settings
from qgjob.types import Outcome, Target
from qgjob.worker_api import JobFinished, JobStarted, WorkerApi
from tests.conftest import Api
from tests.support.scheduling import whole_keys
from tests.support.web import submit

pytestmark = pytest.mark.timeout(60)

ORG = "acme"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A claim takes the run's six jobs in one group (tests/support/scheduling.py)."""
    return whole_keys(settings)


def finished(log: str) -> JobFinished:
    return JobFinished(job_id=uuid.uuid4(), outcome=Outcome.PASSED, duration_ms=1, log=log)


def test_batches_are_sized_by_the_bytes_their_logs_encode_to() -> None:
    control = "\x01" * (MAX_BATCH_LOG_BYTES // 10)  # six bytes each in JSON: 0.6 of a batch
    events = [finished(control) for _ in range(3)]
    assert [len(_batch(events[n:])) for n in range(3)] == [1, 1, 1]
    plain = "x" * (MAX_BATCH_LOG_BYTES // 10)
    assert len(_batch([finished(plain) for _ in range(3)])) == 3


async def test_results_refused_as_too_large_are_split_then_cut_and_all_land(
    api: Api, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The service (or a proxy before it) takes 64 KiB per request here: each of these logs
    # encodes to ~180 KB, so six results go one at a time, each with its log cut.
    monkeypatch.setattr(app.api.groups, "EVENTS_BODY_LIMIT", 64 * 1024)
    specs = [f"tests/t{i}.spec.ts" for i in range(6)]
    await submit(api, await api.token(ORG), ORG, specs)
    async with WorkerApi(api.url, await api.token(ORG, "worker")) as worker:
        worker_id = await worker.register(
            name="big-logs", target_types=[Target.EMULATOR], labels={}, capacity=1
        )
        group = await worker.claim(worker_id, wait_s=2.0)
        assert group is not None and len(group.jobs) == 6
        outbox = Outbox(worker, Lease(group), linger_s=0.0)
        sender = asyncio.create_task(outbox.run())
        ends = {job.job_id: f"end of {job.test_path}\n" for job in group.jobs}
        for job in group.jobs:
            outbox.put(JobStarted(job_id=job.job_id))
            log = "\x01" * 30_000 + ends[job.job_id]
            outbox.put(JobFinished(job.job_id, Outcome.PASSED, duration_ms=5, log=log))
        assert await asyncio.wait_for(outbox.flushed(), 30)
        sender.cancel()
        logs = {job.job_id: await worker.job_log(job.job_id) for job in group.jobs}
    statuses = await pool.fetch("SELECT status::text FROM jobs")
    assert {row["status"] for row in statuses} == {"COMPLETED"}
    for job_id, log in logs.items():
        assert log.startswith(CUT_NOTE) and log.endswith(ends[job_id])
