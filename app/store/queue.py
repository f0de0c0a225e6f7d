"""The queue as the scheduling policy sees it, loaded in two statements.

`load_snapshot` reads the pending keys most likely to be served (the first `max_keys` by
priority and the first `max_keys` by age, so an aged key is never out of sight), each key's
first `max_jobs_per_key` jobs (most urgent, then oldest) with their duration history and
their last attempt, and how many it has (counted up to `max_jobs_counted`), then the
live leases, the online workers and each key's setup history and last lease. It turns them
into a `dispatch.scheduling.QueueSnapshot` with estimates from `dispatch.estimates`: the
claim (`app.store.leases`) and `GET /v1/jobs/{id}`'s `waiting_reason` read the same view.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg

from app.database import Conn
from app.policy import Policy
from app.store.builds import waiting_for_build
from dispatch.estimates import estimate_durations, estimate_setup_s
from dispatch.grouping import (
    BuildRef,
    DefaultGrouping,
    GroupingStrategy,
    GroupKey,
    JobFacts,
    group_key,
)
from dispatch.scheduling import (
    ClaimDecision,
    PendingJob,
    PendingKey,
    QueueSnapshot,
    RunningGroup,
    WorkerView,
    apply_claim,
)
from dispatch.waiting import WaitingCode, waiting_reason
from qgjob.types import Priority, Target

# Each key's first `$4` jobs (most urgent, then oldest) with their duration history and last
# attempt, for the keys in `counted` (org_id, app_version_id, target, pending). The lookups
# are LATERAL with LIMIT 1 so that the planner cannot turn them into joins that read every
# attempt or history row (tests/integration/test_query_plans.py).
_LISTED = """
SELECT k.org_id, k.app_version_id, k.target, k.pending, j.job_id, j.test_path, j.priority,
       j.created_at, j.attempts, j.not_before, r.repo, h.durations_ms,
       a.worker_id AS last_worker_id, a.outcome AS last_outcome
FROM counted k
CROSS JOIN LATERAL (
    SELECT job_id, run_id, test_path, priority, created_at, attempts, not_before FROM jobs j
    WHERE j.status = 'PENDING' AND j.org_id = k.org_id AND j.app_version_id = k.app_version_id
      AND j.target = k.target
    ORDER BY j.priority DESC, j.created_at, j.job_id LIMIT $4
) AS j
LEFT JOIN runs r ON r.run_id = j.run_id
LEFT JOIN LATERAL (
    SELECT durations_ms FROM spec_history h
    WHERE h.org_id = k.org_id AND h.target = k.target AND h.test_path = j.test_path LIMIT 1
) AS h ON true
LEFT JOIN LATERAL (
    SELECT worker_id, outcome FROM job_attempts a
    WHERE j.attempts > 0 AND a.job_id = j.job_id AND a.attempt = j.attempts LIMIT 1
) AS a ON true
"""

# The distinct pending keys come from a skip scan of `jobs_pending_key` (one index probe per
# key, not a pass over every pending job); each key's first entry is its most urgent, oldest
# job. A key's jobs are listed in that order, and counted up to `$8`.
_PENDING = (
    """
