"""The shared vocabulary of qgjob: targets, priorities, statuses and outcomes.

Every package (service, worker, CLI) speaks these enums; the service mirrors them as
PostgreSQL enums (`app/migrations/0001_init.sql`) and a test checks the two agree.
"""

from __future__ import annotations

from enum import StrEnum


class Target(StrEnum):
    """Where a job runs."""

    EMULATOR = "emulator"
    DEVICE = "device"
    BROWSERSTACK = "browserstack"


class Priority(StrEnum):
    """How urgent a job is; `rank` orders them (higher runs first)."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2}


class JobStatus(StrEnum):
    """Where a job is in its life (upper case on the wire, as the CLI prints it)."""

    PENDING = "PENDING"
    ASSIGNED = "ASSIGNED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATUSES


TERMINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


class Outcome(StrEnum):
    """What happened to the test in a job (or in one attempt of it)."""

    PASSED = "passed"
    FLAKY = "flaky"
    FAILED = "failed"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    ERROR = "error"

    @property
    def is_success(self) -> bool:
        return self in (Outcome.PASSED, Outcome.FLAKY, Outcome.SKIPPED)


class RunStatus(StrEnum):
    """A run's status, derived from its jobs."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class RunSource(StrEnum):
    """What made a run."""

    CLI = "cli"
    API = "api"
    GITHUB = "github"
    ACTIONS = "actions"


class Role(StrEnum):
    """What an API token may do."""

    SUBMITTER = "submitter"
    ADMIN = "admin"
    WORKER = "worker"


class GroupStatus(StrEnum):
    """A group's lease state."""

    LEASED = "LEASED"
    FINISHED = "FINISHED"
    RELEASED = "RELEASED"
    EXPIRED = "EXPIRED"


class WorkerStatus(StrEnum):
    """A worker's state as the service sees it."""

    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"
    OFFLINE = "offline"


class BuildPlatform(StrEnum):
    """What an app build runs on, told by its file name (`build_platform` in PostgreSQL)."""

    ANDROID = "android"
    IOS = "ios"


# The file name endings a build may have, and the platform each one means.
BUILD_SUFFIXES: tuple[tuple[str, BuildPlatform], ...] = (
    (".apk", BuildPlatform.ANDROID),
    (".aab", BuildPlatform.ANDROID),
    (".ipa", BuildPlatform.IOS),
    (".app.zip", BuildPlatform.IOS),
)
BUILD_EXTENSIONS = ".apk, .aab, .ipa or .app.zip"


def build_platform_of(filename: str) -> BuildPlatform | None:
    """The platform a build file name stands for, or None when its extension is not one."""
    lowered = filename.lower()
    for suffix, platform in BUILD_SUFFIXES:
        if lowered.endswith(suffix) and len(lowered) > len(suffix):
            return platform
    return None
