"""Request and response models at the HTTP edge (pydantic), also the source of /openapi.json."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from qgjob.identifiers import (
    APP_VERSION_ID_RE,
    COMMIT_SHA_RE,
    MAX_TEST_PATH,
    ORG_ID_RE,
    TEST_PATH_PATTERN,
    check_app_version_id,
    check_org_id,
    check_test_path,
)
from qgjob.types import (
    BUILD_EXTENSIONS,
    BuildPlatform,
    JobStatus,
    Outcome,
    Priority,
    Role,
    RunSource,
    RunStatus,
    Target,
    WorkerStatus,
    build_platform_of,
)

OrgId = Annotated[
    str, AfterValidator(check_org_id), Field(json_schema_extra={"pattern": ORG_ID_RE.pattern})
]
AppVersionId = Annotated[
    str,
    AfterValidator(check_app_version_id),
    Field(json_schema_extra={"pattern": APP_VERSION_ID_RE.pattern}),
]
TestPath = Annotated[
    str,
    AfterValidator(check_test_path),
    Field(max_length=MAX_TEST_PATH, json_schema_extra={"pattern": TEST_PATH_PATTERN}),
]


def storable_text(value: str) -> str:
    """What a worker reports (a log, an error) as PostgreSQL can keep it: a test that printed
    a NUL byte or broken UTF-16 must still get its result recorded, so such characters are
    replaced (U+FFFD, '?') instead of refusing the report."""
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


StorableText = Annotated[str, AfterValidator(storable_text)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobSubmission(_Strict):
    """One test on one target."""

    org_id: OrgId
    app_version_id: AppVersionId
    test_path: TestPath
    target: Target = Target.EMULATOR
    priority: Priority = Priority.NORMAL


class RunSubmission(_Strict):
    """Many tests × targets in one transaction."""

    org_id: OrgId
    app_version_id: AppVersionId
    tests: list[TestPath] = Field(min_length=1)
    targets: list[Target] = Field(default_factory=lambda: [Target.EMULATOR], min_length=1)
    priority: Priority = Priority.NORMAL
    source: RunSource = RunSource.API
    repo: str | None = Field(default=None, max_length=200)
    ref: str | None = Field(default=None, max_length=255)
    head_sha: str | None = Field(default=None, pattern=COMMIT_SHA_RE.pattern)


class TokenRequest(_Strict):
    org_id: OrgId | None = Field(
        default=None,
        description="The org the token acts for; omitted only for a worker token that serves "
        "every org (created by a fleet-wide admin).",
    )
    role: Role
    name: str = Field(default="", max_length=100)


class TokenRecord(BaseModel):
    """A token as listed: never its raw value, which only its creation answer holds."""

    token_id: UUID
    org_id: str | None
    role: Role
    name: str
    created_at: datetime
    revoked_at: datetime | None


class TokenList(BaseModel):
    tokens: list[TokenRecord]


class WaitingReason(BaseModel):
    """Why a PENDING job has not been claimed yet (docs/scheduling.md)."""

    code: str = Field(
        description="backing_off | no_worker_for_target | waiting_for_build | org_at_cap | "
        "behind_higher_priority | waiting_for_free_worker"
    )
    message: str
    ahead: int = Field(description="groups (or running groups, for org_at_cap) ahead of it")
    until: datetime | None = Field(description="when the retry backoff ends (backing_off)")


class Job(BaseModel):
    job_id: UUID
    run_id: UUID
    status: JobStatus
    outcome: Outcome | None
    org_id: str
    app_version_id: str
    test_path: str
    target: Target
    priority: Priority
    worker_id: UUID | None
    group_id: UUID | None
    attempts: int
    max_attempts: int
    error: str | None
    duration_ms: int | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    waiting_reason: WaitingReason | None = Field(
        default=None, description="PENDING jobs read one by one: why it still waits"
    )
    # What the last attempt left behind, name → url (e.g. BrowserStack's video_url).
    artifacts: dict[str, str] = Field(default_factory=dict)


class JobPage(BaseModel):
    jobs: list[Job]
    next_cursor: str | None


class RunCounts(BaseModel):
    total: int
    pending: int
    assigned: int
    running: int
    completed: int
    failed: int
    cancelled: int


class RunGroup(BaseModel):
    """Jobs leased together to one worker. `group_id` is null for the jobs not dispatched
    yet (`WAITING`) and for those cancelled before they ever were (`CANCELLED`)."""

    group_id: UUID | None
    status: Literal["WAITING", "CANCELLED", "LEASED", "FINISHED", "RELEASED", "EXPIRED"]
    app_version_id: str
    target: Target
    worker_id: UUID | None
    worker_name: str | None
    install_ms: int | None
    jobs: list[Job]


class Run(BaseModel):
    run_id: UUID
    org_id: str
    source: RunSource
    app_version_id: str
    targets: list[Target]
    priority: Priority
    status: RunStatus
    repo: str | None
    ref: str | None
    head_sha: str | None
    submitted_by: str | None = Field(
        default=None,
        description="Who made the run: the submitting token's name (`token <id prefix>` "
        "without one), or the GitHub login whose push, pull request or re-run made it.",
    )
    created_at: datetime
    finished_at: datetime | None
    counts: RunCounts
    groups: list[RunGroup] | None = None
    jobs: list[Job] | None = None


class JobStats(BaseModel):
    total: int
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int


class WorkerStats(BaseModel):
    total: int
    active: int


class GroupStats(BaseModel):
    total: int


class Stats(BaseModel):
    jobs: JobStats
    workers: WorkerStats
    groups: GroupStats


class CreatedToken(BaseModel):
    token: str
    token_id: UUID
    org_id: str | None
    role: Role


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- The worker protocol -------------------------------------------------------------

LabelValue = str | int | float | bool


class WorkerRegistration(_Strict):
    name: str = Field(min_length=1, max_length=100)
    target_types: list[Target] = Field(min_length=1)
    labels: dict[str, LabelValue] = Field(default_factory=dict)
    capacity: int = Field(default=1, ge=1, le=64)
    # True for executors that cannot run without the app build: such a worker is only
    # offered groups whose build has been uploaded.
    needs_build: bool = False


class RegisteredWorker(BaseModel):
    worker_id: UUID


class WorkerStatusChange(_Strict):
    status: Literal["draining", "offline"]


class ClaimBody(_Strict):
    wait_s: float | None = Field(default=None, ge=0, le=60)
    ready_builds: list[str] = Field(default_factory=list, max_length=200)


class JobSource(BaseModel):
    repo: str
    ref: str | None
    head_sha: str | None
    # A short-lived read-only token for the repository, and the API to use it with, when the
    # service has a source provider (the GitHub App); absent otherwise.
    token: str | None = None
    api_url: str | None = None


class ClaimedJob(BaseModel):
    job_id: UUID
    test_path: str
    attempt: int
    run_id: UUID
    source: JobSource | None


class ClaimedBuild(BaseModel):
    """The group's app build: fetch it from `download_path` (this service) or `external_url`."""

    app_version_id: str
    sha256: str
    size: int
    filename: str
    platform: BuildPlatform
    download_path: str | None
    external_url: str | None