WITH RECURSIVE keys AS (
    (SELECT org_id, app_version_id, target, priority, created_at AS oldest FROM jobs
     WHERE status = 'PENDING' AND target = ANY($1::target[]) AND ($2::text IS NULL OR org_id = $2)
     ORDER BY org_id, app_version_id, target, priority DESC, created_at LIMIT 1)
    UNION ALL
    SELECT n.* FROM keys k CROSS JOIN LATERAL (
        SELECT org_id, app_version_id, target, priority, created_at FROM jobs
        WHERE status = 'PENDING' AND target = ANY($1::target[])
          AND ($2::text IS NULL OR org_id = $2)
          AND (org_id, app_version_id, target) > (k.org_id, k.app_version_id, k.target)
        ORDER BY org_id, app_version_id, target, priority DESC, created_at LIMIT 1) AS n
), chosen AS (
    SELECT org_id, app_version_id, target FROM (
        SELECT keys.*,
               row_number() OVER (ORDER BY priority DESC, oldest) AS by_priority,
               row_number() OVER (ORDER BY oldest) AS by_age
        FROM keys) AS numbered
    WHERE by_priority <= $3 OR by_age <= $3
       OR (org_id, app_version_id, target::text) = ($5, $6, $7)
), counted AS MATERIALIZED (
    SELECT c.*, (SELECT count(*) FROM (
                    SELECT 1 FROM jobs p
                    WHERE p.status = 'PENDING' AND p.org_id = c.org_id
                      AND p.app_version_id = c.app_version_id AND p.target = c.target
                    LIMIT $8) AS capped) AS pending
    FROM chosen c
)"""
    + _LISTED
)

# One key's jobs (`$1..$3`), as `_PENDING` lists them, without enumerating the other keys.
_PENDING_OF_KEY = (
    """
WITH counted AS MATERIALIZED (
    SELECT $1::text AS org_id, $2::text AS app_version_id, $3::target AS target,
           (SELECT count(*) FROM (
               SELECT 1 FROM jobs p
               WHERE p.status = 'PENDING' AND p.org_id = $1 AND p.app_version_id = $2
                 AND p.target = $3
               LIMIT $5) AS capped) AS pending
)"""
    + _LISTED
)

# `$4..$6` name the pending keys: their setup history, scope durations and last lease.
_CONTEXT = """
SELECT statement_timestamp() AS now,
  (SELECT coalesce(json_agg(json_build_object(
       'org_id', g.org_id, 'app_version_id', g.app_version_id, 'target', g.target,
       'key', g.key, 'worker_id', g.worker_id,
       'remaining_ms', (SELECT coalesce(sum(j.expected_ms), 0) FROM jobs j
                        WHERE j.group_id = g.group_id AND j.status IN ('ASSIGNED', 'RUNNING')))),
       '[]')
   FROM groups g WHERE g.status = 'LEASED') AS running,
  (SELECT coalesce(json_agg(json_build_object(
       'worker_id', w.worker_id, 'targets', w.target_types, 'capacity', w.capacity,
       'ready', w.ready_builds, 'needs_build', w.needs_build,
       'live', (SELECT count(*) FROM groups g
                WHERE g.worker_id = w.worker_id AND g.status = 'LEASED'))), '[]')
   FROM workers w
   WHERE w.status IN ('idle', 'busy') AND w.target_types && $1::target[]
     AND w.last_heartbeat >= statement_timestamp() - make_interval(secs => $2)
     AND ($3::text IS NULL OR w.org_id IS NULL OR w.org_id = $3)) AS workers,
  (SELECT coalesce(json_agg(json_build_object(
       'org_id', k.org_id, 'app_version_id', k.app_version_id, 'target', k.target,
       'setups_ms', t.setups_ms, 'scope_ms', t.durations_ms,
       'has_build', EXISTS (SELECT 1 FROM builds b
                            WHERE b.org_id = k.org_id AND b.app_version_id = k.app_version_id),
       'last_lease', (SELECT max(g.created_at) FROM groups g
                      WHERE g.org_id = k.org_id AND g.app_version_id = k.app_version_id
                        AND g.target = k.target))), '[]')
   FROM unnest($4::text[], $5::text[], $6::target[]) AS k(org_id, app_version_id, target)
   LEFT JOIN target_history t ON t.org_id = k.org_id AND t.target = k.target) AS keys
