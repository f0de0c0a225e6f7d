"""The async Python client of qgjob's REST API, used by the CLI and by the worker.

`QgjobClient` speaks JSON over httpx and answers with the records of `qgjob.models`.
Tests inject an httpx transport (`httpx.MockTransport`, `httpx.ASGITransport`) instead of
patching. httpx's errors are translated here into the `qgjob.errors` tree.

Retries: a request that never reached the service (connection refused) is tried again, a
few times with backoff. A request whose answer was lost is tried again only when repeating it
is harmless: a GET, or a submit, which always carries an `Idempotency-Key` so that the service
returns the first answer instead of creating the jobs twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote
from uuid import UUID

import httpx
import pydantic

from qgjob import __version__
from qgjob.errors import ServerUnreachable, UnexpectedResponse, api_error_for
from qgjob.models import Build, Commit, IssuedToken, Job, JobPage, Run, Stats, TokenRecord
from qgjob.types import JobStatus, Priority, Role, RunSource, Target

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=pydantic.BaseModel)

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 2
MAX_PAGE_SIZE = 500  # the most jobs the service sends in one page of GET /v1/jobs
_BACKOFF_S = 0.25
UPLOAD_CHUNK_BYTES = 1024 * 1024
# After the last byte of an upload the service still syncs the file to disk.
UPLOAD_ANSWER_TIMEOUT_S = 300.0
# Between two chunks of a download: generous, a busy service may pause.
DOWNLOAD_READ_TIMEOUT_S = 120.0


class QgjobClient:
    """A connection to one qgjob service; use as `async with QgjobClient(...) as client`."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.timeout_s = timeout_s
        headers = {"User-Agent": f"qgjob/{__version__}", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            transport=transport,
            timeout=timeout_s,
        )

    def __repr__(self) -> str:
        return f"QgjobClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # Jobs and runs.

    async def submit_job(
        self,
        *,
        org_id: str,
        app_version_id: str,
        test_path: str,
        target: Target = Target.EMULATOR,
        priority: Priority = Priority.NORMAL,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue one test; `idempotency_key` defaults to a fresh UUID so retries are safe."""
        body = {
            "org_id": org_id,
            "app_version_id": app_version_id,
            "test_path": test_path,
            "target": str(target),
            "priority": str(priority),
        }
        data = await self._request(
            "POST", "/v1/jobs", json=body, idempotency_key=idempotency_key or _new_key()
        )
        return _parse(Job, data)

    async def submit_run(
        self,
        *,
        org_id: str,
        app_version_id: str,
        tests: Sequence[str],
        targets: Sequence[Target] = (Target.EMULATOR,),
        priority: Priority = Priority.NORMAL,
        source: RunSource = RunSource.API,
        commit: Commit | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        """Queue one job per test × target in one run, atomically; `commit`: the repository
        commit the specs come from."""
        body: dict[str, object] = {
            "org_id": org_id,
            "app_version_id": app_version_id,
            "tests": list(tests),
            "targets": [str(t) for t in targets],
            "priority": str(priority),
            "source": str(source),
        }
        if commit is not None:
            body |= {"repo": commit.repo, "ref": commit.ref, "head_sha": commit.head_sha}
        data = await self._request(
            "POST", "/v1/runs", json=body, idempotency_key=idempotency_key or _new_key()
        )
        return _parse(Run, data)

    async def get_job(self, job_id: UUID) -> Job:
        return _parse(Job, await self._request("GET", f"/v1/jobs/{job_id}"))

    async def list_jobs(
        self,
        *,
        org_id: str | None = None,
        status: JobStatus | None = None,
        app_version_id: str | None = None,
        run_id: UUID | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, newest first; filters left as None are not sent."""
        params = {
            "org_id": org_id,
            "status": None if status is None else str(status),
            "app_version_id": app_version_id,
            "run_id": None if run_id is None else str(run_id),
            "limit": None if limit is None else str(limit),
            "cursor": cursor,
        }
        query = {k: v for k, v in params.items() if v is not None}
        return _parse(JobPage, await self._request("GET", "/v1/jobs", params=query))

    async def get_run(self, run_id: UUID) -> Run:
        return _parse(Run, await self._request("GET", f"/v1/runs/{run_id}"))

    async def get_run_junit(self, run_id: UUID) -> str:
        """The run's results as a JUnit XML document."""
        response = await self._exchange("GET", f"/v1/runs/{run_id}/junit")
        if not response.is_success:
            _decode(response)  # raises the ApiError the answer stands for
        return response.text

    async def cancel_job(self, job_id: UUID) -> Job:
        """Cancel one job; `Conflict` if it has already finished."""
        return _parse(Job, await self._request("POST", f"/v1/jobs/{job_id}/cancel"))

    async def cancel_run(self, run_id: UUID) -> Run:
        """Cancel every unfinished job of a run."""
        return _parse(Run, await self._request("POST", f"/v1/runs/{run_id}/cancel"))

    # Service-wide.

    async def stats(self) -> Stats:
        return _parse(Stats, await self._request("GET", "/v1/stats"))

    async def create_token(
        self, *, org_id: str | None, role: Role, name: str | None = None
    ) -> IssuedToken:
        """Create an API token (admin only); its raw value is in the answer and nowhere else.
        `org_id` None: a worker token that serves every org (fleet-wide admins only)."""
        body: dict[str, str] = {"role": str(role)}
        if org_id is not None:
            body["org_id"] = org_id
        if name is not None:
            body["name"] = name
        return _parse(IssuedToken, await self._request("POST", "/v1/tokens", json=body))

    async def list_tokens(self, *, org_id: str | None = None) -> list[TokenRecord]:
        """The tokens an admin manages, newest first (never their raw values)."""
        params = {} if org_id is None else {"org_id": org_id}
        data = await self._request("GET", "/v1/tokens", params=params)
        return [_parse(TokenRecord, item) for item in data["tokens"]]

    async def revoke_token(self, token_id: UUID) -> TokenRecord:
        """Revoke a token for good (a repeat changes nothing)."""
        return _parse(TokenRecord, await self._request("POST", f"/v1/tokens/{token_id}/revoke"))

    # Builds.

    async def upload_build(
        self,
        *,
        org_id: str,
        app_version_id: str,
        path: Path,
        sha256: str,
        progress: Callable[[int], None] | None = None,
    ) -> Build:
        """Stream the file at `path` to `POST /v1/builds`; the service checks it against
        `sha256`. `progress(n)` is called with each chunk's size as it is sent."""
        size = (await asyncio.to_thread(path.stat)).st_size
        params = {
            "org_id": org_id,
            "app_version_id": app_version_id,
            "filename": path.name,
            "sha256": sha256,
        }
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        try:
            response = await self._http.post(
                "/v1/builds",
                params=params,
                content=_file_chunks(path, progress),
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s, read=UPLOAD_ANSWER_TIMEOUT_S),
            )
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, _describe(exc)) from exc
        return _parse(Build, _decode(response))

    async def register_build(
        self,
        *,
        org_id: str,
        app_version_id: str,
        url: str,
        sha256: str,
        size: int | None = None,
        filename: str | None = None,
    ) -> Build:
        """Register a build kept elsewhere: workers download it from `url`."""
        body: dict[str, Any] = {
            "org_id": org_id,
            "app_version_id": app_version_id,
            "url": url,
            "sha256": sha256,
        }
        if size is not None:
            body["size"] = size
        if filename is not None:
            body["filename"] = filename
        return _parse(Build, await self._request("POST", "/v1/builds", json=body))

    async def get_build(self, app_version_id: str, *, org_id: str | None = None) -> Build:
        path = f"/v1/builds/{quote(app_version_id, safe='')}"
        params = {"org_id": org_id} if org_id else None
        return _parse(Build, await self._request("GET", path, params=params))

    @asynccontextmanager
    async def download(self, path: str) -> AsyncIterator[httpx.Response]:
        """A streamed GET of `path` on the service (a build's `download_path`); the answer
        is open for `aiter_bytes()` inside the block. Errors are the client's usual ones."""
        try:
            async with self._http.stream(
                "GET", path, timeout=httpx.Timeout(self.timeout_s, read=DOWNLOAD_READ_TIMEOUT_S)
            ) as response:
                if not response.is_success:
                    await response.aread()
                    _decode(response)
                yield response
        except httpx.TransportError as exc:
            raise ServerUnreachable(self.base_url, _describe(exc)) from exc

    # The edge: HTTP in, records or QgjobError out.

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        response = await self._exchange(
            method, path, json=json, params=params, idempotency_key=idempotency_key
        )
        return _decode(response)

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        repeatable = method == "GET" or idempotency_key is not None
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, path, json=json, params=params, headers=headers
                )
                break
            except httpx.TransportError as exc:
                if attempt >= self.retries or not _may_retry(exc, repeatable=repeatable):
                    raise ServerUnreachable(self.base_url, _describe(exc)) from exc
                attempt += 1
                logger.debug("retrying %s %s after %r (attempt %d)", method, path, exc, attempt)
                await asyncio.sleep(_BACKOFF_S * 2 ** (attempt - 1))
        return response


