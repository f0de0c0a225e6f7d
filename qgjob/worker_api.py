"""The worker half of the REST client: register, claim groups, heartbeat, report, release.

`WorkerApi` is a `QgjobClient` (same token, same error tree) that adds the worker protocol
of DESIGN §4 and the two fleet reads the worker commands show (`GET /v1/workers` and a job's
log). Answers come back as frozen dataclasses; events go out as frozen dataclasses too.

The protocol calls are never retried here: the worker loop owns the retry policy (backoff
with jitter, a local queue of unsent events). Every transport failure is a
`ServerUnreachable`, a 5xx a `ServerError` (both `TransientError`), and a 409 `stale_lease`
a `StaleLease`, which tells the worker to stop working on that group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import httpx
import pydantic

from qgjob.client import QgjobClient, _decode, _describe
from qgjob.errors import ServerUnreachable, UnexpectedResponse
from qgjob.models import Timestamp
from qgjob.types import Outcome, Target, WorkerStatus

T = TypeVar("T")

# A long-poll answer may come back this long after `wait_s` (queueing, the last claim try).
CLAIM_READ_GRACE_S = 10.0
# What the service accepts (app/api/schemas.py); longer text is cut here, not refused there.
MAX_ERROR_CHARS = 65536
MAX_LOG_CHARS = 1024 * 1024
MAX_REASON_CHARS = 1000
MAX_READY_BUILDS = 200


# --- What the service answers -------------------------------------------------------------


@dataclass(frozen=True)
class JobSource:
    """Where the specs come from (a repository at a commit), when the run says.

    `token` (short-lived, read-only) and `api_url` come with it when the service can grant
    access to the repository (the GitHub App); the worker then downloads its tarball."""

    repo: str
    ref: str | None
    head_sha: str | None
    token: str | None = field(default=None, repr=False)
    api_url: str | None = None


@dataclass(frozen=True)
class ClaimedJob:
    job_id: UUID
    test_path: str
    attempt: int
    run_id: UUID
    source: JobSource | None


@dataclass(frozen=True)
class ClaimedBuild:
    """The app build a group tests, as the service knows it (`POST /v1/builds`).

    Either stored on the service (`download_path`, relative to the server url, for the
    worker's build cache) or kept elsewhere (`external_url`); `sha256` names the content
    either way and keys every cache (the worker's files, BrowserStack's `bs://` urls).
    """

    app_version_id: str
    sha256: str
    size: int
    filename: str
    platform: str
    download_path: str | None = None
    external_url: str | None = None


@dataclass(frozen=True)
class ClaimedGroup:
    """Jobs of one org, app version and target, leased to this worker under `lease_token`.

    `build` is None when the service has no build registered for the app version (workers
    whose executor needs one are not offered such groups)."""

    group_id: UUID
    lease_token: int
    lease_expires_at: datetime
    org_id: str
    app_version_id: str
    target: Target
    jobs: tuple[ClaimedJob, ...]
    source: JobSource | None
    build: ClaimedBuild | None = None
    lease_ttl_s: float | None = None  # from this answer, by any clock (older servers: None)


@dataclass(frozen=True)
class LeaseRenewal:
    """A heartbeat's answer: the new expiry and the group's jobs cancelled meanwhile."""

    lease_expires_at: datetime
    cancelled_job_ids: frozenset[UUID]
    lease_ttl_s: float | None = None


@dataclass(frozen=True)
class IgnoredEvent:
    job_id: UUID
    reason: str


@dataclass(frozen=True)
class EventsReceipt:
    applied: int
    ignored: tuple[IgnoredEvent, ...]
    cancelled_job_ids: frozenset[UUID]


@dataclass(frozen=True)
class ReleaseReceipt:
    released_job_ids: tuple[UUID, ...]
    group_finished: bool


class CurrentGroup(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="allow")

    group_id: UUID
    org_id: str
    app_version_id: str
    target: Target


class WorkerRecord(pydantic.BaseModel):
    """One worker as `GET /v1/workers` lists it (other fields are kept for `--json`)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="allow")

    worker_id: UUID
    org_id: str | None
    name: str
    target_types: list[Target]
    capacity: int
    status: WorkerStatus
    last_heartbeat: Timestamp
    created_at: Timestamp
    current_groups: list[CurrentGroup]


class WorkerList(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="allow")

    workers: list[WorkerRecord]


# --- What the worker reports --------------------------------------------------------------


@dataclass(frozen=True)
class JobStarted:
    job_id: UUID

    def to_wire(self) -> dict[str, Any]:
        return {"type": "job_started", "job_id": str(self.job_id)}


@dataclass(frozen=True)
class JobFinished:
    job_id: UUID
    outcome: Outcome
    duration_ms: int
    error: str | None = None
    artifacts: Mapping[str, str] = field(default_factory=dict)
    log: str | None = None
    retry: bool = True  # False: the job cannot run as asked; its error is final

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "type": "job_finished",
            "job_id": str(self.job_id),
            "outcome": str(self.outcome),
            "duration_ms": max(0, self.duration_ms),
            "artifacts": dict(self.artifacts),
        }
        if self.error is not None:
            wire["error"] = _head(self.error, MAX_ERROR_CHARS)
        if self.log is not None:
            wire["log"] = self.log[-MAX_LOG_CHARS:]  # the end of a log says how it ended
        if not self.retry:
            wire["retry"] = False
        return wire


