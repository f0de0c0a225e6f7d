"""Duration and setup history, written as results arrive and read by the claim.

Per (org, test_path, target) the last `WINDOW` durations of attempts that ran the test and
the last `WINDOW` outcomes; per (org, target) the last `WINDOW` setup times and the last
`SCOPE_WINDOW` durations of any spec (the estimate of a spec never seen). Written by the
statement that records an events batch (set-based, inside the events transaction);
`dispatch.estimates` turns the samples into seconds.
"""

from __future__ import annotations

import uuid

from app.database import Conn, TxConn
from dispatch.estimates import EstimateConfig

WINDOW = EstimateConfig.window
SCOPE_WINDOW = EstimateConfig.scope_window

# The history writes as CTEs of the statement that records a batch's results
# (`app.store.events`), which names a relation `{source}` of (org_id, target, test_path,
# outcome, duration_ms, n) — the recorded attempts, n their order in the batch — and the
# parameters holding WINDOW and SCOPE_WINDOW. `sample` mirrors
# dispatch.estimates.counts_as_sample: attempts that ran the test.
RECORD_FINISHED_CTES = """
history_samples AS (
    SELECT *, outcome IN ('passed', 'flaky', 'failed', 'timed_out') AND duration_ms > 0
                  AS sample
    FROM {source}
), spec_history_written AS (
    INSERT INTO spec_history AS h (org_id, target, test_path, durations_ms, outcomes)
    SELECT org_id, target, test_path,
           keep_last(coalesce(array_agg(duration_ms ORDER BY n) FILTER (WHERE sample), '{{}}'),
                     {window}),
           keep_last(array_agg(outcome ORDER BY n), {window})
    FROM history_samples GROUP BY org_id, target, test_path
    ON CONFLICT (org_id, target, test_path) DO UPDATE SET
        durations_ms = keep_last(h.durations_ms || excluded.durations_ms, {window}),
        outcomes = keep_last(h.outcomes || excluded.outcomes, {window}),
        updated_at = now()
), target_history_written AS (
    INSERT INTO target_history AS t (org_id, target, durations_ms)
    SELECT org_id, target, keep_last(array_agg(duration_ms ORDER BY n), {scope_window})
    FROM history_samples WHERE sample GROUP BY org_id, target
    ON CONFLICT (org_id, target) DO UPDATE SET
        durations_ms = keep_last(t.durations_ms || excluded.durations_ms, {scope_window}),
        updated_at = now()
)"""

_RECORD_SETUP = """
INSERT INTO target_history AS t (org_id, target, setups_ms)
SELECT org_id, target, ARRAY[$2::int] FROM groups WHERE group_id = $1 AND $2 > 0
ON CONFLICT (org_id, target) DO UPDATE SET
    setups_ms = keep_last(t.setups_ms || excluded.setups_ms, $3), updated_at = now()
"""


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
