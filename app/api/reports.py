"""A run's results in the formats CI systems read: `GET /v1/runs/{run_id}/junit`.

JUnit XML (`qgjob.junit`): one suite per (app version, target), one case per spec job,
flaky specs as passing cases holding a `<flakyFailure>`, unfinished jobs as skipped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from app.api.params import path_uuid
from app.auth import authenticate
from app.errors import NotFound
from app.services import Services
from app.store import jobs as store
from qgjob.junit import JUnitCase, render_junit
from qgjob.types import Outcome, Target

JUNIT_MEDIA_TYPE = "application/xml"


async def get_run_junit(request: Request) -> Response:
    services: Services = request.state.services
    principal = await authenticate(request)
    run_id = path_uuid(request, "run_id")
    run = await store.get_run(services.pool, run_id, org_scope=principal.org_scope)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    base = str(request.base_url).rstrip("/")
    cases = [
        junit_case(job, log_url=f"{base}/v1/jobs/{job['job_id']}/log" if job["attempts"] else None)
        for group in run["groups"]
        for job in group["jobs"]
    ]
    document = render_junit(
        cases,
        name=f"qgjob run {run_id}",
        timestamp=datetime.fromisoformat(run["created_at"]),
    )
    return Response(
        document,
        media_type=JUNIT_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="qgjob-{run_id}.xml"'},
    )


def junit_case(job: dict[str, Any], *, log_url: str | None) -> JUnitCase:
    """A job in wire form as a JUnit case."""
    return JUnitCase(
        name=job["test_path"],
        classname=f"{job['target']}.{job['app_version_id']}",
        app_version_id=job["app_version_id"],
        target=Target(job["target"]),
        duration_ms=job["duration_ms"] or 0,
        outcome=None if job["outcome"] is None else Outcome(job["outcome"]),
        error=job["error"],
        attempts=max(1, job["attempts"]),
        log_url=log_url,
    )
