"""The lease's side task (dispatch.heartbeats.keep_alive) while the service is away.

A blip shorter than the lease costs nothing; once the lease has run out (with the slack
for clocks), the lease is lost, so that the worker stops resending results and can drain.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from dispatch.heartbeats import CLOCK_SLACK_S, Lease, keep_alive
from qgjob.errors import ServerUnreachable
from qgjob.types import Target
from qgjob.worker_api import ClaimedGroup, LeaseRenewal


def lease_until(expires_at: datetime) -> Lease:
    return Lease(
        ClaimedGroup(
            group_id=uuid.uuid4(),
            lease_token=1,
            lease_expires_at=expires_at,
            org_id="qualgent",
            app_version_id="v1",
            target=Target.EMULATOR,
            jobs=(),
            source=None,
        )
    )


class Unreachable:
    """A service that stops answering after `answers` heartbeats."""

    def __init__(self, answers: int = 0) -> None:
        self.answers = answers
        self.calls = 0

    async def heartbeat(self, group_id: uuid.UUID, token: int) -> LeaseRenewal:
        self.calls += 1
        if self.calls <= self.answers:
            later = datetime.now(UTC) - timedelta(seconds=CLOCK_SLACK_S + 1)
            return LeaseRenewal(lease_expires_at=later, cancelled_job_ids=frozenset())
        raise ServerUnreachable("http://127.0.0.1:9", "connection refused")


async def test_an_outage_past_the_lease_loses_it() -> None:
    # Renewed once (to an expiry already past, slack included), then unreachable.
    lease = lease_until(datetime.now(UTC) + timedelta(hours=1))
    api = Unreachable(answers=1)
    await asyncio.wait_for(keep_alive(api, lease, interval_s=0.01), 5)  # type: ignore[arg-type]
    assert lease.lost.is_set()
    assert api.calls == 2  # lost at the first failure after the renewed expiry


async def test_an_outage_within_the_lease_keeps_it() -> None:
    lease = lease_until(datetime.now(UTC) + timedelta(seconds=30))
    api = Unreachable()
    alive = asyncio.create_task(keep_alive(api, lease, interval_s=0.01))  # type: ignore[arg-type]
    while api.calls < 3:
        await asyncio.sleep(0.01)
    assert not lease.lost.is_set() and not alive.done()
    alive.cancel()
