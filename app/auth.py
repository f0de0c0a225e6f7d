"""Bearer-token authentication and the role checks that routes call.

Verified tokens are cached in-process for a few seconds so that a burst of submits does not
pay a database round trip per request; a revoked token stops working within that window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg
from starlette.requests import Request

from app.errors import Forbidden, Unauthorized
from app.store.tokens import Principal, find_token, hash_token
from qgjob.types import Role

CACHE_TTL_S = 5.0
CACHE_MAX = 10_000


@dataclass
class TokenVerifier:
    pool: asyncpg.Pool
    _cache: dict[bytes, tuple[Principal, float]] = field(default_factory=dict)

    async def verify(self, raw: str) -> Principal | None:
        key = hash_token(raw)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = await find_token(self.pool, raw)
        if principal is not None:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = (principal, now + CACHE_TTL_S)
        return principal


async def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized(
            "missing credentials: send 'Authorization: Bearer <token>' "
            "(create a token with `qgjob token create`)"
        )
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    verifier: TokenVerifier = request.state.services.tokens
    principal = await verifier.verify(raw.strip())
    if principal is None:
        raise Unauthorized("the token is not valid (unknown or revoked)")
    return principal


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"a {principal.role.value} token cannot do this; it needs: {allowed}")


def require_org(principal: Principal, org_id: str) -> None:
    """For writes naming an org: the token must belong to it (or be fleet-wide)."""
    if not principal.sees(org_id):
        raise Forbidden(
            f"this token belongs to org {principal.org_id!r} and cannot act for {org_id!r}",
            field="org_id",
        )
