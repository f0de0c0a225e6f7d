"""The route table of API v1: each endpoint once, used both to route and to document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api import health, jobs, submissions, tokens
from app.api.schemas import (
    CreatedToken,
    Job,
    JobPage,
    JobSubmission,
    Run,
    RunSubmission,
    Stats,
    TokenRequest,
)

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" | "query" | "header"
    description: str
    schema_type: str = "string"
    schema_format: str | None = None
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    request: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = (401, 404)
    public: bool = False
    deprecated: bool = False


_JOB_ID = Param("job_id", "path", "The job's id", schema_format="uuid")
_RUN_ID = Param("run_id", "path", "The run's id", schema_format="uuid")
_IDEMPOTENCY = Param(
    "Idempotency-Key", "header", "Repeat-safe submits: a repeat returns the first answer."
)
_SUBMIT_ERRORS = (400, 401, 403, 409, 413, 422)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/v1/jobs",
        submissions.submit_job,
        "Submit one job",
        "jobs",
        request=JobSubmission,
        response=Job,
        status=201,
        params=(_IDEMPOTENCY,),
        errors=_SUBMIT_ERRORS,
    ),
    Endpoint(
        "GET",
        "/v1/jobs",
        jobs.list_jobs,
        "List jobs, newest first",
        "jobs",
        response=JobPage,
        errors=(401, 422),
        params=(
            Param("org_id", "query", "Only this org's jobs"),
            Param(
                "status",
                "query",
                "Only jobs in this status",
                enum=("PENDING", "ASSIGNED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"),
            ),
            Param("app_version_id", "query", "Only jobs of this app version"),
            Param("run_id", "query", "Only jobs of this run", schema_format="uuid"),
            Param("limit", "query", "Page size, 1-500 (default 50)", schema_type="integer"),
            Param("cursor", "query", "The next_cursor of the previous page"),
        ),
    ),
    Endpoint(
        "GET",
        "/v1/jobs/{job_id}",
        jobs.get_job,
        "Get a job",
        "jobs",
        response=Job,
        params=(_JOB_ID,),
        errors=(401, 404, 422),
    ),
    Endpoint(
        "POST",
        "/v1/jobs/{job_id}/cancel",
        jobs.cancel_job,
        "Cancel a job",
        "jobs",
        response=Job,
        params=(_JOB_ID,),
        errors=(401, 403, 404, 409, 422),
    ),
    Endpoint(
        "POST",
        "/v1/runs",
        submissions.submit_run,
        "Submit many tests as one run",
        "runs",
        request=RunSubmission,
        response=Run,
        status=201,
        params=(_IDEMPOTENCY,),
        errors=_SUBMIT_ERRORS,
    ),
    Endpoint(
        "GET",
        "/v1/runs/{run_id}",
        jobs.get_run,
        "Get a run and its jobs by group",
        "runs",
        response=Run,
        params=(_RUN_ID,),
        errors=(401, 404, 422),
    ),
    Endpoint(
        "POST",
        "/v1/runs/{run_id}/cancel",
        jobs.cancel_run,
        "Cancel every unfinished job of a run",
        "runs",
        response=Run,
        params=(_RUN_ID,),
        errors=(401, 403, 404, 422),
    ),
    Endpoint(
        "GET",
        "/v1/stats",
        jobs.get_stats,
        "Job, worker and group counts",
        "stats",
        response=Stats,
        errors=(401,),
    ),
    Endpoint(
        "POST",
        "/v1/tokens",
        tokens.post_token,
        "Create an API token (admins)",
        "tokens",
        request=TokenRequest,
        response=CreatedToken,
        status=201,
        errors=(400, 401, 403, 413, 422),
    ),
    Endpoint(
        "GET", "/healthz", health.healthz, "The process is up", "health", public=True, errors=()
    ),
    Endpoint(
        "GET",
        "/readyz",
        health.readyz,
        "The database is reachable",
        "health",
        public=True,
        errors=(503,),
    ),
    # The seed's paths, kept for existing scripts.
    Endpoint(
        "POST",
        "/submit-job",
        submissions.submit_job,
        "Submit one job (seed path)",
        "jobs",
        request=JobSubmission,
        response=Job,
        status=201,
        params=(_IDEMPOTENCY,),
        errors=_SUBMIT_ERRORS,
        deprecated=True,
    ),
    Endpoint(
        "GET",
        "/status/{job_id}",
        jobs.get_job,
        "Get a job (seed path)",
        "jobs",
        response=Job,
        params=(_JOB_ID,),
        errors=(401, 404, 422),
        deprecated=True,
    ),
)


def api_routes(endpoints: tuple[Endpoint, ...] = ENDPOINTS) -> list[Route]:
    return [Route(e.path, e.handler, methods=[e.method]) for e in endpoints]
