"""Re-running the failed specs of a run, for the API and the web page alike.

The new run repeats the run's failed (spec, target) pairs (`app.store.reruns`). A run that
came from GitHub is re-run as GitHub's own "Re-run failed" button re-runs it: the new run
reports to the same commit with check runs of its own (`app.github.triggers.report_rerun`),
created in the same transaction as the run and written through the outbox. Without the
GitHub App configured on this server, it is a run like any other.
"""

from __future__ import annotations

import uuid

from app.github.triggers import report_rerun
from app.services import Services
from app.store.reruns import rerun_failed as store_rerun_failed


async def rerun_failed(
    services: Services, run_id: uuid.UUID, *, org_scope: str | None, submitted_by: str | None
) -> uuid.UUID | None:
    """The id of the new run, made by `submitted_by`, or None when the run has no failed job
    (or is unknown to this org)."""
    github = services.github
    async with services.pool.acquire() as conn, conn.transaction():
        new_run_id = await store_rerun_failed(
            conn,
            run_id,
            org_scope=org_scope,
            max_attempts=services.settings.max_attempts,
            submitted_by=submitted_by,
        )
        reported = (
            new_run_id is not None
            and github is not None
            and await report_rerun(github, conn, rerun_of=run_id, run_id=new_run_id)
        )
    if reported and github is not None:
        github.outbox_wakeups.wake()
    return new_run_id
