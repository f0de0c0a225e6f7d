"""`qgjob build upload` and `show`: bad input is one clear line and exit 2, before any request.

The happy paths run against the real service (tests/integration/test_build_cli.py and the
acceptance test of late builds).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qgjob.cli.inputs import BadInput, parse_size
from tests.unit.cli.shell import Cli, one_error_line

NOWHERE = "http://127.0.0.1:9"  # nothing listens: any request would fail differently
SHA = "ab" * 32


@pytest.fixture
def cli() -> Cli:
    return Cli(NOWHERE)


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["app.exe"], "must end with .apk, .aab, .ipa or .app.zip (got 'app.exe')"),
        (["missing.apk"], "no build file at 'missing.apk'"),
        ([], "give the build file to upload (PATH), or --url and --sha256"),
        (["--url", "https://x/app.apk"], "--url needs --sha256"),
        (["--url", "ftp://x/app.apk", "--sha256", SHA], "--url must be an http:// or https://"),
        (["--url", "https://x/a.apk", "--sha256", "xyz"], "--sha256 must be 64 hexadecimal"),
        (["a.apk", "--url", "https://x/a.apk", "--sha256", SHA], "either a PATH to upload"),
        (["a.apk", "--filename", "b.apk"], "--filename goes with --url"),
    ],
)
def test_upload_bad_input(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], complaint: str
) -> None:
    (tmp_path / "a.apk").write_bytes(b"x")
    (tmp_path / "app.exe").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    result = cli("build", "upload", "--org-id", "acme", "--app-version-id", "v1", *args)
    assert result.exit_code == 2
    assert complaint in one_error_line(result)


def test_upload_checks_a_given_sha256_against_the_file(cli: Cli, tmp_path: Path) -> None:
    apk = tmp_path / "app.apk"
    apk.write_bytes(b"build")
    result = cli("build", "upload", "--org-id", "o", "--app-version-id", "v", str(apk),
                 "--sha256", SHA)  # fmt: skip
    assert result.exit_code == 2
    assert f"not the --sha256 given ({SHA})" in one_error_line(result)


@pytest.mark.parametrize(
    ("raw", "size"),
    [("20GiB", 20 * 1024**3), ("500MB", 500 * 1000**2), ("1048576", 1048576), ("1.5 KiB", 1536)],
)
def test_parse_size(raw: str, size: int) -> None:
    assert parse_size(raw, option="--build-cache-size") == size


@pytest.mark.parametrize("raw", ["", "lots", "-1GB", "10 parsecs", "0"])
def test_parse_size_refuses(raw: str) -> None:
    with pytest.raises(BadInput, match="--build-cache-size must be a size such as 20GiB"):
        parse_size(raw, option="--build-cache-size")
