"""The worker protocol: register, long-poll for a group, and list workers.

Claims long-poll for up to `QGJOB_CLAIM_TIMEOUT_S` (or the body's `wait_s`), woken by
PostgreSQL notifications and re-checking at least every `CLAIM_POLL_S` as a fallback.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.bodies import parse
from app.api.params import path_uuid
from app.api.schemas import ClaimBody, WorkerRegistration, WorkerStatusChange
from app.auth import authenticate, require_role
from app.errors import NotFound
from app.services import Services
from app.sources import grant_sources
from app.store import workers as store
from app.store.leases import ClaimRequest, UnknownWorker
from app.store.tokens import Principal
from qgjob.types import Role, Target

logger = logging.getLogger(__name__)
CLAIM_POLL_S = 1.0


async def register(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.WORKER, Role.ADMIN)
    body = await parse(request, WorkerRegistration, limit=services.settings.max_body_bytes)
    worker_id = await store.register_worker(
        services.pool,
        org_id=principal.org_id,
        name=body.name,
        target_types=body.target_types,
        labels=dict(body.labels),
        capacity=body.capacity,
        needs_build=body.needs_build,
    )
    logger.info(
        "worker registered worker_id=%s name=%s targets=%s needs_build=%s",
        worker_id,
        body.name,
        ",".join(body.target_types),
        body.needs_build,
    )
    return JSONResponse({"worker_id": str(worker_id)}, status_code=201)


async def list_workers(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    workers = await store.list_workers(
        services.pool,
        org_scope=principal.org_scope,
        offline_after_s=services.settings.lease_ttl_s,
    )
    return JSONResponse({"workers": workers})


async def _own_worker(
    services: Services, request: Request, principal: Principal
) -> dict[str, object]:
    worker_id = path_uuid(request, "worker_id")
    worker = await store.get_worker(
        services.pool,
        worker_id,
        org_scope=principal.org_scope,
        offline_after_s=services.settings.lease_ttl_s,
    )
    if worker is None:
        raise NotFound(f"worker {worker_id} not found; register it with POST /v1/workers")
    return worker


async def claim(request: Request) -> Response:
    services: Services = request.state.services
    settings = services.settings
    principal = await authenticate(request)
    require_role(principal, Role.WORKER, Role.ADMIN)
    body = await parse(request, ClaimBody, limit=settings.max_body_bytes)
    worker = await _own_worker(services, request, principal)
    wanted = ClaimRequest(
        worker_id=path_uuid(request, "worker_id"),
        targets=[Target(t) for t in worker["target_types"]],  # type: ignore[attr-defined]
        lease_ttl_s=settings.lease_ttl_s,
        policy=services.policy,
        ready_builds=body.ready_builds or None,
    )
    # QGJOB_CLAIM_TIMEOUT_S bounds every long-poll, whatever a worker asks for.
    wait_s = min(body.wait_s if body.wait_s is not None else math.inf, settings.claim_timeout_s)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        wakeup = services.wakeups.current()
        if services.stopping.is_set() or await request.is_disconnected():
            return Response(status_code=204)
        try:
            group = await services.claims.claim(wanted)
        except UnknownWorker:
            raise NotFound(f"worker {wanted.worker_id} not found") from None
        if group is not None:
            logger.info(
                "group leased group_id=%s worker_id=%s key=%s/%s/%s jobs=%d",
                group["group_id"],
                wanted.worker_id,
                group["org_id"],
                group["app_version_id"],
                group["target"],
                len(group["jobs"]),
            )
            async with services.pool.acquire() as conn:
                await services.metrics.record_claim(
                    conn, group_id=uuid.UUID(group["group_id"]), target=group["target"]
                )
            await grant_sources(services.source_access, group)
            return JSONResponse(group)
        remaining = deadline - loop.time()
        if remaining <= 0:
            return Response(status_code=204)
        await services.wakeups.wait(wakeup, min(remaining, CLAIM_POLL_S))


async def change_status(request: Request) -> Response:
    """A worker says it is draining (takes no new groups) or going offline."""
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.WORKER, Role.ADMIN)
    body = await parse(request, WorkerStatusChange, limit=services.settings.max_body_bytes)
    await _own_worker(services, request, principal)
    await store.set_status(services.pool, path_uuid(request, "worker_id"), body.status)
    logger.info(
        "worker status worker_id=%s status=%s", path_uuid(request, "worker_id"), body.status
    )
    return JSONResponse({"status": body.status})
