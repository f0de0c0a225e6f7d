"""Prometheus metrics of the service, in one place: what each replica counts as it works,
and what the database says at scrape time.

One `Metrics` per running service (the lifespan owns it, handlers reach it through
`request.state.services.metrics`), each with its own registry: no module globals, so two
apps in one process (as in the tests) never share counts.

Two kinds of series:

- **Counters and histograms** count what this replica did (claims it served, leases its
  reaper expired, GitHub calls it made). Every event happens on exactly one replica, so
  `sum()` over replicas is the fleet's figure.
- **Gauges from the database** (`qgjob_queue_depth`, `qgjob_jobs`, `qgjob_workers`,
  `qgjob_groups_leased`, `qgjob_oldest_pending_seconds`) are computed by one cheap statement
  when `/metrics` is scraped: only live jobs are counted, through partial indexes, never a
  scan of the job history. Every replica reports the same values; aggregate with `max()`.

`github_api_calls` and `github_api_errors` are counted at the GitHub client's transport
(`app.metering`), `webhook_deliveries` by `POST /github/webhooks`; their label values are
listed on each attribute so that series stay few (templated routes, never raw URLs or ids).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from app.database import Conn

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Seconds a job waits for a worker: from sub-second on an idle fleet to an hour on a busy one.
_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LIVE_STATUSES = ("PENDING", "ASSIGNED", "RUNNING")
WORKER_STATUSES = ("idle", "busy", "draining", "offline")

# One round trip; every branch reads only live rows, each through a partial index whose
# predicate it repeats exactly (jobs_pending_key, jobs_group_live, groups_*_live): a single
# `status IN (all three)` would match neither index and scan the whole job history. PENDING
# is the sum of the queue rows.
_SNAPSHOT = """
SELECT 'queue' AS kind, org_id, target::text AS target, NULL::text AS status,
       count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age_s
