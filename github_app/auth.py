"""GitHub App authentication: the app JWT, clock-skew detection, and the installation token cache.

- The JWT is RS256 with `iat = now − 60` (GitHub's clock may be behind ours) and
  `exp = now + 540` (GitHub refuses more than 10 minutes); `now` is always passed in.
- GitHub answers 401 with "'Expiration time' claim ('exp') …" or "'Issued at' claim ('iat') …"
  when our clock is off; `is_clock_skew_error` recognises that and `server_time` reads the
  response's `Date` so the caller can sign once more on GitHub's time.
- `TokenCache` keeps installation tokens until 5 minutes before they expire, keyed by
  installation and the repositories a token was narrowed to, and lets one coroutine at a time
  mint for an installation (the others wait and then find the fresh token).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import jwt

from github_app.errors import UnexpectedResponse
from github_app.fields import optional, required
from qgjob.settings import Secret

JWT_BACKDATE_S = 60
JWT_LIFETIME_S = 540
TOKEN_REFRESH_MARGIN_S = 300.0
_SKEW = re.compile(r"claim \('(?:exp|iat)'\)")


def app_jwt_claims(*, app_id: str | int, now: float) -> dict[str, Any]:
    """The claims of the app JWT at time `now` (epoch seconds)."""
    issued = int(now)
    # PyJWT only encodes a string `iss`; GitHub accepts the app id or the client id as one.
    return {"iat": issued - JWT_BACKDATE_S, "exp": issued + JWT_LIFETIME_S, "iss": str(app_id)}


def create_app_jwt(*, app_id: str | int, private_key: Secret | str | bytes, now: float) -> str:
    """An RS256 JWT that authenticates as the App itself (for `/app/…` endpoints)."""
    key = private_key.reveal() if isinstance(private_key, Secret) else private_key
    return jwt.encode(app_jwt_claims(app_id=app_id, now=now), key, algorithm="RS256")


def is_clock_skew_error(*, status: int, message: str) -> bool:
    """Whether a response says the JWT's iat/exp disagree with GitHub's clock."""
    return status == 401 and bool(_SKEW.search(message))


def server_time(date_header: str | None) -> float | None:
    """Epoch seconds from an HTTP `Date` header, or None if absent or unreadable."""
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class InstallationToken:
    """An installation access token; `token` masks itself in reprs and logs."""

    token: Secret
    expires_at: datetime
    permissions: Mapping[str, str] = field(default_factory=dict)
    repositories: tuple[str, ...] | None = None  # names it was narrowed to; None: all

    def seconds_left(self, now: float) -> float:
        return self.expires_at.timestamp() - now

    def is_fresh(self, now: float, *, margin_s: float = TOKEN_REFRESH_MARGIN_S) -> bool:
        """Usable for at least `margin_s` more seconds."""
        return self.seconds_left(now) > margin_s


def token_from_json(data: Mapping[str, Any]) -> InstallationToken:
    """Decode a `POST /app/installations/{id}/access_tokens` response body."""
    err = UnexpectedResponse
    raw_expiry = required(data, "expires_at", str, error=err)
    try:
        expires_at = datetime.fromisoformat(raw_expiry.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UnexpectedResponse(f"expires_at is not a timestamp: {raw_expiry!r}") from exc
    if expires_at.tzinfo is None:
        raise UnexpectedResponse(f"expires_at has no time zone: {raw_expiry!r}")
    repos = optional(data, "repositories", list, error=err)
    return InstallationToken(
        token=Secret(required(data, "token", str, error=err)),
        expires_at=expires_at,
        permissions=dict(optional(data, "permissions", dict, error=err) or {}),
        repositories=None if repos is None else tuple(str(r.get("name", "")) for r in repos),
    )


@dataclass(frozen=True)
class TokenKey:
    """What a cached token is good for: one installation, maybe narrowed to some repositories
    and permissions."""

    installation_id: int
    repositories: frozenset[str] | None = None
    permissions: frozenset[tuple[str, str]] | None = None  # None: all the App was granted

    @classmethod
    def of(
        cls,
        installation_id: int,
        repositories: Iterable[str] | None = None,
        permissions: Mapping[str, str] | None = None,
    ) -> TokenKey:
        return cls(
            installation_id,
            None if repositories is None else frozenset(repositories),
            None if permissions is None else frozenset(permissions.items()),
        )


class TokenCache:
    """Installation tokens per `TokenKey`: fresh until `margin_s` before expiry, minted singly."""

    def __init__(self, *, margin_s: float = TOKEN_REFRESH_MARGIN_S) -> None:
        self.margin_s = margin_s
        self._tokens: dict[TokenKey, InstallationToken] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def get(self, key: TokenKey, *, now: float) -> InstallationToken | None:
        """The cached token for `key` if it is still fresh at `now`."""
        token = self._tokens.get(key)
        return token if token is not None and token.is_fresh(now, margin_s=self.margin_s) else None

    def put(self, key: TokenKey, token: InstallationToken, *, now: float) -> None:
        """Cache `token`, dropping tokens that have gone stale (bounded by live installations)."""
        stale = [k for k, t in self._tokens.items() if not t.is_fresh(now, margin_s=self.margin_s)]
        for old in stale:
            del self._tokens[old]
        self._tokens[key] = token

    def invalidate(self, installation_id: int) -> None:
        """Forget every token of an installation (after a 401, a suspension or an uninstall)."""
        for key in [k for k in self._tokens if k.installation_id == installation_id]:
            del self._tokens[key]

    def lock(self, installation_id: int) -> asyncio.Lock:
        """The lock that serialises minting for one installation."""
        return self._locks.setdefault(installation_id, asyncio.Lock())

    async def get_or_mint(
        self,
        key: TokenKey,
        *,
        now: Callable[[], float],
        mint: Callable[[], Awaitable[InstallationToken]],
    ) -> InstallationToken:
        """A fresh token for `key`: cached, or minted by `mint` under the installation's lock."""
        token = self.get(key, now=now())
        if token is not None:
            return token
        async with self.lock(key.installation_id):
            # Whoever held the lock before us may just have minted what we need.
            token = self.get(key, now=now())
            if token is None:
                token = await mint()
                self.put(key, token, now=now())
            return token
