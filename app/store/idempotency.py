"""Idempotency keys: a repeated submit returns the first answer and creates nothing.

The key row is inserted in the same transaction as the work it guards. A concurrent repeat
blocks on that row until the first transaction ends, then either finds the stored answer
(first one committed) or takes the key itself (first one rolled back).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from app.database import TxConn


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: bytes
    status_code: int
    body: Any


def request_hash(method: str, path: str, body: Any) -> bytes:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).digest()


_CLAIM = """
INSERT INTO idempotency_keys (org_id, key, request_hash) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING 1
"""
_FETCH = (
    "SELECT request_hash, status_code, response FROM idempotency_keys WHERE org_id=$1 AND key=$2"
)
_STORE = "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE org_id=$1 AND key=$2"


async def claim_key(conn: TxConn, *, org_id: str, key: str, digest: bytes) -> StoredAnswer | None:
    """Take the key inside the caller's transaction; if it was used already, the answer."""
    if await conn.fetchval(_CLAIM, org_id, key, digest):
        return None
    row = await conn.fetchrow(_FETCH, org_id, key)
    assert row is not None
    return StoredAnswer(bytes(row["request_hash"]), row["status_code"], row["response"])


async def store_answer(conn: TxConn, *, org_id: str, key: str, status_code: int, body: Any) -> None:
    await conn.execute(_STORE, org_id, key, status_code, body)