"""


@dataclass(frozen=True)
class Scope:
    """Which part of the queue to load.

    `targets`: the targets to look at; `pending_org`: only this org's jobs (an org's own
    worker), None for every org; `worker_org`: the workers that can serve this org (None:
    every worker); `include_key`: a base key to load whatever its rank (for waiting_reason);
    `needs_build`: whether the asking worker runs only keys whose build was uploaded (None:
    no worker is asking; a key without a build waits unless a live worker runs without one).
    """

    targets: Sequence[Target]
    pending_org: str | None = None
    worker_org: str | None = None
    include_key: tuple[str, str, Target] | None = None
    needs_build: bool | None = None


Base = tuple[str, str, Target]


@dataclass(frozen=True)
class Listed:
    """A key's pending jobs as a statement listed them: the first of the key in queue order
    (`rows`), and how many it had, counted up to `counted_to` (`pending`)."""

    rows: tuple[asyncpg.Record, ...]
    pending: int
    counted_to: int

    @property
    def complete(self) -> bool:
        """Whether `rows` are all the key's pending jobs."""
        return self.pending < self.counted_to and len(self.rows) == self.pending


@dataclass(frozen=True)
class Loaded:
    """A snapshot, the instant it was taken (the database's clock), the workers' rows, and
    what `list_all_jobs` and `after_lease` need: the keys' context, the targets served
    without an uploaded build, the base keys listed short of `max_jobs_per_key` jobs while
    more are pending, and each base key's jobs as last listed."""

    snapshot: QueueSnapshot
    now: datetime
    worker_rows: dict[str, dict[str, Any]]
    keyed: dict[tuple[str, str, str], dict[str, Any]]
    buildless: frozenset[str]
    partly_listed: frozenset[Base]
    listed: dict[Base, Listed]


async def load_snapshot(
    conn: Conn,
    *,
    scope: Scope,
    policy: Policy,
    online_within_s: float,
    jobs_per_key: int | None = None,
) -> Loaded:
    """The queue as `dispatch.scheduling.decide_claim` and `dispatch.waiting` read it, with
    `jobs_per_key` jobs listed per key (default `policy.max_jobs_per_key`)."""
    include = scope.include_key or ("", "", "")
    rows = await conn.fetch(
        _PENDING,
        [t.value for t in scope.targets],
        scope.pending_org,
        policy.max_keys,
        jobs_per_key or policy.max_jobs_per_key,
        *include,
        policy.max_jobs_counted,
    )
    listed = _by_base(rows, counted_to=policy.max_jobs_counted)
    bases = sorted((org, version, target.value) for org, version, target in listed)
    context = await conn.fetchrow(
        _CONTEXT,
        [t.value for t in scope.targets],
        online_within_s,
        scope.worker_org,
        [b[0] for b in bases],
        [b[1] for b in bases],
        [b[2] for b in bases],
    )
    assert context is not None
    keyed = {(k["org_id"], k["app_version_id"], k["target"]): k for k in _json(context["keys"])}
    now: datetime = context["now"]
    workers_raw = _json(context["workers"])
    if scope.needs_build is None:
        buildless = {t for w in workers_raw if not w["needs_build"] for t in w["targets"]}
    else:
        buildless = set() if scope.needs_build else {t.value for t in scope.targets}
    pending = _pending_keys(listed, keyed, policy=policy, now=now, buildless=buildless)
    snapshot = QueueSnapshot(
        pending=pending,
        running=tuple(_running(_json(context["running"]))),
        workers=tuple(_worker_view(w, pending) for w in workers_raw),
    )
    return Loaded(
        snapshot,
        now,
        {w["worker_id"]: w for w in workers_raw},
        keyed=keyed,
        buildless=frozenset(buildless),
        partly_listed=frozenset(b for b, key in listed.items() if _partly(key, policy)),
        listed=listed,
    )


