"""A stand-in for the qgjob REST API, for the client's and the CLI's unit tests only.

It answers with the documented shapes (job, run, page, stats, token, error bodies) from dicts
in memory, records every request, and can be scripted (statuses a job goes through on
successive GETs, a page size cap). The real service is tested by the acceptance tests.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TARGETS = ("emulator", "device", "browserstack")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass
class StandinState:
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)  # raw → (org or "", role)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    scripted: dict[str, list[str]] = field(default_factory=dict)  # job_id → next statuses
    answers_by_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    page_cap: int = 100

    def reset(self) -> None:
        self.tokens = {
            "good-token": ("qualgent", "admin"),
            "submit-token": ("qualgent", "submitter"),
            "every-org-token": ("", "admin"),  # like the server's local admin token
        }
        self.jobs.clear()
        self.runs.clear()
        self.requests.clear()
        self.scripted.clear()
        self.answers_by_key.clear()
        self.page_cap = 100


def error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status)


def now() -> str:
    return datetime.now(UTC).isoformat()


def new_job(
    state: StandinState, *, run_id: str, body: dict[str, Any], test: str, target: str
) -> dict[str, Any]:
    job = {
        "job_id": str(uuid.uuid4()),
        "run_id": run_id,
        "status": "PENDING",
        "outcome": None,
        "org_id": body["org_id"],
        "app_version_id": body["app_version_id"],
        "test_path": test,
        "target": target,
        "priority": body.get("priority", "normal"),
        "worker_id": None,
        "group_id": None,
        "attempts": 0,
        "max_attempts": 3,
        "error": None,
        "duration_ms": None,
        "created_at": now(),
        "updated_at": now(),
        "started_at": None,
        "finished_at": None,
    }
    state.jobs[job["job_id"]] = job
    return job


def run_object(state: StandinState, run_id: str, *, with_jobs: bool) -> dict[str, Any]:
    run = dict(state.runs[run_id])
    jobs = [job for job in state.jobs.values() if job["run_id"] == run_id]
    counts = {
        name: 0 for name in ("pending", "assigned", "running", "completed", "failed", "cancelled")
    }
    for job in jobs:
        counts[job["status"].lower()] += 1
    statuses = {job["status"] for job in jobs}
    if statuses <= set(TERMINAL):
        run["status"] = (
            "COMPLETED"
            if statuses == {"COMPLETED"}
            else ("CANCELLED" if "CANCELLED" in statuses else "FAILED")
        )
    run["counts"] = {"total": len(jobs), **counts}
    if with_jobs:
        run["jobs"] = jobs
    else:
        run["groups"] = [
            {
                "app_version_id": run["app_version_id"],
                "target": t,
                "jobs": [j for j in jobs if j["target"] == t],
            }
            for t in run["targets"]
        ]
    return run


def build_app(state: StandinState) -> Starlette:
    async def guard(request: Request, *, admin: bool = False) -> Response | None:
        authorization = request.headers.get("authorization")
        record: dict[str, Any] = {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "authorization": authorization,
            "idempotency_key": request.headers.get("idempotency-key"),
            "json": await request.json()
            if request.method == "POST" and await request.body()
            else None,
        }
        state.requests.append(record)
        raw = (authorization or "").removeprefix("Bearer ")
        if not authorization:  # the service's own words
            message = (
                "missing credentials: send 'Authorization: Bearer <token>' "
                "(create a token with `qgjob token create`)"
            )
            return error(401, "unauthorized", message)
        if raw not in state.tokens:
            return error(401, "unauthorized", "the token is not valid (unknown or revoked)")
        if admin and state.tokens[raw][1] != "admin":
            return error(403, "forbidden", "only an admin token may create tokens")
        return None

    def lookup(job_id: str) -> dict[str, Any] | Response:
        try:
            uuid.UUID(job_id)
        except ValueError:
            return error(422, "invalid", "job_id must be a UUID", "job_id")
        job = state.jobs.get(job_id)
        return job if job is not None else error(404, "not_found", f"job {job_id} not found")

    async def submit_run(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        body = state.requests[-1]["json"]
        key = request.headers.get("idempotency-key")
        if key and key in state.answers_by_key:
            return JSONResponse(state.answers_by_key[key], status_code=201)
        for index, test in enumerate(body["tests"]):
            if test.startswith("/"):
                message = f"tests.{index}: test_path must be relative to the project root"
                return error(422, "invalid_input", message, f"tests.{index}")
        if not body["org_id"].isalnum():
            message = "org_id must be 1-64 characters of letters, digits, '.', '_' or '-'"
            return error(422, "invalid_input", message, "org_id")
        for target in body.get("targets", ["emulator"]):
            if target not in TARGETS:
                return error(422, "invalid", f"unknown target {target!r}", "targets")
        run_id = str(uuid.uuid4())
        state.runs[run_id] = {
            "run_id": run_id,
            "org_id": body["org_id"],
            "source": body.get("source", "api"),
            "app_version_id": body["app_version_id"],
            "targets": body.get("targets", ["emulator"]),
            "priority": body.get("priority", "normal"),
            "status": "PENDING",
            "created_at": now(),
            "finished_at": None,
        }
        for test in body["tests"]:
            for target in state.runs[run_id]["targets"]:
                new_job(state, run_id=run_id, body=body, test=test, target=target)
        answer = run_object(state, run_id, with_jobs=True)
        if key:
            state.answers_by_key[key] = answer
        return JSONResponse(answer, status_code=201)

    async def submit_job(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        body = state.requests[-1]["json"]
        run_id = str(uuid.uuid4())
        target = body.get("target", "emulator")
        return JSONResponse(
            new_job(state, run_id=run_id, body=body, test=body["test_path"], target=target),
            status_code=201,
        )

    async def get_job(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        job = lookup(request.path_params["job_id"])
        if isinstance(job, dict) and state.scripted.get(job["job_id"]):
            job["status"] = state.scripted[job["job_id"]].pop(0)
            if job["status"] in TERMINAL:
                job["outcome"] = {"COMPLETED": "passed", "FAILED": "failed", "CANCELLED": None}[
                    job["status"]
                ]
                job["finished_at"] = now()
        return JSONResponse(job) if isinstance(job, dict) else job

    async def list_jobs(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        q = request.query_params
        jobs = [
            j
            for j in state.jobs.values()
            if all(
                q.get(name) in (None, j[name])
                for name in ("org_id", "status", "app_version_id", "run_id")
            )
        ]
        start = int(q.get("cursor", "0"))
        size = min(int(q.get("limit", "50")), state.page_cap)
        page = jobs[start : start + size]
        more = start + size < len(jobs)
        return JSONResponse({"jobs": page, "next_cursor": str(start + size) if more else None})

    async def get_run(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        run_id = request.path_params["run_id"]
        if run_id not in state.runs:
            return error(404, "not_found", f"run {run_id} not found")
        return JSONResponse(run_object(state, run_id, with_jobs=False))

    async def cancel_job(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        job = lookup(request.path_params["job_id"])
        if not isinstance(job, dict):
            return job
        if job["status"] in TERMINAL:
            message = f"job {job['job_id']} is already {job['status']} and cannot be cancelled"
            return error(409, "job_finished", message)
        job["status"] = "CANCELLED"
        return JSONResponse(job)

    async def cancel_run(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        run_id = request.path_params["run_id"]
        if run_id not in state.runs:
            return error(404, "not_found", f"run {run_id} not found")
        for job in state.jobs.values():
            if job["run_id"] == run_id and job["status"] not in TERMINAL:
                job["status"] = "CANCELLED"
        return JSONResponse(run_object(state, run_id, with_jobs=False))

    async def get_run_junit(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        run_id = request.path_params["run_id"]
        if run_id not in state.runs:
            return error(404, "not_found", f"run {run_id} not found")
        return Response(f'<testsuites name="{run_id}"/>', media_type="application/xml")

    async def get_build(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        raw = (request.headers.get("authorization") or "").removeprefix("Bearer ")
        if not state.tokens[raw][0] and not request.query_params.get("org_id"):
            message = "org_id is required with a token that serves every org"
            return error(422, "invalid_input", message, "org_id")
        version = request.path_params["app_version_id"]
        return error(404, "not_found", f"no build for app version {version!r}")

    async def stats(request: Request) -> Response:
        if (refused := await guard(request)) is not None:
            return refused
        statuses = [job["status"] for job in state.jobs.values()]
        jobs = {
            name.lower(): statuses.count(name)
            for name in ("PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
        }
        return JSONResponse(
            {
                "jobs": {"total": len(statuses), **jobs},
                "workers": {"total": 3, "active": 2},
                "groups": {"total": 7},
            }
        )

    async def create_token(request: Request) -> Response:
        if (refused := await guard(request, admin=True)) is not None:
            return refused
        body = state.requests[-1]["json"]
        if body.get("role") not in ("submitter", "admin", "worker"):
            return error(422, "invalid", "role must be one of submitter, admin, worker", "role")
        raw = "qgj_" + uuid.uuid4().hex
        state.tokens[raw] = (body["org_id"], body["role"])
        answer = {
            "token": raw,
            "token_id": str(uuid.uuid4()),
            "org_id": body["org_id"],
            "role": body["role"],
        }
        return JSONResponse(answer, status_code=201)

    return Starlette(
        routes=[
            Route("/v1/runs", submit_run, methods=["POST"]),
            Route("/v1/jobs", list_jobs, methods=["GET"]),
            Route("/v1/jobs", submit_job, methods=["POST"]),
            Route("/v1/jobs/{job_id}", get_job, methods=["GET"]),
            Route("/v1/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
            Route("/v1/runs/{run_id}", get_run, methods=["GET"]),
            Route("/v1/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
            Route("/v1/runs/{run_id}/junit", get_run_junit, methods=["GET"]),
            Route("/v1/builds/{app_version_id}", get_build, methods=["GET"]),
            Route("/v1/stats", stats, methods=["GET"]),
            Route("/v1/tokens", create_token, methods=["POST"]),
        ]
    )
