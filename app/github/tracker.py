"""The tracker: turns job state changes into check-run renders owed to GitHub.

Every poll interval one replica (a transaction-scoped advisory lock) first ends the runs
past their deadline (their unfinished jobs cancelled, their check runs to complete
`timed_out`), then compares each live check run's job counts with what it last rendered:
the first started job makes it `in_progress`, progress is re-rendered at most once per
`QGJOB_GITHUB_PROGRESS_INTERVAL_S`, and the last finished job completes it. Nothing is
added to the claim or events path.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from app.database import DATABASE_ERRORS, TxConn
from app.github.reports import state_of, target_run
from app.github.service import GitHubApp
from app.store.checkruns import (
    LiveCheckRun,
    expire_runs,
    live_check_runs,
    mark_ended,
    mark_rendered,
    report_rows,
)
from app.store.jobs import cancel_run
from app.store.outbox import owe
from github_app.checks import CheckRunRequests, render_check_run
from github_app.summary import RunState, TargetRun
from qgjob.types import Target

logger = logging.getLogger(__name__)
TRACKER_LOCK = 0x71676A6F62_0005  # one tracker at a time across replicas
_FINAL = (RunState.FINISHED, RunState.CANCELLED, RunState.TIMED_OUT)


def wire(requests: CheckRunRequests) -> dict[str, Any]:
    """What the outbox stores for a check run's current state."""
    return {
        "name": requests.name,
        "head_sha": requests.head_sha,
        "body": requests.body,
        "more": list(requests.more),
    }


def column_state(state: RunState) -> str:
    return "completed" if state in _FINAL else state.value


def next_render(
    live: LiveCheckRun, *, now: datetime, progress_interval_s: float
) -> RunState | None:
    """The state to render now for `live`, or None when GitHub already shows enough."""
    state = state_of(
        total=live.total, finished=live.finished, started=live.started, reason=live.reason,
        timed_out=live.timed_out,
    )  # fmt: skip
    if state in _FINAL:
        return state
    if state is RunState.IN_PROGRESS:
        if live.state == "queued":
            return state
        waited_s = (now - live.rendered_at).total_seconds()
        if live.finished != live.done and waited_s >= progress_interval_s:
            return state
    return None


async def track_forever(app: GitHubApp) -> None:
    while True:
        try:
            if await track_once(app):
                app.outbox_wakeups.wake()
        except DATABASE_ERRORS as exc:
            logger.warning("tracker could not run: %s", exc)
        await asyncio.sleep(app.settings.github_poll_interval_s)


async def track_once(app: GitHubApp) -> int:
    """Render what changed; returns how many check runs now owe GitHub a write."""
    owed = 0
    async with app.pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", TRACKER_LOCK):
            return 0
        now = datetime.now(UTC)
        await end_overdue_runs(conn)
        for live in await live_check_runs(conn):
            state = next_render(
                live, now=now, progress_interval_s=app.settings.github_progress_interval_s
            )
            if state is None:
                continue
            run = await build_target_run(app, conn, live, now=now)
            await owe(
                conn,
                check_key=live.check_key,
                installation_id=live.installation_id,
                requests=wire(render_check_run(run)),
            )
            await mark_rendered(
                conn, live.check_key, state=column_state(run.state), done=live.finished
            )
            logger.info(
                "check run rendered check_key=%s run_id=%s target=%s state=%s",
                live.check_key, live.run_id, live.target, run.state.value,
            )  # fmt: skip
            owed += 1
    return owed


async def end_overdue_runs(conn: TxConn) -> int:
    """Runs past their deadline (qgjob.toml `timeout_minutes`): their unfinished jobs are
    cancelled and their check runs will complete `timed_out`, in this same pass."""
    expired = await expire_runs(conn)
    for run in expired:
        reason = f"the run took longer than its {run.minutes} minutes (timeout_minutes)"
        await mark_ended(conn, [run.run_id], reason=reason, timed_out=True)
        cancelled = await cancel_run(conn, run.run_id, org_scope=None)
        logger.info(
            "run timed out run_id=%s timeout_minutes=%d jobs_cancelled=%d",
            run.run_id, run.minutes, cancelled,
        )  # fmt: skip
    return len(expired)


async def build_target_run(
    app: GitHubApp, conn: TxConn, live: LiveCheckRun, *, now: datetime
) -> TargetRun:
    rows = await report_rows(conn, live.run_id, live.target)
    return target_run(
        rows,
        run_id=str(live.run_id),
        target=Target(live.target),
        head_sha=live.head_sha,
        details_url=app.details_url(str(live.run_id), live.org_id),
        reason=live.reason,
        now=now,
        timed_out=live.timed_out,
    )
