"""From a trigger (a push, a pull request, a re-run) to a run and its queued check runs.

`start_run` reads the commit's `qgjob.toml` (defaults when absent), applies its branch and
fork rules, lists the specs from one tree listing, and in one transaction supersedes the
branch's older runs, inserts the run through the same `insert_run` the REST API uses, and
owes GitHub one `queued` check run per target. Every "no" is a check run too: a broken
config completes `failure` with the parse error, a fork's pull request completes
`action_required` until a maintainer re-requests it. GitHub errors propagate, so the inbox
retries transient ones.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.database import TxConn
from app.github.service import GitHubApp
from app.github.tracker import wire
from app.store.checkruns import (
    commit_has_check_run,
    commit_has_run,
    github_run,
    insert_check_run,
    insert_github_run,
    lock_commit,
    supersede_runs,
)
from app.store.jobs import NewRun, cancel_run, insert_run
from app.store.outbox import owe
from github_app.checks import (
    CheckRunRequests,
    render_check_run,
    render_config_failure,
    render_fork_blocked,
)
from github_app.config import RepoConfig, load_config
from github_app.discovery import Tree, discover_specs
from github_app.errors import DiscoveryError, InvalidConfig
from github_app.summary import RunState, SpecRow, TargetRun
from qgjob.types import RunSource, Target

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trigger:
    """What to run: a commit of a repository, and why."""

    kind: str  # push | pull_request | check_suite | check_run | rerun_failed
    installation_id: int
    org_id: str
    repo: str  # full name of the repository the check runs go on
    head_sha: str
    ref: str | None = None  # the pushed ref (refs/heads/…, refs/tags/…)
    branch: str | None = None  # {branch}; the branch superseding applies to
    base_branch: str | None = None  # a pull request's base, for the branch filters
    pr_number: int | None = None
    fork_repo: str | None = None  # head repository of a pull request from a fork
    is_fork: bool = False
    approved: bool = False  # a maintainer re-requested a fork's check run
    forced: bool = False  # run even if this commit already has a run
    targets: tuple[Target, ...] | None = None  # only these targets (a check run re-run)
    specs: tuple[str, ...] | None = None  # only these specs (re-run failed)
    sender: str | None = None  # the GitHub login that caused it: the run's submitter

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["targets"] = None if self.targets is None else [t.value for t in self.targets]
        data["specs"] = None if self.specs is None else list(self.specs)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trigger:
        values = dict(data)
        if values.get("targets") is not None:
            values["targets"] = tuple(Target(t) for t in values["targets"])
        if values.get("specs") is not None:
            values["specs"] = tuple(values["specs"])
        return cls(**values)


async def start_run(app: GitHubApp, trigger: Trigger) -> str:
    """Act on `trigger`; returns what was done, for the delivery's recorded outcome."""
    if not trigger.forced and await commit_has_run(
        app.pool, repo=trigger.repo, head_sha=trigger.head_sha
    ):
        return f"skipped: {trigger.repo}@{trigger.head_sha[:7]} already has a run"
    try:
        config = await _config(app, trigger)
    except InvalidConfig as exc:
        await _owe_alone(app, trigger, render_config_failure(
            head_sha=trigger.head_sha, error=str(exc), details_url=app.settings.details_base_url
        ), run_id=None)  # fmt: skip
        return f"config error: {exc}"
    if not _wanted(config, trigger):
        return f"skipped: {trigger.ref or trigger.base_branch} is not configured to run"
    if config.needs_pull_request and trigger.pr_number is None and not trigger.forced:
        # A push to a pull request's branch: its pull_request event runs the commit.
        return "skipped: app_version_id uses {pr}, so only pull requests run"
    targets = trigger.targets or config.targets
    if trigger.is_fork and not (config.run_forks or trigger.approved):
        for target in targets:
            blocked = render_fork_blocked(
                run_id=f"fork:{trigger.repo}@{trigger.head_sha}", target=target,
                head_sha=trigger.head_sha, details_url=app.settings.details_base_url,
                head_repo=trigger.fork_repo,
            )  # fmt: skip
            await _owe_alone(app, trigger, blocked, run_id=None, target=target, keep=True)
        return f"blocked: pull request from fork {trigger.fork_repo}"
    try:
        specs = trigger.specs or await _discover(app, trigger, config)
        app_version_id = config.render_app_version_id(
            sha=trigger.head_sha, branch=trigger.branch, pr=trigger.pr_number
        )
        limit = app.settings.max_run_tests
        if len(specs) * len(targets) > limit:
            raise InvalidConfig(
                f"{len(specs)} specs × {len(targets)} targets exceed the limit of {limit} jobs "
                "per run; narrow the specs globs", key="specs",
            )  # fmt: skip
    except (InvalidConfig, DiscoveryError) as exc:
        failure = render_config_failure(
            head_sha=trigger.head_sha, error=str(exc), details_url=app.settings.details_base_url
        )
        await _owe_alone(app, trigger, failure, run_id=None)
        return f"config error: {exc}"
    if not specs:
        for target in targets:
            empty = TargetRun(
                "", target, trigger.head_sha, app.settings.details_base_url, RunState.FINISHED
            )
            await _owe_alone(app, trigger, render_check_run(empty), run_id=None, target=target)
        return "no specs matched"
    return await _enqueue(
        app, trigger, config, specs=specs, targets=targets, app_version_id=app_version_id
    )


