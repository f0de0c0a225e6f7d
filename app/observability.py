"""The HTTP edge's bookkeeping: a request id for every request, and its metrics.

A pure ASGI middleware (no response buffering, so long-polls and streams pass through):
it takes the caller's `X-Request-Id` when it is a sane token, or makes one, puts it in the
logging context (`qgjob.logs.request_id_var`) and on the response, and counts the request
by route template (`/v1/jobs/{job_id}`, never the raw path) once it is answered.
"""

from __future__ import annotations

import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qgjob.logs import request_id_var

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Long-polls and the scrape itself would only blur the latency histogram.
_UNTIMED_ROUTES = frozenset({"/v1/workers/{worker_id}/claim", "/metrics"})


def route_template(scope: Scope) -> str:
    """The path with each path parameter's value put back as `{name}`; 'unmatched' for
    paths no route took (so that scanners cannot create series without bound)."""
    if "endpoint" not in scope:
        return "unmatched"
    path: str = scope.get("path", "")
    params = scope.get("path_params") or {}
    for name, value in params.items():
        path = path.replace(str(value), "{" + name + "}", 1)
    return path


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, REQUEST_ID_HEADER)
        request_id = given if given and _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
            self._count(scope, status, time.perf_counter() - started)

    def _count(self, scope: Scope, status: int, elapsed_s: float) -> None:
        services = (scope.get("state") or {}).get("services")
        metrics = getattr(services, "metrics", None)
        if metrics is None:
            return
        route = route_template(scope)
        method = scope.get("method", "GET")
        metrics.http_requests.labels(method=method, route=route, status=str(status)).inc()
        if route not in _UNTIMED_ROUTES:
            metrics.http_request_seconds.labels(method=method, route=route).observe(elapsed_s)


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return str(value.decode("latin-1")).strip()
    return None
