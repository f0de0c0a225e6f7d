"""The lease reaper: a background loop that expires leases nobody renewed.

Every replica runs it; `FOR UPDATE SKIP LOCKED` in the sweep means two replicas never
expire the same group twice.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from app.database import DATABASE_ERRORS
from app.lifecycle import LOST_WORKER
from app.metrics import Metrics
from app.store.leases import reap_expired

logger = logging.getLogger(__name__)


async def reap_forever(
    pool: asyncpg.Pool,
    *,
    interval_s: float,
    backoff_s: float,
    offline_after_s: float,
    metrics: Metrics | None = None,
) -> None:
    while True:
        try:
            async with pool.acquire() as conn, conn.transaction():
                reaped = await reap_expired(
                    conn, error=LOST_WORKER, backoff_s=backoff_s, offline_after_s=offline_after_s
                )
            if metrics is not None and reaped.groups:
                metrics.lease_expirations.inc(len(reaped.groups))
                metrics.retries.labels(reason="lease_expired").inc(reaped.requeued)
            for group_id in reaped.groups:
                logger.warning("lease expired group_id=%s", group_id)
            if reaped.groups:
                logger.info(
                    "reaped groups=%d requeued=%d failed=%d",
                    len(reaped.groups),
                    reaped.requeued,
                    reaped.failed,
                )
            for name in reaped.offline_workers:
                logger.warning("worker offline name=%s", name)
        except DATABASE_ERRORS as exc:
            logger.warning("reaper could not run: %s", exc)
        await asyncio.sleep(interval_s)
