"""Settings from global options, token resolution, and how errors become exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from qgjob.cli.context import EXIT_FAILURE, EXIT_USAGE, GlobalOptions, exit_code_for, resolve_token
from qgjob.cli.inputs import BadInput
from qgjob.errors import Conflict, NotFound, ServerUnreachable, Unauthorized, ValidationFailed
from qgjob.settings import SettingsError


def test_flag_beats_environment_beats_local_file(tmp_path: Path) -> None:
    (tmp_path / "admin.token").write_text("local-token\n")
    env = {"QGJOB_TOKEN": "env-token", "QGJOB_DATA_DIR": str(tmp_path)}
    assert resolve_token(GlobalOptions(token="flag-token").settings(env)) == "flag-token"
    assert resolve_token(GlobalOptions().settings(env)) == "env-token"
    del env["QGJOB_TOKEN"]
    assert resolve_token(GlobalOptions().settings(env)) == "local-token"


def test_no_token_anywhere_sends_none(tmp_path: Path) -> None:
    assert resolve_token(GlobalOptions().settings({"QGJOB_DATA_DIR": str(tmp_path)})) is None
    (tmp_path / "admin.token").write_text("  \n")
    assert resolve_token(GlobalOptions().settings({"QGJOB_DATA_DIR": str(tmp_path)})) is None


def test_server_url_flag_wins_and_is_checked() -> None:
    env = {"QGJOB_SERVER_URL": "http://env:1"}
    assert GlobalOptions(server_url="http://flag:2/").settings(env).server_url == "http://flag:2"
    assert GlobalOptions().settings(env).server_url == "http://env:1"
    assert GlobalOptions().settings({}).server_url == "http://127.0.0.1:8000"
    with pytest.raises(SettingsError, match="http:// or https://"):
        GlobalOptions(server_url="localhost:8000").settings({})


def test_token_is_masked_in_settings() -> None:
    settings = GlobalOptions(token="s3cret").settings({})
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadInput("--target must be one of …"), EXIT_USAGE),
        (SettingsError("QGJOB_PORT must be …"), EXIT_USAGE),
        (ValidationFailed(422, "invalid_input", "bad", "tests"), EXIT_USAGE),
        (Unauthorized(401, "unauthorized", "no token"), EXIT_FAILURE),
        (NotFound(404, "not_found", "job x not found"), EXIT_FAILURE),
        (Conflict(409, "job_finished", "already COMPLETED"), EXIT_FAILURE),
        (ServerUnreachable("http://h:1", "refused"), EXIT_FAILURE),
    ],
)
def test_exit_codes(error: Exception, code: int) -> None:
    assert exit_code_for(error) == code
