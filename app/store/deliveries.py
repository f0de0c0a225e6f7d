"""The webhook inbox and the App's installations.

A delivery is inserted before the route answers 202 (`X-GitHub-Delivery` is the primary key,
so a repeat inserts nothing, unless the first one's processing failed: then the repeat, a
redelivery asked for on GitHub, is processed afresh; deliveries that arrive together share
one INSERT); the inbox
loop leases due deliveries with `FOR UPDATE SKIP LOCKED` and a `locked_until`, so several
replicas share the work and a delivery whose processor died is taken again once its lease
lapses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from app.database import Conn


@dataclass(frozen=True)
class NewDelivery:
    """A delivery as the webhook route records it; no body for an event we do not handle."""

    delivery_id: str
    event: str
    action: str | None
    installation_id: int | None
    body: bytes | None
    outcome: str | None = None


# One statement for a batch of deliveries; `clock_timestamp()` per row keeps their order for
# the inbox (which takes the oldest first) where `now()` would give them one time.
_RECORD = """
INSERT INTO webhook_deliveries (delivery_id, event, action, installation_id, body,
                                received_at, processed_at, outcome)
SELECT d.delivery_id, d.event, d.action, d.installation_id, d.body, clock_timestamp(),
       CASE WHEN d.body IS NULL THEN now() END, d.outcome
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bytea[], $6::text[])
     WITH ORDINALITY AS d (delivery_id, event, action, installation_id, body, outcome, n)
ORDER BY d.n
ON CONFLICT (delivery_id) DO UPDATE
    SET body = EXCLUDED.body, received_at = EXCLUDED.received_at,
        processed_at = EXCLUDED.processed_at, outcome = EXCLUDED.outcome, failed = false,
        attempts = 0, not_before = now(), locked_until = NULL
    WHERE webhook_deliveries.failed
RETURNING delivery_id
"""


async def record_deliveries(conn: Conn, deliveries: Sequence[NewDelivery]) -> set[str]:
    """Record deliveries (distinct ids) in one statement; returns the ids to process: not
    seen before, or seen and failed. A delivery without a body (an event we do not handle)
    is recorded as processed already."""
    rows = await conn.fetch(
        _RECORD,
        [d.delivery_id for d in deliveries],
        [d.event for d in deliveries],
        [d.action for d in deliveries],
        [d.installation_id for d in deliveries],
        [d.body for d in deliveries],
        [d.outcome for d in deliveries],
    )
    return {row["delivery_id"] for row in rows}


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    event: str
    body: bytes
    attempts: int
    waited_s: float  # since it was received


_CLAIM = """
UPDATE webhook_deliveries d
SET locked_until = now() + make_interval(secs => $2), attempts = d.attempts + 1
WHERE d.delivery_id IN (
    SELECT delivery_id FROM webhook_deliveries
    WHERE processed_at IS NULL AND not_before <= now()
      AND (locked_until IS NULL OR locked_until < now())
    ORDER BY received_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED)
RETURNING d.delivery_id, d.event, d.body, d.attempts, d.received_at,
          extract(epoch FROM now() - d.received_at)::float8 AS waited_s
"""


async def claim_deliveries(conn: Conn, *, limit: int, lease_s: float) -> list[Delivery]:
    """Lease up to `limit` due deliveries, oldest first."""
    rows = await conn.fetch(_CLAIM, limit, lease_s)
    rows = sorted(rows, key=lambda r: r["received_at"])
    return [
        Delivery(r["delivery_id"], r["event"], bytes(r["body"]), r["attempts"], r["waited_s"])
        for r in rows
    ]


_FINISH = """
UPDATE webhook_deliveries SET processed_at = now(), outcome = $2, body = NULL,
                              locked_until = NULL, failed = $3
