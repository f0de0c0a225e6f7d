"""Every bad input ends with one clear line on stderr, exit 2 (usage) or 1, no traceback."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from qgjob.cli import jobs
from tests.unit.cli.shell import Cli, one_error_line
from tests.unit.cli.standin import StandinState

SUBMIT = ("submit", "--org-id=qualgent", "--app-version-id=xyz123")
A_UUID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            (*SUBMIT, "--test=a.spec.js", "--target=ios"),
            "Error: --target must be one of emulator, device, browserstack (got 'ios')",
        ),
        (
            (*SUBMIT, "--test=a.spec.js", "--priority=urgent"),
            "Error: --priority must be one of low, normal, high (got 'urgent')",
        ),
        ((*SUBMIT, "--test="), "Error: --test must not be empty"),
        (
            (*SUBMIT, "--test=a.spec.js", "--head-sha=abc1234"),
            "Error: --head-sha needs --repo (the repository it is a commit of)",
        ),
        (
            (*SUBMIT, "--test=a.spec.js", "--repo=shop"),
            "Error: --repo must look like OWNER/NAME, e.g. acme/shop (got 'shop')",
        ),
        (
            (*SUBMIT, "--test=a.spec.js", "--repo=acme/shop", "--head-sha=XYZ"),
            "Error: --head-sha must be a commit SHA: 7 to 64 lowercase hex digits (got 'XYZ')",
        ),
        ((*SUBMIT, "--test=a.spec.js", "--test=  "), "Error: --test must not be empty"),
        (
            ("submit", "--org-id=", "--app-version-id=v", "--test=a"),
            "Error: --org-id must not be empty",
        ),
        (
            ("status", "--job-id=abc"),
            f"Error: --job-id must be a UUID such as {A_UUID} (got 'abc')",
        ),
        (("cancel", "--run-id=12"), "Error: --run-id must be a UUID such as"),
        (("cancel",), "Error: pass exactly one of --job-id or --run-id (neither was given)"),
        (
            ("status", f"--job-id={A_UUID}", f"--run-id={A_UUID}"),
            "Error: pass exactly one of --job-id or --run-id (both were given)",
        ),
        (("status", f"--job-id={A_UUID}", "--interval=0"), "Error: --interval must be"),
        (
            ("worker", "--target=emulator", "--command=true", "--heartbeat-interval=inf"),
            "Error: --heartbeat-interval must be a number of seconds above 0 (got inf)",
        ),
        (
            ("worker", "--target=emulator", "--executor=adb", "--boot-timeout=-5"),
            "Error: --boot-timeout must be a number of seconds above 0 (got -5)",
        ),
        (
            ("worker", "--target=emulator", "--command=true", "--prepare-timeout=0"),
            "Error: --prepare-timeout must be a number of seconds above 0 (got 0)",
        ),
        (
            ("list", "--org-id=q", "--status=DONE"),
            "Error: --status must be one of PENDING, ASSIGNED",
        ),
        (
            ("list", "--org-id=q", "--limit=0"),
            "Error: --limit must be a whole number of at least 1",
        ),
        (
            ("token", "create", "--org-id=q", "--role=root"),
            "Error: --role must be one of submitter",
        ),
        (("server", "--port=70000"), "Error: --port must be between 1 and 65535 (got 70000)"),
    ],
)
def test_usage_errors_exit_2(
    cli: Cli, state: StandinState, args: tuple[str, ...], expected: str
) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert one_error_line(result).startswith(expected)
    assert result.stdout == ""
    assert state.requests == []  # refused before anything was sent


def test_a_build_cache_that_is_a_file_is_refused(
    cli: Cli, state: StandinState, tmp_path: Path
) -> None:
    taken = tmp_path / "builds"
    taken.write_text("not a directory")
    result = cli("worker", "--target=emulator", "--command=true", f"--build-cache={taken}")
    assert result.exit_code == 2, result.output
    assert (
        one_error_line(result)
        == f"Error: --build-cache must be a directory (got the file {str(taken)!r})"
    )
    assert state.requests == []


def test_bad_server_url_is_a_usage_error(cli: Cli) -> None:
    result = cli("--server-url=localhost:8000", "stats")
    assert result.exit_code == 2
    assert "must be an http:// or https:// URL" in one_error_line(result)


def test_unreachable_server_names_the_url_and_suggests_qgjob_server(
    cli: Cli, refused_url: str
) -> None:
    result = cli("--server-url", refused_url, "stats")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert f"cannot reach the qgjob server at {refused_url}" in line
    assert "qgjob server" in line


def test_unauthorized_says_how_to_pass_a_token(cli: Cli) -> None:
    result = cli("stats", token=None)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "401" in line
    assert "--token" in line


def test_forbidden(cli: Cli) -> None:
    result = cli("token", "create", "--org-id=q", "--role=admin", token="submit-token")
    assert result.exit_code == 1
    assert "only an admin token may create tokens (HTTP 403" in one_error_line(result)


def test_unknown_job_is_not_found(cli: Cli) -> None:
    job_id = str(uuid.uuid4())
    result = cli("status", f"--job-id={job_id}")
    assert result.exit_code == 1
    assert one_error_line(result) == f"Error: job {job_id} not found (HTTP 404 not_found)"


def test_ids_and_test_paths_are_checked_before_anything_is_sent(
    cli: Cli, state: StandinState, tmp_path: Path
) -> None:
    absolute = cli(*SUBMIT, "--test=tests/a.spec.js", "--test=/abs/a.spec.js")
    assert absolute.exit_code == 2 and absolute.stdout == ""  # not even the banner
    assert one_error_line(absolute) == (
        "Error: --test '/abs/a.spec.js' must be relative to the project root, not absolute "
        "(e.g. tests/login.spec.ts)"
    )
    listed = tmp_path / "specs.txt"
    listed.write_text("tests/a.spec.ts\ntests/../../etc/passwd\n")
    escaping = cli(*SUBMIT, f"--tests-from={listed}")
    assert escaping.exit_code == 2
    assert one_error_line(escaping) == (
        f"Error: --tests-from {listed}: 'tests/../../etc/passwd' must stay inside the "
        "project: '..' is not allowed"
    )
    bad_org = cli("submit", "--org-id=acme!", "--app-version-id=v", "--test=a.spec.js")
    assert bad_org.exit_code == 2
    assert one_error_line(bad_org).startswith("Error: --org-id 'acme!' must be 1-64 characters")
    bad_version = cli("list", "--org-id=acme", "--app-version-id=v 1")
    assert one_error_line(bad_version).startswith("Error: --app-version-id 'v 1' must be 1-128")
    assert state.requests == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("submit", "--app-version-id=v", "--test=a"),
            "Error: missing option --org-id (see qgjob submit --help)",
        ),
        (("list",), "Error: missing option --org-id (see qgjob list --help)"),
        (("logs",), "Error: missing option --job-id (see qgjob logs --help)"),
        (("build", "show"), "Error: missing option --app-version-id (see qgjob build show --help)"),
        (
            ("logs", f"--job-id={A_UUID}", "--attempt=abc"),
            "Error: --attempt must be an integer (got 'abc')",
        ),
        (
            ("status", f"--job-id={A_UUID}", "--interval=often"),
            "Error: --interval must be a number (got 'often')",
        ),
        (("nonsense",), "Error: no such command 'nonsense' (see qgjob --help)"),
        (("stats", "--bogus"), "Error: no such option --bogus (see qgjob stats --help)"),
        (
            ("list", "--org-id=q", "--limt=3"),
            "Error: no such option --limt; did you mean --limit? (see qgjob list --help)",
        ),
        ((*SUBMIT, "--test"), "Error: option '--test' requires an argument"),
    ],
)
def test_click_usage_errors_are_one_line_exit_2(
    cli: Cli, state: StandinState, args: tuple[str, ...], expected: str
) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert one_error_line(result) == expected
    assert result.stdout == ""
    assert state.requests == []


def test_help_and_no_arguments_still_show_the_help(cli: Cli) -> None:
    for args in (["--help"], ["submit", "--help"], ["build", "--help"]):
        shown = cli(*args)
        assert shown.exit_code == 0, shown.output
        assert "Usage: qgjob" in shown.stdout
        assert shown.stderr == ""
    bare = cli()
    assert bare.exit_code == 2
    assert "Usage: qgjob" in bare.stdout
    assert "Error" not in bare.output


def test_ctrl_c_still_exits_130(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "call_api", interrupted)
    result = cli("stats")
    assert result.exit_code == 130
    assert "Traceback" not in result.output


def _qgjob(*args: str, url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {"QGJOB_SERVER_URL": url, "QGJOB_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "qgjob", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_real_entry_point_from_a_subprocess(refused_url: str, isolated_env: Path) -> None:
    bad = _qgjob(
        *SUBMIT, "--test=a.spec.js", "--target=ios", url=refused_url, data_dir=isolated_env
    )
    assert bad.returncode == 2
    assert (
        bad.stderr == "Error: --target must be one of emulator, device, browserstack (got 'ios')\n"
    )
    missing = _qgjob("logs", url=refused_url, data_dir=isolated_env)
    assert missing.returncode == 2
    # The program as it was run: `python -m qgjob` here.
    assert missing.stderr == "Error: missing option --job-id (see python -m qgjob logs --help)\n"
    down = _qgjob("stats", url=refused_url, data_dir=isolated_env)
    assert down.returncode == 1
    assert down.stderr.count("\n") == 1
    assert down.stderr.startswith(f"Error: cannot reach the qgjob server at {refused_url}")
    assert "Traceback" not in down.stderr