FROM jobs WHERE status = 'PENDING' GROUP BY org_id, target
UNION ALL
SELECT 'jobs', NULL, NULL, status::text, count(*), NULL
FROM jobs WHERE status IN ('ASSIGNED', 'RUNNING') GROUP BY status
UNION ALL
SELECT 'workers', NULL, NULL, status::text, count(*), NULL FROM workers GROUP BY status
UNION ALL
SELECT 'groups', NULL, NULL, NULL, count(*), NULL FROM groups WHERE status = 'LEASED'
"""

# How long each claimed job had been claimable: since it was queued, or since its retry
# backoff ended. Read after the claim commits, through the index of live jobs by group
# (whose predicate the query repeats).
_CLAIM_WAITS = """
SELECT extract(epoch FROM now() - greatest(created_at, not_before))::float8
FROM jobs WHERE group_id = $1 AND status IN ('ASSIGNED', 'RUNNING')
"""


class Metrics:
    """Every metric the service exposes; `render()` is the body of `GET /metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # HTTP edge (the middleware in app.observability).
        self.http_requests = Counter(
            "qgjob_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_request_seconds = Histogram(
            "qgjob_http_request_seconds",
            "Time to answer an HTTP request (claims long-poll, so they are left out).",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        # The queue.
        self.claims = Counter(
            "qgjob_claims", "Groups leased to workers, by target.", ["target"], registry=r
        )
        self.claim_latency = Histogram(
            "qgjob_claim_latency_seconds",
            "Seconds a job waited between becoming claimable (queued, or its retry "
            "backoff over) and being leased to a worker, by target.",
            ["target"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.claim_turns = Histogram(
            "qgjob_claim_turn_claims",
            "Claims served by one turn of the claim lock (claims that waited together).",
            buckets=(1, 2, 4, 8, 16),
            registry=r,
        )
        self.claim_turn_seconds = Histogram(
            "qgjob_claim_turn_seconds",
            "Seconds one turn held the claim lock, whatever it served: turns run one at a "
            "time across every replica, so this bounds the claims the fleet can serve.",
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        self.lease_expirations = Counter(
            "qgjob_lease_expirations",
            "Leases the reaper expired because their worker stopped heartbeating.",
            registry=r,
        )
        self.retries = Counter(
            "qgjob_job_retries",
            "Jobs sent back to PENDING for another attempt, by reason: "
            "lease_expired | infrastructure_error | released.",
            ["reason"],
            registry=r,
        )
        self.results = Counter(
            "qgjob_job_results",
            "Attempt results recorded from workers, by outcome.",
            ["outcome"],
            registry=r,
        )
        # GitHub App (incremented by the github_app side of the service).
        self.github_api_calls = Counter(
            "qgjob_github_api_calls",
            "Requests made to the GitHub API, by method, templated route "
            "(e.g. /repos/{owner}/{repo}/check-runs) and status code ('error' when no answer).",
            ["method", "route", "status"],
            registry=r,
        )
        self.github_api_errors = Counter(
            "qgjob_github_api_errors",
            "GitHub API requests that failed, by kind: "
            "rate_limited | server_error | client_error | transport.",
            ["kind"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "qgjob_webhook_deliveries",
            "GitHub webhook deliveries received, by event and outcome: "
            "accepted | duplicate | bad_signature | ignored | error.",
            ["event", "outcome"],
            registry=r,
        )
        # From the database, at scrape time.
        self.queue_depth = Gauge(
            "qgjob_queue_depth",
            "Jobs waiting for a worker (PENDING), by org and target.",
            ["org_id", "target"],
            registry=r,
        )
        self.oldest_pending = Gauge(
            "qgjob_oldest_pending_seconds",
            "Age of the oldest PENDING job, by org and target.",
            ["org_id", "target"],
            registry=r,
        )
        self.jobs = Gauge(
            "qgjob_jobs",
            "Live jobs by status (PENDING, ASSIGNED, RUNNING); finished jobs are counted "
            "by qgjob_job_results_total instead.",
            ["status"],
            registry=r,
        )
        self.workers = Gauge(
            "qgjob_workers", "Registered workers by status.", ["status"], registry=r
        )
        self.groups_leased = Gauge(
            "qgjob_groups_leased", "Groups currently leased to workers.", registry=r
        )
        self.scrape_errors = Counter(
            "qgjob_metrics_scrape_errors",
            "Scrapes whose database snapshot failed (the gauges keep their last values).",
            registry=r,
        )

    async def record_claim(self, conn: Conn, *, group_id: uuid.UUID, target: str) -> None:
        """Count a leased group and how long each of its jobs waited for it."""
        self.claims.labels(target=target).inc()
        histogram = self.claim_latency.labels(target=target)
        for (wait_s,) in await conn.fetch(_CLAIM_WAITS, group_id):
            histogram.observe(max(0.0, wait_s))

    def observe_claim_turn(self, claims: int, seconds: float) -> None:
        self.claim_turns.observe(claims)
        self.claim_turn_seconds.observe(seconds)

    async def refresh(self, conn: Conn) -> None:
        """Set the database gauges from one snapshot of the live rows."""
        rows = await conn.fetch(_SNAPSHOT)
        self.apply_snapshot(rows)

    def apply_snapshot(self, rows: Iterable[Any]) -> None:
        self.queue_depth.clear()
        self.oldest_pending.clear()
        jobs = dict.fromkeys(LIVE_STATUSES, 0)
        workers = dict.fromkeys(WORKER_STATUSES, 0)
        leased = 0
        for row in rows:
            kind = row["kind"]
            if kind == "queue":
                labels = {"org_id": row["org_id"], "target": row["target"]}
                self.queue_depth.labels(**labels).set(row["n"])
                jobs["PENDING"] += row["n"]
                self.oldest_pending.labels(**labels).set(max(0.0, row["age_s"] or 0.0))
            elif kind == "jobs":
                jobs[row["status"]] = row["n"]
            elif kind == "workers":
                workers[row["status"]] = row["n"]
            else:
                leased = row["n"]
        for status, count in jobs.items():
            self.jobs.labels(status=status).set(count)
        for status, count in workers.items():
            self.workers.labels(status=status).set(count)
        self.groups_leased.set(leased)

    def render(self) -> bytes:
        """The registry in Prometheus' text exposition format."""
        return generate_latest(self.registry)
