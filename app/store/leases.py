"""Groups and their leases: claim, heartbeat, release, and the reaper's expiry sweep.

A claim leases what the scheduling policy (`dispatch.scheduling`, DESIGN §5) decides on a
snapshot of the queue loaded in the claim's transaction (`app.store.queue`), or carried
from the claim before it in the same turn of the claim lock.

Every write under a lease checks its fencing token inside the same transaction
(`group_id`, `lease_token`, status LEASED and not yet expired). A stale token changes
nothing: the caller answers 409 and the worker stops that group.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import asyncpg

from app.database import Conn, TxConn
from app.policy import Policy
from app.store.builds import CLAIMED_BUILD_JSON, claimed_build
from app.store.jobs import Wire, to_wire
from app.store.queue import Loaded, Scope, after_lease, list_all_jobs, load_snapshot
from dispatch.scheduling import ClaimDecision, QueueSnapshot, WorkerView, decide_claim
from qgjob.types import Target

logger = logging.getLogger(__name__)

# Claims take turns (one transaction-scoped advisory lock): each decides on a snapshot
# nobody else is changing, so running-group counts, caps and split decisions are exact.
# A turn holds it for a few milliseconds per claim it serves (`claim_groups`; the claims of
# one process that wait together share a turn: app.store.claim_turns). The claim also
# counts as the worker's heartbeat: an idle worker that long-polls is alive; it reports the
# builds it has ready (affinity).
CLAIM_LOCK_ID = 0x71676A6F62_01
_LOCK_WORKER = """
WITH turn AS (SELECT pg_advisory_xact_lock($2) AS taken)
UPDATE workers w SET last_heartbeat = now(),
                     status = CASE WHEN w.status = 'offline' THEN 'idle' ELSE w.status END,
                     ready_builds = coalesce($3::text[], w.ready_builds)
FROM turn
WHERE w.worker_id = $1
RETURNING w.capacity, w.org_id, w.status, w.ready_builds, w.needs_build,
          (SELECT count(*) FROM groups g WHERE g.worker_id = w.worker_id AND g.status = 'LEASED')
              AS live
"""

# Take exactly the jobs the policy chose (still PENDING, and the org still under its cap),
# open the group and its attempt rows, and mark the worker busy, in one statement. Nothing
# is opened when no job could be taken.
_TAKE_JOBS = f"""
WITH picked AS (
    SELECT j.job_id, r.expected_ms FROM jobs j
    JOIN unnest($4::uuid[], $9::int[]) AS r(job_id, expected_ms) ON r.job_id = j.job_id
    WHERE j.status = 'PENDING'
      AND ($10::int IS NULL
           OR (SELECT count(*) FROM groups WHERE org_id = $1 AND status = 'LEASED') < $10)
    FOR UPDATE OF j SKIP LOCKED
), taken AS (
    UPDATE jobs j SET status = 'ASSIGNED', group_id = $5, worker_id = $6,
                      attempts = j.attempts + 1, expected_ms = picked.expected_ms,
                      updated_at = now()
    FROM picked WHERE j.job_id = picked.job_id
    RETURNING j.job_id, j.test_path, j.attempts, j.run_id
), attempts AS (
    INSERT INTO job_attempts (job_id, attempt, group_id, worker_id)
    SELECT job_id, attempts, $5, $6 FROM taken
), lease AS (
    INSERT INTO groups (group_id, org_id, app_version_id, target, key, worker_id, lease_token,
                        lease_expires_at)
    SELECT $5, $1, $2, $3, $7, $6, nextval('lease_token_seq'), now() + make_interval(secs => $8)
    WHERE EXISTS (SELECT 1 FROM taken)
    RETURNING lease_token, lease_expires_at, {CLAIMED_BUILD_JSON} AS build
), busy AS (
    UPDATE workers SET status = CASE WHEN status = 'draining' THEN status ELSE 'busy' END,
                       last_heartbeat = now()
    WHERE worker_id = $6 AND EXISTS (SELECT 1 FROM taken)
)
SELECT t.job_id, t.test_path, t.attempts, t.run_id,
       l.lease_token, l.lease_expires_at, l.build, r.repo, r.ref, r.head_sha
