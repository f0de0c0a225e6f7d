"""One leased group on this worker, from `prepare` to its last result.

`GroupRun.run()` keeps the lease alive in a side task (`dispatch.heartbeats`), prepares the
build once and reports `setup_done`, then runs the jobs in the order the service gave them,
reporting `job_started` and `job_finished` through the group's outbox (`dispatch.outbox`)
as they happen. It stops early when:

- the lease is lost (409): the running job is killed and nothing more is reported;
- the service cancels a job: that job is killed, or never started;
- the worker drains: the running job finishes, the jobs not started are released;
- `prepare` fails: the group is released with the error, which counts as an attempt and
  sends the jobs to another worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from dispatch.backoff import Backoff
from dispatch.errors import DispatchError, is_transient
from dispatch.executors.base import Executor, JobResult, JobSpec
from dispatch.heartbeats import Lease, confirm, keep_alive
from dispatch.outbox import Outbox
from qgjob.errors import QgjobError, StaleLease, TransientError
from qgjob.types import Outcome
from qgjob.worker_api import (
    ClaimedGroup,
    ClaimedJob,
    JobFinished,
    JobStarted,
    SetupDone,
    WorkerApi,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Interrupted(Exception):
    """What we waited for was cut short (the lease was lost, or the worker is draining)."""


async def until(work: Awaitable[T], *stops: asyncio.Event) -> T:
    """The result of `work`, unless one of `stops` is set first: then `work` is cancelled
    and `Interrupted` raised."""
    task = asyncio.ensure_future(work)
    waiters = [asyncio.ensure_future(stop.wait()) for stop in stops]
    try:
        await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise Interrupted
    return task.result()


class GroupRun:
    """One group's work; `run()` once."""

    def __init__(
        self,
        group: ClaimedGroup,
        *,
        api: WorkerApi,
        executor: Executor,
        draining: asyncio.Event,
        heartbeat_interval_s: float,
    ) -> None:
        self.group = group
        self.api = api
        self.executor = executor
        self.draining = draining
        self.heartbeat_interval_s = heartbeat_interval_s
        self.lease = Lease(group)
        self.outbox = Outbox(api, self.lease)
        self.prepared = False

    async def run(self) -> None:
        group = self.group
        logger.info(
            "group leased group_id=%s key=%s/%s/%s jobs=%d lease_token=%d",
            group.group_id,
            group.org_id,
            group.app_version_id,
            group.target,
            len(group.jobs),
            group.lease_token,
        )
        side = [
            asyncio.create_task(
                keep_alive(self.api, self.lease, interval_s=self.heartbeat_interval_s)
            ),
            asyncio.create_task(self.outbox.run()),
        ]
        try:
            await self._work()
        except Exception as exc:  # a bug of ours: hand the jobs back rather than sit on them
            logger.exception("group failed group_id=%s", group.group_id)
            await self._release(reason="worker error", error=f"worker error: {exc!r}")
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)

    async def _work(self) -> None:
        group, lease = self.group, self.lease
        try:
            prepared = await until(self.executor.prepare(group), lease.lost, self.draining)
        except Interrupted:
            if not lease.lost.is_set():
                await self._release(reason="worker draining", error=None)
            return
        except DispatchError as exc:
            logger.warning("prepare failed group_id=%s error=%s", group.group_id, exc.reason)
            if is_transient(exc):  # this device or this moment: another worker may succeed
                await self._release(reason="prepare failed", error=exc.reason)
            else:  # the group cannot run as asked (a build this executor cannot install)
                await self._fail_all(exc.reason)
            return
        self.prepared = True
        logger.info("group prepared group_id=%s install_ms=%d", group.group_id, prepared.install_ms)
        self.outbox.put(SetupDone(install_ms=prepared.install_ms, build=group.app_version_id))
        for job in group.jobs:
            if lease.lost.is_set():
                logger.info("group abandoned group_id=%s", group.group_id)
                return
            if self.draining.is_set():
                await self._release(reason="worker draining", error=None)
                return
            if not await confirm(self.api, lease):  # paused past the lease: is it still ours?
                logger.info("group abandoned group_id=%s", group.group_id)
                return
            if job.job_id in lease.cancelled:
                logger.info("job skipped, cancelled job_id=%s", job.job_id)
                continue
            await self._run_job(job)
        delivered = await self.outbox.flushed()
        logger.info("group done group_id=%s results_delivered=%s", group.group_id, delivered)

    async def _fail_all(self, reason: str) -> None:
        """End every job of the group at once, as errors not worth a retry."""
        for job in self.group.jobs:
            if job.job_id in self.lease.cancelled:
                continue
            self.outbox.put(JobStarted(job.job_id))
            self.outbox.put(
                JobFinished(job.job_id, Outcome.ERROR, duration_ms=0, error=reason, retry=False)
            )
        delivered = await self.outbox.flushed()
        logger.info("group failed group_id=%s results_delivered=%s", self.group.group_id, delivered)

    async def _run_job(self, job: ClaimedJob) -> None:
        cancel = self.lease.cancel_event(job.job_id)
        self.outbox.put(JobStarted(job.job_id))
        logger.info(
            "job started job_id=%s group_id=%s attempt=%d test_path=%s",
            job.job_id,
            self.group.group_id,
            job.attempt,
            job.test_path,
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        retry = True
        try:
            result = await self.executor.run(JobSpec.of(self.group, job), cancel=cancel)
        except DispatchError as exc:
            elapsed_ms = int((loop.time() - started) * 1000)
            result = JobResult(
                outcome=Outcome.ERROR, duration_ms=elapsed_ms, error=exc.reason, log=exc.log
            )
            retry = is_transient(exc)  # a JobError fails the same way anywhere: final
        self.lease.forget(job.job_id)
        if self.lease.lost.is_set():
            logger.info("job stopped, lease gone job_id=%s", job.job_id)
            return
        self.outbox.put(
            JobFinished(
                job_id=job.job_id,
                outcome=result.outcome,
                duration_ms=result.duration_ms,
                error=result.error,
                artifacts=result.artifacts,
                log=result.log,
                retry=retry,
            )
        )
        logger.info(
            "job finished job_id=%s outcome=%s duration_ms=%d",
            job.job_id,
            result.outcome,
            result.duration_ms,
        )

    async def _release(self, *, reason: str, error: str | None) -> None:
        """Hand back the jobs not started, after the results of those that ran. Shielded:
        once begun, a release completes even if this group's task is cancelled."""
        await self.outbox.flushed()
        if not self.lease.lost.is_set():
            await asyncio.shield(self._send_release(reason=reason, error=error))

    async def _send_release(self, *, reason: str, error: str | None) -> None:
        lease = self.lease
        retry = Backoff(cap_s=5.0)
        while not lease.lost.is_set():
            try:
                receipt = await self.api.release(
                    lease.group_id, lease.token, reason=reason, error=error
                )
            except StaleLease:
                lease.lose("released after the lease expired")
                return
            except TransientError as exc:
                delay = retry.next_delay()
                logger.warning(
                    "release not sent group_id=%s retry_in_s=%.2f error=%s",
                    lease.group_id,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                continue
            except QgjobError as exc:
                logger.error("release refused group_id=%s error=%r", lease.group_id, exc)
                return
            logger.info(
                "group released group_id=%s reason=%s jobs_back=%d infrastructure_error=%s",
                lease.group_id,
                reason,
                len(receipt.released_job_ids),
                error is not None,
            )
            return
