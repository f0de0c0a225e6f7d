"""GitHub's HTTP answers turned into values or `GitHubApiError`s (sans-I/O, like gidgethub's).

Rules (docs.github.com, "Rate limits for the REST API"):
- 429, or 403 with `Retry-After`, `x-ratelimit-remaining: 0` or a "rate limit" message, is a
  `RateLimited` error: wait `Retry-After` seconds, else until `x-ratelimit-reset`, else 60 s;
- 5xx is transient; 401, 404 and any other 4xx are permanent.
Reset times are measured against the response's own `Date` when it has one, so our clock's
error does not stretch or shrink the wait.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from github_app.auth import server_time
from github_app.errors import (
    GitHubApiError,
    NotFound,
    PermanentApiError,
    RateLimited,
    TransientApiError,
    Unauthorized,
    UnexpectedResponse,
)

SECONDARY_LIMIT_DEFAULT_S = 60.0


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def error_message(body: bytes) -> str:
    """GitHub's `message` (plus validation `errors`), or the start of a non-JSON body."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if not isinstance(data, dict):
        return str(data)[:200]
    message = str(data.get("message", "")) or "(no message)"
    errors = data.get("errors")
    return f"{message} {json.dumps(errors)[:500]}" if errors else message


def retry_after_s(headers: Mapping[str, str], *, now: float) -> float | None:
    """How long GitHub asked us to wait, from `Retry-After` or an exhausted `x-ratelimit-*`."""
    raw = _header(headers, "retry-after")
    if raw is not None:
        try:
            return max(0.0, float(raw))
        except ValueError:
            when = server_time(raw)  # Retry-After may also be an HTTP date
            if when is not None:
                return max(0.0, when - (server_time(_header(headers, "date")) or now))
    if _header(headers, "x-ratelimit-remaining") == "0":
        reset = _header(headers, "x-ratelimit-reset")
        if reset is not None and reset.isdigit():
            reference = server_time(_header(headers, "date")) or now
            return max(1.0, float(reset) - reference)
    return None


def error_for(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float, method: str, url: str
) -> GitHubApiError:
    """The exception for a non-2xx answer."""
    message = error_message(body)
    wait = retry_after_s(headers, now=now)
    where: dict[str, Any] = {"status": status, "method": method, "url": url}
    limited = status == 429 or (
        status == 403 and (wait is not None or "rate limit" in message.lower())
    )
    if limited:
        return RateLimited(message, retry_after_s=wait or SECONDARY_LIMIT_DEFAULT_S, **where)
    if status >= 500:
        return TransientApiError(message, retry_after_s=wait, **where)
    if status == 401:
        return Unauthorized(message, **where)
    if status == 404:
        return NotFound(message, **where)
    return PermanentApiError(message, **where)


def json_object(body: bytes, *, method: str, url: str) -> dict[str, Any]:
    """A success body that must be a JSON object."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnexpectedResponse(f"body is not JSON: {exc}", method=method, url=url) from exc
    if not isinstance(data, dict):
        raise UnexpectedResponse("body is not a JSON object", method=method, url=url)
    return data