FROM taken t CROSS JOIN lease l LEFT JOIN runs r ON r.run_id = t.run_id
"""


@dataclass(frozen=True)
class ClaimRequest:
    worker_id: uuid.UUID
    targets: Sequence[Target]
    lease_ttl_s: float
    policy: Policy = field(default_factory=Policy)
    ready_builds: Sequence[str] | None = None  # None: as last reported
    max_jobs: int | None = None  # fewer jobs per lease than the policy's limit


class UnknownWorker(LookupError):
    pass


# What each claim of a turn comes to: a lease, nothing to lease, or an unknown worker.
Claimed = Wire | None | UnknownWorker


async def claim_group(conn: TxConn, request: ClaimRequest) -> Wire | None:
    """Lease what `dispatch.scheduling.decide_claim` picks for this worker, or None; one
    claim in a turn of its own (`claim_groups`) in the caller's transaction."""
    (claimed,) = await claim_groups(conn, [request])
    if isinstance(claimed, UnknownWorker):
        raise claimed
    return claimed


async def claim_groups(conn: TxConn, requests: Sequence[ClaimRequest]) -> list[Claimed]:
    """Serve several claims, one after the other, in one turn of the claim lock (the
    caller's transaction): each is decided as if it had a turn of its own, on a snapshot
    that holds the leases of the claims before it.

    The first claim takes the turn and loads the queue; each next claim decides on the
    snapshot the previous one left (its lease running, its key shown anew), or loads the
    queue anew when it looks at another part of it (other targets, an org's own worker).
    Per claim: touch the worker, decide, list the chosen key when the first look did not
    show all of it, take the jobs, show the key as the next claim must see it
    (`app.store.queue.after_lease`).
    """
    claimed: list[Claimed] = []
    carried: tuple[Scope, ClaimRequest, Loaded] | None = None
    for n, request in enumerate(requests):
        worker = await conn.fetchrow(
            _LOCK_WORKER,
            request.worker_id,
            CLAIM_LOCK_ID,
            None if request.ready_builds is None else list(request.ready_builds),
        )
        if worker is None:
            claimed.append(UnknownWorker(str(request.worker_id)))
            continue
        if worker["live"] >= worker["capacity"] or worker["status"] == "draining":
            claimed.append(None)
            continue
        scope = Scope(
            targets=tuple(request.targets),
            pending_org=worker["org_id"],
            worker_org=worker["org_id"],
            needs_build=worker["needs_build"],
        )
        if carried is not None and _same_view(carried, scope, request):
            loaded = carried[2]
        else:
            loaded = await load_snapshot(
                conn,
                scope=scope,
                policy=request.policy,
                online_within_s=request.lease_ttl_s,
                jobs_per_key=request.policy.first_look_jobs_per_key,
            )
        group, after = await _claim_on(
            conn, request, worker, scope, loaded, last=n == len(requests) - 1
        )
        claimed.append(group)
        carried = None if after is None else (scope, request, after)
    return claimed


def _same_view(
    carried: tuple[Scope, ClaimRequest, Loaded], scope: Scope, request: ClaimRequest
) -> bool:
    """Whether `request` would load the snapshot that the previous claim left."""
    before_scope, before, _ = carried
    return (
        before_scope == scope
        and before.lease_ttl_s == request.lease_ttl_s
        and before.policy == request.policy
    )


async def _claim_on(
    conn: TxConn,
    request: ClaimRequest,
    worker: asyncpg.Record,
    scope: Scope,
    loaded: Loaded,
    *,
    last: bool,
) -> tuple[Wire | None, Loaded | None]:
    """Decide and lease for `request` on `loaded`; the lease (or None) and the snapshot the
    next claim of the turn may decide on (None: it must load the queue anew)."""
    policy = request.policy
    me = _asking(request, worker, loaded)
    # Decide on the first look; when the key chosen has more jobs than it listed, list up to
    # `max_jobs_per_key` of them and decide again on that (the batch comes from the full
    # listing). Should none of the chosen jobs still be there (cancelled meanwhile), decide
    # again without that key. At most two listings and two takes.
    tries = listings = 2
    while tries:
        decision = decide_claim(loaded.snapshot, me, now=loaded.now, config=policy.scheduler)
        if decision is None:  # the snapshot is whole unless a key was dropped below
            return None, (loaded if tries == 2 else None)
        if decision.key.base in loaded.partly_listed and listings:
            listings -= 1
            base = decision.key.base
            loaded = await list_all_jobs(conn, loaded, base, policy=policy)
            continue
        most = policy.max_jobs_per_group
        decision = replace(
            decision, job_ids=decision.job_ids[: min(request.max_jobs or most, most)]
        )
        group = await _take(conn, request, decision, loaded.snapshot)
        if group is not None:
            logger.info(
                "claim decided worker_id=%s key=%s jobs=%d reason=%s",
                request.worker_id,
                decision.key,
                len(decision.job_ids),
                decision.reason,
            )
            if last:
                return group, None
            taken = tuple(job["job_id"] for job in group["jobs"])
            after = await after_lease(
                conn, loaded, decision, taken=taken, worker_id=str(request.worker_id), policy=policy
            )
            return group, after
        tries -= 1
        pending = tuple(p for p in loaded.snapshot.pending if p.key != decision.key)
        loaded = replace(loaded, snapshot=replace(loaded.snapshot, pending=pending))
    return None, None