WHERE delivery_id = $1
"""
_RETRY = """
UPDATE webhook_deliveries
SET not_before = now() + make_interval(secs => $2), outcome = $3, locked_until = NULL
WHERE delivery_id = $1
"""


async def finish_delivery(
    conn: Conn, delivery_id: str, *, outcome: str, failed: bool = False
) -> None:
    """Record what came of a delivery; a `failed` one is processed again if redelivered."""
    await conn.execute(_FINISH, delivery_id, outcome[:1000], failed)


async def retry_delivery(conn: Conn, delivery_id: str, *, delay_s: float, outcome: str) -> None:
    await conn.execute(_RETRY, delivery_id, delay_s, outcome[:1000])


async def release_delivery(conn: Conn, delivery_id: str) -> None:
    """Give a leased delivery back (its processor is stopping); attempts keep counting."""
    await conn.execute(
        "UPDATE webhook_deliveries SET locked_until = NULL WHERE delivery_id = $1", delivery_id
    )


# A batch of processed deliveries past the retention window, oldest first; rows another
# replica's sweep holds are skipped, not waited for.
_FORGET = """
DELETE FROM webhook_deliveries WHERE delivery_id IN (
    SELECT delivery_id FROM webhook_deliveries
    WHERE processed_at < now() - make_interval(secs => $1)
    ORDER BY processed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
"""


async def forget_deliveries(conn: Conn, *, older_than_s: float, limit: int) -> int:
    """Delete up to `limit` deliveries processed more than `older_than_s` ago; how many.
    Deliveries not processed yet are kept however old they are."""
    result: str = await conn.execute(_FORGET, older_than_s, limit)
    return int(result.split()[-1])


async def delivery_outcome(conn: Conn, delivery_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM webhook_deliveries WHERE delivery_id = $1", delivery_id
    )
    return row


# -- installations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InstallationRow:
    installation_id: int
    org_id: str
    repositories: tuple[str, ...]
    suspended: bool
    deleted: bool

    @property
    def active(self) -> bool:
        return not (self.suspended or self.deleted)


_UPSERT = """
INSERT INTO github_installations AS i (installation_id, org_id, account_type,
    repository_selection, repositories, suspended, deleted)
VALUES ($1, $2, $3, $4, $5::text[], $7, $8)
ON CONFLICT (installation_id) DO UPDATE SET
    org_id = EXCLUDED.org_id,
    account_type = coalesce(EXCLUDED.account_type, i.account_type),
    repository_selection = coalesce(EXCLUDED.repository_selection, i.repository_selection),
    repositories = CASE WHEN $9 THEN EXCLUDED.repositories ELSE ARRAY(
        SELECT DISTINCT r FROM unnest(i.repositories || $5::text[]) AS r
        WHERE NOT (lower(r) = ANY (SELECT lower(x) FROM unnest($6::text[]) AS x))) END,
    suspended = EXCLUDED.suspended,
    deleted = EXCLUDED.deleted,
    updated_at = now()
RETURNING installation_id, org_id, repositories, suspended, deleted
"""


async def save_installation(
    conn: Conn,
    *,
    installation_id: int,
    org_id: str,
    account_type: str | None,
    repository_selection: str | None,
    added: Sequence[str],
    removed: Sequence[str] = (),
    suspended: bool,
    deleted: bool,
    replace: bool = False,
) -> InstallationRow:
    """Insert or update an installation; `replace` sets its repositories to `added`."""
    row = await conn.fetchrow(
        _UPSERT, installation_id, org_id, account_type, repository_selection,
        list(added), list(removed), suspended, deleted, replace,
    )  # fmt: skip
    assert row is not None
    return _installation(row)


async def get_installation(conn: Conn, installation_id: int) -> InstallationRow | None:
    row = await conn.fetchrow(
        "SELECT installation_id, org_id, repositories, suspended, deleted "
        "FROM github_installations WHERE installation_id = $1",
        installation_id,
    )
    return None if row is None else _installation(row)


def _installation(row: asyncpg.Record) -> InstallationRow:
    return InstallationRow(
        installation_id=row["installation_id"],
        org_id=row["org_id"],
        repositories=tuple(row["repositories"]),
        suspended=row["suspended"],
        deleted=row["deleted"],
    )