def _wanted(config: RepoConfig, trigger: Trigger) -> bool:
    """Whether the branch filters let `trigger` run. A check suite GitHub requested for new
    commits (not one re-requested) is the push of its head branch, filtered as that push is:
    whichever of the two is processed first makes the commit's run."""
    if trigger.kind in ("push", "check_suite") and not trigger.forced:
        return trigger.ref is not None and config.runs_on_ref(trigger.ref)
    if trigger.kind == "pull_request" and trigger.base_branch is not None:
        return config.branches.allows(trigger.base_branch)
    return True  # asked for explicitly: re-requested check suites and check runs


def _supersedes(trigger: Trigger) -> bool:
    """Whether a run of `trigger` cancels the older runs of its branch or pull request: new
    commits do, whichever event brought them; an explicit re-run of a commit does not."""
    if trigger.kind == "check_suite":
        return not trigger.forced
    return trigger.kind in ("push", "pull_request")


async def _config(app: GitHubApp, trigger: Trigger) -> RepoConfig:
    async def read(path: str) -> bytes | None:
        return await app.client.get_contents(
            installation_id=trigger.installation_id,
            repo=trigger.repo,
            path=path,
            ref=trigger.head_sha,
        )

    return await load_config(read)


async def _discover(app: GitHubApp, trigger: Trigger, config: RepoConfig) -> tuple[str, ...]:
    async def fetch_tree(sha: str, *, recursive: bool) -> Tree:
        return await app.client.get_tree(
            installation_id=trigger.installation_id,
            repo=trigger.repo,
            tree_sha=sha,
            recursive=recursive,
        )

    return await discover_specs(
        head_sha=trigger.head_sha, globs=config.specs, fetch_tree=fetch_tree
    )


async def _enqueue(
    app: GitHubApp,
    trigger: Trigger,
    config: RepoConfig,
    *,
    specs: Sequence[str],
    targets: Sequence[Target],
    app_version_id: str,
) -> str:
    new = NewRun(
        org_id=trigger.org_id,
        app_version_id=app_version_id,
        tests=list(specs),
        targets=list(targets),
        priority=config.priority,
        source=RunSource.GITHUB,
        max_attempts=app.settings.max_attempts,
        repo=trigger.repo,
        ref=trigger.ref or (f"refs/heads/{trigger.branch}" if trigger.branch else None),
        head_sha=trigger.head_sha,
        submitted_by=trigger.sender,
    )
    async with app.pool.acquire() as conn, conn.transaction():
        await lock_commit(conn, repo=trigger.repo, head_sha=trigger.head_sha)
        if not trigger.forced and await commit_has_run(
            conn, repo=trigger.repo, head_sha=trigger.head_sha
        ):
            return f"skipped: {trigger.repo}@{trigger.head_sha[:7]} already has a run"
        superseded: list[uuid.UUID] = []
        if config.cancel_superseded and _supersedes(trigger):
            superseded = await supersede_runs(
                conn, repo=trigger.repo, branch=trigger.branch, pr_number=trigger.pr_number,
                head_sha=trigger.head_sha, from_fork=trigger.is_fork,
            )  # fmt: skip
            for old in superseded:
                await cancel_run(conn, old, org_scope=None)
        run = await insert_run(conn, new)
        run_id = uuid.UUID(run["run_id"])
        await _report_queued(
            app, conn, trigger, run_id=run_id, specs=dict.fromkeys(targets, specs),
            timeout_minutes=config.timeout_minutes,
        )  # fmt: skip
    app.outbox_wakeups.wake()
    logger.info(
        "run started run_id=%s repo=%s sha=%s jobs=%d superseded=%d",
        run_id, trigger.repo, trigger.head_sha[:7], len(specs) * len(targets), len(superseded),
    )  # fmt: skip
    return f"run {run_id}: {len(specs)} specs × {len(targets)} targets"