async def list_all_jobs(conn: Conn, loaded: Loaded, base: Base, *, policy: Policy) -> Loaded:
    """`loaded` with up to `policy.max_jobs_per_key` jobs of `base` listed (same instant,
    context and workers; the key's jobs read again in the caller's transaction).

    The listing reads `first_look_jobs_per_key` jobs more than the snapshot shows, and
    counts `max_jobs_per_key` further, so that once some of them are leased `after_lease`
    knows the key's next first look without reading it again."""
    if base not in loaded.partly_listed:
        return loaded
    listed = await _list_key(
        conn,
        base,
        jobs=policy.max_jobs_per_key + policy.first_look_jobs_per_key,
        counted_to=policy.max_jobs_counted + policy.max_jobs_per_key,
    )
    cap = policy.max_jobs_counted  # the snapshot counts as a first look does
    shown = {
        b: Listed(listing.rows[: policy.max_jobs_per_key], min(listing.pending, cap), cap)
        for b, listing in listed.items()
    }
    return _with_key(loaded, base, shown, kept=listed, policy=policy)


async def after_lease(
    conn: Conn,
    loaded: Loaded,
    decision: ClaimDecision,
    *,
    taken: Sequence[str],
    worker_id: str,
    policy: Policy,
) -> Loaded:
    """`loaded` as the next claim of the same turn must see it, once `taken` of the jobs
    `decision` chose were leased to `worker_id` in the caller's transaction: the lease runs,
    the worker has a slot fewer, and the key was just served. The key's next first look is
    what its listing holds beyond the jobs taken; it is read again when the listing cannot
    tell (a chosen job was not taken, too few jobs are left in the listing, or their count
    is unknown)."""
    base = decision.key.base
    leased_ids = set(taken)
    all_taken = leased_ids == set(decision.job_ids)
    decision = replace(decision, job_ids=tuple(j for j in decision.job_ids if j in leased_ids))
    snapshot = apply_claim(loaded.snapshot, decision, worker_id=worker_id, now=loaded.now)
    context_key = (base[0], base[1], base[2].value)
    keyed = dict(loaded.keyed)
    keyed[context_key] = {**keyed.get(context_key, {}), "last_lease": loaded.now.isoformat()}
    leased = replace(loaded, snapshot=snapshot, keyed=keyed)
    before = loaded.listed.get(base)
    left = None if before is None or not all_taken else _left_after(before, leased_ids, policy)
    if left is None:
        listed = await _list_key(
            conn, base, jobs=policy.first_look_jobs_per_key, counted_to=policy.max_jobs_counted
        )
    else:
        listed = {base: left} if left.rows else {}
    return _with_key(leased, base, listed, kept=listed, policy=policy)


def _left_after(listed: Listed, taken: set[str], policy: Policy) -> Listed | None:
    """The first look at a key once `taken` (all from `listed`) left it, or None when the
    listing cannot tell: fewer jobs left in it than a first look shows while the key has
    more, or a count that stopped at its limit and might stop below it now."""
    rows = tuple(r for r in listed.rows if str(r["job_id"]) not in taken)
    gone = len(listed.rows) - len(rows)
    first_look = policy.first_look_jobs_per_key
    if gone != len(taken) or (len(rows) < first_look and not listed.complete):
        return None
    if listed.pending < listed.counted_to:
        pending = listed.pending - gone
    elif listed.counted_to - gone >= policy.max_jobs_counted:
        pending = policy.max_jobs_counted  # at least that many are still there
    else:
        return None
    return Listed(rows[:first_look], min(pending, policy.max_jobs_counted), policy.max_jobs_counted)


def _with_key(
    loaded: Loaded,
    base: Base,
    shown: dict[Base, Listed],
    *,
    kept: dict[Base, Listed],
    policy: Policy,
) -> Loaded:
    """`loaded` with the jobs of `base` as `shown` (and `kept` for `after_lease`)."""
    refined = _pending_keys(
        shown, loaded.keyed, policy=policy, now=loaded.now, buildless=set(loaded.buildless)
    )
    others = tuple(p for p in loaded.snapshot.pending if p.key.base != base)
    snapshot = replace(loaded.snapshot, pending=others + refined)
    partly = loaded.partly_listed - {base}
    if base in shown and _partly(shown[base], policy):
        partly |= {base}
    listed = {b: key for b, key in loaded.listed.items() if b != base} | kept
    return replace(loaded, snapshot=snapshot, partly_listed=partly, listed=listed)