class ClaimedGroup(BaseModel):
    group_id: UUID
    lease_token: int
    lease_expires_at: datetime
    org_id: str
    app_version_id: str
    target: Target
    jobs: list[ClaimedJob]
    source: JobSource | None
    build: ClaimedBuild | None = None
    lease_ttl_s: float | None = Field(
        default=None,
        description="How long the lease lasts from this answer without a heartbeat: a worker "
        "measures it on its own monotonic clock, whatever its wall clock says.",
    )


# Bounds of the database columns behind them (bigint, integer): larger numbers are 422, not 500.
LeaseToken = Annotated[int, Field(ge=0, le=2**63 - 1)]
Milliseconds = Annotated[int, Field(ge=0, le=2**31 - 1)]


class LeaseBody(_Strict):
    lease_token: LeaseToken


class HeartbeatAnswer(BaseModel):
    lease_expires_at: datetime
    cancelled_job_ids: list[UUID]
    lease_ttl_s: float | None = Field(
        default=None, description="How long the renewed lease lasts from this answer."
    )


class ReleaseBody(_Strict):
    lease_token: LeaseToken
    reason: StorableText = Field(default="", max_length=1000)
    error: StorableText | None = Field(default=None, max_length=65536)


class ReleaseAnswer(BaseModel):
    released_job_ids: list[UUID]
    group_finished: bool


