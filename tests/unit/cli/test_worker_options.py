"""`qgjob worker --executor adb|browserstack`: options that cannot work are refused up front."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.standins.browserstack import create_browserstack_app, serve_in_thread
from tests.support.executors import workspace
from tests.support.servers import child_env
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


def test_refused_browserstack_credentials_stop_the_worker_at_start(tmp_path: Path) -> None:
    app = create_browserstack_app(username="ci", access_key="right-key")
    workspace(tmp_path / "app", {})
    with serve_in_thread(app, name="fake BrowserStack") as url:
        env = child_env(
            {
                "QGJOB_SERVER_URL": "http://127.0.0.1:9",  # never reached: the check comes first
                "QGJOB_TOKEN": "qgjob_unused",
                "QGJOB_BROWSERSTACK_API_URL": url,
                "BROWSERSTACK_USERNAME": "ci",
                "BROWSERSTACK_ACCESS_KEY": "wrong-key",
            }
        )
        args = ["worker", "--target=browserstack", "--executor=browserstack"]
        done = subprocess.run(
            [sys.executable, "-m", "qgjob", *args, f"--workspace={tmp_path / 'app'}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert lines and "BrowserStack refused the credentials" in lines[0]
    assert "BROWSERSTACK_ACCESS_KEY" in lines[0] and "wrong-key" not in done.stderr
    assert "Traceback" not in done.stderr
