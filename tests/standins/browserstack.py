"""A fake BrowserStack App Automate API (and WebDriver hub) for tests, on 127.0.0.1.

REST, as documented at browserstack.com/docs/app-automate/api-reference (see
shared/reference/executors.md §2), HTTP Basic auth on every route:

    POST /app-automate/upload                 multipart `file` or `url`, optional `custom_id`
                          → {"app_url": "bs://<40 hex>", "custom_id", "shareable_id"}
    GET  /app-automate/recent_apps[/{custom_id}]   newest first, or {"message": "No results found"}
    GET  /app-automate/plan.json              parallel limits and running count
    GET  /app-automate/sessions/{id}.json     {"automation_session": {…, "video_url", "public_url"}}
    PUT  /app-automate/sessions/{id}.json     {"status": "passed|failed", "reason"} or {"name"}
    DELETE /app-automate/app/delete/{app_id}  {"success": true}

Hub (what AppWright's WebDriver client calls; fake_npx uses it): `POST /wd/hub/session`
(W3C new session; `appium:app` must name a live upload; refused past the parallel limit)
and `DELETE /wd/hub/session/{id}`.

Errors: a bad login is 401 `HTTP Basic: Access denied.` (text); over 5 uploads a minute is
429; faults can be injected per path (`BrowserStackState.inject`, `fail_uploads`), uploads
expired (`expire`). Wording of error bodies other than the 401 is assumed, not documented.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.standins.browserstack_state import App, BrowserStackState, Session
from tests.standins.server_thread import serve_in_thread

__all__ = ["browserstack_state", "create_browserstack_app", "serve_in_thread"]

ALL_PARALLELS_IN_USE = (
    "[BROWSERSTACK_ALL_PARALLELS_IN_USE] All parallel tests are currently in use, including "
    "the queued tests. Please wait to finish or upgrade your plan to add more parallels."
)
ANDROID_EXTENSIONS = (".apk", ".aab", ".xapk", ".ipa")


def create_browserstack_app(*, username: str, access_key: str, parallel: int = 5) -> Starlette:
    """The fake as an ASGI app; its state is `browserstack_state(app)`."""
    state = BrowserStackState(username=username, access_key=access_key)
    state.set_plan(parallel=parallel)
    routes = [
        Route("/app-automate/upload", _upload, methods=["POST"]),
        Route("/app-automate/recent_apps", _recent_apps, methods=["GET"]),
        Route("/app-automate/recent_apps/{custom_id}", _recent_apps, methods=["GET"]),
        Route("/app-automate/plan.json", _plan, methods=["GET"]),
        Route("/app-automate/sessions/{session_id}.json", _session, methods=["GET", "PUT"]),
        Route("/app-automate/app/delete/{app_id}", _delete_app, methods=["DELETE"]),
        Route("/wd/hub/session", _new_session, methods=["POST"]),
        Route("/wd/hub/session/{session_id}", _end_session, methods=["DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.browserstack = state
    app.add_middleware(_Gate, state=state)
    return app


def browserstack_state(app: Starlette) -> BrowserStackState:
    state = app.state.browserstack
    assert isinstance(state, BrowserStackState)
    return state


class _Gate:
    """Basic auth, injected faults and the request log, in front of every route."""

    def __init__(self, app: ASGIApp, *, state: BrowserStackState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        status = [0]

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        response: Response | None = None
        if not self._authorized(dict(scope["headers"]).get(b"authorization", b"")):
            response = PlainTextResponse(
                "HTTP Basic: Access denied.\n",
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="Application"'},
            )
        elif (fault := self.state.take_fault(method, path)) is not None:
            if isinstance(fault.body, str):
                response = PlainTextResponse(fault.body, status_code=fault.status)
            else:
                response = JSONResponse(fault.body, status_code=fault.status)
        if response is not None:
            await response(scope, receive, recording_send)
        else:
            await self.app(scope, receive, recording_send)
        with self.state.lock:
            self.state.requests.append((method, path, status[0]))

    def _authorized(self, header: bytes) -> bool:
        scheme, _, encoded = header.decode("latin-1").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        expected = f"{self.state.username}:{self.state.access_key}"
        return hmac.compare_digest(given.encode(), expected.encode())


def _state(request: Request) -> BrowserStackState:
    return browserstack_state(request.app)


async def _upload(request: Request) -> Response:
    state = _state(request)
    if not state.allow_upload():
        wait_s = max(1, math.ceil(state.upload_retry_after_s()))
        return JSONResponse(
            {"error": "Rate limit exceeded: at most 5 app uploads per minute."},
            status_code=429,
            headers={"Retry-After": str(wait_s)},  # the header's presence is *assumed*
        )
    fields = await _form(request)
    custom_id = fields.get("custom_id", (None, b""))[1].decode() or None
    if "file" in fields and fields["file"][0]:
        name, data = fields["file"][0] or "", fields["file"][1]
        if not name.lower().endswith(ANDROID_EXTENSIONS) or not data:
            return JSONResponse(
                {
                    "error": "[BROWSERSTACK_INVALID_FILE_TYPE] Invalid file type. Supported: "
                    ".apk, .aab, .xapk, .ipa"
                },
                status_code=422,
            )
        sha256 = hashlib.sha256(data).hexdigest()
        app = state.add_app(
            name=name, custom_id=custom_id, size=len(data), sha256=sha256, source_url=None
        )
    elif "url" in fields:
        url = fields["url"][1].decode()
        name = urlsplit(url).path.rsplit("/", 1)[-1] or "app.apk"
        app = state.add_app(name=name, custom_id=custom_id, size=0, sha256=None, source_url=url)
    else:
        return JSONResponse(
            {"error": "[BROWSERSTACK_INVALID_REQUEST] Please provide a file or a url to upload."},
            status_code=422,
        )
    body: dict[str, str] = {"app_url": app.app_url}
    if app.custom_id:
        body.update(custom_id=app.custom_id, shareable_id=app.shareable_id or "")
    return JSONResponse(body)


async def _form(request: Request) -> dict[str, tuple[str | None, bytes]]:
    """Form fields as name → (filename, bytes), without python-multipart."""
    content_type = request.headers.get("content-type", "")
    raw = await request.body()
    if content_type.startswith("application/x-www-form-urlencoded"):
        parsed = parse_qs(raw.decode(), keep_blank_values=True)
        return {key: (None, values[0].encode()) for key, values in parsed.items()}
    if not content_type.startswith("multipart/form-data"):
        return {}
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = (part.get_filename(), payload)
    return fields


def _app_entry(app: App) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "app_name": app.app_name,
        "app_version": app.app_version,
        "app_url": app.app_url,
        "app_id": app.app_id,
        "uploaded_at": app.uploaded_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    if app.custom_id:
        entry.update(custom_id=app.custom_id, shareable_id=app.shareable_id)
    return entry


async def _recent_apps(request: Request) -> Response:
    custom_id = request.path_params.get("custom_id")
    apps = [a for a in reversed(_state(request).uploads(custom_id)) if not a.expired]
    if not apps:
        return JSONResponse({"message": "No results found"})
    return JSONResponse([_app_entry(a) for a in apps])


async def _plan(request: Request) -> Response:
    state = _state(request)
    with state.lock:
        return JSONResponse(
            {
                "automate_plan": "Device Cloud Pro",
                "terminal_access": "terminals_allowed",
                "parallel_sessions_running": state.running,
                "team_parallel_sessions_max_allowed": state.team_parallel_sessions_max_allowed,
                "parallel_sessions_max_allowed": state.parallel_sessions_max_allowed,
                "queued_sessions": 0,
                "queued_sessions_max_allowed": state.queued_sessions_max_allowed,
            }
        )


async def _delete_app(request: Request) -> Response:
    state = _state(request)
    app_id = request.path_params["app_id"]
    found = [a for a in state.uploads() if a.app_id == app_id and not a.expired]
    if not found:
        return JSONResponse({"error": "App not found"}, status_code=404)
    state.expire(found[0].app_url)
    return JSONResponse({"success": True})


def _session_entry(session: Session, base: str) -> dict[str, Any]:
    end = session.ended_at
    duration = None if end is None else round(end - session.started_at)
    token = hashlib.sha1(session.hashed_id.encode()).hexdigest()  # noqa: S324 - a fake token
    page = f"{base}/builds/{session.build_name}/sessions/{session.hashed_id}"
    app = session.app
    return {
        "name": session.name,
        "duration": duration,
        "os": "android",
        "os_version": session.os_version,
        "device": session.device,
        "status": session.status,
        "hashed_id": session.hashed_id,
        "reason": session.reason,
        "build_name": session.build_name,
        "project_name": "qgjob",
        "logs": f"{page}/logs",
        "browser_url": page,
        "public_url": f"{page}?auth_token={token}",
        "appium_logs_url": f"{page}/appiumlogs",
        "video_url": f"{base}/sessions/{session.hashed_id}/video?token={token}&source=rest_api",
        "device_logs_url": f"{page}/devicelogs",
        "app_details": {
            "app_url": app.app_url,
            "app_name": app.app_name,
            "app_version": app.app_version,
            "app_custom_id": app.custom_id,
            "uploaded_at": app.uploaded_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        },
    }


async def _session(request: Request) -> Response:
    state = _state(request)
    base = str(request.base_url).rstrip("/")
    with state.lock:
        session = state.sessions.get(request.path_params["session_id"])
    if session is None:
        return JSONResponse({"error": "Session not found"}, status_code=404)
    if request.method == "PUT":
        update = await request.json()
        status = update.get("status")
        if status is not None and status not in ("passed", "failed"):
            return JSONResponse({"error": "status must be passed or failed"}, status_code=422)
        with state.lock:
            session.status = status or session.status
            session.reason = str(update.get("reason", session.reason))
            session.name = str(update.get("name", session.name))
    with state.lock:
        return JSONResponse({"automation_session": _session_entry(session, base)})


async def _new_session(request: Request) -> Response:
    state = _state(request)
    body = await request.json()
    caps = {**body.get("capabilities", {}).get("alwaysMatch", {})}
    for extra in body.get("capabilities", {}).get("firstMatch", []):
        caps.update(extra)
    options = caps.get("bstack:options", {})
    reference = str(caps.get("appium:app") or caps.get("app") or "")
    app = state.find_app(reference)
    if app is None:
        message = (
            f"[BROWSERSTACK_INVALID_APP_CAP] Could not find an app for {reference!r}; "
            "it may have expired. Upload the app again."
        )
        return _webdriver_error(message)
    session = state.open_session(
        app=app,
        name=str(options.get("sessionName", "")),
        device=str(options.get("deviceName", "Google Pixel 8")),
        os_version=str(options.get("osVersion", "14.0")),
    )
    if session is None:
        return _webdriver_error(ALL_PARALLELS_IN_USE)
    return JSONResponse({"value": {"sessionId": session.hashed_id, "capabilities": caps}})


async def _end_session(request: Request) -> Response:
    state = _state(request)
    with state.lock:
        session = state.sessions.get(request.path_params["session_id"])
        if session is not None and session.running:
            session.ended_at = state.clock()
            session.status = "done" if session.status == "running" else session.status
    if session is None:
        return _webdriver_error("invalid session id", error="invalid session id", status=404)
    return JSONResponse({"value": None})


def _webdriver_error(
    message: str, *, error: str = "session not created", status: int = 500
) -> Response:
    return JSONResponse(
        {"value": {"error": error, "message": message, "stacktrace": ""}}, status_code=status
    )
