"""BrowserStack App Automate REST API, as much as the worker needs (httpx, async).

```
POST /app-automate/upload                 multipart `file` + `custom_id` → {"app_url": "bs://…"}
GET  /app-automate/recent_apps/{custom_id}   uploads still held under that custom_id
GET  /app-automate/plan.json              parallel_sessions_max_allowed, parallel_sessions_running
GET  /app-automate/sessions/{id}.json     {"automation_session": {video_url, public_url, …}}
```

HTTP Basic auth with `BROWSERSTACK_USERNAME` / `BROWSERSTACK_ACCESS_KEY`; the base url is
`QGJOB_BROWSERSTACK_API_URL` (default https://api-cloud.browserstack.com). Errors are
translated here: 401 is a `JobError` that names the credentials (no retry fixes them); 429
is waited out (`Retry-After`, else a minute, a few times), then an `InfrastructureError`;
5xx and network failures are `InfrastructureError`s.

Uploads go through `UploadRateLimiter`: BrowserStack allows 5 uploads a minute per user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from dispatch.errors import InfrastructureError, JobError
from qgjob.settings import Secret

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api-cloud.browserstack.com"
UPLOADS_PER_MINUTE = 5
_RATE_LIMIT_TRIES = 4
_DEFAULT_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class Credentials:
    username: str
    access_key: Secret

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Credentials | None:
        user, key = env.get("BROWSERSTACK_USERNAME"), env.get("BROWSERSTACK_ACCESS_KEY")
        if not user or not key:
            return None
        return cls(username=user, access_key=Secret(key))


@dataclass(frozen=True)
class Plan:
    """`GET /app-automate/plan.json`, the two numbers that matter."""

    max_allowed: int
    running: int

    @property
    def free(self) -> int:
        return max(0, self.max_allowed - self.running)


class UploadRateLimiter:
    """At most `limit` uploads in any `window_s` (sliding), for this process."""

    def __init__(
        self,
        *,
        limit: int = UPLOADS_PER_MINUTE,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    def delay_s(self) -> float:
        """How long the next upload must wait (0: now). Pure given the clock."""
        now = self.clock()
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) < self.limit:
            return 0.0
        return self._times[0] + self.window_s - now

    async def acquire(self) -> None:
        async with self._lock:
            while (delay := self.delay_s()) > 0:
                logger.info("browserstack upload rate limit: waiting %.1f s", delay)
                await asyncio.sleep(delay)
            self._times.append(self.clock())


class BrowserStackApi:
    """The REST calls; use as `async with BrowserStackApi(...)`."""

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        limiter: UploadRateLimiter | None = None,
        timeout_s: float = 30.0,
        upload_timeout_s: float = 600.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.limiter = limiter or UploadRateLimiter()
        self.upload_timeout_s = upload_timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=(credentials.username, credentials.access_key.reveal()),
            timeout=timeout_s,
        )

    def __repr__(self) -> str:
        return f"BrowserStackApi(base_url={self.base_url!r}, user={self.credentials.username!r})"

    async def __aenter__(self) -> BrowserStackApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def upload(self, path: Path, *, custom_id: str) -> str:
        """Upload a build file; its new `bs://` url."""
        await self.limiter.acquire()
        logger.info("browserstack upload file=%s custom_id=%s", path.name, custom_id)
        with path.open("rb") as handle:
            data = await self._call(
                "POST",
                "/app-automate/upload",
                files={"file": (path.name, handle, "application/octet-stream")},
                data={"custom_id": custom_id},
                timeout=self.upload_timeout_s,
                what="upload",
            )
        app_url = data.get("app_url") if isinstance(data, dict) else None
        if not isinstance(app_url, str) or not app_url.startswith("bs://"):
            raise InfrastructureError(
                f"BrowserStack's upload answer has no bs:// app_url: {str(data)[:300]}",
                code="browserstack_upload",
            )
        return app_url

    async def recent_app_urls(self, custom_id: str) -> set[str]:
        """The `bs://` urls BrowserStack still holds under `custom_id`."""
        data = await self._call("GET", f"/app-automate/recent_apps/{custom_id}", what="list apps")
        if not isinstance(data, list):  # {"message": "No results found"}
            return set()
        return {str(app["app_url"]) for app in data if isinstance(app, dict) and "app_url" in app}

    async def plan(self) -> Plan:
        data = await self._call("GET", "/app-automate/plan.json", what="plan")
        try:
            return Plan(
                max_allowed=int(data["parallel_sessions_max_allowed"]),
                running=int(data["parallel_sessions_running"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InfrastructureError(
                f"BrowserStack's plan.json is not as documented: {str(data)[:300]}",
                code="browserstack_plan",
            ) from exc

    async def session(self, session_id: str) -> dict[str, Any]:
        data = await self._call(
            "GET", f"/app-automate/sessions/{session_id}.json", what="session details"
        )
        details = data.get("automation_session") if isinstance(data, dict) else None
        return dict(details) if isinstance(details, dict) else {}

    async def _call(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        for attempt in range(1, _RATE_LIMIT_TRIES + 1):
            try:
                response = await self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise InfrastructureError(
                    f"BrowserStack {what} failed: cannot reach {self.base_url}: {exc!r}",
                    code="browserstack_unreachable",
                ) from exc
            if response.status_code == 401:
                raise JobError(
                    f"BrowserStack refused the credentials (HTTP 401 on {what}): check "
                    f"BROWSERSTACK_USERNAME ({self.credentials.username!r}) and "
                    "BROWSERSTACK_ACCESS_KEY on the worker",
                    code="browserstack_unauthorized",
                )
            if response.status_code in (400, 422):  # the request itself: the same anywhere
                raise JobError(
                    f"BrowserStack refused the {what}: HTTP {response.status_code} "
                    f"{response.text.strip()[:300]}",
                    code=f"browserstack_http_{response.status_code}",
                )
            if response.status_code == 429 and attempt < _RATE_LIMIT_TRIES:
                delay = _retry_after(response)
                logger.warning("browserstack 429 on %s: waiting %.1f s", what, delay)
                await asyncio.sleep(delay)
                continue
            if response.status_code >= 400:
                raise InfrastructureError(
                    f"BrowserStack {what} failed: HTTP {response.status_code} "
                    f"{response.text.strip()[:300]}",
                    code="browserstack_rate_limited"
                    if response.status_code == 429
                    else f"browserstack_http_{response.status_code}",
                )
            try:
                return response.json()
            except ValueError as exc:
                raise InfrastructureError(
                    f"BrowserStack {what} answered something that is not JSON: "
                    f"{response.text[:200]!r}",
                    code="browserstack_bad_answer",
                ) from exc
        raise AssertionError("unreachable")


def _retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("retry-after", "")
    try:
        return max(0.0, min(float(raw), 300.0))
    except ValueError:
        return _DEFAULT_RETRY_AFTER_S
