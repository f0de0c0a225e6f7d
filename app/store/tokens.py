"""API tokens: created with a raw value shown once, kept only as a SHA-256 hash.

Tokens carry 256 random bits, so a fast hash is the right tool (no password stretching is
needed to resist guessing); lookups are by hash, which also makes them constant time.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from app.database import Conn
from qgjob.types import Role

TOKEN_PREFIX = "qgj_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: one token's role and org (None = every org)."""

    token_id: uuid.UUID
    role: Role
    org_id: str | None
    name: str = ""

    @property
    def label(self) -> str:
        """How runs it submits name their submitter: its name, or its id's first digits."""
        return self.name or f"token {self.token_id.hex[:8]}"

    def sees(self, org_id: str) -> bool:
        return self.org_id is None or self.org_id == org_id

    @property
    def org_scope(self) -> str | None:
        """The org every query must be limited to, or None for a fleet-wide admin/worker."""
        return self.org_id


def hash_token(raw: str) -> bytes:
    return hashlib.sha256(raw.encode()).digest()


def new_raw_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


_INSERT_TOKEN = """
WITH org AS (
    INSERT INTO orgs (org_id) SELECT $3 WHERE $3::text IS NOT NULL ON CONFLICT DO NOTHING
)
INSERT INTO api_tokens (token_id, token_hash, org_id, role, name) VALUES ($1, $2, $3, $4, $5)
"""

_FIND_TOKEN = """
SELECT token_id, role, org_id, name FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL
"""


async def create_token(
    conn: Conn, *, org_id: str | None, role: Role, name: str = ""
) -> tuple[str, Principal]:
    """A new token; returns the raw value (never stored) and what it grants."""
    raw = new_raw_token()
    token_id = uuid.uuid4()
    await conn.execute(_INSERT_TOKEN, token_id, hash_token(raw), org_id, role.value, name)
    return raw, Principal(token_id=token_id, role=role, org_id=org_id, name=name)


async def find_token(conn: Conn, raw: str) -> Principal | None:
    row = await conn.fetchrow(_FIND_TOKEN, hash_token(raw))
    if row is None:
        return None
    return Principal(
        token_id=row["token_id"], role=Role(row["role"]), org_id=row["org_id"], name=row["name"]
    )


_LIST_TOKENS = """
SELECT token_id, org_id, role::text AS role, name, created_at, revoked_at FROM api_tokens
WHERE ($1::text IS NULL OR org_id = $1)
ORDER BY created_at DESC, token_id
"""
_REVOKE = """
UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
WHERE token_id = $1 AND ($2::text IS NULL OR org_id = $2)
RETURNING token_id, org_id, role::text AS role, name, created_at, revoked_at
"""


async def list_tokens(conn: Conn, *, org_id: str | None) -> list[dict[str, object]]:
    """Every token of `org_id` (None: of every org, fleet-wide ones included), newest first."""
    return [dict(row) for row in await conn.fetch(_LIST_TOKENS, org_id)]


async def revoke_token(
    conn: Conn, token_id: uuid.UUID, *, org_scope: str | None
) -> dict[str, object] | None:
    """Revoke the token (again: nothing changes); None when it is unknown to `org_scope`."""
    row = await conn.fetchrow(_REVOKE, token_id, org_scope)
    return None if row is None else dict(row)
