"""A hypothesis state machine over the real store (app/store/*) on real PostgreSQL.

Hypothesis drives random sequences of what the service does — submit, register, claim,
start, finish, heartbeat, expire (a lease's clock moved past its end, then the reaper),
release (with or without an error), cancel a job or a run — through the store functions the
routes call, in the transactions they use. After every step DESIGN §3 must hold
(tests/support/invariants.py: groups never mix keys, a job in at most one live group, a
worker within its capacity, attempts numbered and counted), and additionally:

- every job status change follows the state diagram (README "PENDING ──claim──▶ …");
- an attempt that has an outcome is never changed or removed;
- a heartbeat, report or release under a lease that is not live raises StaleLease (the
  routes answer 409) and changes nothing at all; under a live lease it succeeds.

Derandomized and bounded, so CI runs the same sequences every time in a few seconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any, ClassVar, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from app.database import create_pool
from app.lifecycle import LOST_WORKER
from app.store import events as ev
from app.store.jobs import NewRun, cancel_job, cancel_run, insert_run
from app.store.leases import (
    ClaimRequest,
    StaleLease,
    claim_group,
    reap_expired,
    release_group,
    renew_lease,
)
from app.store.workers import register_worker
from qgjob.types import Outcome, Priority, RunSource, Target
from tests.support.invariants import check_invariants

T = TypeVar("T")
TTL_S = 60.0
NEXT = {  # the state diagram: where a job may go from each status in one step
    "PENDING": {"ASSIGNED", "CANCELLED"},
    "ASSIGNED": {"RUNNING", "PENDING", "COMPLETED", "FAILED", "CANCELLED"},
    "RUNNING": {"PENDING", "COMPLETED", "FAILED", "CANCELLED"},
    "COMPLETED": set(),
    "FAILED": set(),
    "CANCELLED": set(),
}
# Which lease a step aims at, counted from the newest: mostly one of the last few, so that
# a lease is often written to right after its clock ran out, was released or reaped.
RECENT = st.integers(0, 2) | st.integers(0, 50)
_SNAPSHOT_TABLES = ("runs", "jobs", "job_attempts", "groups", "workers")


class StoreMachine(RuleBasedStateMachine):
    loop: ClassVar[asyncio.AbstractEventLoop]
    pool: ClassVar[asyncpg.Pool]

    def __init__(self) -> None:
        super().__init__()
        self.run(
            self.pool.execute(
                "TRUNCATE runs, jobs, job_attempts, groups, workers, idempotency_keys, orgs CASCADE"
            )
        )
        self.workers: list[uuid.UUID] = []
        self.leases: list[tuple[uuid.UUID, int]] = []  # every lease ever handed out
        self.statuses: dict[uuid.UUID, str] = {}
        self.results: dict[tuple[uuid.UUID, int], str] = {}

    def run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)  # type: ignore[arg-type]

    # --- what the service does -------------------------------------------------------

    @initialize()
    def some_work_and_a_worker(self) -> None:
        self.submit("o1", "v1", 3, 2)
        self.register(None, 2)

    @rule(
        org=st.sampled_from(["o1", "o2"]),
        version=st.sampled_from(["v1", "v2"]),
        tests=st.integers(1, 3),
        max_attempts=st.integers(1, 3),
    )
    def submit(self, org: str, version: str, tests: int, max_attempts: int) -> None:
        new = NewRun(
            org_id=org,
            app_version_id=version,
            tests=[f"t/{i}.ts" for i in range(tests)],
            targets=[Target.EMULATOR],
            priority=Priority.NORMAL,
            source=RunSource.API,
            max_attempts=max_attempts,
        )
        self.run(insert_run(self.pool, new))

    @rule(org=st.sampled_from([None, "o1"]), capacity=st.integers(1, 2))
    def register(self, org: str | None, capacity: int) -> None:
        if len(self.workers) >= 3:
            return
        if org is not None:
            self.run(self.pool.execute("INSERT INTO orgs VALUES ($1) ON CONFLICT DO NOTHING", org))
        worker_id = self.run(
            register_worker(
                self.pool,
                org_id=org,
                name=f"w{len(self.workers)}",
                target_types=[Target.EMULATOR],
                labels={},
                capacity=capacity,
            )
        )
        self.workers.append(worker_id)

    @rule(pick=st.integers(0, 10), max_jobs=st.integers(1, 3))
    @precondition(lambda self: bool(self.workers))
    def claim(self, pick: int, max_jobs: int) -> None:
        if not self.workers:
            return
        wanted = ClaimRequest(
            worker_id=self.workers[pick % len(self.workers)],
            targets=[Target.EMULATOR],
            lease_ttl_s=TTL_S,
            max_jobs=max_jobs,
        )

        async def go() -> dict[str, Any] | None:
            async with self.pool.acquire() as conn, conn.transaction():
                return await claim_group(conn, wanted)

        group = self.run(go())
        if group is not None:
            self.leases.append((uuid.UUID(group["group_id"]), group["lease_token"]))

    @rule(pick=RECENT, which=st.integers(0, 10), forged=st.booleans())
    @precondition(lambda self: bool(self.leases))
    def start(self, pick: int, which: int, forged: bool) -> None:
        self._under_lease(pick, forged, lambda c, g, t: self._events(c, g, t, which, None))

    @rule(
        pick=RECENT,
        which=st.integers(0, 10),
        outcome=st.sampled_from([Outcome.PASSED, Outcome.FAILED, Outcome.ERROR]),
        forged=st.booleans(),
    )
    @precondition(lambda self: bool(self.leases))
    def finish(self, pick: int, which: int, outcome: Outcome, forged: bool) -> None:
        self._under_lease(pick, forged, lambda c, g, t: self._events(c, g, t, which, outcome))

    @rule(pick=RECENT, forged=st.booleans())
    @precondition(lambda self: bool(self.leases))
    def heartbeat(self, pick: int, forged: bool) -> None:
        self._under_lease(
            pick, forged, lambda c, g, t: renew_lease(c, g, t, org_scope=None, ttl_s=TTL_S)
        )

    @rule(pick=RECENT, with_error=st.booleans(), forged=st.booleans())
    @precondition(lambda self: bool(self.leases))
    def release(self, pick: int, with_error: bool, forged: bool) -> None:
        error = "install failed" if with_error else None
        self._under_lease(
            pick,
            forged,
            lambda c, g, t: release_group(c, g, t, org_scope=None, error=error, backoff_s=0),
        )

    @rule(pick=RECENT)
    @precondition(lambda self: bool(self.leases))
    def expire(self, pick: int) -> None:
        """The lease's clock runs out: moved past its end, not yet swept by the reaper."""
        if self.leases:
            group_id, _ = self.leases[-1 - pick % len(self.leases)]
            self.run(
                self.pool.execute(
                    "UPDATE groups SET lease_expires_at = now() - interval '1 second' "
                    "WHERE group_id = $1 AND status = 'LEASED'",
                    group_id,
                )
            )

    @rule()
    def reap(self) -> None:
        self.run(self._reap())

    async def _reap(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await reap_expired(conn, error=LOST_WORKER, backoff_s=0, offline_after_s=3600)

    @rule(pick=st.integers(0, 100), whole_run=st.booleans())
    def cancel(self, pick: int, whole_run: bool) -> None:
        jobs = self.run(
            self.pool.fetch("SELECT job_id, run_id FROM jobs ORDER BY created_at, test_path")
        )
        if not jobs:
            return
        job = jobs[pick % len(jobs)]
        if whole_run:
            self.run(cancel_run(self.pool, job["run_id"], org_scope=None))
        else:
            self.run(cancel_job(self.pool, job["job_id"], org_scope=None))

    # --- lease plumbing ------------------------------------------------------------------

    def _under_lease(self, pick: int, forged: bool, write: Any) -> None:
        if not self.leases:
            return
        group_id, token = self.leases[-1 - pick % len(self.leases)]
        if forged:
            token += 1000  # a token that was never this group's
        live = self.run(
            self.pool.fetchval(
                "SELECT count(*) = 1 FROM groups WHERE group_id = $1 AND lease_token = $2 "
                "AND status = 'LEASED' AND lease_expires_at > now()",
                group_id,
                token,
            )
        )
        before = self.run(self._snapshot())

        async def go() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await write(conn, group_id, token)

        try:
            self.run(go())
        except StaleLease:
            assert not live, f"a live lease on {group_id} was refused"
            assert self.run(self._snapshot()) == before, "a stale token changed something"
            return
        assert live, f"a write under the dead lease {group_id}/{token} was accepted"

    async def _events(
        self, conn: Any, group_id: uuid.UUID, token: int, which: int, outcome: Outcome | None
    ) -> None:
        jobs = await conn.fetch(  # in an order that replays the same (no random ids in it)
            "SELECT a.job_id FROM job_attempts a JOIN jobs j USING (job_id) WHERE a.group_id = $1 "
            "ORDER BY j.created_at, j.test_path",
            group_id,
        )
        # A group left with no attempt rows (all released) gets a job id it never held.
        job_id = jobs[which % len(jobs)]["job_id"] if jobs else uuid.UUID(int=which + 1)
        results = []
        if outcome is not None:
            results.append(
                ev.Finished(
                    job_id=job_id, outcome=outcome, duration_ms=1, error=None, artifacts={}, log="x"
                )
            )
        await ev.report_events(  # what the events endpoint runs
            conn,
            group_id=group_id,
            lease_token=token,
            org_scope=None,
            started=[job_id],
            finished=results,
            backoff_s=0,
        )

    async def _snapshot(self) -> list[str]:
        rows = []
        for table in _SNAPSHOT_TABLES:
            found = await self.pool.fetch(f"SELECT row_to_json(t)::text AS j FROM {table} t")
            rows += sorted(f"{table} {r['j']}" for r in found)
        return rows

    # --- what must always hold -----------------------------------------------------------

    @invariant()
    def design_invariants_hold(self) -> None:
        assert self.run(check_invariants(self.pool)) == []

    @invariant()
    def statuses_follow_the_diagram(self) -> None:
        rows = self.run(self.pool.fetch("SELECT job_id, status::text FROM jobs"))
        for r in rows:
            was = self.statuses.get(r["job_id"], "PENDING")
            now = r["status"]
            assert now == was or now in NEXT[was], f"job {r['job_id']} went {was} -> {now}"
            self.statuses[r["job_id"]] = now

    @invariant()
    def attempts_are_never_overwritten(self) -> None:
        rows = self.run(
            self.pool.fetch(
                "SELECT job_id, attempt, row_to_json(a)::text AS j FROM job_attempts a "
                "WHERE outcome IS NOT NULL"
            )
        )
        now = {(r["job_id"], r["attempt"]): r["j"] for r in rows}
        for key, kept in self.results.items():
            assert now.get(key) == kept, f"attempt {key} changed: {kept} -> {now.get(key)}"
        self.results = now


@pytest.mark.timeout(180)
def test_store_transitions_keep_every_invariant(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    try:
        StoreMachine.loop = loop
        StoreMachine.pool = loop.run_until_complete(create_pool(database_url, size=2))
        try:
            run_state_machine_as_test(
                StoreMachine,
                settings=settings(
                    max_examples=30,
                    stateful_step_count=30,
                    derandomize=True,
                    deadline=None,
                    # No shrinking: each replay costs database work; the failing sequence
                    # as found is printed, and reads well enough at this size.
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    database=None,
                    suppress_health_check=list(HealthCheck),
                ),
            )
        finally:
            loop.run_until_complete(StoreMachine.pool.close())
    finally:
        loop.close()