@dataclass(frozen=True)
class SetupDone:
    install_ms: int
    build: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"type": "setup_done", "install_ms": max(0, self.install_ms)}
        if self.build is not None:
            wire["build"] = self.build
        return wire


GroupEvent = JobStarted | JobFinished | SetupDone


def _head(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- The client ---------------------------------------------------------------------------


class WorkerApi(QgjobClient):
    """The worker protocol on top of `QgjobClient`; use as `async with WorkerApi(...)`."""

    def __repr__(self) -> str:
        return f"WorkerApi(base_url={self.base_url!r})"

    async def register(
        self,
        *,
        name: str,
        target_types: Sequence[Target],
        labels: Mapping[str, str],
        capacity: int,
        needs_build: bool = False,
    ) -> UUID:
        """`needs_build`: this worker cannot run a group without its build, so the service
        offers it only groups whose build has been uploaded."""
        body = {
            "name": name,
            "target_types": [str(t) for t in target_types],
            "labels": dict(labels),
            "capacity": capacity,
            "needs_build": needs_build,
        }
        data = await self._call("POST", "/v1/workers", body)
        return _load(_REGISTERED, "registration", data).worker_id

    async def claim(
        self, worker_id: UUID, *, wait_s: float, ready_builds: Iterable[str] = ()
    ) -> ClaimedGroup | None:
        """Long-poll for a group for up to `wait_s`; None when nothing came in that time."""
        body = {"wait_s": wait_s, "ready_builds": list(ready_builds)[-MAX_READY_BUILDS:]}
        timeout = httpx.Timeout(self.timeout_s, read=wait_s + CLAIM_READ_GRACE_S)
        response = await self._send("POST", f"/v1/workers/{worker_id}/claim", body, timeout)
        if response.status_code == 204:
            return None
        return _load(_CLAIMED, "claimed group", _decode(response))

    async def heartbeat(self, group_id: UUID, lease_token: int) -> LeaseRenewal:
        body = {"lease_token": lease_token}
        data = await self._call("POST", f"/v1/groups/{group_id}/heartbeat", body)
        return _load(_RENEWAL, "heartbeat answer", data)

    async def send_events(
        self, group_id: UUID, lease_token: int, events: Sequence[GroupEvent]
    ) -> EventsReceipt:
        body = {"lease_token": lease_token, "events": [e.to_wire() for e in events]}
        data = await self._call("POST", f"/v1/groups/{group_id}/events", body)
        return _load(_RECEIPT, "events receipt", data)

    async def release(
        self, group_id: UUID, lease_token: int, *, reason: str, error: str | None = None
    ) -> ReleaseReceipt:
        """Hand back the jobs not started; with `error` it counts as a failed attempt."""
        body: dict[str, Any] = {
            "lease_token": lease_token,
            "reason": _head(reason, MAX_REASON_CHARS),
        }
        if error is not None:
            body["error"] = _head(error, MAX_ERROR_CHARS)
        data = await self._call("POST", f"/v1/groups/{group_id}/release", body)
        return _load(_RELEASED, "release answer", data)

    async def set_status(self, worker_id: UUID, status: WorkerStatus) -> None:
        if status not in (WorkerStatus.DRAINING, WorkerStatus.OFFLINE):
            raise ValueError(f"a worker may only say it is draining or offline, not {status}")
        await self._call("POST", f"/v1/workers/{worker_id}/status", {"status": str(status)})

    # Fleet reads, for `qgjob workers` and `qgjob logs`.

    async def list_workers(self) -> list[WorkerRecord]:
        data = await self._request("GET", "/v1/workers")
        return _load(_WORKER_LIST, "worker list", data).workers

    async def job_log(self, job_id: UUID, *, attempt: int | None = None) -> str:
        """The captured output of the job's latest attempt (or of `attempt`)."""
        path = f"/v1/jobs/{job_id}/log" + ("" if attempt is None else f"?attempt={attempt}")
        response = await self._send("GET", path, None, httpx.Timeout(self.timeout_s))
        if not response.is_success:
            _decode(response)  # raises the ApiError the answer stands for
        return response.text

    # The edge: one HTTP exchange, translated.

    async def _call(self, method: str, path: str, body: Mapping[str, Any]) -> Any:
        response = await self._send(method, path, body, httpx.Timeout(self.timeout_s))
        return _decode(response)

    async def _send(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None,
        limits: httpx.Timeout,
    ) -> httpx.Response:
        try:
            return await self._http.request(method, path, json=body, timeout=limits)
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, _describe(exc)) from exc


@dataclass(frozen=True)
class _Registered:
    worker_id: UUID


_REGISTERED = pydantic.TypeAdapter(_Registered)
_CLAIMED = pydantic.TypeAdapter(ClaimedGroup)
_RENEWAL = pydantic.TypeAdapter(LeaseRenewal)
_RECEIPT = pydantic.TypeAdapter(EventsReceipt)
_RELEASED = pydantic.TypeAdapter(ReleaseReceipt)
_WORKER_LIST = pydantic.TypeAdapter(WorkerList)


def _load(adapter: pydantic.TypeAdapter[T], what: str, data: Any) -> T:
    try:
        return adapter.validate_python(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise UnexpectedResponse(
            f"the server's answer is not a valid {what}: {where}: {first['msg']}"
        ) from exc
