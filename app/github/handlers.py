"""Which webhook event starts what: the App's router (gidgethub style).

Handlers note what they did with `note(...)`; the inbox records it as the delivery's
outcome. Installation events keep `github_installations` current; every other event first
makes sure its installation is known (looking it up with `GET /app/installations/{id}` when
the App was installed before the service was deployed) and active.
"""

from __future__ import annotations

import dataclasses
import logging
from contextvars import ContextVar

from app.github.service import GitHubApp
from app.github.triggers import Trigger, start_run
from app.store.checkruns import (
    blocked_check_runs,
    close_pull_request,
    find_check_run,
    github_run,
    specs_of,
)
from app.store.deliveries import InstallationRow, get_installation, save_installation
from app.store.jobs import cancel_run
from app.store.outbox import drop_installation
from github_app.checks import RERUN_FAILED
from github_app.errors import NotFound
from github_app.events import (
    CheckRunEvent,
    CheckSuiteEvent,
    Event,
    InstallationEvent,
    PullRequestEvent,
    PushEvent,
)
from github_app.routing import Router
from qgjob.types import Target

logger = logging.getLogger(__name__)
_notes: ContextVar[list[str]] = ContextVar("github_handler_notes")


def note(text: str) -> None:
    """Record what a handler did (the delivery's outcome)."""
    _notes.get().append(text)


async def dispatch(router: Router, event: Event) -> str:
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        ran = await router.dispatch(event)
    finally:
        _notes.reset(token)
    if not ran:
        return f"ignored: {event.name}.{event.action or '-'} is not handled"
    return "; ".join(notes) or "handled"


def build_router(app: GitHubApp) -> Router:
    router = Router()

    @router.register("installation")
    @router.register("installation_repositories")
    async def installation(event: InstallationEvent) -> None:
        note(await on_installation(app, event))

    @router.register("push")
    async def push(event: PushEvent) -> None:
        note(await on_push(app, event))

    for action in ("opened", "synchronize", "reopened"):

        @router.register("pull_request", action=action)
        async def pull_request(event: PullRequestEvent) -> None:
            note(await on_pull_request(app, event))

    @router.register("pull_request", action="closed")
    async def pull_request_closed(event: PullRequestEvent) -> None:
        note(await on_pull_request_closed(app, event))

    for action in ("requested", "rerequested"):

        @router.register("check_suite", action=action)
        async def check_suite(event: CheckSuiteEvent) -> None:
            note(await on_check_suite(app, event))

    for action in ("rerequested", "requested_action"):

        @router.register("check_run", action=action)
        async def check_run(event: CheckRunEvent) -> None:
            note(await on_check_run(app, event))

    return router


async def on_installation(app: GitHubApp, event: InstallationEvent) -> str:
    assert event.installation_id is not None
    known = await get_installation(app.pool, event.installation_id)
    suspended = event.suspended or event.action == "suspend"
    if event.action == "unsuspend":
        suspended = False
    elif event.name == "installation_repositories" and known is not None:
        suspended = known.suspended
    deleted = event.name == "installation" and event.action == "deleted"
    row = await save_installation(
        app.pool,
        installation_id=event.installation_id,
        org_id=event.account_login,
        account_type=event.account_type,
        repository_selection=event.repository_selection,
        added=event.repositories_added,
        removed=event.repositories_removed,
        suspended=suspended,
        deleted=deleted,
        replace=event.name == "installation" and event.action == "created",
    )
    if not row.active:
        app.client.tokens.invalidate(row.installation_id)
        if deleted:
            await drop_installation(app.pool, row.installation_id)
    state = "deleted" if row.deleted else "suspended" if row.suspended else "active"
    repos = len(row.repositories)
    return f"installation {row.installation_id} of {row.org_id}: {state}, {repos} repositories"


async def active_installation(
    app: GitHubApp, installation_id: int | None
) -> InstallationRow | None:
    """The installation, looked up on GitHub when unknown; None when it may not be served."""
    if installation_id is None:
        return None
    row = await get_installation(app.pool, installation_id)
    if row is None:
        try:
            found = await app.client.get_installation(installation_id)
        except NotFound:
            return None
        row = await save_installation(
            app.pool,
            installation_id=found.id,
            org_id=found.account_login,
            account_type=found.account_type,
            repository_selection=found.repository_selection,
            added=(),
            suspended=found.suspended,
            deleted=False,
        )
    return row if row.active else None


async def on_push(app: GitHubApp, event: PushEvent) -> str:
    if event.deleted:
        return f"ignored: {event.ref} was deleted"
    installation = await active_installation(app, event.installation_id)
    if installation is None:
        return _inactive(event)
    trigger = Trigger(
        kind="push", installation_id=installation.installation_id, org_id=installation.org_id,
        repo=event.repository.full_name, head_sha=event.after, ref=event.ref, branch=event.branch,
        sender=event.sender,
    )  # fmt: skip
    return await start_run(app, trigger)


