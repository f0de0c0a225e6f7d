"""The exceptions of the GitHub App package, and the pure retry decision built on them.

```
GitHubAppError
├── InvalidSignature          webhook body not signed with our secret (→ HTTP 401)
├── MalformedDelivery         missing headers, bad JSON, missing payload fields (→ HTTP 400)
├── InvalidConfig             the repository's qgjob.toml is unusable (→ a failed check run)
├── DiscoveryError            the spec listing could not be completed within its limits
└── GitHubApiError            GitHub answered something other than success
    ├── TransientApiError     worth retrying: 5xx, timeouts, connection errors
    │   └── RateLimited       primary or secondary rate limit; carries `retry_after_s`
    └── PermanentApiError     retrying the same request will not help: other 4xx
        ├── NotFound          404
        ├── Unauthorized      401 (bad or expired JWT / token)
        └── UnexpectedResponse  2xx whose body is not what the API documents
```

Transient versus permanent is a type, so `retry_delay_s` decides without looking at messages.
"""

from __future__ import annotations


class GitHubAppError(Exception):
    """Base of every error raised by `github_app`."""


class InvalidSignature(GitHubAppError):
    """The `X-Hub-Signature-256` header is missing, malformed or does not match the body."""


class MalformedDelivery(GitHubAppError):
    """A webhook delivery lacks a required header or field, or its body is not a JSON object."""


class InvalidConfig(GitHubAppError):
    """The repository's `qgjob.toml` cannot be used; `key` names the offending setting."""

    def __init__(self, message: str, *, key: str | None = None, path: str = "qgjob.toml") -> None:
        super().__init__(f"{path}: {message}")
        self.key = key
        self.path = path


class DiscoveryError(GitHubAppError):
    """Listing the repository's specs would exceed the request budget."""


class GitHubApiError(GitHubAppError):
    """GitHub's REST API answered with an error (or not at all)."""

    def __init__(self, message: str, *, status: int | None = None, method: str = "", url: str = ""):
        where = f"{method} {url}".strip()
        prefix = f"{where} → {status}" if status is not None else where
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.status = status
        self.method = method
        self.url = url
        self.api_message = message


class TransientApiError(GitHubApiError):
    """A failure that may go away: 5xx, a timeout, a dropped connection.

    `retry_after_s` is set when GitHub said how long to wait (`Retry-After`, rate-limit reset).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        status: int | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(message, status=status, method=method, url=url)
        self.retry_after_s = retry_after_s


class RateLimited(TransientApiError):
    """GitHub asked us to slow down; wait `retry_after_s` seconds before the next request."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float,
        status: int | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(
            message, retry_after_s=retry_after_s, status=status, method=method, url=url
        )


class PermanentApiError(GitHubApiError):
    """A 4xx answer: the request itself is wrong, so repeating it is pointless."""


class NotFound(PermanentApiError):
    """404: the resource does not exist or the token may not see it."""


class Unauthorized(PermanentApiError):
    """401: the JWT or installation token was refused."""


class UnexpectedResponse(PermanentApiError):
    """A success status whose body does not have the documented shape."""


def retry_delay_s(
    error: GitHubApiError, *, attempt: int, base_s: float = 1.0, cap_s: float = 300.0
) -> float | None:
    """Seconds to wait before retrying after `error` on attempt `attempt` (1-based); None: give up.

    Rate limits wait what GitHub asked for; other transient errors back off exponentially
    (base_s · 2^(attempt-1), capped); permanent errors are never retried.
    """
    if not isinstance(error, TransientApiError):
        return None
    if error.retry_after_s is not None:
        return max(0.0, error.retry_after_s)
    return float(min(cap_s, base_s * 2 ** max(0, attempt - 1)))
