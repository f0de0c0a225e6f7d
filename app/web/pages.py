"""The pages people read: recent runs, a run, a job, the workers, and a job's log.

Each page is whole HTML that reads without JavaScript. Its changing part is also served
alone (`?fragment=live`) for `ui.js` to poll: answered 304 when nothing changed, and with
`X-Live-Done` once nothing on it can change any more.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from app.api.params import path_uuid, query_int
from app.api.reports import JUNIT_MEDIA_TYPE, junit_case
from app.errors import BadRequest, NotFound
from app.lifecycle import missing_log
from app.links import run_details_url
from app.services import Services
from app.store import jobs as jobs_store
from app.store import reruns, views, workers
from app.web.access import CSRF_FIELD, Viewer, viewer_for
from app.web.rendering import SECURITY_HEADERS, Pages
from qgjob.junit import render_junit
from qgjob.text import strip_ansi
from qgjob.types import JobStatus

RECENT_RUNS = 50
LIVE_FRAGMENT = "live"
NOTICES = {
    "cancelled": "Cancelled every unfinished job of this run.",
    "job-cancelled": "Cancelled this job.",
    "rerun": "This run repeats the failed specs of the run it links to.",
    "nothing-to-cancel": "Nothing to cancel: every job of it has finished.",
}


def context(request: Request, viewer: Viewer | None, **values: Any) -> dict[str, Any]:
    return {
        "viewer": viewer,
        "now": datetime.now(UTC),
        "csrf_field": CSRF_FIELD,
        "path": request.url.path,
        "notice": NOTICES.get(request.query_params.get("notice", "")),
        **values,
    }


def respond(
    request: Request,
    pages: Pages,
    template: str,
    values: dict[str, Any],
    *,
    done: bool,
    ages: bool = False,
    basis: str | None = None,
) -> Response:
    """The whole page, or only its live part when the page's script asks for it.

    The live part's ETag is a digest of what it shows (with the clock only when it shows
    ages such as "4 s ago"), or of `basis` when the caller has a cheaper fingerprint of the
    same, so an unchanged part is answered 304 without rendering it."""
    if request.query_params.get("fragment") != LIVE_FRAGMENT:
        return pages.html(template, values)
    if basis is None:
        shown = {k: v for k, v in values.items() if ages or k != "now"}
        basis = json.dumps(shown, default=repr, sort_keys=True)
    etag = live_etag(pages, template, basis)
    if (unchanged := not_modified(request, etag, done=done)) is not None:
        return unchanged
    body = pages.text(template.replace(".html", "_live.html"), values)
    return Response(body, media_type="text/html", headers=_live_headers(etag, done=done))


def live_etag(pages: Pages, template: str, basis: str) -> str:
    digest = hashlib.sha256(f"{template} {pages.env.globals['static_version']}".encode())
    digest.update(basis.encode())
    return '"' + digest.hexdigest()[:32] + '"'


def not_modified(request: Request, etag: str, *, done: bool) -> Response | None:
    """A 304 when the browser's copy of the live part is this one."""
    if request.headers.get("if-none-match") != etag:
        return None
    return Response(status_code=304, headers=_live_headers(etag, done=done))


def _live_headers(etag: str, *, done: bool) -> dict[str, str]:
    """`X-Live-Done` tells the page's script that nothing on it can change any more."""
    headers = {**SECURITY_HEADERS, "ETag": etag}
    if done:
        headers["X-Live-Done"] = "1"
    return headers


def only_signed_in(viewer: Viewer) -> Response | None:
    """A read-only link opens its run only: elsewhere it leads back there."""
    if viewer.run_scope is None:
        return None
    return RedirectResponse(viewer.link(f"/ui/runs/{viewer.run_scope}"), status_code=303)


