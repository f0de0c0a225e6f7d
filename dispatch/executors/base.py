"""The executor protocol (DESIGN §6): prepare a group once, then run its jobs one by one.

`prepare(group)` makes the build ready where the jobs will run (fetch it, install it, upload
it) and raises a `dispatch.errors.DispatchError` when it cannot: `InfrastructureError` when
another try (on another worker) may succeed, `JobError` when none will. `run(job, cancel=…)`
runs one spec and says how it went; a failing test is an `Outcome`, not an exception. It
stops the job, process tree and all, when `cancel` is set or when its task is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from uuid import UUID

from qgjob.types import Outcome, Target
from qgjob.worker_api import ClaimedBuild, ClaimedGroup, ClaimedJob, JobSource


class BuildFetcher(Protocol):
    """Where executors get a group's build: a local file, downloaded once per host and
    verified against `build.sha256` (`dispatch.buildcache.BuildCache`). Raises a
    `DispatchError` when the build cannot be had."""

    async def fetch(self, build: ClaimedBuild) -> Path: ...


@dataclass(frozen=True)
class PrepareResult:
    """What `prepare` did: how long installing took, and what it made ready (a local path,
    a `bs://` url…), for the logs."""

    install_ms: int
    build: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """One job as an executor sees it: the claimed job with its group's key."""

    job_id: UUID
    group_id: UUID
    test_path: str
    attempt: int
    org_id: str
    app_version_id: str
    target: Target
    source: JobSource | None = None

    @classmethod
    def of(cls, group: ClaimedGroup, job: ClaimedJob) -> JobSpec:
        return cls(
            job_id=job.job_id,
            group_id=group.group_id,
            test_path=job.test_path,
            attempt=job.attempt,
            org_id=group.org_id,
            app_version_id=group.app_version_id,
            target=group.target,
            source=job.source,
        )


@dataclass(frozen=True)
class JobResult:
    """How one job went. `log` is the tail of its output; `artifacts` maps names to urls."""

    outcome: Outcome
    duration_ms: int
    error: str | None = None
    artifacts: Mapping[str, str] = field(default_factory=dict)
    log: str | None = None


class Executor(Protocol):
    """Runs jobs somewhere. One instance serves every group of a worker, concurrently."""

    async def prepare(self, group: ClaimedGroup) -> PrepareResult:
        """Make the group's build ready; raise a `DispatchError` if that fails."""
        ...

    async def run(self, job: JobSpec, *, cancel: asyncio.Event) -> JobResult:
        """Run one job to its end, or until `cancel` is set (then stop it and say so)."""
        ...

    async def close(self) -> None:
        """Release what the executor holds (sessions, devices); called once, at exit."""
        ...