async def report_rerun(
    app: GitHubApp, conn: TxConn, *, rerun_of: uuid.UUID, run_id: uuid.UUID
) -> bool:
    """Make `run_id`, a re-run of the failed specs of `rerun_of` inserted in the caller's
    transaction, report to GitHub when `rerun_of` came from there, as a re-run asked for on
    GitHub does: a GitHub run on the same commit, pull request and installation, and a
    queued check run per target, owed to the outbox (wake it after the commit). False when
    `rerun_of` did not come from GitHub."""
    origin = await github_run(conn, rerun_of)
    if origin is None:
        return False
    rows = await conn.fetch(
        "SELECT target, array_agg(test_path ORDER BY test_path) AS specs FROM jobs"
        " WHERE run_id = $1 GROUP BY target ORDER BY target",
        run_id,
    )
    specs = {Target(row["target"]): tuple(row["specs"]) for row in rows}
    trigger = Trigger(
        kind="rerun_failed", installation_id=origin["installation_id"], org_id=origin["org_id"],
        repo=origin["repo"], head_sha=origin["head_sha"], branch=origin["branch"],
        pr_number=origin["pr_number"], approved=True, forced=True, targets=tuple(specs),
        specs=tuple(sorted({path for paths in specs.values() for path in paths})),
    )  # fmt: skip
    await _report_queued(
        app, conn, trigger, run_id=run_id, specs=specs,
        timeout_minutes=origin["timeout_minutes"] or RepoConfig().timeout_minutes,
    )  # fmt: skip
    logger.info(
        "re-run reported to GitHub run_id=%s rerun_of=%s repo=%s sha=%s targets=%d",
        run_id, rerun_of, trigger.repo, trigger.head_sha[:7], len(specs),
    )  # fmt: skip
    return True


async def _report_queued(
    app: GitHubApp,
    conn: TxConn,
    trigger: Trigger,
    *,
    run_id: uuid.UUID,
    specs: Mapping[Target, Sequence[str]],
    timeout_minutes: int,
) -> None:
    """Record `run_id` as the GitHub run of `trigger`, and owe a queued check run for each
    target listing its specs."""
    await insert_github_run(
        conn, run_id=run_id, installation_id=trigger.installation_id, repo=trigger.repo,
        head_sha=trigger.head_sha, branch=trigger.branch, pr_number=trigger.pr_number,
        trigger=trigger.kind, timeout_minutes=timeout_minutes, from_fork=trigger.is_fork,
    )  # fmt: skip
    details = app.details_url(str(run_id), trigger.org_id)
    for target, paths in specs.items():
        queued = TargetRun(
            str(run_id), target, trigger.head_sha, details, RunState.QUEUED,
            specs=tuple(_pending(paths)),
        )  # fmt: skip
        await _owe(conn, trigger, render_check_run(queued), run_id=run_id, target=target)


def _pending(specs: Sequence[str]) -> list[SpecRow]:
    return [SpecRow(path) for path in specs]


async def _owe(
    conn: TxConn,
    trigger: Trigger,
    requests: CheckRunRequests,
    *,
    run_id: uuid.UUID | None,
    target: Target | None = None,
    keep: bool = False,
) -> int:
    state = "completed" if requests.body.get("status") == "completed" else requests.body["status"]
    key = await insert_check_run(
        conn, installation_id=trigger.installation_id, repo=trigger.repo, head_sha=trigger.head_sha,
        name=requests.name, run_id=run_id, target=None if target is None else target.value,
        state=state, trigger=trigger.to_json() if keep or run_id is None else None,
    )  # fmt: skip
    await owe(conn, check_key=key, installation_id=trigger.installation_id, requests=wire(requests))
    return key


async def _owe_alone(
    app: GitHubApp,
    trigger: Trigger,
    requests: CheckRunRequests,
    *,
    run_id: uuid.UUID | None,
    target: Target | None = None,
    keep: bool = False,
) -> None:
    """A check run with no run behind it (blocked fork, broken config, nothing to run),
    unless the commit has one of that name already: the push, the check suite and the pull
    request GitHub sends for one commit would each owe it (an explicit re-run owes anew)."""
    async with app.pool.acquire() as conn, conn.transaction():
        await lock_commit(conn, repo=trigger.repo, head_sha=trigger.head_sha)
        if not trigger.forced and await commit_has_check_run(
            conn, repo=trigger.repo, head_sha=trigger.head_sha, name=requests.name
        ):
            return
        await _owe(conn, trigger, requests, run_id=run_id, target=target, keep=keep)
    app.outbox_wakeups.wake()