async def overview(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    viewer = await viewer_for(request)
    if (elsewhere := only_signed_in(viewer)) is not None:
        return elsewhere
    before = _run_cursor(request)
    async with services.pool.acquire() as conn:
        runs = await views.recent_runs(
            conn, org_scope=viewer.org_scope, limit=RECENT_RUNS + 1, before=before
        )
        depth = await views.queue_depth(conn, org_scope=viewer.org_scope)
        fleet = await workers.list_workers(
            conn,
            org_scope=viewer.org_scope,
            offline_after_s=services.settings.lease_ttl_s,
            include_offline=False,
        )
    older = None
    if len(runs) > RECENT_RUNS:  # one more than a page: there are older runs
        runs = runs[:RECENT_RUNS]
        last = runs[-1]
        cursor = views.RunCursor(
            datetime.fromisoformat(str(last["created_at"])), uuid.UUID(str(last["run_id"]))
        )
        older = cursor.text()
    # Only what the page shows of the workers (how many serve each target): their
    # heartbeats would change the live part's ETag every poll, and it would never be 304.
    serving = [{"target_types": w["target_types"]} for w in fleet]
    values = context(
        request, viewer, runs=runs, depth=depth, workers=serving, older=older, paged=before
    )
    return respond(request, pages, "overview.html", values, done=False)


def _run_cursor(request: Request) -> views.RunCursor | None:
    text = request.query_params.get("before")
    if text is None:
        return None
    try:
        return views.RunCursor.parse(text)
    except ValueError:
        raise BadRequest(
            "`before` must be a cursor from an “Older runs” link; open /ui for the newest runs"
        ) from None


async def run_page(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    viewer = await viewer_for(request)
    run_id = path_uuid(request, "run_id")
    basis = None
    if request.query_params.get("fragment") == LIVE_FRAGMENT and viewer.sees_run(run_id):
        # The page polls this every 2 s: answer "unchanged" from the run's fingerprint
        # before loading it (a 1,000-job run takes ~70 ms to load and arrange).
        async with services.pool.acquire() as conn:
            mark = await views.run_fingerprint(conn, run_id, org_scope=viewer.org_scope)
        if mark is not None:
            basis = f"{mark.digest} {viewer.can_act} {viewer.csrf} {viewer.view_token}"
            etag = live_etag(pages, "run.html", basis)
            if (unchanged := not_modified(request, etag, done=mark.done)) is not None:
                return unchanged
    run = await visible_run(services, viewer, run_id)
    async with services.pool.acquire() as conn:
        rerun_of, later = await reruns.rerun_links(conn, run_id)
        artifacts = await views.run_artifacts(conn, run_id)
    share = None
    if viewer.can_act:
        share = run_details_url(services.settings, run["org_id"], run_id)
    values = context(
        request,
        viewer,
        run=run,
        artifacts=artifacts,
        rerun_of=rerun_of if rerun_of and viewer.sees_run(rerun_of) else None,
        reruns=[r for r in later if viewer.sees_run(r)],
        share_url=share,
        junit_url=viewer.link(f"/ui/runs/{run_id}/junit"),
    )
    done = run["finished_at"] is not None
    return respond(request, pages, "run.html", values, done=done, basis=basis)


async def visible_run(services: Services, viewer: Viewer, run_id: uuid.UUID) -> dict[str, Any]:
    run = None
    if viewer.sees_run(run_id):
        run = await jobs_store.get_run(services.pool, run_id, org_scope=viewer.org_scope)
    if run is None:
        raise NotFound(f"There is no run {run_id} that you can see.")
    return run


async def visible_job(services: Services, viewer: Viewer, job_id: uuid.UUID) -> dict[str, Any]:
    job = await jobs_store.get_job(services.pool, job_id, org_scope=viewer.org_scope)
    if job is None or not viewer.sees_run(job["run_id"]):
        raise NotFound(f"There is no job {job_id} that you can see.")
    return job


async def job_page(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    viewer = await viewer_for(request)
    job = await visible_job(services, viewer, path_uuid(request, "job_id"))
    attempts = await views.job_attempts(services.pool, uuid.UUID(job["job_id"]))
    values = context(
        request, viewer, job=job, attempts=attempts, ran_past_cancel=_ran_past_cancel(job, attempts)
    )
    done = JobStatus(job["status"]).is_terminal
    return respond(request, pages, "job.html", values, done=done)


def _ran_past_cancel(job: dict[str, Any], attempts: list[dict[str, Any]]) -> bool:
    """Whether the job's last attempt finished after the job was cancelled: the worker
    learns of a cancel at its next heartbeat, and a short spec may end first (its result is
    kept; the job stays cancelled)."""
    if job["status"] != "CANCELLED" or not attempts or job["finished_at"] is None:
        return False
    last = attempts[-1]
    if last["outcome"] is None or last["finished_at"] is None:
        return False
    return bool(
        datetime.fromisoformat(last["finished_at"]) > datetime.fromisoformat(job["finished_at"])
    )


async def job_log(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    viewer = await viewer_for(request)
    job = await visible_job(services, viewer, path_uuid(request, "job_id"))
    attempt = query_int(request, "attempt", default=0, low=0, high=1000)
    log = await jobs_store.get_log(services.pool, uuid.UUID(job["job_id"]), attempt=attempt or None)
    if log is None:
        status = JobStatus(job["status"])
        log = f"({missing_log(job['job_id'], status, job['error'], attempt=attempt or None)})\n"
    # A browser shows a terminal's colour codes as litter: the page is the plain text (the
    # API's GET /v1/jobs/{id}/log and `qgjob logs --color=always` keep them).
    return PlainTextResponse(strip_ansi(log), headers=SECURITY_HEADERS)


async def run_junit(request: Request, pages: Pages) -> Response:
    """The run's JUnit XML, as `GET /v1/runs/{id}/junit` renders it, for a page's viewer;
    its log links are the pages' own (they carry a read-only link's token along)."""
    services: Services = request.state.services
    viewer = await viewer_for(request)
    run_id = path_uuid(request, "run_id")
    run = await visible_run(services, viewer, run_id)
    base = str(request.base_url).rstrip("/")
    cases = [
        junit_case(
            job,
            log_url=base + viewer.link(f"/ui/jobs/{job['job_id']}/log")
            if job["attempts"]
            else None,
        )
        for group in run["groups"]
        for job in group["jobs"]
    ]
    document = render_junit(
        cases, name=f"qgjob run {run_id}", timestamp=datetime.fromisoformat(run["created_at"])
    )
    headers = {
        **SECURITY_HEADERS,
        "Content-Disposition": f'attachment; filename="qgjob-{run_id}.xml"',
    }
    return Response(document, media_type=JUNIT_MEDIA_TYPE, headers=headers)


async def workers_page(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    viewer = await viewer_for(request)
    if (elsewhere := only_signed_in(viewer)) is not None:
        return elsewhere
    # A shared worker shows an org only its own groups and builds (app.store.workers): it
    # may say busy, not with what.
    fleet = await workers.list_workers(
        services.pool,
        org_scope=viewer.org_scope,
        offline_after_s=services.settings.lease_ttl_s,
    )
    values = context(request, viewer, workers=fleet)
    return respond(request, pages, "workers.html", values, done=False, ages=True)
