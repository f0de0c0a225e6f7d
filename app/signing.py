"""Signed, expiring tokens: the web pages' session cookies and read-only run links.

A token is `<payload>.<signature>`: the payload is base64url JSON holding the claims and
`e` (expiry, Unix seconds); the signature is HMAC-SHA256 over the purpose and the payload,
so a session cookie can never pass for a run link or the other way round.

The key is QGJOB_SECRET_KEY when set (every replica must share it), else a random key
generated once and kept in `<QGJOB_DATA_DIR>/secret.key` (mode 600), like the local admin
token. Replacing the key ends every session and invalidates every link.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qgjob.settings import Settings

KEY_FILE = "secret.key"


class SignatureError(Exception):
    """The token is malformed, was not signed with this key, or was signed for another use."""


class Expired(SignatureError):
    """The token was genuine but its time is up."""


@dataclass(frozen=True)
class Signer:
    key: bytes = field(repr=False)

    def sign(self, purpose: str, claims: dict[str, Any], *, expires_at: float) -> str:
        body = json.dumps({**claims, "e": int(expires_at)}, separators=(",", ":"))
        payload = _b64encode(body.encode())
        return f"{payload}.{self._mac(purpose, payload)}"

    def verify(self, purpose: str, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The claims of a genuine, unexpired token; SignatureError (or Expired) if not."""
        payload, dot, mac = token.partition(".")
        if not dot or not hmac.compare_digest(mac, self._mac(purpose, payload)):
            raise SignatureError("signature does not match")
        try:
            claims = json.loads(_b64decode(payload))
            expires_at = float(claims["e"])
        except (ValueError, KeyError, TypeError) as exc:
            raise SignatureError("malformed payload") from exc
        if not isinstance(claims, dict):
            raise SignatureError("malformed payload")
        if (time.time() if now is None else now) >= expires_at:
            raise Expired(f"expired at {expires_at:.0f}")
        return claims

    def _mac(self, purpose: str, payload: str) -> str:
        digest = hmac.new(self.key, f"{purpose}.{payload}".encode(), hashlib.sha256).digest()
        return _b64encode(digest)


def signer_for(settings: Settings) -> Signer:
    """The signer of this deployment (reads or creates the key file when no key is set)."""
    if settings.secret_key is not None:
        return Signer(settings.secret_key.reveal().encode())
    return Signer(ensure_key_file(settings.data_dir / KEY_FILE))


def ensure_key_file(path: Path) -> bytes:
    """The key in `path`, creating it (mode 600) if it does not exist yet.

    The new key is written in full to a private file first and then linked into place, which
    fails if another process got there first: everyone ends up with the one key."""
    try:
        return _check_key(path, path.read_bytes())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_urlsafe(48).encode() + b"\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _check_key(path, path.read_bytes())


def _check_key(path: Path, raw: bytes) -> bytes:
    key = raw.strip()
    if len(key) < 32:
        raise ValueError(f"the signing key in {path} is too short; delete the file to renew it")
    return key


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