def _asking(request: ClaimRequest, worker: asyncpg.Record, loaded: Loaded) -> WorkerView:
    """The asking worker as the policy sees it (it is online: it is asking)."""
    worker_id = str(request.worker_id)
    for view in loaded.snapshot.workers:
        if view.worker_id == worker_id:
            return view
    ready_ids = set(worker["ready_builds"])
    return WorkerView(
        worker_id=worker_id,
        targets=frozenset(request.targets),
        ready=frozenset(
            p.key.build for p in loaded.snapshot.pending if p.key.app_version_id in ready_ids
        ),
        capacity=worker["capacity"],
        free_slots=worker["capacity"] - worker["live"],
    )


async def _take(
    conn: TxConn, request: ClaimRequest, decision: ClaimDecision, snapshot: QueueSnapshot
) -> Wire | None:
    chosen = decision.job_ids
    expected = {
        job.job_id: job.expected_s
        for pending in snapshot.pending
        if pending.key == decision.key
        for job in pending.jobs
    }
    key = decision.key
    group_id = uuid.uuid4()
    jobs = await conn.fetch(
        _TAKE_JOBS,
        key.org_id,
        key.app_version_id,
        key.target.value,
        [uuid.UUID(j) for j in chosen],
        group_id,
        request.worker_id,
        key.text,
        request.lease_ttl_s,
        [round(expected[j] * 1000) for j in chosen],
        request.policy.scheduler.org_cap(key.org_id),
    )
    if not jobs:
        return None
    lease = jobs[0]
    order = {job_id: n for n, job_id in enumerate(chosen)}
    ordered = sorted(jobs, key=lambda j: order[str(j["job_id"])])  # longest expected first
    sources = {
        j["run_id"]: {"repo": j["repo"], "ref": j["ref"], "head_sha": j["head_sha"]}
        for j in jobs
        if j["repo"] is not None
    }
    job_wire = [
        {
            "job_id": str(j["job_id"]),
            "test_path": j["test_path"],
            "attempt": j["attempts"],
            "run_id": str(j["run_id"]),
            "source": sources.get(j["run_id"]),
        }
        for j in ordered
    ]
    distinct_sources = {str(s) for s in (j["source"] for j in job_wire)}
    return {
        "group_id": str(group_id),
        "lease_token": lease["lease_token"],
        "lease_expires_at": lease["lease_expires_at"].isoformat(),
        "org_id": key.org_id,
        "app_version_id": key.app_version_id,
        "target": key.target.value,
        "jobs": job_wire,
        "source": job_wire[0]["source"] if len(distinct_sources) == 1 else None,
        "build": claimed_build(key.org_id, lease["build"]),
        "lease_ttl_s": request.lease_ttl_s,
    }


# A lease is live when its token matches, it is LEASED, and it has not run out. The same
# statement reads the jobs of the group that a batch of results names (`$3`): one row per
# such job, or one row with no job.
_LOCK_LEASE = """
WITH lease AS (
    SELECT worker_id, org_id FROM groups
    WHERE group_id = $1 AND lease_token = $2 AND status = 'LEASED' AND lease_expires_at > now()
    FOR UPDATE
)
SELECT lease.worker_id, lease.org_id, j.job_id, j.status, j.attempts, j.max_attempts
FROM lease LEFT JOIN jobs j ON j.job_id = ANY($3::uuid[]) AND j.group_id = $1
"""
_GROUP_EXISTS = "SELECT 1 FROM groups WHERE group_id = $1 AND ($2::text IS NULL OR org_id = $2)"


class StaleLease(Exception):
    """The lease token is not (or no longer) the live one for this group."""


class UnknownGroup(LookupError):
    pass


@dataclass(frozen=True)
class LockedLease:
    """A live lease, its row locked until the transaction ends, and the jobs asked for."""

    worker_id: uuid.UUID
    org_id: str
    jobs: dict[uuid.UUID, asyncpg.Record]


