"""The outbox of GitHub writes: one row per check run, the last state wins.

`owe` replaces whatever was still owed for a check run with its newest requests. The outbox
loop takes one installation at a time with `FOR UPDATE SKIP LOCKED` on its row (so writes of
one installation are serial across every replica), sends that installation's oldest due
request while holding the lock, and records the outcome and the next time it may write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.database import Conn, TxConn

_OWE = """
INSERT INTO github_outbox AS o (check_key, installation_id, requests)
VALUES ($1, $2, $3)
ON CONFLICT (check_key) DO UPDATE SET
    requests = EXCLUDED.requests, version = o.version + 1, sent = 0,
    attempts = o.attempts, not_before = greatest(o.not_before, now()), updated_at = now()
"""
# A newer state replaces what was owed but keeps the failure streak: after a request that got
# no answer (a timeout), the older write may still land, so the newer one waits out the same
# delay and, like any retry, looks on GitHub first (`app/github/outbox.py` `_send`): never a
# second check run for a create that landed late.


async def owe(
    conn: Conn, *, check_key: int, installation_id: int, requests: dict[str, Any]
) -> None:
    """Owe GitHub `requests` ({name, head_sha, body, more}) for this check run."""
    await conn.execute(_OWE, check_key, installation_id, requests)


@dataclass(frozen=True)
class OwedWrite:
    check_key: int
    installation_id: int
    requests: dict[str, Any]
    version: int
    sent: int
    attempts: int
    repo: str
    github_id: int | None


# An installation that may write now and owes something due; locked for this transaction.
_TAKE_INSTALLATION = """
SELECT i.installation_id FROM github_installations i
WHERE i.next_write_at <= now() AND NOT i.suspended AND NOT i.deleted
  AND EXISTS (SELECT 1 FROM github_outbox o
              WHERE o.installation_id = i.installation_id AND o.not_before <= now())
ORDER BY i.next_write_at
LIMIT 1
FOR UPDATE SKIP LOCKED
"""
_NEXT_WRITE = """
SELECT o.check_key, o.installation_id, o.requests, o.version, o.sent, o.attempts,
       c.repo, c.github_id
FROM github_outbox o JOIN github_check_runs c USING (check_key)
WHERE o.installation_id = $1 AND o.not_before <= now()
ORDER BY o.updated_at, o.check_key
LIMIT 1
"""


async def take_write(conn: TxConn) -> OwedWrite | None:
    """The next write to send, its installation locked until the transaction ends."""
    installation_id = await conn.fetchval(_TAKE_INSTALLATION)
    if installation_id is None:
        return None
    row = await conn.fetchrow(_NEXT_WRITE, installation_id)
    return None if row is None else OwedWrite(**dict(row))


async def pace(conn: Conn, installation_id: int, *, wait_s: float) -> None:
    """No write for this installation before `wait_s` seconds from now."""
    await conn.execute(
        "UPDATE github_installations "
        "SET next_write_at = clock_timestamp() + make_interval(secs => $2) "
        "WHERE installation_id = $1",
        installation_id,
        wait_s,
    )


async def record_github_id(conn: Conn, check_key: int, github_id: int) -> None:
    await conn.execute(
        "UPDATE github_check_runs SET github_id = $2 WHERE check_key = $1", check_key, github_id
    )


_SENT_ONE = """
UPDATE github_outbox SET sent = sent + 1, attempts = 0, last_error = NULL, updated_at = now()
WHERE check_key = $1 AND version = $2
RETURNING sent, jsonb_array_length(requests -> 'more') + 1 AS total
"""


async def sent_one(conn: Conn, write: OwedWrite) -> None:
    """One request of this version went through; the row goes once all of them have."""
    row = await conn.fetchrow(_SENT_ONE, write.check_key, write.version)
    if row is not None and row["sent"] >= row["total"]:
        await conn.execute(
            "DELETE FROM github_outbox WHERE check_key = $1 AND version = $2",
            write.check_key,
            write.version,
        )


async def retry_later(conn: Conn, write: OwedWrite, *, delay_s: float, error: str) -> None:
    await conn.execute(
        "UPDATE github_outbox SET attempts = attempts + 1, last_error = $3, "
        "not_before = now() + make_interval(secs => $2) WHERE check_key = $1",
        write.check_key,
        delay_s,
        error[:1000],
    )


async def give_up(conn: Conn, write: OwedWrite, *, error: str) -> None:
    """Drop a write GitHub refuses for good (it stays visible in the log)."""
    await conn.execute(
        "DELETE FROM github_outbox WHERE check_key = $1 AND version = $2",
        write.check_key,
        write.version,
    )


async def drop_installation(conn: Conn, installation_id: int) -> int:
    """Forget what a deleted installation was owed."""
    result: str = await conn.execute(
        "DELETE FROM github_outbox WHERE installation_id = $1", installation_id
    )
    return int(result.split()[-1])