async def _list_key(conn: Conn, base: Base, *, jobs: int, counted_to: int) -> dict[Base, Listed]:
    """The first `jobs` pending jobs of `base`, counted up to `counted_to` (none: empty)."""
    rows = await conn.fetch(_PENDING_OF_KEY, base[0], base[1], base[2].value, jobs, counted_to)
    return _by_base(rows, counted_to=counted_to)


def _by_base(rows: Sequence[asyncpg.Record], *, counted_to: int) -> dict[Base, Listed]:
    """Listed rows by base key, in the order listed."""
    by_base: defaultdict[Base, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_base[(row["org_id"], row["app_version_id"], Target(row["target"]))].append(row)
    return {
        base: Listed(tuple(jobs), jobs[0]["pending"], counted_to) for base, jobs in by_base.items()
    }


def _partly(listed: Listed, policy: Policy) -> bool:
    """Whether a key has more jobs than listed, short of `max_jobs_per_key`."""
    return len(listed.rows) < min(listed.pending, policy.max_jobs_per_key)


def _json(value: Any) -> list[dict[str, Any]]:
    """A json column: the pool decodes json (app.database); a bare connection may not."""
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or ())


def _seconds(samples_ms: Iterable[int] | None) -> list[float]:
    return [ms / 1000.0 for ms in samples_ms or ()]


def _pending_keys(
    listed: dict[Base, Listed],
    keyed: dict[tuple[str, str, str], dict[str, Any]],
    *,
    policy: Policy,
    now: datetime,
    buildless: set[str],
) -> tuple[PendingKey, ...]:
    """`buildless`: the targets served by a worker that runs a key without an uploaded build."""
    found: list[PendingKey] = []
    for (org_id, app_version_id, target), listing in listed.items():
        base = (org_id, app_version_id, target.value)
        jobs = listing.rows
        info = keyed.get(base, {})
        histories = {r["test_path"]: _seconds(r["durations_ms"]) for r in jobs}
        expected = estimate_durations(
            {path: samples for path, samples in histories.items() if samples},
            histories,
            config=policy.estimates,
            scope_samples=_seconds(info.get("scope_ms")),
        )
        setup_s = estimate_setup_s(_seconds(info.get("setups_ms")), config=policy.estimates)
        last_lease = info.get("last_lease")
        last_claimed_at = None if last_lease is None else datetime.fromisoformat(last_lease)
        listed_jobs = [_pending_job(r, expected[r["test_path"]], now) for r in jobs]
        build_available = bool(info.get("has_build")) or base[2] in buildless
        # The key's jobs beyond the oldest `max_jobs_per_key`, at the listed jobs' mean.
        mean_s = sum(job.expected_s for job in listed_jobs) / len(listed_jobs)
        unlisted_s = (listing.pending - len(jobs)) * mean_s
        for key, members in _split(base, jobs, listed_jobs, policy.strategy(base[0])):
            found.append(
                PendingKey(
                    key=key,
                    priority=_PRIORITIES[max(_RANKS[r["priority"]] for r, _ in members)],
                    oldest_enqueued_at=min(r["created_at"] for r, _ in members),
                    jobs=tuple(job for _, job in members),
                    build_available=build_available,
                    setup_s=setup_s,
                    last_claimed_at=last_claimed_at,
                    unlisted_s=unlisted_s * len(members) / len(jobs),
                )
            )
    return tuple(found)


_RANKS = {p.value: p.rank for p in Priority}
_PRIORITIES = {p.rank: p for p in Priority}


