"""The inbox loop: processes the deliveries `POST /github/webhooks` recorded.

The route answers 202 only after the delivery is committed, so a server that dies right
after answering loses nothing: the delivery waits in `webhook_deliveries` until a loop (on
any replica) leases it. A delivery is leased for `LEASE_S`; one whose processor died is
taken again when the lease lapses. Transient GitHub errors (5xx, timeouts, rate limits)
retry with backoff (capped at `RETRY_CAP_S`) for as long as `github_retry_for_s` after the
delivery arrived, so an outage of GitHub loses no push; everything else ends with its outcome
recorded, never a crashed loop. A delivery that ended failed is processed afresh when GitHub
redelivers it (`app.store.deliveries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.database import DATABASE_ERRORS
from app.github.handlers import dispatch
from app.github.service import GitHubApp
from app.store.deliveries import (
    Delivery,
    claim_deliveries,
    finish_delivery,
    release_delivery,
    retry_delivery,
)
from github_app.errors import GitHubAppError, TransientApiError, retry_delay_s
from github_app.events import DELIVERY_HEADER, EVENT_HEADER, parse_delivery
from github_app.routing import Router

logger = logging.getLogger(__name__)
LEASE_S = 60.0
RETRY_CAP_S = 300.0


async def process_forever(app: GitHubApp, *, slots: int) -> None:
    """Keep up to `slots` deliveries in work: one claim query per wake-up (not one per slot),
    each delivery in its own task, a finished one waking the loop to claim the next. While
    the webhook route is acknowledging deliveries, only one (`app/github/intake.py`)."""
    working: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        working.discard(task)
        app.inbox_wakeups.wake()

    try:
        while True:
            woken = app.inbox_wakeups.current()
            claimed = []
            allowed = app.intake.slots(slots)
            if len(working) < allowed:
                try:
                    async with app.pool.acquire() as conn:
                        claimed = await claim_deliveries(
                            conn, limit=allowed - len(working), lease_s=LEASE_S
                        )
                except DATABASE_ERRORS as exc:
                    logger.warning("inbox could not run: %s", exc)
            for delivery in claimed:
                task = asyncio.create_task(_guarded(app, delivery))
                working.add(task)
                task.add_done_callback(finished)
            if not claimed:
                wait_s = app.settings.github_poll_interval_s
                if allowed < slots:  # look again once the burst may be over
                    wait_s = min(wait_s, app.intake.quiet_s)
                await app.inbox_wakeups.wait(woken, wait_s)
    finally:
        for task in working:
            task.cancel()
        await asyncio.gather(*working, return_exceptions=True)


async def _guarded(app: GitHubApp, delivery: Delivery) -> None:
    try:
        await process(app, app.router, delivery)
    except asyncio.CancelledError:
        # Shutting down: hand the delivery back now rather than when its lease lapses.
        with contextlib.suppress(Exception):
            await asyncio.shield(release_delivery(app.pool, delivery.delivery_id))
        raise
    except DATABASE_ERRORS as exc:
        logger.warning("delivery not recorded delivery_id=%s: %s", delivery.delivery_id, exc)


async def process(app: GitHubApp, router: Router, delivery: Delivery) -> None:
    headers = {EVENT_HEADER: delivery.event, DELIVERY_HEADER: delivery.delivery_id}
    failed = True  # until it is processed: a failed delivery is processed again if redelivered
    try:
        event = parse_delivery(headers, delivery.body)
        outcome = await dispatch(router, event)
        failed = False
    except TransientApiError as exc:
        delay_s = retry_delay_s(exc, attempt=delivery.attempts, cap_s=RETRY_CAP_S) or 1.0
        if delivery.waited_s + delay_s <= app.settings.github_retry_for_s:
            logger.warning(
                "delivery will be retried delivery_id=%s in_s=%.1f: %s",
                delivery.delivery_id, delay_s, exc,
            )  # fmt: skip
            await retry_delivery(
                app.pool, delivery.delivery_id, delay_s=delay_s, outcome=f"retrying: {exc}"
            )
            return
        outcome = f"failed after {delivery.attempts} attempts: {exc}"
    except GitHubAppError as exc:
        outcome = f"failed: {exc}"
    except DATABASE_ERRORS:
        raise
    except Exception as exc:  # a bug must not stop the inbox; the delivery keeps the reason
        logger.exception("delivery failed delivery_id=%s", delivery.delivery_id)
        outcome = f"error: {type(exc).__name__}: {exc}"
    await finish_delivery(app.pool, delivery.delivery_id, outcome=outcome, failed=failed)
    if failed:
        logger.warning(
            "delivery failed delivery_id=%s event=%s outcome=%s; redeliver it from the App's "
            "settings on GitHub (Advanced → Recent Deliveries) to process it again",
            delivery.delivery_id, delivery.event, outcome,
        )  # fmt: skip
    else:
        logger.info(
            "delivery processed delivery_id=%s event=%s outcome=%s",
            delivery.delivery_id, delivery.event, outcome,
        )  # fmt: skip