class JobStartedEvent(_Strict):
    type: Literal["job_started"]
    job_id: UUID


class JobFinishedEvent(_Strict):
    type: Literal["job_finished"]
    job_id: UUID
    outcome: Outcome
    duration_ms: Milliseconds
    error: StorableText | None = Field(default=None, max_length=65536)
    artifacts: dict[str, str] = Field(default_factory=dict)
    log: StorableText | None = Field(default=None, max_length=1024 * 1024)
    retry: bool = Field(
        default=True,
        description="False when the job cannot run as asked (a spec missing from the "
        "project, credentials refused): an `error` outcome then fails the job at once "
        "instead of being retried.",
    )


class SetupDoneEvent(_Strict):
    type: Literal["setup_done"]
    install_ms: Milliseconds
    build: str | None = Field(default=None, max_length=200)


GroupEvent = Annotated[
    JobStartedEvent | JobFinishedEvent | SetupDoneEvent, Field(discriminator="type")
]


class GroupEvents(_Strict):
    lease_token: LeaseToken
    events: list[GroupEvent] = Field(min_length=1, max_length=1000)


class IgnoredEvent(BaseModel):
    job_id: UUID
    reason: str


class EventsAnswer(BaseModel):
    applied: int
    ignored: list[IgnoredEvent]
    cancelled_job_ids: list[UUID]


class CurrentGroup(BaseModel):
    group_id: UUID
    org_id: str
    app_version_id: str
    target: Target


class Worker(BaseModel):
    worker_id: UUID
    org_id: str | None
    name: str
    target_types: list[Target]
    labels: dict[str, LabelValue]
    capacity: int
    status: WorkerStatus
    ready_builds: list[str]
    needs_build: bool
    last_heartbeat: datetime
    created_at: datetime
    current_groups: list[CurrentGroup]


class WorkerList(BaseModel):
    workers: list[Worker]


# --- Builds ----------------------------------------------------------------------------

SHA256_PATTERN = r"^[0-9a-f]{64}$"
MAX_BUILD_FILENAME = 255


def check_build_filename(value: str) -> str:
    """A plain file name with a build extension; it is only ever shown, never a path."""
    if not value or len(value) > MAX_BUILD_FILENAME:
        raise ValueError(f"filename must be 1-{MAX_BUILD_FILENAME} characters")
    if any(ch in value for ch in "/\\") or value in (".", ".."):
        raise ValueError("filename must be a plain file name, without directories")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise ValueError("filename must not contain control characters")
    if build_platform_of(value) is None:
        raise ValueError(f"filename must end with {BUILD_EXTENSIONS}; got {value!r}")
    return value


BuildFilename = Annotated[str, AfterValidator(check_build_filename)]


class ExternalBuild(_Strict):
    """A build kept elsewhere: workers download it from `url` and check its sha256."""

    org_id: OrgId
    app_version_id: AppVersionId
    url: str = Field(max_length=2048, pattern=r"^https?://[^\s]+$")
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(default=0, ge=0, le=2**63 - 1, description="In bytes; 0 when unknown.")
    filename: BuildFilename | None = Field(
        default=None, description="Default: the last segment of the url's path."
    )


class Build(BaseModel):
    org_id: str
    app_version_id: str
    platform: BuildPlatform
    filename: str
    size: int
    sha256: str
    stored: bool
    download_path: str | None
    external_url: str | None
    created_at: datetime
    updated_at: datetime
    result: Literal["created", "replaced", "unchanged"] | None = None
