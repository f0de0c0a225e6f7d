"""The `browserstack` executor: upload each build once, run AppWright against BrowserStack.

`prepare(group)`:
1. the build file (`BuildFetcher`; with `allow_missing_build`, only for `qgjob up`, a
   placeholder for groups without one, said in the log);
2. its `bs://` url, kept on the service per (org, build sha256, BrowserStack account) so
   that every worker and group reuses one upload (`qgjob.browserstack_apps`). A stored url is
   checked against `GET /app-automate/recent_apps/{custom_id}`; only when BrowserStack no
   longer lists it is the build uploaded again. To upload, a worker takes the service's
   short upload lease; others wait for its url. Uploads respect 5 a minute and 429s
   (`dispatch.browserstack_api`). `custom_id` is the app_version_id, sanitised as
   BrowserStack does.

`run(job)`: wait for a free parallel slot (below), run AppWright with the `bs://` url in
`QGJOB_BROWSERSTACK_APP_URL` (examples/appwright.config.ts makes it the project's
`buildPath`, so AppWright does not upload again), then fetch each test session's details
(`GET /app-automate/sessions/{id}.json`; the ids are the `sessionId` annotations AppWright
puts on each test in the JSON report) and attach `video_url` / `public_url` to the job.

Parallel slots: each run opens one session at a time (`--workers 1`). Before a run the
executor takes one of N slot locks shared by every worker process on this host, where
N = `parallel_sessions_max_allowed` minus the sessions running that this host does not hold
(`plan.json`'s `parallel_sessions_running` minus the slots this host holds), and waits while
there is none. One host never exceeds the plan; several hosts sharing a plan may briefly
overshoot between two plan reads, and BrowserStack queues what is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from uuid import UUID

from dispatch.browserstack_api import BrowserStackApi
from dispatch.errors import InfrastructureError, JobError
from dispatch.executors.appwright import (
    AppwrightOptions,
    HostLock,
    close_parts,
    job_result,
    locate,
    named_build,
    release,
    run_spec,
)
from dispatch.executors.base import BuildFetcher, JobResult, JobSpec, PrepareResult
from dispatch.results import SpecResult
from dispatch.sources import Sources
from qgjob.browserstack_apps import AppKey, BrowserStackApps
from qgjob.errors import QgjobError
from qgjob.worker_api import ClaimedGroup

logger = logging.getLogger(__name__)

WITHHELD_ENV = ("QGJOB_TOKEN",)
BROWSERSTACK_EXTENSIONS = (".apk", ".aab", ".xapk", ".ipa")
_SLOT_POLL_S = 1.0
_KEPT_GROUPS = 32
T = TypeVar("T")


def custom_id_for(app_version_id: str) -> str:
    """BrowserStack keeps A-Z a-z 0-9 . - _ of a custom_id, 100 characters at most."""
    return re.sub(r"[^A-Za-z0-9._-]", "", app_version_id)[:100] or "qgjob-build"


@dataclass(frozen=True)
class BrowserStackOptions:
    lease_s: float = 600.0  # how long one worker may take to upload before others step in
    slot_wait_s: float = 3600.0  # longest wait for a free parallel slot
    allow_missing_build: bool = False  # qgjob up only


@dataclass(frozen=True)
class _Prepared:
    app_url: str


class BrowserStackExecutor:
    """Runs jobs on BrowserStack App Automate (see the module docstring)."""

    def __init__(
        self,
        *,
        api: BrowserStackApi,
        apps: BrowserStackApps,
        appwright: AppwrightOptions,
        builds: BuildFetcher | None,
        lock_dir: Path,
        sources: Sources | None = None,
        env: Mapping[str, str],
        options: BrowserStackOptions | None = None,
        placeholder_dir: Path | None = None,
    ) -> None:
        self.api = api
        self.apps = apps
        self.appwright = appwright
        self.builds = builds
        self.sources = sources
        self.lock_dir = lock_dir
        self.options = options or BrowserStackOptions()
        self.placeholder_dir = placeholder_dir or lock_dir / "placeholder-builds"
        self._env = {k: v for k, v in env.items() if k not in WITHHELD_ENV}
        self._groups: OrderedDict[object, _Prepared] = OrderedDict()
        self._admission = HostLock(lock_dir, "browserstack-admission")

    def __repr__(self) -> str:
        return f"BrowserStackExecutor(api={self.api!r})"

    async def prepare(self, group: ClaimedGroup) -> PrepareResult:
        started = time.monotonic()
        path, sha256 = await self._build(group)
        key = AppKey(org_id=group.org_id, sha256=sha256, account=self.api.credentials.username)
        app_url = await self._app_url(key, path, custom_id_for(group.app_version_id))
        self._groups[group.group_id] = _Prepared(app_url=app_url)
        while len(self._groups) > _KEPT_GROUPS:
            self._groups.popitem(last=False)
        install_ms = int((time.monotonic() - started) * 1000)
        logger.info("browserstack app ready app_url=%s install_ms=%d", app_url, install_ms)
        return PrepareResult(install_ms=install_ms, build=app_url)

    async def run(self, job: JobSpec, *, cancel: asyncio.Event) -> JobResult:
        prepared = self._groups.get(job.group_id)
        if prepared is None:
            raise InfrastructureError("the group was not prepared on this worker", code="state")
        root, spec = await locate(job, workspace=self.appwright.workspace, sources=self.sources)
        env = {
            **self._env,
            "BROWSERSTACK_USERNAME": self.api.credentials.username,
            "BROWSERSTACK_ACCESS_KEY": self.api.credentials.access_key.reveal(),
            "QGJOB_BROWSERSTACK_API_URL": self.api.base_url,
            "QGJOB_BROWSERSTACK_APP_URL": prepared.app_url,
        }
        async with self._slot():
            done = await run_spec(self.appwright, spec, env=env, cancel=cancel, cwd=root)
        artifacts = await self._session_artifacts(done.spec) if done.spec else {}
        return job_result(done, artifacts=artifacts)

    async def close(self) -> None:
        await self.api.aclose()
        await close_parts(self.builds, self.sources)

    # --- the build and its upload ----------------------------------------------------------

    async def _build(self, group: ClaimedGroup) -> tuple[Path, str]:
        if group.build is not None and self.builds is not None:
            if not group.build.filename.lower().endswith(BROWSERSTACK_EXTENSIONS):
                raise JobError(
                    f"BrowserStack takes {', '.join(BROWSERSTACK_EXTENSIONS)} builds; "
                    f"{group.build.filename} is not one",
                    code="unsupported_build",
                )
            blob = await self.builds.fetch(group.build)
            path = named_build(
                blob,
                filename=group.build.filename,
                sha256=group.build.sha256,
                directory=self.lock_dir / "named-builds",
            )
            return path, group.build.sha256
        if group.build is not None:
            raise InfrastructureError("this worker has no build cache", code="no_build_cache")
        if not self.options.allow_missing_build:
            raise JobError(
                f"no build is registered for app version {group.app_version_id}; upload one "
                "with `qgjob build upload`",
                code="no_build",
            )
        name = custom_id_for(group.app_version_id)
        path = self.placeholder_dir / f"{name}.apk"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"qgjob placeholder build {name}: SIMULATED\n".encode())
        logger.warning(
            "SIMULATED: no build uploaded for app_version_id=%s; uploading placeholder %s",
            group.app_version_id,
            path,
        )
        return path, hashlib.sha256(path.read_bytes()).hexdigest()

    async def _app_url(self, key: AppKey, path: Path, custom_id: str) -> str:
        deadline = time.monotonic() + self.options.lease_s * 2
        stale: str | None = None
        while True:
            stored = await _service(self.apps.get(key))
            if stored is not None and stored.app_url and stored.app_url != stale:
                # Listed under the custom_id it was uploaded with (the same build may serve
                # several app versions).
                listed_as = stored.custom_id or custom_id
                if stored.app_url in await self.api.recent_app_urls(listed_as):
                    return stored.app_url
                logger.info("browserstack app expired app_url=%s", stored.app_url)
                stale = stored.app_url
            lease = await _service(
                self.apps.lease(key, lease_s=self.options.lease_s, replaces=stale)
            )
            if lease.state == "uploaded" and lease.app.app_url:
                return lease.app.app_url
            if lease.state == "granted":
                return await self._upload(key, path, custom_id, lease.lease_id)
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    "another worker has been uploading this build to BrowserStack for too long",
                    code="browserstack_upload_wait",
                )
            await asyncio.sleep(lease.retry_after_s or 1.0)

    async def _upload(self, key: AppKey, path: Path, custom_id: str, lease_id: UUID | None) -> str:
        try:
            app_url = await self.api.upload(path, custom_id=custom_id)
        except BaseException:
            if lease_id is not None:  # let the next worker try now, not when the lease ends
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.apps.give_up(key, lease_id))
            raise
        await _service(
            self.apps.store(key, app_url=app_url, custom_id=custom_id, lease_id=lease_id)
        )
        logger.info("browserstack upload done app_url=%s sha256=%s", app_url, key.sha256)
        return app_url

    # --- parallel slots and session details ------------------------------------------------

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        deadline = time.monotonic() + self.options.slot_wait_s
        while True:
            fd = await self._try_slot()
            if fd is not None:
                break
            if time.monotonic() > deadline:
                raise InfrastructureError(
                    f"no free BrowserStack parallel slot for {self.options.slot_wait_s:g} s",
                    code="browserstack_no_slot",
                )
            await asyncio.sleep(_SLOT_POLL_S)
        try:
            yield
        finally:
            release(fd)

    async def _try_slot(self) -> int | None:
        """A slot lock if the plan has room, else None (see the module docstring)."""
        async with self._admission.held():
            plan = await self.api.plan()
            held = self._held_slots(plan.max_allowed)
            others = max(0, plan.running - held)
            for index in range(max(0, plan.max_allowed - others)):
                fd = HostLock(self.lock_dir, f"browserstack-slot-{index}").try_acquire()
                if fd is not None:
                    return fd
            logger.info(
                "waiting for a BrowserStack slot: running=%d max=%d held_here=%d",
                plan.running,
                plan.max_allowed,
                held,
            )
            return None

    def _held_slots(self, limit: int) -> int:
        held = 0
        for index in range(max(limit, 1) * 2):
            fd = HostLock(self.lock_dir, f"browserstack-slot-{index}").try_acquire()
            if fd is None:
                held += 1
            else:
                release(fd)
        return held

    async def _session_artifacts(self, spec: SpecResult) -> dict[str, str]:
        sessions = [s for test in spec.tests for s in test.session_ids]
        artifacts: dict[str, str] = {}
        for number, session_id in enumerate(sessions, start=1):
            try:
                details = await self.api.session(session_id)
            except (InfrastructureError, JobError) as exc:
                logger.warning("no details for session %s: %s", session_id, exc.reason)
                continue
            last = number == len(sessions)
            for name in ("video_url", "public_url"):
                url = details.get(name)
                if isinstance(url, str) and url:
                    artifacts[name if last else f"{name}_{number}"] = url
            artifacts["browserstack_session" if last else f"browserstack_session_{number}"] = (
                session_id
            )
        return artifacts


async def _service(call: Awaitable[T]) -> T:
    """A call to the qgjob service's upload records; its failures are infrastructure ones."""
    try:
        return await call
    except QgjobError as exc:
        raise InfrastructureError(
            f"the service's BrowserStack upload records: {exc}", code="service"
        ) from exc