async def on_pull_request(app: GitHubApp, event: PullRequestEvent) -> str:
    installation = await active_installation(app, event.installation_id)
    if installation is None:
        return _inactive(event)
    trigger = Trigger(
        kind="pull_request", installation_id=installation.installation_id,
        org_id=installation.org_id, repo=event.base_repo_full_name, head_sha=event.head_sha,
        branch=event.head_ref, base_branch=event.base_ref, pr_number=event.number,
        is_fork=event.is_fork, fork_repo=event.head_repo_full_name if event.is_fork else None,
        sender=event.sender,
    )  # fmt: skip
    return await start_run(app, trigger)


async def on_pull_request_closed(app: GitHubApp, event: PullRequestEvent) -> str:
    """Closed, merged or not: its jobs still to run are cancelled, the same way a newer push
    supersedes a run, and its check runs complete `cancelled` saying so."""
    installation = await active_installation(app, event.installation_id)
    if installation is None:
        return _inactive(event)
    merged = " (merged)" if event.merged else ""
    reason = f"pull request #{event.number} was closed{merged}"
    async with app.pool.acquire() as conn, conn.transaction():
        ended = await close_pull_request(
            conn, repo=event.base_repo_full_name, pr_number=event.number,
            head_sha=event.head_sha, head_ref=event.head_ref, reason=reason,
        )  # fmt: skip
        cancelled = sum([await cancel_run(conn, run_id, org_scope=None) for run_id in ended])
    if not ended:
        return f"closed: pull request #{event.number} has no run in progress"
    logger.info(
        "pull request closed repo=%s pr=%d runs=%d jobs_cancelled=%d",
        event.base_repo_full_name, event.number, len(ended), cancelled,
    )  # fmt: skip
    return f"closed: pull request #{event.number}, {len(ended)} runs cancelled ({cancelled} jobs)"


async def on_check_suite(app: GitHubApp, event: CheckSuiteEvent) -> str:
    if app.app_id is not None and event.app_id not in (None, app.app_id):
        return "ignored: another App's check suite"
    installation = await active_installation(app, event.installation_id)
    if installation is None:
        return _inactive(event)
    repo = event.repository.full_name
    rerequested = event.action == "rerequested"
    if rerequested:
        blocked = await blocked_check_runs(app.pool, repo=repo, head_sha=event.head_sha)
        triggers = {str(row.trigger): row.trigger for row in blocked if row.trigger}
        if triggers:  # a maintainer's re-run approves a fork's pull request
            outcomes = [
                await start_run(
                    app, dataclasses.replace(Trigger.from_json(t), approved=True, forced=True)
                )
                for t in triggers.values()
            ]
            return "; ".join(outcomes)
    # A suite GitHub requested for new commits is their push (the same filters, the same
    # superseding): whichever of the two is processed first makes the commit's run.
    trigger = Trigger(
        kind="check_suite", installation_id=installation.installation_id,
        org_id=installation.org_id, repo=repo, head_sha=event.head_sha, branch=event.head_branch,
        ref=f"refs/heads/{event.head_branch}" if event.head_branch else None,
        pr_number=event.pull_request_numbers[0] if event.pull_request_numbers else None,
        forced=rerequested, sender=event.sender,
    )  # fmt: skip
    return await start_run(app, trigger)


async def on_check_run(app: GitHubApp, event: CheckRunEvent) -> str:
    if app.app_id is not None and event.app_id not in (None, app.app_id):
        return "ignored: another App's check run"
    if event.action == "requested_action" and event.requested_action != RERUN_FAILED:
        return f"ignored: unknown action {event.requested_action!r}"
    installation = await active_installation(app, event.installation_id)
    if installation is None:
        return _inactive(event)
    row = await find_check_run(
        app.pool, github_id=event.check_run_id, external_id=event.external_id
    )
    if row is None:
        return f"ignored: check run {event.check_run_id} is not one of ours"
    target = Target(row.target) if row.target else None
    if row.run_id is None:
        if row.trigger is None:
            return "ignored: nothing to re-run"
        again = Trigger.from_json(row.trigger)
        targets = (target,) if target else again.targets
        return await start_run(
            app, dataclasses.replace(again, approved=True, forced=True, targets=targets)
        )
    origin = await github_run(app.pool, row.run_id)
    if origin is None or target is None:
        return f"ignored: run {row.run_id} did not come from GitHub"
    failed_only = event.action == "requested_action"
    specs = await specs_of(app.pool, row.run_id, target.value, failed_only=failed_only)
    if not specs:
        return "ignored: no failed specs to re-run"
    trigger = Trigger(
        kind="rerun_failed" if failed_only else "check_run",
        installation_id=installation.installation_id, org_id=origin["org_id"], repo=row.repo,
        head_sha=row.head_sha, branch=origin["branch"], pr_number=origin["pr_number"],
        approved=True, forced=True, targets=(target,), specs=tuple(specs), sender=event.sender,
    )  # fmt: skip
    return await start_run(app, trigger)


def _inactive(event: Event) -> str:
    return f"ignored: installation {event.installation_id} is unknown, suspended or deleted"
