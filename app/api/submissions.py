"""Submitting work: `POST /v1/jobs`, `POST /v1/runs` and the seed's `POST /submit-job`.

A 2xx answer means the jobs are committed. With an `Idempotency-Key` header a repeat of the
same request returns the first answer and creates nothing; the same key with a different
request is refused with 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api.bodies import decode_json, read_body, validate
from app.api.schemas import JobSubmission, RunSubmission
from app.auth import authenticate, require_org, require_role
from app.errors import Conflict, InvalidInput
from app.services import Services
from app.store.idempotency import claim_key, request_hash, store_answer
from app.store.jobs import NewRun, Wire, insert_run
from qgjob.types import Role, RunSource

MAX_IDEMPOTENCY_KEY = 255


async def submit_job(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.SUBMITTER, Role.ADMIN)
    data = decode_json(await read_body(request, limit=services.settings.max_body_bytes))
    sub = validate(JobSubmission, data)
    require_org(principal, sub.org_id)
    new = NewRun(
        org_id=sub.org_id,
        app_version_id=sub.app_version_id,
        tests=[sub.test_path],
        targets=[sub.target],
        priority=sub.priority,
        source=RunSource.API,
        max_attempts=services.settings.max_attempts,
        submitted_by=principal.label,
    )
    return await _submit(request, services, new, data, shape=lambda run: run["jobs"][0])


async def submit_run(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    require_role(principal, Role.SUBMITTER, Role.ADMIN)
    data = decode_json(await read_body(request, limit=services.settings.max_body_bytes))
    sub = validate(RunSubmission, data)
    require_org(principal, sub.org_id)
    limit = services.settings.max_run_tests
    if len(sub.tests) * len(sub.targets) > limit:
        raise InvalidInput(
            f"a run may hold at most {limit} jobs (tests × targets); split it into several runs",
            field="tests",
        )
    new = NewRun(
        org_id=sub.org_id,
        app_version_id=sub.app_version_id,
        tests=list(dict.fromkeys(sub.tests)),
        targets=list(dict.fromkeys(sub.targets)),
        priority=sub.priority,
        source=sub.source,
        max_attempts=services.settings.max_attempts,
        repo=sub.repo,
        ref=sub.ref,
        head_sha=sub.head_sha,
        submitted_by=principal.label,
    )
    return await _submit(request, services, new, data, shape=lambda run: run)


async def _submit(
    request: Request,
    services: Services,
    new: NewRun,
    data: Any,
    *,
    shape: Callable[[Wire], Wire],
) -> Response:
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} characters", field="Idempotency-Key"
        )
    async with services.pool.acquire() as conn, conn.transaction():
        if key is not None:
            digest = request_hash(request.method, request.url.path, data)
            earlier = await claim_key(conn, org_id=new.org_id, key=key, digest=digest)
            if earlier is not None:
                if earlier.request_hash != digest:
                    raise Conflict(
                        "this Idempotency-Key was already used for a different request; "
                        "use a new key for new work",
                        code="idempotency_key_reused",
                    )
                return JSONResponse(earlier.body, status_code=earlier.status_code)
        body = shape(await insert_run(conn, new))
        if key is not None:
            await store_answer(conn, org_id=new.org_id, key=key, status_code=201, body=body)
    return JSONResponse(body, status_code=201)
