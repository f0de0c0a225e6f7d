"""The retention sweep: processed webhook deliveries are deleted once past the window.

A delivery's row is what makes a redelivery of the same `X-GitHub-Delivery` a duplicate, so
it is kept `QGJOB_GITHUB_DELIVERY_RETENTION_DAYS` (at least GitHub's 3-day redelivery window;
default 14) after it was processed. Every `QGJOB_GITHUB_RETENTION_INTERVAL_S` each replica
deletes what is older in batches of `BATCH_ROWS`, each its own short statement that skips
rows another replica's sweep holds, pausing between batches so a large backlog (the first
sweep after an upgrade) never holds locks or the loop for long. Deliveries not processed yet
are never deleted. Outbox rows need no sweep: a row is deleted once its last request is sent.
"""

from __future__ import annotations

import asyncio
import logging

from app.database import DATABASE_ERRORS
from app.github.service import GitHubApp
from app.store.deliveries import forget_deliveries

logger = logging.getLogger(__name__)
BATCH_ROWS = 1000
PAUSE_S = 0.05  # between two batches of one sweep
_DAY_S = 86400.0


async def sweep_forever(app: GitHubApp) -> None:
    while True:
        try:
            await sweep_once(app)
        except DATABASE_ERRORS as exc:
            logger.warning("delivery retention sweep could not run: %s", exc)
        await asyncio.sleep(app.settings.github_retention_interval_s)


async def sweep_once(app: GitHubApp, *, batch_rows: int = BATCH_ROWS) -> int:
    """Delete the processed deliveries past the retention window; how many."""
    older_than_s = app.settings.github_delivery_retention_days * _DAY_S
    deleted = 0
    while True:
        count = await forget_deliveries(app.pool, older_than_s=older_than_s, limit=batch_rows)
        deleted += count
        if count < batch_rows:
            break
        await asyncio.sleep(PAUSE_S)
    if deleted:
        logger.info(
            "webhook deliveries forgotten count=%d older_than_days=%g",
            deleted, app.settings.github_delivery_retention_days,
        )  # fmt: skip
    return deleted
