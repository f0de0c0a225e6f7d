"""The outbox loop: sends owed check-run writes to GitHub, serial and paced per installation.

Each pass locks one installation that may write now (`take_write`), sends one request while
holding the lock, and records what happened in the same transaction: success moves the
row on; a rate limit holds the whole installation back as long as GitHub asked; 5xx and
timeouts back off; other 4xx are logged and dropped. A crash before the commit leaves the
row as it was, so the request is sent again after a restart (nothing is lost; at worst a
create whose answer was lost makes a second check run, which the later updates ignore).
"""

from __future__ import annotations

import logging
from typing import Any

from app.database import DATABASE_ERRORS, TxConn
from app.github.service import GitHubApp
from app.store.outbox import (
    OwedWrite,
    give_up,
    pace,
    record_github_id,
    retry_later,
    sent_one,
    take_write,
)
from github_app.errors import GitHubApiError, RateLimited, Unauthorized, retry_delay_s

logger = logging.getLogger(__name__)
MAX_BACKOFF_S = 300.0


async def send_forever(app: GitHubApp) -> None:
    """Send owed writes until cancelled; sleep when there is nothing this replica may send."""
    while True:
        woken = app.outbox_wakeups.current()
        try:
            sent = await send_one(app)
        except DATABASE_ERRORS as exc:
            logger.warning("outbox could not run: %s", exc)
            sent = False
        if not sent:
            wait_s = min(
                app.settings.github_poll_interval_s, max(app.settings.github_write_spacing_s, 0.01)
            )
            await app.outbox_wakeups.wait(woken, wait_s)


async def send_one(app: GitHubApp) -> bool:
    """Send one owed write, if any installation may write now; True when one was tried."""
    spacing_s = app.settings.github_write_spacing_s
    async with app.pool.acquire() as conn, conn.transaction():
        write = await take_write(conn)
        if write is None:
            return False
        try:
            await _send(app, conn, write)
        except GitHubApiError as exc:
            await _failed(app, conn, write, exc)
        else:
            await sent_one(conn, write)
            await pace(conn, write.installation_id, wait_s=spacing_s)
    return True


async def _send(app: GitHubApp, conn: TxConn, write: OwedWrite) -> None:
    requests = write.requests
    installation_id, repo = write.installation_id, write.repo
    github_id = write.github_id
    # After a failed try GitHub may have applied the request anyway (a timeout, a lost
    # answer): look before sending again, so that neither the check run nor its annotations
    # are doubled.
    if write.attempts and github_id is None:
        github_id = await _find_created(app, write)
        if github_id is not None:
            await record_github_id(conn, write.check_key, github_id)
    if write.sent == 0 and github_id is None:
        body = {"name": requests["name"], "head_sha": requests["head_sha"], **requests["body"]}
        created = await app.client.create_check_run(
            installation_id=installation_id, repo=repo, body=body
        )
        await record_github_id(conn, write.check_key, created.id)
        logger.info(
            "check run created check_key=%s github_id=%s status=%s",
            write.check_key, created.id, created.status,
        )  # fmt: skip
        return
    assert github_id is not None
    if write.sent == 0:
        body = {"name": requests["name"], **requests["body"]}
    else:
        body = requests["more"][write.sent - 1]
    if (write.attempts or github_id != write.github_id) and _annotations(body):
        shown = await app.client.get_check_run(
            installation_id=installation_id, repo=repo, check_run_id=github_id
        )
        if shown.annotations_count >= annotations_through(requests, write.sent):
            logger.info("check run write already applied check_key=%s", write.check_key)
            return
    updated = await app.client.update_check_run(
        installation_id=installation_id, repo=repo, check_run_id=github_id, body=body
    )
    logger.info(
        "check run updated check_key=%s github_id=%s status=%s conclusion=%s",
        write.check_key, updated.id, updated.status, updated.conclusion,
    )  # fmt: skip


async def _find_created(app: GitHubApp, write: OwedWrite) -> int | None:
    """The check run an earlier, unanswered create made, if GitHub has it."""
    requests = write.requests
    external_id = requests["body"].get("external_id")
    found = await app.client.list_check_runs(
        installation_id=write.installation_id, repo=write.repo, ref=requests["head_sha"],
        check_name=requests["name"],
    )  # fmt: skip
    for run in found:
        if external_id is not None and run.external_id == external_id:
            return run.id
    return None


def _annotations(body: dict[str, Any]) -> list[Any]:
    output = body.get("output") or {}
    annotations: list[Any] = output.get("annotations") or []
    return annotations


def annotations_through(requests: dict[str, Any], index: int) -> int:
    """How many annotations the check run shows once request `index` (0: the main body,
    then `more`) has been applied: only completed renders carry any, all in this write."""
    bodies = [requests["body"], *requests["more"]]
    return sum(len(_annotations(body)) for body in bodies[: index + 1])


async def _failed(app: GitHubApp, conn: TxConn, write: OwedWrite, exc: GitHubApiError) -> None:
    spacing_s = app.settings.github_write_spacing_s
    attempt = write.attempts + 1
    if isinstance(exc, RateLimited):
        logger.warning(
            "GitHub rate limit installation_id=%s wait_s=%.1f",
            write.installation_id,
            exc.retry_after_s,
        )
        await retry_later(conn, write, delay_s=0, error=str(exc))
        await pace(conn, write.installation_id, wait_s=max(spacing_s, exc.retry_after_s or 0))
        return
    delay_s = retry_delay_s(exc, attempt=attempt, base_s=max(spacing_s, 0.05), cap_s=MAX_BACKOFF_S)
    if delay_s is None and isinstance(exc, Unauthorized):
        # A token GitHub does not know yet, or a key being rotated: keep the write, slowly.
        app.client.tokens.invalidate(write.installation_id)
        delay_s = min(MAX_BACKOFF_S, 2.0**attempt)
    if delay_s is not None and exc.status is None:
        # No answer: the request may still land. Give it twice the time a request may take
        # before looking (see `_send`) and trying again, so a late one cannot land after ours.
        delay_s = max(delay_s, 2 * app.settings.github_timeout_s)
    if delay_s is None:
        logger.error("GitHub refused a check-run write check_key=%s: %s", write.check_key, exc)
        await give_up(conn, write, error=str(exc))
    else:
        logger.warning(
            "GitHub write failed check_key=%s attempt=%d retry_in_s=%.1f: %s",
            write.check_key, attempt, delay_s, exc,
        )  # fmt: skip
        await retry_later(conn, write, delay_s=delay_s, error=str(exc))
    await pace(conn, write.installation_id, wait_s=spacing_s)


def wake(app: GitHubApp) -> None:
    app.outbox_wakeups.wake()
