"""The worker loop: register, long-poll for groups, run each group's jobs, report, drain.

```
register ──▶ claim (long-poll) ──▶ group ──▶ prepare once ──▶ job, job, … ──▶ done
   ▲            │ 204: claim again            │ fails: release(error) → retried elsewhere
   └ backoff ◀──┘ service unreachable          └ heartbeat side task: lease lost → stop,
                                                 job cancelled → kill it
```

Up to `capacity` groups run at once (a semaphore); each is a `dispatch.group_run.GroupRun`
with two side tasks: the heartbeat (`dispatch.heartbeats`) and the outbox that sends results
as they happen (`dispatch.outbox`). After the last job the service finishes the group itself.

Drain (`drain()`, on SIGTERM or a first SIGINT): stop claiming, say `draining`, let each
group finish its running job, release the jobs not started, say `offline`, return 0.
A second SIGINT cancels everything: process trees are killed and `serve()` returns 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from dispatch.backoff import Backoff
from dispatch.executors.base import Executor
from dispatch.group_run import GroupRun, Interrupted, until
from qgjob.errors import NotFound, QgjobError, TransientError
from qgjob.types import Target, WorkerStatus
from qgjob.worker_api import ClaimedGroup, WorkerApi

logger = logging.getLogger(__name__)

EXIT_INTERRUPTED = 130
MAX_READY_BUILDS = 50


@dataclass(frozen=True)
class AgentConfig:
    name: str
    targets: tuple[Target, ...]
    capacity: int = 1
    labels: Mapping[str, str] = field(default_factory=dict)
    heartbeat_interval_s: float = 10.0
    claim_wait_s: float = 30.0
    # The executor cannot run a group without its build: claim only groups that have one.
    needs_build: bool = False


class Agent:
    """One worker process: see the module docstring."""

    def __init__(self, api: WorkerApi, executor: Executor, config: AgentConfig) -> None:
        self.api = api
        self.executor = executor
        self.config = config
        self.worker_id: UUID | None = None
        self.draining = asyncio.Event()
        self._groups: set[asyncio.Task[None]] = set()
        self._ready_builds: dict[str, None] = {}  # insertion-ordered set, newest last
        self._warned_interval = False

    def drain(self) -> None:
        if not self.draining.is_set():
            logger.info("draining worker_id=%s groups=%d", self.worker_id, len(self._groups))
            self.draining.set()

    async def run(self) -> int:
        """Serve until drained; returns the exit code (0)."""
        try:
            if await self._register() is not None:
                await self._claim_until_drained()
                await self._say(WorkerStatus.DRAINING)
                await asyncio.gather(*self._groups)
                await self._say(WorkerStatus.OFFLINE)
                logger.info("worker stopped worker_id=%s", self.worker_id)
            return 0
        finally:
            for task in self._groups:  # only left when we are being cancelled: stop at once
                task.cancel()
            await asyncio.gather(*self._groups, return_exceptions=True)
            await self.executor.close()

    async def _register(self) -> UUID | None:
        retry = Backoff()
        while not self.draining.is_set():
            try:
                self.worker_id = await self.api.register(
                    name=self.config.name,
                    target_types=self.config.targets,
                    labels=self.config.labels,
                    capacity=self.config.capacity,
                    needs_build=self.config.needs_build,
                )
            except TransientError as exc:
                await self._pause(retry.next_delay(), "register", exc)
                continue
            logger.info(
                "worker registered worker_id=%s name=%s targets=%s capacity=%d",
                self.worker_id,
                self.config.name,
                ",".join(self.config.targets),
                self.config.capacity,
            )
            return self.worker_id
        return None

    async def _claim_until_drained(self) -> None:
        slots = asyncio.Semaphore(self.config.capacity)
        retry = Backoff()
        while not self.draining.is_set():
            try:
                await until(slots.acquire(), self.draining)
            except Interrupted:
                return
            # Draining cuts a long-poll short. Should the service lease a group in that very
            # instant, the answer is lost with the connection; the lease then expires and the
            # reaper retries its jobs, as after a crash.
            try:
                group = await until(
                    self.api.claim(
                        self._registered_id(),
                        wait_s=self.config.claim_wait_s,
                        ready_builds=list(self._ready_builds),
                    ),
                    self.draining,
                )
            except (Interrupted, TransientError, NotFound) as exc:
                slots.release()
                if isinstance(exc, TransientError):
                    await self._pause(retry.next_delay(), "claim", exc)
                elif isinstance(exc, NotFound):  # the service forgot us (database reset)
                    logger.warning("worker unknown to the service, registering again")
                    await self._register()
                continue
            retry.reset()
            if group is None:
                slots.release()
                continue
            task = asyncio.create_task(self._serve(group), name=f"group-{group.group_id}")
            self._groups.add(task)
            task.add_done_callback(self._groups.discard)
            task.add_done_callback(lambda _: slots.release())

    async def _pause(self, delay_s: float, what: str, exc: Exception) -> None:
        logger.warning("service unavailable call=%s retry_in_s=%.2f error=%s", what, delay_s, exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.draining.wait(), delay_s)

    def _registered_id(self) -> UUID:
        assert self.worker_id is not None, "register first"
        return self.worker_id

    async def _say(self, status: WorkerStatus) -> None:
        """Tell the service our status; best effort (a few tries), it is only informative."""
        retry = Backoff(base_s=0.2, cap_s=2.0)
        for _ in range(5):
            try:
                await self.api.set_status(self._registered_id(), status)
                logger.info("worker status worker_id=%s status=%s", self.worker_id, status)
                return
            except TransientError as exc:
                logger.warning("status not sent status=%s error=%s", status, exc)
                await asyncio.sleep(retry.next_delay())
            except QgjobError as exc:
                logger.warning("status refused status=%s error=%s", status, exc)
                return

    async def _serve(self, group: ClaimedGroup) -> None:
        ttl_s, interval_s = group.lease_ttl_s, self.config.heartbeat_interval_s
        if ttl_s is not None and interval_s > ttl_s / 2 and not self._warned_interval:
            self._warned_interval = True
            logger.warning(
                "heartbeat interval %.1f s is more than half the service's lease (%.1f s): "
                "one late heartbeat loses the group; use --heartbeat-interval %.1f or less",
                interval_s, ttl_s, ttl_s / 3,
            )  # fmt: skip
        work = GroupRun(
            group,
            api=self.api,
            executor=self.executor,
            draining=self.draining,
            heartbeat_interval_s=self.config.heartbeat_interval_s,
        )
        await work.run()
        if work.prepared:
            self._note_ready(group.app_version_id)

    def _note_ready(self, build: str) -> None:
        self._ready_builds.pop(build, None)
        self._ready_builds[build] = None
        while len(self._ready_builds) > MAX_READY_BUILDS:
            del self._ready_builds[next(iter(self._ready_builds))]


async def serve(agent: Agent) -> int:
    """Run `agent` with the signals wired: SIGTERM or a first SIGINT drain it, a second
    SIGINT stops it at once. Returns the process exit code."""
    loop = asyncio.get_running_loop()
    main = asyncio.create_task(agent.run(), name="worker")
    interrupts = 0

    def on_sigterm() -> None:
        logger.info("SIGTERM received: finishing running jobs, then exiting")
        agent.drain()

    def on_sigint() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            logger.info("interrupted: draining; interrupt again to stop at once")
            agent.drain()
        else:
            logger.info("interrupted again: stopping at once")
            main.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    loop.add_signal_handler(signal.SIGINT, on_sigint)
    try:
        return await main
    except asyncio.CancelledError:
        if interrupts < 2:
            raise
        return EXIT_INTERRUPTED
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)