async def _file_chunks(path: Path, progress: Callable[[int], None] | None) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := await asyncio.to_thread(handle.read, UPLOAD_CHUNK_BYTES):
            if progress is not None:
                progress(len(chunk))
            yield chunk


def _new_key() -> str:
    return str(uuid.uuid4())


def _may_retry(exc: httpx.TransportError, *, repeatable: bool) -> bool:
    """Whether sending the request again cannot do anything twice."""
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
    return never_sent or repeatable


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        return "no answer before the timeout"
    return str(exc) or type(exc).__name__


def _decode(response: httpx.Response) -> Any:
    """The JSON body of a 2xx answer; an `ApiError` subclass for anything else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        if body is None:
            raise UnexpectedResponse(
                f"the server answered {response.status_code} to {response.request.url.path} "
                "without a JSON body"
            )
        return body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        field = error.get("field")
        raise api_error_for(
            response.status_code,
            code=str(error.get("code") or f"http_{response.status_code}"),
            message=error["message"],
            field=field if isinstance(field, str) else None,
        )
    raise api_error_for(
        response.status_code,
        code=f"http_{response.status_code}",
        message=f"HTTP {response.status_code} {response.reason_phrase}".strip(),
    )


def _parse(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise UnexpectedResponse(
            f"the server's answer is not a valid {model.__name__}: {where}: {first['msg']}"
        ) from exc
