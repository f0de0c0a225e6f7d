"""Webhook signatures: `X-Hub-Signature-256` is `sha256=` + hex HMAC-SHA256 of the raw body.

Pure functions. The comparison is constant time (`hmac.compare_digest`), and the digest is
always computed over the raw bytes as received — never over re-serialised JSON.
"""

from __future__ import annotations

import hashlib
import hmac

from github_app.errors import InvalidSignature

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(body: bytes, *, secret: str | bytes) -> str:
    """The header value GitHub sends for `body` signed with `secret`."""
    return _PREFIX + hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, *, secret: str | bytes) -> None:
    """Raise `InvalidSignature` unless `signature` is the signature of `body` under `secret`."""
    if not secret:
        # An empty key still yields a valid-looking HMAC that anyone can compute.
        raise InvalidSignature("the webhook secret is not configured; refusing every delivery")
    if not signature:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER} header")
    if not signature.startswith(_PREFIX):
        raise InvalidSignature(f"{SIGNATURE_HEADER} must look like 'sha256=<64 hex digits>'")
    expected = sign(body, secret=secret).encode("ascii")
    # Compare bytes: compare_digest refuses non-ASCII str, and a header may hold anything.
    if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape")):
        raise InvalidSignature(f"{SIGNATURE_HEADER} does not match the request body")
