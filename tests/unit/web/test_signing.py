"""Signed tokens and run links: genuine ones verify until they expire; nothing else does."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from app.links import RUN_LINK, run_details_url
from app.signing import Expired, SignatureError, Signer, ensure_key_file, signer_for
from qgjob.settings import Secret, Settings, SettingsError

KEY = b"k" * 48
NOW = 1_800_000_000.0


def test_a_token_verifies_until_it_expires() -> None:
    signer = Signer(KEY)
    token = signer.sign("session", {"t": "abc"}, expires_at=NOW + 10)
    assert signer.verify("session", token, now=NOW + 9.9) == {"t": "abc", "e": NOW + 10}
    with pytest.raises(Expired):
        signer.verify("session", token, now=NOW + 10)


def test_a_token_signed_for_one_use_is_refused_for_another() -> None:
    signer = Signer(KEY)
    token = signer.sign("session", {"t": "abc"}, expires_at=NOW + 10)
    with pytest.raises(SignatureError):
        signer.verify(RUN_LINK, token, now=NOW)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: "e30" + t[t.index(".") :],  # payload swapped for {}
        lambda t: t.replace(".", ""),  # no separator
        lambda t: "",
    ],
)
def test_a_changed_token_is_refused(mangle: object) -> None:
    signer = Signer(KEY)
    token = signer.sign("session", {"t": "abc"}, expires_at=NOW + 10)
    with pytest.raises(SignatureError):
        signer.verify("session", mangle(token), now=NOW)  # type: ignore[operator]


def test_another_key_does_not_verify() -> None:
    token = Signer(KEY).sign("session", {}, expires_at=NOW + 10)
    with pytest.raises(SignatureError):
        Signer(b"x" * 48).verify("session", token, now=NOW)


def test_the_key_file_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    first = ensure_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_key_file(path) == first
    assert len(first) >= 32
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_a_short_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("short\n")
    with pytest.raises(ValueError, match="too short"):
        ensure_key_file(path)


def test_the_configured_key_wins_over_the_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=Secret("s" * 40))
    assert signer_for(settings).key == b"s" * 40
    assert not (tmp_path / "secret.key").exists()
    with pytest.raises(SettingsError, match="QGJOB_SECRET_KEY must be at least 32"):
        Settings.from_env({"QGJOB_SECRET_KEY": "too-short"})


def test_run_details_url_is_a_signed_link_under_the_public_url(tmp_path: Path) -> None:
    run_id = uuid.uuid4()
    settings = Settings.from_env(
        {"QGJOB_PUBLIC_URL": "https://ci.example.com/qgjob/", "QGJOB_WEB_LINK_TTL_S": "60"},
        data_dir=tmp_path,
    )
    url = run_details_url(settings, "acme", run_id, now=NOW)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"https://ci.example.com/qgjob/ui/runs/{run_id}"
    )
    view = parse_qs(parts.query)["view"][0]
    claims = signer_for(settings).verify(RUN_LINK, view, now=NOW + 59)
    assert claims == {"o": "acme", "r": str(run_id), "e": NOW + 60}
    with pytest.raises(Expired):
        signer_for(settings).verify(RUN_LINK, view, now=NOW + 60)


def test_without_a_public_url_links_use_the_server_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, server_url="http://qgjob.internal:8000")
    assert run_details_url(settings, "acme", "r1").startswith(
        "http://qgjob.internal:8000/ui/runs/r1?view="
    )
