"""BrowserStack uploads kept on the service: one `bs://` url per (org, build sha256, account).

`lease_upload` is one atomic statement: it hands out the upload lease when there is no url
yet (or the caller says the stored url has expired) and no live lease; otherwise it says
what there is, so that exactly one worker uploads while the others wait for its url.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.database import Conn

_COLUMNS = "org_id, sha256, account, app_url, custom_id, uploaded_at, lease_id, lease_expires_at"

_GET = f"""
SELECT {_COLUMNS}, now() AS now FROM browserstack_apps
WHERE org_id = $1 AND sha256 = $2 AND account = $3
"""

# A new row, or an existing one whose url is missing or named stale, and whose lease is free.
_LEASE = f"""
INSERT INTO browserstack_apps AS b (org_id, sha256, account, lease_id, lease_expires_at)
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
ON CONFLICT (org_id, sha256, account) DO UPDATE
   SET lease_id = excluded.lease_id, lease_expires_at = excluded.lease_expires_at,
       updated_at = now()
 WHERE (b.app_url IS NULL OR b.app_url = $6)
   AND (b.lease_expires_at IS NULL OR b.lease_expires_at <= now())
RETURNING {_COLUMNS}, now() AS now
"""

_STORE = f"""
INSERT INTO browserstack_apps AS b (org_id, sha256, account, app_url, custom_id, uploaded_at)
VALUES ($1, $2, $3, $4, $5, now())
ON CONFLICT (org_id, sha256, account) DO UPDATE
   SET app_url = excluded.app_url, custom_id = excluded.custom_id, uploaded_at = now(),
       lease_id = CASE WHEN b.lease_id = $6 THEN NULL ELSE b.lease_id END,
       lease_expires_at = CASE WHEN b.lease_id = $6 THEN NULL ELSE b.lease_expires_at END,
       updated_at = now()
RETURNING {_COLUMNS}, now() AS now
"""

_GIVE_UP = """
UPDATE browserstack_apps SET lease_id = NULL, lease_expires_at = NULL, updated_at = now()
WHERE org_id = $1 AND sha256 = $2 AND account = $3 AND lease_id = $4
"""


@dataclass(frozen=True)
class AppKey:
    org_id: str
    sha256: str
    account: str

    def args(self) -> tuple[str, str, str]:
        return (self.org_id, self.sha256, self.account)


@dataclass(frozen=True)
class LeaseAnswer:
    """`granted` with the lease, else the stored url, else how long the current lease lasts."""

    granted: bool
    record: dict[str, Any]
    lease_left_s: float


async def get_app(conn: Conn, key: AppKey) -> dict[str, Any] | None:
    row = await conn.fetchrow(_GET, *key.args())
    return dict(row) if row is not None else None


async def lease_upload(
    conn: Conn, key: AppKey, *, lease_s: float, replaces: str | None
) -> LeaseAnswer:
    lease_id = uuid.uuid4()
    row = await conn.fetchrow(_LEASE, *key.args(), lease_id, lease_s, replaces)
    if row is not None:
        return LeaseAnswer(granted=True, record=dict(row), lease_left_s=lease_s)
    current = await conn.fetchrow(_GET, *key.args())
    assert current is not None, "the row exists: the insert conflicted with it"
    record = dict(current)
    left = 0.0
    if record["lease_expires_at"] is not None:
        left = max(0.0, (record["lease_expires_at"] - record["now"]).total_seconds())
    return LeaseAnswer(granted=False, record=record, lease_left_s=left)


async def store_app(
    conn: Conn, key: AppKey, *, app_url: str, custom_id: str | None, lease_id: uuid.UUID | None
) -> dict[str, Any]:
    row = await conn.fetchrow(_STORE, *key.args(), app_url, custom_id, lease_id)
    assert row is not None
    return dict(row)


async def give_up_lease(conn: Conn, key: AppKey, lease_id: uuid.UUID) -> bool:
    done: str = await conn.execute(_GIVE_UP, *key.args(), lease_id)
    return done.endswith(" 1")