async def lock_lease(
    conn: TxConn,
    group_id: uuid.UUID,
    lease_token: int,
    *,
    org_scope: str | None,
    job_ids: Sequence[uuid.UUID] = (),
) -> LockedLease:
    """The live lease, locked, with those of `job_ids` that this group holds (status,
    attempts, max_attempts); raises UnknownGroup or StaleLease."""
    rows = await conn.fetch(_LOCK_LEASE, group_id, lease_token, list(job_ids))
    if rows and (org_scope is None or rows[0]["org_id"] == org_scope):
        jobs = {r["job_id"]: r for r in rows if r["job_id"] is not None}
        return LockedLease(worker_id=rows[0]["worker_id"], org_id=rows[0]["org_id"], jobs=jobs)
    if await conn.fetchval(_GROUP_EXISTS, group_id, org_scope) is None:
        raise UnknownGroup(str(group_id))
    raise StaleLease(str(group_id))


_RENEW = """
WITH renewed AS (
    UPDATE groups SET lease_expires_at = now() + make_interval(secs => $2)
    WHERE group_id = $1 RETURNING lease_expires_at
), touched AS (
    UPDATE workers SET last_heartbeat = now() WHERE worker_id = $3
)
SELECT lease_expires_at FROM renewed
"""


async def renew_lease(
    conn: TxConn, group_id: uuid.UUID, lease_token: int, *, org_scope: str | None, ttl_s: float
) -> Wire:
    lease = await lock_lease(conn, group_id, lease_token, org_scope=org_scope)
    expires = await conn.fetchval(_RENEW, group_id, ttl_s, lease.worker_id)
    settled = await settle_group(conn, group_id)
    return {
        "lease_expires_at": expires.isoformat(),
        "cancelled_job_ids": settled.cancelled,
        "lease_ttl_s": ttl_s,
    }


# After writes under a lease, in one statement: the group ends (`$2`) when none of its jobs
# is still ASSIGNED or RUNNING; its worker is idle again when it holds no other live
# group; long-polling claims are woken when work waits (a slot frees, an org drops below its
# cap, a key loses a worker: what the policy decides may change) or when `$3` asks for it
# (jobs went back to the queue); and the group's jobs cancelled meanwhile are listed.
# "Work waits" is one probe of the index of queued jobs: its order and LIMIT keep the planner
# off a scan of the table, which statistics taken when most jobs were queued would invite,
# through every finished job, once most are done.
_SETTLE_GROUP = """
WITH done AS (
    UPDATE groups SET status = $2, finished_at = now()
    WHERE group_id = $1 AND status = 'LEASED'
      AND NOT EXISTS (SELECT 1 FROM jobs WHERE group_id = $1 AND status IN ('ASSIGNED', 'RUNNING'))
    RETURNING worker_id
), idle AS (
    UPDATE workers w SET status = 'idle'
    FROM done
    WHERE w.worker_id = done.worker_id AND w.status = 'busy'
      AND NOT EXISTS (SELECT 1 FROM groups g
                      WHERE g.worker_id = done.worker_id AND g.status = 'LEASED'
                        AND g.group_id <> $1)
), woken AS (
    SELECT pg_notify('qgjob_pending', '')
    WHERE $3 OR (EXISTS (SELECT 1 FROM done) AND (
        SELECT true FROM jobs WHERE status = 'PENDING'
        ORDER BY org_id, app_version_id, target, priority DESC, created_at LIMIT 1) IS NOT NULL)
)
SELECT EXISTS (SELECT 1 FROM done) AS finished, (SELECT count(*) FROM woken) AS woken,
       ARRAY(SELECT job_id::text FROM jobs WHERE group_id = $1 AND status = 'CANCELLED')
           AS cancelled
"""


@dataclass(frozen=True)
class Settled:
    finished: bool
    cancelled: list[str]  # job ids the worker must stop


async def settle_group(
    conn: TxConn, group_id: uuid.UUID, status: str = "FINISHED", *, notify: bool = False
) -> Settled:
    """End the group if it is done (see `_SETTLE_GROUP`); its jobs cancelled meanwhile."""
    row = await conn.fetchrow(_SETTLE_GROUP, group_id, status, notify)
    assert row is not None
    return Settled(finished=row["finished"], cancelled=list(row["cancelled"]))


