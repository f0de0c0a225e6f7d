"""`qgjob server` hands its settings to `app.main.serve`, imported only when it runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qgjob.cli.main import app
from qgjob.settings import Settings


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    calls: list[Settings] = []
    monkeypatch.setattr("app.main.serve", calls.append)
    return calls


def test_startup_failure_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.main import StartupError

    def fail(settings: Settings) -> None:
        raise StartupError("cannot connect to PostgreSQL at db:5432/qgjob: refused")

    monkeypatch.setattr("app.main.serve", fail)
    result = CliRunner().invoke(app, ["server"])
    assert result.exit_code == 1
    assert "cannot connect to PostgreSQL at db:5432/qgjob" in result.output
    assert "Traceback" not in result.output


def test_server_passes_host_and_port(served: list[Settings], isolated_env: Path) -> None:
    result = CliRunner().invoke(app, ["server", "--host", "192.0.2.10", "--port", "9001"])
    assert result.exit_code == 0, result.output
    (settings,) = served
    assert (settings.host, settings.port) == ("192.0.2.10", 9001)
    assert settings.data_dir == isolated_env


def test_server_defaults_come_from_the_environment(served: list[Settings]) -> None:
    result = CliRunner().invoke(app, ["server"], env={"QGJOB_PORT": "8123"})
    assert result.exit_code == 0, result.output
    assert (served[0].host, served[0].port) == ("127.0.0.1", 8123)


def test_bad_environment_is_one_line_naming_the_variable(served: list[Settings]) -> None:
    result = CliRunner().invoke(app, ["server"], env={"QGJOB_PORT": "eighty"})
    assert result.exit_code == 2
    assert result.stderr == "Error: QGJOB_PORT must be a whole number, got 'eighty'\n"
    assert served == []
