"""Bearer-token authentication and the role checks that routes call.

Verified tokens are cached in-process for a few seconds so that a burst of submits does not
pay a database round trip per request; a revoked token stops working within that window.

Failed authentications (a malformed header, an unknown or revoked token) are counted per
client address: past `QGJOB_AUTH_FAILURES_MAX` in `QGJOB_AUTH_FAILURES_WINDOW_S` seconds the
client gets 429 with `Retry-After` for every request that carries credentials, valid or not,
until its oldest failure leaves the window. Guessing a 256-bit token is hopeless anyway; the
limit keeps a misconfigured or hostile client from spending a database round trip per try
and makes such a client visible in the log. Each replica counts on its own.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

import asyncpg
from starlette.requests import Request

from app.errors import Forbidden, TooManyRequests, Unauthorized
from app.store.tokens import Principal, find_token, hash_token
from qgjob.types import Role

logger = logging.getLogger(__name__)
CACHE_TTL_S = 5.0
CACHE_MAX = 10_000
CLIENTS_MAX = 10_000  # addresses tracked at once; beyond that the oldest are forgotten


@dataclass
class FailureLimit:
    """Failed authentications per client address in a sliding window. Pure: `now` is given."""

    max_failures: int = 30
    window_s: float = 60.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after_s(self, client: str, *, now: float) -> float | None:
        """Seconds until `client` may try again, or None when it may now."""
        failures = self._failures.get(client)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        if len(failures) < self.max_failures:
            return None
        return failures[0] + self.window_s - now

    def record_failure(self, client: str, *, now: float) -> None:
        failures = self._failures.pop(client, None) or deque(maxlen=self.max_failures)
        failures.append(now)
        self._failures[client] = failures  # re-inserted: the dict keeps recent clients last
        if len(self._failures) > CLIENTS_MAX:
            del self._failures[next(iter(self._failures))]


@dataclass
class TokenVerifier:
    pool: asyncpg.Pool
    limit: FailureLimit = field(default_factory=FailureLimit)
    _cache: dict[bytes, tuple[Principal, float]] = field(default_factory=dict)

    def forget(self, token_id: uuid.UUID) -> None:
        """Drop a revoked token from this process's cache at once (other replicas drop it
        within `CACHE_TTL_S`)."""
        for key, (principal, _) in list(self._cache.items()):
            if principal.token_id == token_id:
                del self._cache[key]

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
    verifier: TokenVerifier = request.state.services.tokens
    client = request.client.host if request.client is not None else "unknown"
    now = time.monotonic()
    wait_s = verifier.limit.retry_after_s(client, now=now)
    if wait_s is not None:
        raise TooManyRequests(
            f"too many failed authentications from {client}; "
            f"try again in {math.ceil(wait_s)} s with a valid token",
            retry_after_s=math.ceil(wait_s),
        )
    scheme, _, raw = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and raw.strip():
        principal = await verifier.verify(raw.strip())
    if principal is None:
        verifier.limit.record_failure(client, now=now)
        logger.warning("authentication failed client=%s path=%s", client, request.url.path)
        if scheme.lower() != "bearer" or not raw.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        raise Unauthorized("the token is not valid (unknown or revoked)")
    return principal


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"a {principal.role.value} token cannot do this; it needs: {allowed}")


def require_org(principal: Principal, org_id: str, *, doing: str = "act for") -> None:
    """For requests naming an org: the token must belong to it (or be fleet-wide)."""
    if not principal.sees(org_id):
        raise Forbidden(
            f"this token belongs to org {principal.org_id!r} and cannot {doing} {org_id!r}",
            field="org_id",
        )
