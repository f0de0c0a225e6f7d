"""Counting what the service asks of the GitHub API, at the one seam every call crosses:
the httpx transport of the App's client (`github_app.client.GitHubClient(transport=…)`).

Each request adds one to `qgjob_github_api_calls_total{method, route, status}` with the
route templated (`/repos/{owner}/{repo}/check-runs/{id}`, behind GitHub Enterprise Server's
`/api/v3` too) so that series stay few, and each failure to
`qgjob_github_api_errors_total{kind}`: `rate_limited` (what the client waits out: 429, or a
403 that is a primary or secondary rate limit, as `github_app.responses.error_for` tells
them apart), `server_error` (5xx), `client_error` (other 4xx), `transport` (no answer).
"""

from __future__ import annotations

import re
import time

import httpx

from app.metrics import Metrics
from github_app.errors import RateLimited
from github_app.responses import error_for

# Segments that are ids, shas or refs rather than names of things.
_ID = re.compile(r"^(\d+|[0-9a-f]{40}|[0-9a-f]{64})$")
# After these, everything is a path or ref that the caller chose.
_TAIL_NAMES = {"contents": "{path}", "tarball": "{ref}", "zipball": "{ref}", "commits": "{ref}"}
# GitHub Enterprise Server serves the API under this path.
_ENTERPRISE_PREFIX = ["api", "v3"]


def github_route(path: str) -> str:
    """`/repos/octo/app/check-runs/42` → `/repos/{owner}/{repo}/check-runs/{id}`."""
    parts = [part for part in path.split("/") if part]
    out: list[str] = []
    if parts[:2] == _ENTERPRISE_PREFIX:
        out = list(_ENTERPRISE_PREFIX)
    index = start = len(out)
    while index < len(parts):
        part = parts[index]
        if part == "repos" and index == start and len(parts) - index >= 3:
            out += ["repos", "{owner}", "{repo}"]
            index += 3
            continue
        if part in _TAIL_NAMES and index + 1 < len(parts):
            out += [part, _TAIL_NAMES[part]]
            break
        out.append("{id}" if _ID.match(part) else part)
        index += 1
    return "/" + "/".join(out)


def error_kind(response: httpx.Response, request: httpx.Request) -> str | None:
    """The kind of failure `response` to `request` is (its body read, for a 403), or None
    for a success."""
    status = response.status_code
    if status in (403, 429):
        error = error_for(
            status, response.headers, response.content, now=time.time(),
            method=request.method, url=str(request.url),
        )  # fmt: skip
        if isinstance(error, RateLimited) or response.headers.get("x-ratelimit-remaining") == "0":
            return "rate_limited"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return None


class MeteredTransport(httpx.AsyncBaseTransport):
    """An httpx transport that counts every GitHub API call through `inner`."""

    def __init__(self, metrics: Metrics, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.metrics = metrics
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = github_route(request.url.path)
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError:
            self.metrics.github_api_calls.labels(request.method, route, "error").inc()
            self.metrics.github_api_errors.labels(kind="transport").inc()
            raise
        self.metrics.github_api_calls.labels(request.method, route, str(response.status_code)).inc()
        if response.status_code in (403, 429):
            await response.aread()  # small; the client reads the same bytes again
        kind = error_kind(response, request)
        if kind is not None:
            self.metrics.github_api_errors.labels(kind=kind).inc()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
