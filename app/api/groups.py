"""Writes under a lease: heartbeat, events (job started / finished, setup done), release.

Each checks the fencing token in the same transaction as the write; a stale token is
answered 409 and changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.bodies import parse
from app.api.params import path_uuid
from app.api.schemas import (
    GroupEvents,
    JobFinishedEvent,
    JobStartedEvent,
    LeaseBody,
    ReleaseBody,
    SetupDoneEvent,
)
from app.auth import authenticate, require_role
from app.database import in_transaction
from app.errors import Conflict, NotFound
from app.services import Services
from app.store import events as ev
from app.store.leases import StaleLease, UnknownGroup, release_group, renew_lease
from app.store.tokens import Principal
from qgjob.types import Role

logger = logging.getLogger(__name__)
EVENTS_BODY_LIMIT = 16 * 1024 * 1024


@contextmanager
def lease_errors(group_id: uuid.UUID) -> Iterator[None]:
    """Map the store's lease errors onto HTTP: unknown group 404, stale lease 409."""
    try:
        yield
    except UnknownGroup:
        raise NotFound(f"group {group_id} not found") from None
    except StaleLease:
        raise Conflict(
            f"the lease on group {group_id} is not live (expired, released or superseded); "
            "stop working on this group",
            code="stale_lease",
        ) from None


async def _lease_caller(request: Request) -> tuple[Services, Principal, uuid.UUID]:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.WORKER, Role.ADMIN)
    return services, principal, path_uuid(request, "group_id")


async def heartbeat(request: Request) -> Response:
    services, principal, group_id = await _lease_caller(request)
    body = await parse(request, LeaseBody, limit=services.settings.max_body_bytes)
    with lease_errors(group_id):
        async with services.pool.acquire() as conn, conn.transaction():
            answer = await renew_lease(
                conn,
                group_id,
                body.lease_token,
                org_scope=principal.org_scope,
                ttl_s=services.settings.lease_ttl_s,
            )
    return JSONResponse(answer)


async def post_events(request: Request) -> Response:
    services, principal, group_id = await _lease_caller(request)
    body = await parse(request, GroupEvents, limit=EVENTS_BODY_LIMIT)
    started = [e.job_id for e in body.events if isinstance(e, JobStartedEvent)]
    finished = [
        ev.Finished(
            job_id=e.job_id,
            outcome=e.outcome,
            duration_ms=e.duration_ms,
            error=e.error,
            artifacts=dict(e.artifacts),
            log=e.log,
            retry=e.retry,
        )
        for e in body.events
        if isinstance(e, JobFinishedEvent)
    ]
    setups = [
        ev.SetupReport(install_ms=e.install_ms, build=e.build)
        for e in body.events
        if isinstance(e, SetupDoneEvent)
    ]
    with lease_errors(group_id):
        reported = await in_transaction(
            services.pool,
            lambda conn: ev.report_events(
                conn,
                group_id=group_id,
                lease_token=body.lease_token,
                org_scope=principal.org_scope,
                started=started,
                finished=finished,
                setups=setups,
                backoff_s=services.settings.retry_backoff_s,
            ),
        )
    if reported.group_finished:
        logger.info("group finished group_id=%s", group_id)
    result = reported.applied
    _count_results(services, finished, result, group_id=group_id)
    return JSONResponse(
        {
            "applied": result.applied,
            "ignored": result.ignored,
            "cancelled_job_ids": reported.cancelled,
        }
    )


def _count_results(
    services: Services, finished: list[ev.Finished], result: ev.Applied, *, group_id: uuid.UUID
) -> None:
    """Count and log one result per job whose report was recorded: a job reported n times in
    the batch and ignored k times was recorded once if n > k (its first report is kept)."""
    reports: dict[str, list[ev.Finished]] = {}
    for event in finished:
        reports.setdefault(str(event.job_id), []).append(event)
    ignored = Counter(item["job_id"] for item in result.ignored)
    for job_id, events in reports.items():
        if len(events) > ignored[job_id]:
            outcome = events[0].outcome.value
            services.metrics.results.labels(outcome=outcome).inc()
            logger.info(
                "job result job_id=%s group_id=%s outcome=%s duration_ms=%d",
                job_id,
                group_id,
                outcome,
                events[0].duration_ms,
            )
    if result.retried:
        services.metrics.retries.labels(reason="infrastructure_error").inc(result.retried)


async def release(request: Request) -> Response:
    services, principal, group_id = await _lease_caller(request)
    body = await parse(request, ReleaseBody, limit=services.settings.max_body_bytes)
    with lease_errors(group_id):
        async with services.pool.acquire() as conn, conn.transaction():
            answer = await release_group(
                conn,
                group_id,
                body.lease_token,
                org_scope=principal.org_scope,
                error=body.error,
                backoff_s=services.settings.retry_backoff_s,
            )
    if answer["released_job_ids"]:
        services.metrics.retries.labels(reason="released").inc(len(answer["released_job_ids"]))
    logger.info(
        "group released group_id=%s reason=%r jobs_back=%d error=%s",
        group_id,
        body.reason,
        len(answer["released_job_ids"]),
        body.error is not None,
    )
    return JSONResponse(answer)
