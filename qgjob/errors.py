"""The exceptions of the qgjob client, one tree under `QgjobError`.

```
QgjobError
 ├── TransientError             may succeed if tried again later (the retry decision is its type)
 │    ├── ServerUnreachable     no HTTP answer: connection refused, DNS failure, timeout
 │    └── ServerError           the service answered 5xx (also an ApiError)
 ├── UnexpectedResponse         a 2xx answer whose body is not what the API promises
 └── ApiError                   the service refused the request: 4xx with {"error": {...}}
      ├── BadRequest            400 (malformed JSON)
      ├── Unauthorized          401 (no token, or an unknown one)
      ├── Forbidden             403 (the token's role may not do this)
      ├── NotFound              404 (unknown id, or another org's)
      ├── Conflict              409 (e.g. cancelling a job that has finished)
      │    └── StaleLease       409 `stale_lease`: a worker's lease on a group is gone
      └── ValidationFailed      422 (a field has a value the service does not accept)
```

httpx's own exceptions never leave `qgjob.client`: they are translated at the edge with
`raise … from exc`, so callers catch only these.
"""

from __future__ import annotations


class QgjobError(Exception):
    """Base of every error the qgjob client raises."""


class TransientError(QgjobError):
    """The request may succeed if tried again later."""


class ServerUnreachable(TransientError):
    """No HTTP answer came back from the service at `url`."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the qgjob server at {url} ({reason})")
        self.url = url
        self.reason = reason

    def __reduce__(self) -> tuple[type[ServerUnreachable], tuple[str, str]]:
        return (type(self), (self.url, self.reason))


class UnexpectedResponse(QgjobError):
    """The service answered, but not in the shape the API promises."""


class ApiError(QgjobError):
    """The service answered with an error body `{"error": {"code", "message", "field"?}}`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[type[ApiError], tuple[int, str, str, str | None]]:
        # Rebuilt from all four fields, so the error survives pickling (e.g. to another process).
        return (type(self), (self.status, self.code, self.message, self.field))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, code={self.code!r}, "
            f"message={self.message!r}, field={self.field!r})"
        )


class ServerError(ApiError, TransientError):
    """The service failed (5xx); the request may succeed later."""


class BadRequest(ApiError):
    """400: the request body could not be read."""


class Unauthorized(ApiError):
    """401: no token was sent, or the service does not know it."""


class Forbidden(ApiError):
    """403: the token is valid but its role may not do this."""


class NotFound(ApiError):
    """404: no such job, run or route (or it belongs to another org)."""


class Conflict(ApiError):
    """409: the request conflicts with the current state (e.g. the job has finished)."""


class StaleLease(Conflict):
    """409 `stale_lease`: the lease on the group expired or was superseded; stop working on it."""


class ValidationFailed(ApiError):
    """422: a value was refused; `field` names it when the service says which."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
}


def api_error_for(status: int, *, code: str, message: str, field: str | None = None) -> ApiError:
    """The `ApiError` subclass that stands for HTTP `status`."""
    if status >= 500:
        return ServerError(status, code, message, field)
    if status == 409 and code == "stale_lease":
        return StaleLease(status, code, message, field)
    return _BY_STATUS.get(status, ApiError)(status, code, message, field)
