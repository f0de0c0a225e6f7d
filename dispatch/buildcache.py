"""The worker's build cache: each build downloaded once per host, checked, and evicted LRU.

`BuildCache.fetch(build)` answers the local path of a claimed group's build, downloading it
first when this host does not have it: from the service (`download_path`, with the
worker's token) or from its `external_url` (a plain GET). The bytes are checked against the
build's sha256 before the file becomes visible; a mismatch is an `InfrastructureError` and
nothing is kept. Past `cap_bytes` the least recently used files are deleted, except those in
use.

Several worker processes on one host may share the directory. Per build, two lock files
(`fcntl.flock`) coordinate them:

```
<dir>/blobs/<sha256>        the builds, named by content
<dir>/locks/<sha256>.fetch  exclusive while one process checks for or downloads the build
<dir>/locks/<sha256>.use    shared while a process uses the build; eviction needs it exclusive
                            (and the .fetch lock), then deletes the build and both lock files
<dir>/tmp/                  downloads in progress (renamed into blobs/ when complete)
<dir>/evict.lock            one evictor at a time
```

"In use" means: among the last `pin_limit` builds this process fetched, or fetched and not
yet `release`d. A worker running `capacity` groups at once should pin at least that many.
Locks are taken by polling with `LOCK_NB`, so that a cancelled fetch never leaves a thread
blocked on a lock it would then hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from dispatch.errors import InfrastructureError, JobError
from dispatch.filelocks import delete_held, exclusive, hold, try_hold
from qgjob.client import QgjobClient
from qgjob.errors import QgjobError
from qgjob.worker_api import ClaimedBuild

logger = logging.getLogger(__name__)

DEFAULT_CAP_BYTES = 20 * 1024**3
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class _Pin:
    fd: int
    count: int = 1


class BuildCache:
    """See the module docstring. One instance per worker process; `close()` at exit."""

    def __init__(
        self,
        directory: Path,
        cap_bytes: int = DEFAULT_CAP_BYTES,
        *,
        api: QgjobClient | None = None,
        http: httpx.AsyncClient | None = None,
        pin_limit: int = 2,
    ) -> None:
        self.directory = directory
        self.cap_bytes = cap_bytes
        self.api = api
        self._http = http
        self._own_http = http is None
        self.pin_limit = max(1, pin_limit)
        self._pins: OrderedDict[str, _Pin] = OrderedDict()
        self._local: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"BuildCache(directory={str(self.directory)!r}, cap_bytes={self.cap_bytes})"

    def path_of(self, sha256: str) -> Path:
        return self.directory / "blobs" / sha256

    async def fetch(self, build: ClaimedBuild) -> Path:
        """The local path of `build`, downloaded and verified if this host lacks it."""
        sha = build.sha256.lower()
        if not _SHA256.fullmatch(sha):
            raise JobError(f"build {build.app_version_id} has no valid sha256: {sha!r}")
        for sub in ("blobs", "locks", "tmp"):  # made on first use, not by every worker start
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        lock = self._local.setdefault(sha, asyncio.Lock())
        async with lock:
            path = self.path_of(sha)
            if sha in self._pins and path.is_file():
                self._pin(sha, fd=None)
                _touch(path)
            else:
                await self._fetch_and_pin(build, sha, path)
        await self._evict()
        return path

    async def _fetch_and_pin(self, build: ClaimedBuild, sha: str, path: Path) -> None:
        async with exclusive(self.directory / "locks" / f"{sha}.fetch"):
            use_fd = await hold(self.directory / "locks" / f"{sha}.use", fcntl.LOCK_SH)
            try:
                if _present(path):
                    _touch(path)
                    logger.info("build cache hit sha256=%s", sha)
                else:
                    await self._download(build, sha, path)
            except BaseException:
                os.close(use_fd)
                raise
        self._pin(sha, fd=use_fd)

    def release(self, build: ClaimedBuild) -> None:
        """This process is done with `build`: it may be evicted again."""
        pin = self._pins.get(build.sha256.lower())
        if pin is None:
            return
        pin.count -= 1
        if pin.count <= 0:
            os.close(self._pins.pop(build.sha256.lower()).fd)

    async def close(self) -> None:
        for pin in self._pins.values():
            os.close(pin.fd)
        self._pins.clear()
        if self._http is not None and self._own_http:
            await self._http.aclose()
            self._http = None

    def _pin(self, sha: str, *, fd: int | None) -> None:
        pin = self._pins.get(sha)
        if pin is None:
            assert fd is not None
            self._pins[sha] = _Pin(fd)
        else:
            pin.count += 1
            if fd is not None:
                os.close(fd)  # we already hold a shared lock on this build
        self._pins.move_to_end(sha)
        while len(self._pins) > self.pin_limit:
            _, oldest = self._pins.popitem(last=False)
            os.close(oldest.fd)

    async def _download(self, build: ClaimedBuild, sha: str, path: Path) -> None:
        temp = self.directory / "tmp" / f"{sha}.{os.getpid()}.{secrets.token_hex(4)}"
        digest = hashlib.sha256()
        size = 0
        where = build.download_path or build.external_url or "nowhere"
        logger.info("build download app_version_id=%s sha256=%s from=%s", build.app_version_id,
                    sha, _safe_url(where))  # fmt: skip
        try:
            with temp.open("xb") as out:
                async for chunk in self._source(build):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != sha:
                raise InfrastructureError(
                    f"build {build.app_version_id} downloaded from {_safe_url(where)} has "
                    f"sha256 {digest.hexdigest()} ({size} bytes), not {sha}: the download "
                    "was corrupted or the file changed",
                    code="build_sha256_mismatch",
                )
            os.replace(temp, path)
            _touch(path)
        finally:
            temp.unlink(missing_ok=True)
        logger.info("build cached sha256=%s size=%d", sha, size)

    async def _source(self, build: ClaimedBuild) -> AsyncIterator[bytes]:
        """The build's bytes, from the service or from its external url."""
        try:
            if build.download_path is not None:
                if self.api is None:
                    raise InfrastructureError(
                        "the build cache has no service client to download with"
                    )
                async with self.api.download(build.download_path) as response:
                    async for chunk in response.aiter_bytes():
                        yield chunk
            elif build.external_url is not None:
                if self._http is None:
                    self._http = httpx.AsyncClient(follow_redirects=True, timeout=60)
                async with self._http.stream("GET", build.external_url) as response:
                    if not response.is_success:
                        raise InfrastructureError(
                            f"downloading build {build.app_version_id} from "
                            f"{_safe_url(build.external_url)} answered HTTP {response.status_code}"
                        )
                    async for chunk in response.aiter_bytes():
                        yield chunk
            else:
                raise JobError(
                    f"build {build.app_version_id} has neither a download path nor a url"
                )
        except (QgjobError, httpx.HTTPError) as exc:
            raise InfrastructureError(
                f"cannot download build {build.app_version_id}: {exc}", code="build_download"
            ) from exc

    async def _evict(self) -> None:
        """Delete least recently used builds until the cache fits `cap_bytes` again."""
        async with exclusive(self.directory / "evict.lock"):
            entries = []
            for path in (self.directory / "blobs").iterdir():
                with contextlib.suppress(FileNotFoundError):
                    stat = path.stat()
                    entries.append((stat.st_mtime_ns, stat.st_size, path))
            total = sum(size for _, size, _ in entries)
            for _, size, path in sorted(entries, key=lambda e: e[0]):
                if total <= self.cap_bytes:
                    return
                if self._try_delete(path):
                    total -= size
                    logger.info("build evicted sha256=%s size=%d", path.name, size)

    def _try_delete(self, path: Path) -> bool:
        """Delete the build at `path` and its lock files, unless some process (this one
        included) uses it or is fetching it."""
        use_lock = self.directory / "locks" / f"{path.name}.use"
        fetch_lock = self.directory / "locks" / f"{path.name}.fetch"
        use_fd = try_hold(use_lock, fcntl.LOCK_EX)
        if use_fd is None:
            return False
        try:
            fetch_fd = try_hold(fetch_lock, fcntl.LOCK_EX)
            if fetch_fd is None:
                return False
            try:
                path.unlink(missing_ok=True)
                delete_held(fetch_lock, fetch_fd)
                delete_held(use_lock, use_fd)
            finally:
                os.close(fetch_fd)
        finally:
            os.close(use_fd)
        return True


def _present(path: Path) -> bool:
    return path.is_file()


def _touch(path: Path) -> None:
    """Mark `path` used now. Explicit nanoseconds: the kernel's own file timestamps tick
    coarsely (milliseconds), which would tie builds used in quick succession."""
    now_ns = time.time_ns()
    with contextlib.suppress(FileNotFoundError):
        os.utime(path, ns=(now_ns, now_ns))


def _safe_url(url: str) -> str:
    """A url for logs and messages, without its query (pre-signed urls carry secrets there)."""
    return url.split("?", 1)[0]
