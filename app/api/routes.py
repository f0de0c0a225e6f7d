"""The route table of API v1: each endpoint once, used both to route and to document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.api import (
    browserstack_apps,
    builds,
    github,
    groups,
    health,
    jobs,
    reports,
    submissions,
    tokens,
    workers,
)
from app.api import metrics as metrics_api
from app.api.reruns import rerun_failed
from app.api.schemas import (
    SHA256_PATTERN,
    Build,
    ClaimBody,
    ClaimedGroup,
    CreatedToken,
    EventsAnswer,
    ExternalBuild,
    GroupEvents,
    HeartbeatAnswer,
    Job,
    JobPage,
    JobSubmission,
    LeaseBody,
    RegisteredWorker,
    ReleaseAnswer,
    ReleaseBody,
    Run,
    RunSubmission,
    Stats,
    TokenList,
    TokenRecord,
    TokenRequest,
    WorkerList,
    WorkerRegistration,
    WorkerStatusChange,
)
from app.api.submissions import MAX_IDEMPOTENCY_KEY
from app.errors import InvalidInput

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Param:
    name: str
    where: str  # "path" | "query" | "header"
    description: str
    schema_type: str = "string"
    schema_format: str | None = None
    enum: tuple[str, ...] | None = None
    # What the route checks, published so that a client (or a schema fuzzer) knows it too.
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None


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
    text: bool = False  # answers text (of `text_type`), not JSON
    text_type: str = "text/plain"
    also_ok: tuple[int, ...] = ()  # other success statuses, with the same response body
    raw_body: str | None = None  # a request body of raw bytes (this type) besides `request`
    no_content: bool = False  # may answer 204


_JOB_ID = Param("job_id", "path", "The job's id", schema_format="uuid")
_RUN_ID = Param("run_id", "path", "The run's id", schema_format="uuid")
_IDEMPOTENCY = Param(
    "Idempotency-Key",
    "header",
    "Repeat-safe submits: a repeat returns the first answer.",
    min_length=1,
    max_length=MAX_IDEMPOTENCY_KEY,
)
_SUBMIT_ERRORS = (400, 401, 403, 409, 413, 422)
_WORKER_ID = Param("worker_id", "path", "The worker's id", schema_format="uuid")
_GROUP_ID = Param("group_id", "path", "The group's id", schema_format="uuid")
_LEASE_ERRORS = (400, 401, 403, 404, 409, 413, 422)
_APP_VERSION_ID = Param("app_version_id", "path", "The app version")
_BUILD_ORG = Param("org_id", "query", "The org (default: the token's; required for fleet tokens)")
_SHA256 = Param(
    "sha256", "path", "The build's SHA-256 (64 lower-case hex digits)", pattern=SHA256_PATTERN
)
_BS_ORG = Param("org_id", "query", "The org the build belongs to")
_BS_ACCOUNT = Param("account", "query", "The BrowserStack username the upload belongs to")

_V1: tuple[Endpoint, ...] = (
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
            Param(
                "limit",
                "query",
                "Page size, 1-500 (default 50)",
                schema_type="integer",
                minimum=1,
                maximum=500,
            ),
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
        "POST",
        "/v1/runs/{run_id}/rerun-failed",
        rerun_failed,
        "Start a new run of the run's failed specs",
        "runs",
        response=Run,
        status=201,
        params=(_RUN_ID,),
        errors=(401, 403, 404, 409, 422),
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
        "GET",
        "/v1/tokens",
        tokens.get_tokens,
        "List API tokens, newest first, never their raw values (admins)",
        "tokens",
        response=TokenList,
        params=(Param("org_id", "query", "Only this org's (a fleet-wide admin sees every org's)"),),
        errors=(401, 403, 422),
    ),
    Endpoint(
        "POST",
        "/v1/tokens/{token_id}/revoke",
        tokens.revoke,
        "Revoke an API token; it is refused from then on (admins; a repeat changes nothing)",
        "tokens",
        response=TokenRecord,
        params=(Param("token_id", "path", "The token's id", schema_format="uuid"),),
        errors=(401, 403, 404, 422),
    ),
    Endpoint(
        "GET",
        "/v1/jobs/{job_id}/log",
        jobs.get_log,
        "The job's log (text)",
        "jobs",
        params=(
            _JOB_ID,
            Param(
                "attempt",
                "query",
                "Which attempt (default: the last)",
                schema_type="integer",
                minimum=0,
                maximum=1000,
            ),
        ),
        errors=(401, 404, 422),
        text=True,
    ),
    Endpoint(
        "POST",
        "/v1/workers",
        workers.register,
        "Register a worker",
        "workers",
        request=WorkerRegistration,
        response=RegisteredWorker,
        status=201,
        errors=(400, 401, 403, 413, 422),
    ),
    Endpoint(
        "GET",
        "/v1/workers",
        workers.list_workers,
        "List workers",
        "workers",
        response=WorkerList,
        errors=(401,),
    ),
    Endpoint(
        "POST",
        "/v1/workers/{worker_id}/claim",
        workers.claim,
        "Long-poll for a group to run (204 when none came)",
        "workers",
        request=ClaimBody,
        response=ClaimedGroup,
        params=(_WORKER_ID,),
        errors=(400, 401, 403, 404, 422),
        no_content=True,
    ),
    Endpoint(
        "POST",
        "/v1/workers/{worker_id}/status",
        workers.change_status,
        "Mark a worker draining or offline",
        "workers",
        request=WorkerStatusChange,
        params=(_WORKER_ID,),
        errors=(400, 401, 403, 404, 422),
    ),
    Endpoint(
        "POST",
        "/v1/groups/{group_id}/heartbeat",
        groups.heartbeat,
        "Renew a lease; learn which of its jobs were cancelled",
        "groups",
        request=LeaseBody,
        response=HeartbeatAnswer,
        params=(_GROUP_ID,),
        errors=_LEASE_ERRORS,
    ),
    Endpoint(
        "POST",
        "/v1/groups/{group_id}/events",
        groups.post_events,
        "Report job started / finished and setup done, in one batch",
        "groups",
        request=GroupEvents,
        response=EventsAnswer,
        params=(_GROUP_ID,),
        errors=_LEASE_ERRORS,
    ),
    Endpoint(
        "POST",
        "/v1/groups/{group_id}/release",
        groups.release,
        "Hand back the jobs that have not started",
        "groups",
        request=ReleaseBody,
        response=ReleaseAnswer,
        params=(_GROUP_ID,),
        errors=_LEASE_ERRORS,
    ),
    # Builds (app/api/builds.py).
    Endpoint(
        "POST",
        "/v1/builds",
        builds.post_build,
        "Upload a build (raw bytes, any content type but JSON, with the query parameters) "
        "or register an external one (JSON: url + sha256); 200 when it was already known",
        "builds",
        request=ExternalBuild,
        response=Build,
        status=201,
        also_ok=(200,),
        raw_body="application/octet-stream",
        params=(
            Param("org_id", "query", "Upload: the org the build belongs to"),
            Param("app_version_id", "query", "Upload: the app version it builds"),
            Param("filename", "query", "Upload: its file name (.apk .aab .ipa .app.zip)"),
            Param("sha256", "query", "Upload: the expected sha256; a mismatch is refused"),
        ),
        errors=(400, 401, 403, 413, 422),
    ),
    Endpoint(
        "GET",
        "/v1/builds/{app_version_id}",
        builds.get_build,
        "Get an app version's build",
        "builds",
        response=Build,
        params=(_APP_VERSION_ID, _BUILD_ORG),
        errors=(401, 404, 422),
    ),
    Endpoint(
        "GET",
        "/v1/builds/{app_version_id}/download",
        builds.download_build,
        "Download a stored build (its sha256 in the X-Qgjob-Sha256 header)",
        "builds",
        params=(
            _APP_VERSION_ID,
            _BUILD_ORG,
            Param("sha256", "query", "Only this content: 409 if the build was replaced"),
        ),
        errors=(401, 404, 409, 422),
    ),
    # BrowserStack uploads shared by workers (issue 4, executors): app/api/browserstack_apps.py
    Endpoint(
        "GET",
        "/v1/builds/by-sha256/{sha256}/browserstack",
        browserstack_apps.get_app,
        "The bs:// url a build was uploaded to BrowserStack as",
        "builds",
        response=browserstack_apps.BrowserStackApp,
        params=(_SHA256, _BS_ORG, _BS_ACCOUNT),
        errors=(401, 403, 404, 422),
    ),
    Endpoint(
        "POST",
        "/v1/builds/by-sha256/{sha256}/browserstack/lease",
        browserstack_apps.lease,
        "Ask to upload a build to BrowserStack: its url, the upload lease, or wait",
        "builds",
        request=browserstack_apps.UploadLeaseRequest,
        response=browserstack_apps.UploadLease,
        params=(_SHA256,),
        errors=(400, 401, 403, 404, 413, 422),
    ),
    Endpoint(
        "PUT",
        "/v1/builds/by-sha256/{sha256}/browserstack",
        browserstack_apps.store_app,
        "Record the bs:// url of a build's BrowserStack upload",
        "builds",
        request=browserstack_apps.StoredApp,
        response=browserstack_apps.BrowserStackApp,
        params=(_SHA256,),
        errors=(400, 401, 403, 404, 413, 422),
    ),
    Endpoint(
        "DELETE",
        "/v1/builds/by-sha256/{sha256}/browserstack/lease",
        browserstack_apps.give_up_lease,
        "Give up an upload lease (the upload failed)",
        "builds",
        params=(
            _SHA256,
            _BS_ORG,
            _BS_ACCOUNT,
            Param("lease_id", "query", "The lease to give up", schema_format="uuid"),
        ),
        errors=(401, 403, 404, 422),
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
    # Operations (docs/operations.md) and CI reports (docs/github-actions.md).
    Endpoint(
        "GET",
        "/v1/runs/{run_id}/junit",
        reports.get_run_junit,
        "The run's results as JUnit XML (flaky specs as flakyFailure)",
        "runs",
        params=(_RUN_ID,),
        errors=(401, 404, 422),
        text=True,
        text_type="application/xml",
    ),
    Endpoint(
        "GET",
        "/metrics",
        metrics_api.get_metrics,
        "Prometheus metrics (fleet-wide admin token, or QGJOB_METRICS_TOKEN)",
        "operations",
        errors=(401, 403),
        text=True,
    ),
    # GitHub App (docs/github-app.md): signed by GitHub, not by a bearer token.
    Endpoint(
        "POST",
        "/github/webhooks",
        github.receive_webhook,
        "Receive a GitHub webhook delivery",
        "github",
        response=github.WebhookAck,
        status=202,
        errors=(400, 401, 413, 503),
        public=True,
    ),
)

# The seed's paths, kept for existing scripts: the same endpoints under their old paths.
_SEED_ALIASES = {
    "/submit-job": ("POST", "/v1/jobs"),
    "/status/{job_id}": ("GET", "/v1/jobs/{job_id}"),
    "/workers": ("POST", "/v1/workers"),
}


def _alias(path: str, method: str, target: str) -> Endpoint:
    (twin,) = (e for e in _V1 if (e.method, e.path) == (method, target))
    return replace(twin, path=path, summary=f"{twin.summary} (seed path)", deprecated=True)


ENDPOINTS: tuple[Endpoint, ...] = _V1 + tuple(
    _alias(path, method, target) for path, (method, target) in _SEED_ALIASES.items()
)


def api_routes(endpoints: tuple[Endpoint, ...] = ENDPOINTS) -> list[Route]:
    return [Route(e.path, _known_query(e), methods=[e.method]) for e in endpoints]


def _known_query(endpoint: Endpoint) -> Handler:
    """The endpoint's handler, refusing query parameters it does not take: a typo
    (`?state=FAILED` for `?status=`) would otherwise be ignored and answer unfiltered."""
    taken = frozenset(p.name for p in endpoint.params if p.where == "query")
    accepted = ", ".join(sorted(taken)) or "none"

    async def handler(request: Request) -> Response:
        unknown = sorted(set(request.query_params) - taken)
        if unknown:
            raise InvalidInput(
                f"unknown query parameter {unknown[0]!r}; {endpoint.method} {endpoint.path} "
                f"takes {accepted}",
                field=unknown[0],
            )
        return await endpoint.handler(request)

    return handler