def _split(
    base: tuple[str, str, str],
    rows: Sequence[asyncpg.Record],
    listed: Sequence[PendingJob],
    strategy: GroupingStrategy,
) -> Iterable[tuple[GroupKey, list[tuple[asyncpg.Record, PendingJob]]]]:
    """The base key's jobs by the org's group key (one key unless it adds dimensions)."""
    pairs = list(zip(rows, listed, strict=True))
    target = Target(base[2])
    if isinstance(strategy, DefaultGrouping):
        yield GroupKey(base[0], base[1], target), pairs
        return
    split: defaultdict[GroupKey, list[tuple[asyncpg.Record, PendingJob]]] = defaultdict(list)
    for row, job in pairs:
        facts = JobFacts(base[0], base[1], target, repo=row["repo"])
        split[group_key(strategy, facts)].append((row, job))
    yield from split.items()


def _pending_job(row: asyncpg.Record, expected_s: float, now: datetime) -> PendingJob:
    last_worker = row["last_worker_id"]
    return PendingJob(
        job_id=str(row["job_id"]),
        expected_s=expected_s,
        attempt=row["attempts"],
        last_worker_id=None if last_worker is None else str(last_worker),
        infra_retry=row["last_outcome"] == "error",
        not_before=row["not_before"] if row["not_before"] > now else None,
    )


def _running(rows: list[dict[str, Any]]) -> Iterable[RunningGroup]:
    for row in rows:
        yield RunningGroup(
            key=_key_of(row),
            worker_id=row["worker_id"],
            remaining_s=row["remaining_ms"] / 1000.0,
        )


def _key_of(row: dict[str, Any]) -> GroupKey:
    """A live group's key: its stored text when it parses to the same base, else the base."""
    base = GroupKey(row["org_id"], row["app_version_id"], Target(row["target"]))
    parsed = GroupKey.parse(row["key"])
    return parsed if parsed is not None and parsed.build == base.build else base


def _worker_view(row: dict[str, Any], pending: tuple[PendingKey, ...]) -> WorkerView:
    targets = frozenset(Target(t) for t in row["targets"])
    ready_ids = set(row["ready"] or ())
    ready = frozenset(
        BuildRef(p.key.org_id, p.key.app_version_id, p.key.target)
        for p in pending
        if p.key.app_version_id in ready_ids and p.key.target in targets
    )
    return WorkerView(
        worker_id=row["worker_id"],
        targets=targets,
        ready=ready,
        capacity=row["capacity"],
        free_slots=max(0, row["capacity"] - row["live"]),
    )


async def waiting_reason_of(
    conn: Conn, job: dict[str, Any], *, policy: Policy, online_within_s: float
) -> dict[str, Any] | None:
    """Why a PENDING job (in wire form) still waits, in wire form; None for other jobs."""
    if job["status"] != "PENDING":
        return None
    target = Target(job["target"])
    scope = Scope(
        targets=[target],
        worker_org=job["org_id"],
        include_key=(job["org_id"], job["app_version_id"], target),
    )
    loaded = await load_snapshot(conn, scope=scope, policy=policy, online_within_s=online_within_s)
    # Whether it waits for its build is what the build-wait sweep says (app.store.builds).
    no_build = await waiting_for_build(
        conn, [uuid.UUID(job["job_id"])], live_within_s=online_within_s
    )
    base = (job["org_id"], job["app_version_id"], target)
    snapshot = replace(
        loaded.snapshot,
        pending=tuple(
            replace(p, build_available=not no_build) if p.key.base == base else p
            for p in loaded.snapshot.pending
        ),
    )
    reason = waiting_reason(job["job_id"], snapshot, now=loaded.now, config=policy.scheduler)
    if reason is None:  # not among the jobs of its key that a claim reads
        return {
            "code": WaitingCode.WAITING_FOR_WORKER.value,
            "message": f"at least {policy.max_jobs_per_key} jobs of its group ahead",
            "ahead": policy.max_jobs_per_key,
            "until": None,
        }
    return {
        "code": reason.code.value,
        "message": reason.message,
        "ahead": reason.ahead,
        "until": None if reason.until is None else reason.until.isoformat(),
    }
