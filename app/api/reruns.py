"""`POST /v1/runs/{id}/rerun-failed`: a new run of the failed specs of a run."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.params import path_uuid
from app.auth import authenticate, require_role
from app.errors import Conflict, NotFound
from app.reruns import rerun_failed as rerun_failed_run
from app.services import Services
from app.store import jobs as store
from qgjob.types import Role


async def rerun_failed(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.SUBMITTER, Role.ADMIN)
    run_id = path_uuid(request, "run_id")
    new_run_id = await rerun_failed_run(
        services, run_id, org_scope=principal.org_scope, submitted_by=principal.label
    )
    if new_run_id is None:
        if await store.get_run(services.pool, run_id, org_scope=principal.org_scope) is None:
            raise NotFound(f"run {run_id} not found")
        raise Conflict(f"run {run_id} has no failed jobs to re-run", code="nothing_failed")
    run = await store.get_run(services.pool, new_run_id, org_scope=principal.org_scope)
    return JSONResponse(run, status_code=201)
