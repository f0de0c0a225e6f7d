"""`qgjob token create`, and which token the CLI sends."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.cli.shell import Cli
from tests.unit.cli.standin import StandinState


def test_token_create_prints_the_raw_token_once_with_a_warning(
    cli: Cli, state: StandinState
) -> None:
    result = cli("token", "create", "--org-id=acme", "--role=submitter", "--name=ci")
    assert result.exit_code == 0, result.output
    (issued,) = [raw for raw, (org, _) in state.tokens.items() if org == "acme"]
    assert f"ℹ Token: {issued}" in result.stdout.splitlines()
    assert "will not be shown again" in result.stdout
    assert state.requests[-1]["json"] == {"org_id": "acme", "role": "submitter", "name": "ci"}


def test_token_create_json(cli: Cli, state: StandinState) -> None:
    result = cli("token", "create", "--org-id", "acme", "--role", "WORKER", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert state.tokens[answer["token"]] == ("acme", "worker")
    assert answer["org_id"] == "acme"
    assert answer["role"] == "worker"
    assert "token_id" in answer


def test_flag_token_beats_the_environment(cli: Cli, state: StandinState) -> None:
    result = cli("--token=submit-token", "stats", token="good-token")
    assert result.exit_code == 0, result.output
    assert state.requests[-1]["authorization"] == "Bearer submit-token"


def test_environment_token_beats_the_local_file(
    cli: Cli, state: StandinState, isolated_env: Path
) -> None:
    (isolated_env / "admin.token").write_text("submit-token\n")
    assert cli("stats", token="good-token").exit_code == 0
    assert state.requests[-1]["authorization"] == "Bearer good-token"


def test_local_admin_token_is_used_when_nothing_else_is_given(
    cli: Cli, state: StandinState, isolated_env: Path
) -> None:
    (isolated_env / "admin.token").write_text("good-token\n")
    result = cli("stats", token=None)
    assert result.exit_code == 0, result.output
    assert state.requests[-1]["authorization"] == "Bearer good-token"
