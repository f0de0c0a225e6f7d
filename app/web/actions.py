"""What a page can do: sign in and out, cancel, re-run the failed specs.

Every button is a POST form carrying the session's CSRF token; a read-only link has no
session and so no button works from it. After a POST the browser is redirected (303) to
the page that shows the result, so reloading it repeats nothing.
"""

from __future__ import annotations

import hmac
import math
import time
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from app.api.bodies import read_body
from app.api.params import path_uuid
from app.errors import Conflict
from app.reruns import rerun_failed as rerun_failed_run
from app.services import Services
from app.store import jobs as jobs_store
from app.web.access import (
    CSRF_FIELD,
    check_csrf,
    check_origin,
    end_session,
    start_session,
    viewer_for,
)
from app.web.pages import context, visible_job, visible_run
from app.web.rendering import Pages

FORM_LIMIT_BYTES = 16 * 1024
HOME = "/ui"


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body as a dict (last value wins)."""
    raw = await read_body(request, limit=FORM_LIMIT_BYTES)
    return dict(parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True))


def safe_next(raw: str | None) -> str:
    """Where to go after signing in: a page of ours, never another site."""
    if raw and raw.startswith("/ui") and not raw.startswith("//") and "\\" not in raw:
        return raw
    return HOME


def login_redirect(request: Request) -> Response:
    """To the sign-in form, then back. A button pressed after the session ended (a POST)
    goes back to the page the button was on, not to its action, which only takes POSTs."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = page_of_action(request.url.path)
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


def page_of_action(path: str) -> str:
    """`/ui/runs/{id}/cancel` → `/ui/runs/{id}`; anything else (sign out) → home."""
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[1] in ("runs", "jobs"):
        return "/" + "/".join(parts[:3])
    return HOME


async def login_form(request: Request, pages: Pages) -> Response:
    next_page = safe_next(request.query_params.get("next"))
    return pages.html("login.html", context(request, None, next_page=next_page, error=None))


async def login(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    check_origin(request)
    form = await read_form(request)
    next_page = safe_next(form.get("next"))
    raw = form.get("token", "").strip()
    # The same limit on failed authentications as the API (app/auth.py), per client address.
    client = request.client.host if request.client is not None else "unknown"
    wait_s = services.tokens.limit.retry_after_s(client, now=time.monotonic())
    if wait_s is not None:
        message = f"Too many failed sign-ins from here; try again in {math.ceil(wait_s)} s."
        values = context(request, None, next_page=next_page, error=message)
        page = pages.html("login.html", values, status=429)
        page.headers["Retry-After"] = str(math.ceil(wait_s))
        return page
    principal = await services.tokens.verify(raw) if raw else None
    if principal is None and raw:
        services.tokens.limit.record_failure(client, now=time.monotonic())
    if principal is None:
        error = "That token is not valid (unknown or revoked)." if raw else "Enter an API token."
        values = context(request, None, next_page=next_page, error=error)
        return pages.html("login.html", values, status=401 if raw else 422)
    response = RedirectResponse(next_page, status_code=303)
    start_session(response, request, services, principal)
    return response


async def logout(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    viewer = await viewer_for(request)
    check_origin(request)
    form = await read_form(request)
    sent = form.get(CSRF_FIELD, "")
    if viewer.csrf is None or not hmac.compare_digest(sent, viewer.csrf):
        return pages.html(
            "error.html",
            context(request, viewer, title="Form expired", message="Reload the page and retry."),
            status=403,
        )
    response = RedirectResponse("/ui/login", status_code=303)
    end_session(response, request, services)
    return response


async def cancel_run(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    viewer = await viewer_for(request)
    check_csrf(request, viewer, await read_form(request))
    run_id = path_uuid(request, "run_id")
    await visible_run(services, viewer, run_id)
    count = await jobs_store.cancel_run(services.pool, run_id, org_scope=viewer.org_scope)
    notice = "cancelled" if count else "nothing-to-cancel"
    return RedirectResponse(f"/ui/runs/{run_id}?notice={notice}", status_code=303)


async def cancel_job(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    viewer = await viewer_for(request)
    check_csrf(request, viewer, await read_form(request))
    job_id = path_uuid(request, "job_id")
    await visible_job(services, viewer, job_id)
    job = await jobs_store.cancel_job(services.pool, job_id, org_scope=viewer.org_scope)
    notice = "job-cancelled" if job is not None else "nothing-to-cancel"
    return RedirectResponse(f"/ui/jobs/{job_id}?notice={notice}", status_code=303)


async def rerun_failed(request: Request, pages: Pages) -> Response:
    services: Services = request.state.services
    viewer = await viewer_for(request)
    check_csrf(request, viewer, await read_form(request))
    run_id = path_uuid(request, "run_id")
    await visible_run(services, viewer, run_id)
    new_run_id = await rerun_failed_run(
        services, run_id, org_scope=viewer.org_scope, submitted_by=viewer.label
    )
    if new_run_id is None:
        raise Conflict(f"Run {run_id} has no failed jobs to re-run.")
    return RedirectResponse(f"/ui/runs/{new_run_id}?notice=rerun", status_code=303)
