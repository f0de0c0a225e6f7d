"""App JWT claims, clock-skew detection, and the installation token cache."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import jwt
import pytest

from github_app.auth import (
    InstallationToken,
    TokenCache,
    TokenKey,
    create_app_jwt,
    is_clock_skew_error,
    server_time,
    token_from_json,
)
from github_app.errors import UnexpectedResponse
from qgjob.settings import Secret

NOW = 1_800_000_000.0


def test_jwt_claims_verified_with_the_public_key(app_key: tuple[bytes, bytes]) -> None:
    private, public = app_key
    token = create_app_jwt(app_id=4242, private_key=Secret(private.decode()), now=NOW + 0.9)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    claims = jwt.decode(
        token, public, algorithms=["RS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims == {"iat": int(NOW) - 60, "exp": int(NOW) + 540, "iss": "4242"}
    assert claims["exp"] - NOW <= 540


def test_jwt_signed_with_another_key_does_not_verify(app_key: tuple[bytes, bytes]) -> None:
    from tests.standins.github import generate_app_key

    other_private, _ = generate_app_key()
    token = create_app_jwt(app_id="Iv1.abc", private_key=other_private, now=NOW)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, app_key[1], algorithms=["RS256"], options={"verify_exp": False})


@pytest.mark.parametrize(
    ("status", "message", "skew"),
    [
        (401, "'Expiration time' claim ('exp') is too far in the future", True),
        (
            401,
            "'Expiration time' claim ('exp') must be a numeric value representing the future "
            "time at which the assertion expires",
            True,
        ),
        (
            401,
            "'Issued at' claim ('iat') must be an Integer representing the time that the "
            "assertion was issued",
            True,
        ),
        (401, "A JSON web token could not be decoded", False),
        (401, "Bad credentials", False),
        (403, "'Expiration time' claim ('exp') is too far in the future", False),
    ],
)
def test_clock_skew_detection(status: int, message: str, skew: bool) -> None:
    assert is_clock_skew_error(status=status, message=message) is skew


def test_server_time_reads_http_dates() -> None:
    assert server_time("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777.0
    assert server_time(None) is None
    assert server_time("yesterday") is None


def token(expires_at: float, name: str = "t") -> InstallationToken:
    return InstallationToken(Secret(name), datetime.fromtimestamp(expires_at, UTC))


def test_token_from_json_masks_the_token() -> None:
    decoded = token_from_json(
        {
            "token": "ghs_secret",
            "expires_at": "2027-01-15T12:00:00Z",
            "repositories": [{"name": "r"}],
        }
    )
    assert decoded.token.reveal() == "ghs_secret"
    assert "ghs_secret" not in repr(decoded)
    assert decoded.expires_at == datetime(2027, 1, 15, 12, tzinfo=UTC)
    assert decoded.repositories == ("r",)
    with pytest.raises(UnexpectedResponse, match="expires_at"):
        token_from_json({"token": "x", "expires_at": "soon"})


def test_cache_keeps_tokens_until_five_minutes_before_expiry() -> None:
    cache = TokenCache()
    key = TokenKey.of(1)
    cache.put(key, token(NOW + 3600), now=NOW)
    assert cache.get(key, now=NOW) is not None
    assert cache.get(key, now=NOW + 3600 - 301) is not None
    assert cache.get(key, now=NOW + 3600 - 300) is None
    assert cache.get(TokenKey.of(1, ["repo"]), now=NOW) is None  # narrowed: another key
    assert cache.get(TokenKey.of(2), now=NOW) is None


def test_cache_invalidation_and_cleanup() -> None:
    cache = TokenCache()
    cache.put(TokenKey.of(1), token(NOW + 3600), now=NOW)
    cache.put(TokenKey.of(1, ["a"]), token(NOW + 3600), now=NOW)
    cache.put(TokenKey.of(2), token(NOW + 3600), now=NOW)
    cache.invalidate(1)
    assert cache.get(TokenKey.of(1), now=NOW) is None
    assert cache.get(TokenKey.of(1, ["a"]), now=NOW) is None
    assert cache.get(TokenKey.of(2), now=NOW) is not None
    cache.put(TokenKey.of(3), token(NOW + 9000), now=NOW + 4000)  # drops 2's stale token
    assert TokenKey.of(2) not in cache._tokens


async def test_one_mint_at_a_time_per_installation() -> None:
    cache = TokenCache()
    clock = [NOW]
    minted: list[int] = []
    gate = asyncio.Event()

    def minter(installation: int) -> Callable[[], Awaitable[InstallationToken]]:
        async def mint() -> InstallationToken:
            minted.append(installation)
            name = f"tok-{installation}-{len(minted)}"
            await gate.wait()
            return token(clock[0] + 3600, name)

        return mint

    async def get(installation: int) -> InstallationToken:
        key = TokenKey.of(installation)
        return await cache.get_or_mint(key, now=lambda: clock[0], mint=minter(installation))

    waiting = [asyncio.create_task(get(1)) for _ in range(10)]
    other = asyncio.create_task(get(2))
    await asyncio.sleep(0.01)
    assert minted == [1, 2]  # installation 2 is not held up by installation 1
    gate.set()
    tokens = await asyncio.gather(*waiting)
    assert {t.token.reveal() for t in tokens} == {"tok-1-1"}
    assert (await other).token.reveal().startswith("tok-2")
    assert minted == [1, 2]

    clock[0] += 3600 - 299  # within the 5-minute margin: mint again, once
    again = await asyncio.gather(*(get(1) for _ in range(5)))
    assert minted == [1, 2, 1]
    assert len({t.token.reveal() for t in again}) == 1


async def test_a_failed_mint_releases_the_lock() -> None:
    cache = TokenCache()

    async def broken() -> InstallationToken:
        raise RuntimeError("GitHub is down")

    async def working() -> InstallationToken:
        return token(NOW + 3600)

    with pytest.raises(RuntimeError):
        await cache.get_or_mint(TokenKey.of(1), now=lambda: NOW, mint=broken)
    assert not cache.lock(1).locked()
    assert await cache.get_or_mint(TokenKey.of(1), now=lambda: NOW, mint=working)
