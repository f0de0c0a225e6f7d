"""Reading and cancelling jobs and runs, and the per-org statistics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from app.api.params import path_uuid, query_enum, query_int, query_str, query_uuid
from app.auth import authenticate, require_org, require_role
from app.errors import Conflict, InvalidInput, NotFound
from app.lifecycle import missing_log
from app.services import Services
from app.store import jobs as store
from app.store.queue import waiting_reason_of
from qgjob.types import JobStatus, Role


async def get_job(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    job_id = path_uuid(request, "job_id")
    async with (
        services.pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        job = await store.get_job(conn, job_id, org_scope=principal.org_scope)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        job["waiting_reason"] = await waiting_reason_of(
            conn,
            job,
            policy=services.policy,
            online_within_s=services.settings.lease_ttl_s,
        )
    return JSONResponse(job)


async def list_jobs(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    raw_cursor = query_str(request, "cursor")
    try:
        cursor = store.decode_cursor(raw_cursor) if raw_cursor else None
    except ValueError:
        raise InvalidInput(
            "cursor is not valid; pass the next_cursor of a previous page", field="cursor"
        ) from None
    org_id = query_str(request, "org_id")
    if org_id is not None:  # asking for another org's jobs is refused, not answered empty
        require_org(principal, org_id, doing="see the jobs of")
    where = store.JobFilter(
        org_id=org_id,
        status=query_enum(request, "status", JobStatus),
        app_version_id=query_str(request, "app_version_id"),
        run_id=query_uuid(request, "run_id"),
    )
    jobs, next_cursor = await store.list_jobs(
        services.pool,
        org_scope=principal.org_scope,
        where=where,
        limit=query_int(request, "limit", default=50, low=1, high=500),
        cursor=cursor,
    )
    return JSONResponse({"jobs": jobs, "next_cursor": next_cursor})


async def cancel_job(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.SUBMITTER, Role.ADMIN)
    job_id = path_uuid(request, "job_id")
    job = await store.cancel_job(services.pool, job_id, org_scope=principal.org_scope)
    if job is not None:
        return JSONResponse(job)
    existing = await store.get_job(services.pool, job_id, org_scope=principal.org_scope)
    if existing is None:
        raise NotFound(f"job {job_id} not found")
    raise Conflict(
        f"job {job_id} is already {existing['status']} and cannot be cancelled",
        code="job_finished",
    )


async def get_run(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    run_id = path_uuid(request, "run_id")
    run = await store.get_run(services.pool, run_id, org_scope=principal.org_scope)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return JSONResponse(run)


async def cancel_run(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.SUBMITTER, Role.ADMIN)
    run_id = path_uuid(request, "run_id")
    if await store.get_run(services.pool, run_id, org_scope=principal.org_scope) is None:
        raise NotFound(f"run {run_id} not found")
    await store.cancel_run(services.pool, run_id, org_scope=principal.org_scope)
    run = await store.get_run(services.pool, run_id, org_scope=principal.org_scope)
    return JSONResponse(run)


async def get_stats(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    return JSONResponse(await store.stats(services.pool, org_scope=principal.org_scope))


async def get_log(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    job_id = path_uuid(request, "job_id")
    attempt = query_int(request, "attempt", default=0, low=0, high=1000)
    job = await store.get_job(services.pool, job_id, org_scope=principal.org_scope)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    log = await store.get_log(services.pool, job_id, attempt=attempt or None)
    if log is None:
        status = JobStatus(job["status"])
        why = missing_log(str(job_id), status, job["error"], attempt=attempt or None)
        raise NotFound(why, code="no_log")
    return PlainTextResponse(log)
