"""Duration and setup history, written as results arrive and read by the claim.

Per (org, test_path, target) the last `WINDOW` durations of attempts that ran the test and
the last `WINDOW` outcomes; per (org, target) the last `WINDOW` setup times and the last
`SCOPE_WINDOW` durations of any spec (the estimate of a spec never seen). One statement per
events batch, set-based, inside the events transaction; `dispatch.estimates` turns the
samples into seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from app.database import Conn, TxConn
from dispatch.estimates import EstimateConfig

WINDOW = EstimateConfig.window
SCOPE_WINDOW = EstimateConfig.scope_window

# `r.sample` mirrors dispatch.estimates.counts_as_sample: attempts that ran the test.
_RECORD_FINISHED = """
WITH r AS (
    SELECT j.org_id, j.target, j.test_path, r.outcome, r.duration_ms, r.n,
           r.outcome IN ('passed', 'flaky', 'failed', 'timed_out') AND r.duration_ms > 0
               AS sample
    FROM unnest($1::uuid[], $2::job_outcome[], $3::int[]) WITH ORDINALITY
             AS r(job_id, outcome, duration_ms, n)
    JOIN jobs j ON j.job_id = r.job_id
), spec AS (
    INSERT INTO spec_history AS h (org_id, target, test_path, durations_ms, outcomes)
    SELECT org_id, target, test_path,
           keep_last(coalesce(array_agg(duration_ms ORDER BY n) FILTER (WHERE sample), '{}'), $4),
           keep_last(array_agg(outcome ORDER BY n), $4)
    FROM r GROUP BY org_id, target, test_path
    ON CONFLICT (org_id, target, test_path) DO UPDATE SET
        durations_ms = keep_last(h.durations_ms || excluded.durations_ms, $4),
        outcomes = keep_last(h.outcomes || excluded.outcomes, $4),
        updated_at = now()
)
INSERT INTO target_history AS t (org_id, target, durations_ms)
SELECT org_id, target, keep_last(array_agg(duration_ms ORDER BY n), $5)
FROM r WHERE sample GROUP BY org_id, target
ON CONFLICT (org_id, target) DO UPDATE SET
    durations_ms = keep_last(t.durations_ms || excluded.durations_ms, $5), updated_at = now()
"""

_RECORD_SETUP = """
INSERT INTO target_history AS t (org_id, target, setups_ms)
SELECT org_id, target, ARRAY[$2::int] FROM groups WHERE group_id = $1 AND $2 > 0
ON CONFLICT (org_id, target) DO UPDATE SET
    setups_ms = keep_last(t.setups_ms || excluded.setups_ms, $3), updated_at = now()
"""


async def record_finished(
    conn: TxConn,
    job_ids: Sequence[uuid.UUID],
    outcomes: Sequence[str],
    durations_ms: Sequence[int],
) -> None:
    """Add the finished attempts of one batch to their specs' history."""
    if job_ids:
        await conn.execute(_RECORD_FINISHED, job_ids, outcomes, durations_ms, WINDOW, SCOPE_WINDOW)


async def record_setup(conn: TxConn, group_id: uuid.UUID, install_ms: int) -> None:
    """Add a group's setup time to its (org, target)'s history."""
    await conn.execute(_RECORD_SETUP, group_id, install_ms, WINDOW)


async def spec_history(conn: Conn, org_id: str, target: str) -> dict[str, list[int]]:
    """Durations per test_path of one (org, target), oldest first (for tests and tools)."""
    rows = await conn.fetch(
        "SELECT test_path, durations_ms FROM spec_history WHERE org_id = $1 AND target = $2",
        org_id,
        target,
    )
    return {r["test_path"]: list(r["durations_ms"]) for r in rows}
