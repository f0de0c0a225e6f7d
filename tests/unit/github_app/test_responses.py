"""Translating GitHub's error answers into transient / permanent / rate-limited errors (pure)."""

from __future__ import annotations

import json

import pytest

from github_app.errors import (
    NotFound,
    PermanentApiError,
    RateLimited,
    TransientApiError,
    Unauthorized,
    UnexpectedResponse,
    retry_delay_s,
)
from github_app.responses import error_for, error_message, json_object, retry_after_s

NOW = 1_800_000_000.0
DATE = "Fri, 15 Jan 2027 08:00:00 GMT"  # NOW as an HTTP date


def body(message: str, **extra: object) -> bytes:
    return json.dumps({"message": message, "documentation_url": "https://docs", **extra}).encode()


def translate(status: int, headers: dict[str, str], raw: bytes) -> Exception:
    return error_for(status, headers, raw, now=NOW, method="GET", url="/x")


def test_secondary_limit_without_retry_after_waits_a_minute() -> None:
    error = translate(403, {}, body("You have exceeded a secondary rate limit. Please wait."))
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == 60.0


def test_429_and_retry_after() -> None:
    error = translate(429, {"Retry-After": "7"}, b"")
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == 7.0
    dated = translate(403, {"retry-after": "Fri, 15 Jan 2027 08:00:30 GMT", "date": DATE}, b"")
    assert isinstance(dated, RateLimited)
    assert dated.retry_after_s == 30.0


def test_primary_limit_is_measured_on_githubs_clock() -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1800000090", "date": DATE}
    message = body("API rate limit exceeded for installation ID 1.")
    # Our clock is 500 s behind GitHub's: the wait still is what GitHub meant.
    error = error_for(403, headers, message, now=NOW - 500, method="GET", url="/x")
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == 90.0
    assert retry_after_s({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1"}, now=NOW) == 1.0
    assert retry_after_s({"x-ratelimit-remaining": "12"}, now=NOW) is None


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, TransientApiError),
        (502, TransientApiError),
        (401, Unauthorized),
        (404, NotFound),
        (422, PermanentApiError),
        (403, PermanentApiError),
    ],
)
def test_status_classes(status: int, kind: type[Exception]) -> None:
    error = translate(status, {}, body("Resource not accessible by integration"))
    assert type(error) is kind
    assert "GET /x → " in str(error)


def test_retry_decision_is_a_function_of_the_type() -> None:
    assert retry_delay_s(PermanentApiError("no"), attempt=1) is None
    assert retry_delay_s(TransientApiError("5xx"), attempt=1) == 1.0
    assert retry_delay_s(TransientApiError("5xx"), attempt=4) == 8.0
    assert retry_delay_s(TransientApiError("5xx"), attempt=40) == 300.0
    assert retry_delay_s(TransientApiError("5xx", retry_after_s=3), attempt=9) == 3.0
    assert retry_delay_s(RateLimited("slow", retry_after_s=42), attempt=1) == 42.0


def test_messages() -> None:
    assert error_message(body("Validation Failed", errors=[{"code": "x"}])).startswith(
        'Validation Failed [{"code": "x"}]'
    )
    assert error_message(b"<html>Bad gateway</html>") == "<html>Bad gateway</html>"
    assert error_message(b"") == "(empty body)"


def test_json_object() -> None:
    assert json_object(b'{"a": 1}', method="GET", url="/x") == {"a": 1}
    with pytest.raises(UnexpectedResponse, match="not a JSON object"):
        json_object(b"[1]", method="GET", url="/x")
    with pytest.raises(UnexpectedResponse, match="not JSON"):
        json_object(b"<html>", method="GET", url="/x")
