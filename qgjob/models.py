"""The records the REST API answers with, parsed at the client's edge.

Each model checks the documented fields and keeps any others (`extra="allow"`), so that a
newer service can add fields without breaking an older client, and so that `--json` output
can print the object as the service sent it (`model_dump(mode="json", exclude_unset=True)`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from qgjob.types import (
    BuildPlatform,
    JobStatus,
    Outcome,
    Priority,
    Role,
    RunSource,
    RunStatus,
    Target,
)

# Written back as `datetime.isoformat()` ("+00:00"), the way the service writes them, rather
# than pydantic's "Z", so that `--json` prints the timestamps the service sent.
Timestamp = Annotated[datetime, PlainSerializer(datetime.isoformat, when_used="json")]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class WaitingReason(_Record):
    """Why a PENDING job has not been claimed yet."""

    code: str
    message: str
    ahead: int = 0
    until: Timestamp | None = None


class Job(_Record):
    """One spec file × one target × one app build, and where it is in its life."""

    job_id: UUID
    run_id: UUID | None
    status: JobStatus
    outcome: Outcome | None
    org_id: str
    app_version_id: str
    test_path: str
    target: Target
    priority: Priority
    worker_id: str | None
    group_id: str | None
    attempts: int
    max_attempts: int
    error: str | None
    duration_ms: int | None
    created_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    waiting_reason: WaitingReason | None = None
    artifacts: dict[str, str] = {}  # name → url, e.g. BrowserStack's video_url


class RunCounts(_Record):
    """How many of a run's jobs are in each status."""

    total: int
    pending: int
    assigned: int
    running: int
    completed: int
    failed: int
    cancelled: int


class RunGroup(_Record):
    """A run's jobs for one app build and one target."""

    app_version_id: str
    target: Target
    jobs: list[Job]


@dataclass(frozen=True)
class Commit:
    """A repository commit a run's specs come from (`qgjob submit --repo/--ref/--head-sha`)."""

    repo: str
    ref: str | None = None
    head_sha: str | None = None


class Run(_Record):
    """What one submission asked for. `jobs` comes with a submit, `groups` with a GET."""

    run_id: UUID
    org_id: str
    source: RunSource
    app_version_id: str
    targets: list[Target]
    priority: Priority
    status: RunStatus
    created_at: Timestamp
    finished_at: Timestamp | None
    counts: RunCounts
    submitted_by: str | None = None  # a token's name, or a GitHub login
    repo: str | None = None
    ref: str | None = None
    head_sha: str | None = None
    groups: list[RunGroup] | None = None
    jobs: list[Job] | None = None

    @property
    def all_jobs(self) -> list[Job]:
        """The run's jobs, whichever of `jobs` or `groups` the service sent."""
        if self.jobs is not None:
            return self.jobs
        return [job for group in self.groups or [] for job in group.jobs]


class JobPage(_Record):
    """One page of `GET /v1/jobs`; pass `next_cursor` back to read the next one."""

    jobs: list[Job]
    next_cursor: str | None


class JobCounts(_Record):
    """Jobs by status, for `GET /v1/stats`."""

    total: int
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int


class WorkerCounts(_Record):
    """Workers known to the service, and how many are active."""

    total: int
    active: int


class GroupCounts(_Record):
    """Groups (leases of jobs to workers) known to the service."""

    total: int


class Stats(_Record):
    """The answer of `GET /v1/stats`: for the caller's org, or all orgs for an admin."""

    jobs: JobCounts
    workers: WorkerCounts
    groups: GroupCounts


class IssuedToken(_Record):
    """A token just created. `token` is the raw secret, shown this once and never again."""

    token: str = Field(repr=False)
    token_id: str
    org_id: str | None  # None: a worker token that serves every org
    role: Role


class TokenRecord(_Record):
    """A token as `GET /v1/tokens` lists it: never its raw value."""

    token_id: str
    org_id: str | None
    role: Role
    name: str
    created_at: Timestamp
    revoked_at: Timestamp | None


class Build(_Record):
    """The app build of one app version: stored on the service, or kept at `external_url`.

    `result` comes with an upload or registration: `created`, `replaced` or `unchanged`."""

    org_id: str
    app_version_id: str
    platform: BuildPlatform
    filename: str
    size: int
    sha256: str
    stored: bool
    download_path: str | None
    external_url: str | None
    created_at: Timestamp
    updated_at: Timestamp
    result: str | None = None
