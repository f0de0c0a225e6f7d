"""Webhook signature checks: GitHub's documented test vector, tampering, absence."""

from __future__ import annotations

import pytest

from github_app.errors import InvalidSignature
from github_app.signatures import sign, verify_signature

# From docs.github.com "Validating webhook deliveries".
DOC_SECRET = "It's a Secret to Everybody"
DOC_BODY = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_sign_matches_githubs_test_vector() -> None:
    assert sign(DOC_BODY, secret=DOC_SECRET) == DOC_SIGNATURE


def test_good_signature_passes() -> None:
    verify_signature(DOC_BODY, DOC_SIGNATURE, secret=DOC_SECRET)
    verify_signature(DOC_BODY, DOC_SIGNATURE, secret=DOC_SECRET.encode())


@pytest.mark.parametrize(
    ("body", "signature", "reason"),
    [
        (b"Hello, World?", DOC_SIGNATURE, "does not match"),
        (DOC_BODY, DOC_SIGNATURE[:-1] + "0", "does not match"),
        (DOC_BODY, DOC_SIGNATURE.upper().replace("SHA256=", "sha256="), "does not match"),
        (DOC_BODY, None, "missing"),
        (DOC_BODY, "", "missing"),
        (DOC_BODY, DOC_SIGNATURE.removeprefix("sha256="), "must look like"),
        (DOC_BODY, "sha1=" + "0" * 40, "must look like"),
        (DOC_BODY, "sha256=ünïcode", "does not match"),
    ],
)
def test_bad_or_missing_signature_is_refused(
    body: bytes, signature: str | None, reason: str
) -> None:
    with pytest.raises(InvalidSignature, match=reason):
        verify_signature(body, signature, secret=DOC_SECRET)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(DOC_BODY, DOC_SIGNATURE, secret="another secret")


def test_empty_secret_refuses_everything() -> None:
    forged = sign(DOC_BODY, secret="")
    with pytest.raises(InvalidSignature, match="not configured"):
        verify_signature(DOC_BODY, forged, secret="")
