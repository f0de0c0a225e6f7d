"""The in-memory world of the fake BrowserStack: apps, sessions, plan limits and faults.

Tests hold this object to arrange things (plan limits, faults, expiry) and to look at what
happened (uploads, sessions, the most sessions ever running at once, every request).
All access goes through one lock: the server runs in another thread than the test.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

UPLOAD_LIMIT_PER_MINUTE = 5


@dataclass(frozen=True)
class App:
    """One upload: every upload gets a new app_url, even for identical bytes."""

    app_url: str
    app_name: str
    app_version: str
    custom_id: str | None
    shareable_id: str | None
    uploaded_at: datetime
    size: int
    sha256: str | None
    source_url: str | None = None
    expired: bool = False

    @property
    def app_id(self) -> str:
        return self.app_url.removeprefix("bs://")


@dataclass
class Session:
    """One App Automate session (a test attempt on a device)."""

    hashed_id: str
    app: App
    name: str
    device: str
    os_version: str
    build_name: str
    started_at: float
    status: str = "running"  # running, then done; or passed/failed as marked by PUT
    reason: str = ""
    ended_at: float | None = None

    @property
    def running(self) -> bool:
        return self.ended_at is None


@dataclass
class Fault:
    """A canned answer for the next `count` requests whose path starts with `path_prefix`."""

    path_prefix: str
    status: int
    body: object
    count: int
    method: str | None = None


@dataclass
class BrowserStackState:
    """Everything the fake knows; tests read and arrange it through the methods below."""

    username: str
    access_key: str
    parallel_sessions_max_allowed: int = 5
    team_parallel_sessions_max_allowed: int = 5
    queued_sessions_max_allowed: int = 5
    other_running: int = 0  # sessions of other team members, counted in parallel_sessions_running
    upload_limit_per_minute: int = UPLOAD_LIMIT_PER_MINUTE
    clock: Callable[[], float] = time.monotonic
    apps: list[App] = field(default_factory=list)
    sessions: dict[str, Session] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    max_running_seen: int = 0
    rejected_sessions: int = 0
    faults: list[Fault] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _upload_times: deque[float] = field(default_factory=deque, repr=False)

    # Arranging -------------------------------------------------------------------------

    def inject(
        self,
        path_prefix: str,
        *,
        status: int,
        body: object = None,
        count: int = 1,
        method: str | None = None,
    ) -> None:
        """Answer the next `count` matching requests with `status` and `body` (JSON or text)."""
        default = {"error": f"Injected fault: HTTP {status}"}
        with self.lock:
            self.faults.append(Fault(path_prefix, status, body or default, count, method))

    def fail_uploads(self, count: int = 1, *, status: int = 500) -> None:
        """The next uploads fail (BrowserStack has bad days)."""
        body = {"error": "[BROWSERSTACK_INTERNAL_ERROR] Something went wrong. Please try again."}
        self.inject("/app-automate/upload", status=status, body=body, count=count, method="POST")

    def set_plan(self, *, parallel: int | None = None, other_running: int | None = None) -> None:
        with self.lock:
            if parallel is not None:
                self.parallel_sessions_max_allowed = parallel
                self.team_parallel_sessions_max_allowed = parallel
                self.queued_sessions_max_allowed = max(5, parallel)
            if other_running is not None:
                self.other_running = other_running

    def expire(self, app_url: str) -> None:
        """BrowserStack deleted this upload (30 days old): gone from recent_apps, unusable."""
        with self.lock:
            self.apps = [replace(a, expired=True) if a.app_url == app_url else a for a in self.apps]

    # Looking -----------------------------------------------------------------------------

    @property
    def running(self) -> int:
        with self.lock:
            return self.other_running + sum(s.running for s in self.sessions.values())

    def uploads(self, custom_id: str | None = None) -> list[App]:
        with self.lock:
            return [a for a in self.apps if custom_id is None or a.custom_id == custom_id]

    def requests_to(
        self, path_prefix: str, method: str | None = None
    ) -> list[tuple[str, str, int]]:
        with self.lock:
            return [
                r
                for r in self.requests
                if r[1].startswith(path_prefix) and (method is None or r[0] == method)
            ]

    # Used by the app -------------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.path_prefix) and fault.method in (None, method):
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def allow_upload(self) -> bool:
        """The 5-uploads-per-minute rule, over a sliding minute."""
        with self.lock:
            now = self.clock()
            while self._upload_times and now - self._upload_times[0] >= 60:
                self._upload_times.popleft()
            if len(self._upload_times) >= self.upload_limit_per_minute:
                return False
            self._upload_times.append(now)
            return True

    def upload_retry_after_s(self) -> float:
        """Seconds until the sliding minute has room for another upload."""
        with self.lock:
            if not self._upload_times:
                return 0.0
            return max(0.0, self._upload_times[0] + 60 - self.clock())

    def add_app(
        self,
        *,
        name: str,
        custom_id: str | None,
        size: int,
        sha256: str | None,
        source_url: str | None,
    ) -> App:
        custom = sanitize_custom_id(custom_id) if custom_id else None
        app = App(
            app_url=f"bs://{secrets.token_hex(20)}",
            app_name=name,
            app_version="1.0",
            custom_id=custom,
            shareable_id=f"{self.username}/{custom}" if custom else None,
            uploaded_at=datetime.now(UTC),
            size=size,
            sha256=sha256,
            source_url=source_url,
        )
        with self.lock:
            self.apps.append(app)
        return app

    def find_app(self, reference: str) -> App | None:
        """The app a session's `app` capability names: bs:// url, custom_id or shareable_id."""
        with self.lock:
            live = [a for a in reversed(self.apps) if not a.expired]
            return next(
                (a for a in live if reference in (a.app_url, a.custom_id, a.shareable_id)), None
            )

    def open_session(self, *, app: App, name: str, device: str, os_version: str) -> Session | None:
        """A new running session, or None when every parallel slot is taken."""
        with self.lock:
            if self.running >= self.parallel_sessions_max_allowed:
                self.rejected_sessions += 1
                return None
            session = Session(
                hashed_id=secrets.token_hex(20),
                app=app,
                name=name,
                device=device,
                os_version=os_version,
                build_name="qgjob",
                started_at=self.clock(),
            )
            self.sessions[session.hashed_id] = session
            self.max_running_seen = max(self.max_running_seen, self.running)
            return session


def sanitize_custom_id(custom_id: str) -> str:
    """BrowserStack keeps A-Z a-z 0-9 . - _ and at most 100 characters; others are dropped."""
    return re.sub(r"[^A-Za-z0-9._-]", "", custom_id)[:100]
