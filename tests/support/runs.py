"""Runs queued straight through the store, for tests of what happens to them afterwards."""

from __future__ import annotations

import uuid

import asyncpg

from app.store.jobs import NewRun, insert_run
from qgjob.types import Priority, RunSource, Target


async def queue_run(
    pool: asyncpg.Pool, app_version_id: str, tests: list[str], *, org_id: str = "acme"
) -> uuid.UUID:
    """A run of `tests` on the emulator, as a submit makes it; its id."""
    run = await insert_run(
        pool,
        NewRun(
            org_id=org_id,
            app_version_id=app_version_id,
            tests=tests,
            targets=[Target.EMULATOR],
            priority=Priority.NORMAL,
            source=RunSource.API,
            max_attempts=3,
        ),
    )
    return uuid.UUID(run["run_id"])
