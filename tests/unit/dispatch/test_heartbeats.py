"""The lease's side task (dispatch.heartbeats.keep_alive) while the service is away.

A blip shorter than the lease costs nothing; once the lease has run out (with the slack
for clocks), the lease is lost, so that the worker stops resending results and can drain.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from dispatch.heartbeats import CLOCK_SLACK_S, Lease, confirm, keep_alive
from qgjob.errors import ServerUnreachable, StaleLease
from qgjob.types import Target
from qgjob.worker_api import ClaimedGroup, LeaseRenewal


def lease_until(expires_at: datetime, ttl_s: float | None = None) -> Lease:
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
            lease_ttl_s=ttl_s,
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


async def test_a_wall_clock_set_wrong_does_not_lose_a_live_lease() -> None:
    # This host's clock is a minute ahead: by it the lease ran out long ago. The service
    # said it lasts 30 s from its answer, which is what counts.
    lease = lease_until(datetime.now(UTC) - timedelta(seconds=60), ttl_s=30.0)
    api = Unreachable()
    alive = asyncio.create_task(keep_alive(api, lease, interval_s=0.01))  # type: ignore[arg-type]
    while api.calls < 3:
        await asyncio.sleep(0.01)
    assert not lease.lost.is_set()
    alive.cancel()


class Answering:
    """A service that renews the lease, or says it is gone."""

    def __init__(self, *, gone: bool) -> None:
        self.gone = gone
        self.calls = 0

    async def heartbeat(self, group_id: uuid.UUID, token: int) -> LeaseRenewal:
        self.calls += 1
        if self.gone:
            raise StaleLease(409, "stale_lease", "the lease expired")
        later = datetime.now(UTC) + timedelta(seconds=30)
        return LeaseRenewal(later, cancelled_job_ids=frozenset(), lease_ttl_s=30.0)


async def test_a_lease_run_out_is_confirmed_before_the_next_job() -> None:
    live = lease_until(datetime.now(UTC) + timedelta(seconds=30), ttl_s=30.0)
    assert await confirm(Answering(gone=True), live)  # type: ignore[arg-type]  # not asked
    paused = lease_until(datetime.now(UTC), ttl_s=0.0)  # the worker slept past it
    renewing = Answering(gone=False)
    assert await confirm(renewing, paused) and renewing.calls == 1  # type: ignore[arg-type]
    assert not paused.expired()
    given_away = lease_until(datetime.now(UTC), ttl_s=0.0)
    assert not await confirm(Answering(gone=True), given_away)  # type: ignore[arg-type]
    assert given_away.lost.is_set()