_RELEASE_UNSTARTED = """
WITH back AS (
    UPDATE jobs SET status = 'PENDING', attempts = attempts - 1, updated_at = now()
    WHERE group_id = $1 AND status = 'ASSIGNED'
    RETURNING job_id, attempts + 1 AS attempt
)
DELETE FROM job_attempts a USING back
WHERE a.job_id = back.job_id AND a.attempt = back.attempt
RETURNING a.job_id
"""

# An infrastructure failure counts as an attempt: retried with backoff, or FAILED when used up,
# its error then saying so as `app.lifecycle.final_error` words it for a reported error.
_FAIL_ASSIGNED = """
WITH failed AS (
    UPDATE jobs SET
        status = CASE WHEN attempts >= max_attempts THEN 'FAILED' ELSE 'PENDING' END::job_status,
        outcome = CASE WHEN attempts >= max_attempts THEN 'error' END::job_outcome,
        error = CASE WHEN attempts >= max_attempts AND max_attempts > 1
                     THEN $2 || ' (gave up after ' || attempts || ' attempts)' ELSE $2 END,
        finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
        not_before = now() + make_interval(
            secs => $3 * power(2, greatest(attempts - 1, 0)) * (0.5 + random())),
        updated_at = now()
    WHERE group_id = ANY($1::uuid[]) AND status = ANY($4::job_status[])
    RETURNING job_id, attempts, status
)
UPDATE job_attempts a SET outcome = 'error', error = $2, finished_at = now()
FROM failed WHERE a.job_id = failed.job_id AND a.attempt = failed.attempts
  AND a.finished_at IS NULL
RETURNING a.job_id, failed.status
"""


async def release_group(
    conn: TxConn,
    group_id: uuid.UUID,
    lease_token: int,
    *,
    org_scope: str | None,
    error: str | None,
    backoff_s: float,
) -> Wire:
    """Hand back the jobs that have not started; with `error`, count it as a failed attempt."""
    await lock_lease(conn, group_id, lease_token, org_scope=org_scope)
    if error is None:
        rows = await conn.fetch(_RELEASE_UNSTARTED, group_id)
    else:
        rows = await conn.fetch(_FAIL_ASSIGNED, [group_id], error, backoff_s, ["ASSIGNED"])
    released = [str(r["job_id"]) for r in rows]
    settled = await settle_group(conn, group_id, "RELEASED", notify=bool(released))
    return {"released_job_ids": released, "group_finished": settled.finished}


_EXPIRE = """
UPDATE groups SET status = 'EXPIRED', finished_at = now()
WHERE group_id IN (
    SELECT group_id FROM groups WHERE status = 'LEASED' AND lease_expires_at <= now()
    FOR UPDATE SKIP LOCKED
)
RETURNING group_id, worker_id
"""
_MARK_OFFLINE = """
UPDATE workers SET status = 'offline'
WHERE status <> 'offline' AND last_heartbeat < now() - make_interval(secs => $1)
RETURNING worker_id, name
"""


@dataclass(frozen=True)
class Reaped:
    groups: list[uuid.UUID]
    requeued: int
    failed: int
    offline_workers: list[str]


async def reap_expired(
    conn: TxConn, *, error: str, backoff_s: float, offline_after_s: float
) -> Reaped:
    """Expire leases past their TTL: their unfinished jobs are retried or, when out of
    attempts, FAILED; finished results stay as they are. Safe on several replicas."""
    expired = await conn.fetch(_EXPIRE)
    requeued = failed = 0
    if expired:
        rows = await conn.fetch(
            _FAIL_ASSIGNED,
            [r["group_id"] for r in expired],
            error,
            backoff_s,
            ["ASSIGNED", "RUNNING"],
        )
        failed = sum(1 for r in rows if r["status"] == "FAILED")
        requeued = len(rows) - failed
        if requeued:
            await conn.execute("SELECT pg_notify('qgjob_pending', '')")
    offline = await conn.fetch(_MARK_OFFLINE, offline_after_s)
    return Reaped(
        groups=[r["group_id"] for r in expired],
        requeued=requeued,
        failed=failed,
        offline_workers=[r["name"] for r in offline],
    )


async def get_group(conn: Conn, group_id: uuid.UUID, *, org_scope: str | None) -> Wire | None:
    row = await conn.fetchrow(
        """SELECT group_id, org_id, app_version_id, target, worker_id, status, install_ms,
                  lease_expires_at, created_at, finished_at
           FROM groups WHERE group_id = $1 AND ($2::text IS NULL OR org_id = $2)""",
        group_id,
        org_scope,
    )
    return None if row is None else to_wire(row)
