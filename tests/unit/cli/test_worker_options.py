"""`qgjob worker --executor adb|browserstack`: options that cannot work are refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.cli.shell import Cli, one_error_line
from tests.unit.cli.standin import StandinState


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("--target=emulator", "--executor=ios"),
            "Error: --executor must be one of local, adb, browserstack (got 'ios')",
        ),
        (
            ("--target=browserstack", "--executor=adb"),
            "Error: --executor adb serves one --target, emulator or device",
        ),
        (
            ("--target=emulator", "--target=device", "--executor=adb"),
            "Error: --executor adb serves one --target, emulator or device",
        ),
        (
            ("--target=emulator", "--executor=adb", "--capacity=2"),
            "Error: --executor adb drives one device: --capacity must be 1",
        ),
        (
            ("--target=emulator", "--executor=adb", "--command=true"),
            "Error: --command and --prepare-command are for --executor local, not adb",
        ),
        (
            ("--target=emulator", "--executor=browserstack"),
            "Error: --executor browserstack serves --target browserstack only",
        ),
        (
            ("--target=browserstack", "--executor=browserstack"),
            "Error: --executor browserstack needs BROWSERSTACK_USERNAME and "
            "BROWSERSTACK_ACCESS_KEY",
        ),
        (
            ("--target=emulator", "--executor=adb", "--retries=-1"),
            "Error: --retries must be 0 or more",
        ),
    ],
)
def test_impossible_executor_options_exit_2(
    cli: Cli,
    state: StandinState,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    expected: str,
) -> None:
    monkeypatch.delenv("BROWSERSTACK_USERNAME", raising=False)
    monkeypatch.delenv("BROWSERSTACK_ACCESS_KEY", raising=False)
    result = cli("worker", *args)
    assert result.exit_code == 2, result.output
    assert one_error_line(result).startswith(expected)
    assert state.requests == []


def test_a_workspace_must_be_an_appwright_project(cli: Cli, tmp_path: Path) -> None:
    result = cli("worker", "--target=emulator", "--executor=adb", f"--workspace={tmp_path}")
    assert result.exit_code == 2
    assert "--workspace must be an AppWright project" in one_error_line(result)
