"""The build-wait sweep: a background loop that fails jobs whose build never arrived.

A job for an app version without a build stays PENDING while only workers that need a build
serve its target. Past `QGJOB_BUILD_WAIT_S` it ends FAILED (outcome `error`) with a message
that names the app version and says how to upload it. Every replica runs the loop; the
sweep takes its rows with `FOR UPDATE SKIP LOCKED`, so no job is failed twice.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from app.database import DATABASE_ERRORS
from app.store.builds import fail_jobs_without_build

logger = logging.getLogger(__name__)


async def sweep_forever(
    pool: asyncpg.Pool, *, interval_s: float, wait_s: float, live_within_s: float
) -> None:
    while True:
        try:
            async with pool.acquire() as conn, conn.transaction():
                gave_up = await fail_jobs_without_build(
                    conn, wait_s=wait_s, live_within_s=live_within_s
                )
            for job in gave_up:
                logger.warning(
                    "job failed, build never uploaded job_id=%s org_id=%s app_version_id=%s",
                    job.job_id,
                    job.org_id,
                    job.app_version_id,
                )
        except DATABASE_ERRORS as exc:
            logger.warning("build-wait sweep could not run: %s", exc)
        await asyncio.sleep(interval_s)
