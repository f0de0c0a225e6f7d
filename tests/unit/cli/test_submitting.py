"""What `qgjob submit` says beyond one answer: repeated tests, `--wait` with its timeout and
its JUnit file, and counts in the right number; against the stand-in API on 127.0.0.1."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from qgjob.cli.progress import Waited
from qgjob.cli.submitting import drop_repeats, report_end
from qgjob.models import Run
from tests.unit.cli.shell import Cli, one_error_line
from tests.unit.cli.standin import StandinState, run_object

SUBMIT = ("submit", "--org-id=qualgent", "--app-version-id=xyz123")
# --wait against the stand-in: its jobs never start, so the run times out at once.
WAIT = ("--wait", "--timeout=0.5", "--interval=0.05")


def test_repeated_tests_are_submitted_once_and_said_so(cli: Cli, state: StandinState) -> None:
    result = cli(
        *SUBMIT, "--test=tests/a.spec.ts", "--test=tests/b.spec.ts", "--test=tests/a.spec.ts"
    )
    assert result.exit_code == 0, result.output
    assert "ℹ tests/a.spec.ts was given twice; submitting it once" in result.stdout.splitlines()
    assert state.requests[-1]["json"]["tests"] == ["tests/a.spec.ts", "tests/b.spec.ts"]


def test_repeats_go_to_stderr_with_json(cli: Cli, state: StandinState) -> None:
    result = cli(*SUBMIT, *["--test=tests/a.spec.ts"] * 3, "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["jobs"]) == 1
    assert result.stderr == "ℹ tests/a.spec.ts was given 3 times; submitting it once\n"


def test_drop_repeats_keeps_the_first_order() -> None:
    assert drop_repeats(["b", "a", "b", "c", "a", "b"]) == (["b", "a", "c"], {"b": 3, "a": 2})
    assert drop_repeats(["a"]) == (["a"], {})


def test_a_timeout_is_shown_as_given_and_one_job_is_one_job(cli: Cli, state: StandinState) -> None:
    result = cli(*SUBMIT, "--test=tests/a.spec.ts", *WAIT)
    assert result.exit_code == 3, result.output
    lines = result.stdout.splitlines()
    (run_id,) = state.runs
    assert f"✓ Run submitted: {run_id} (1 job)" in lines
    assert lines[-1] == f"✗ Run {run_id} timed out after 0.5 s; 1 unfinished job cancelled"


def test_wait_junit_says_where_it_was_written(
    cli: Cli, state: StandinState, tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    result = cli(*SUBMIT, "--test=tests/a.spec.ts", *WAIT, "--junit", str(junit))
    assert result.exit_code == 3, result.output
    assert junit.read_text().startswith("<testsuites")
    assert f"✓ JUnit XML written to {junit}" in result.stdout.splitlines()
    with_json = cli(*SUBMIT, "--test=tests/a.spec.ts", *WAIT, "--junit", str(junit), "--json")
    assert with_json.exit_code == 3, with_json.output
    assert json.loads(with_json.stdout)["timed_out"] is True
    assert with_json.stderr == f"✓ JUnit XML written to {junit}\n"


def test_the_end_of_a_run_of_one_test_is_singular(cli: Cli, state: StandinState) -> None:
    run_id = json.loads(cli(*SUBMIT, "--test=tests/a.spec.ts", "--json").stdout)["run_id"]
    for job in state.jobs.values():
        job.update(status="COMPLETED", outcome="passed")
    run = Run.model_validate(run_object(state, run_id, with_jobs=False))
    printed = io.StringIO()
    out = Console(file=printed, width=200)
    report_end(out, Waited(run=run, timed_out=False, elapsed_s=1.0), timeout_s=None)
    assert printed.getvalue() == f"✓ 1 test passed (run {run_id})\n"
    watched = cli("status", f"--run-id={run_id}", "--watch", "--interval=0.01")
    assert watched.exit_code == 0, watched.output
    assert watched.stdout.splitlines()[-1] == "✓ Run completed: 1 of 1 job"


def test_source_help_lists_what_is_accepted(cli: Cli) -> None:
    result = cli("submit", "--help", COLUMNS="200")
    assert result.exit_code == 0, result.output
    assert "Who submits: cli|api|github|actions." in result.stdout


def test_build_show_with_a_token_for_every_org_asks_for_the_option(cli: Cli) -> None:
    result = cli("build", "show", "--app-version-id=v1", token="every-org-token")
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "Error: --org-id is required with a token that serves every org (HTTP 422 invalid_input)"
    )


def test_the_401_hint_is_given_once(cli: Cli) -> None:
    result = cli("stats", token=None)
    assert result.exit_code == 1
    assert one_error_line(result).count("qgjob token create") == 1


def test_qgjob_run_junit_says_where_it_was_written(
    cli: Cli, state: StandinState, tmp_path: Path
) -> None:
    run_id = json.loads(cli(*SUBMIT, "--test=tests/a.spec.ts", "--json").stdout)["run_id"]
    junit = tmp_path / "junit.xml"
    saved = cli("run", "--run-id", run_id, "--junit", str(junit), "--json")
    assert saved.exit_code == 0, saved.output
    assert json.loads(saved.stdout)["run_id"] == run_id
    assert saved.stderr == f"✓ JUnit XML written to {junit}\n"
    assert junit.read_text().startswith("<testsuites")
    nested = tmp_path / "new" / "dir" / "j.xml"  # a CI step's fresh path: folders are made
    made = cli("run", "--run-id", run_id, "--junit", str(nested))
    assert made.exit_code == 0, made.output
    assert f"✓ JUnit XML written to {nested}" in made.stdout.splitlines()
    assert nested.read_text().startswith("<testsuites")
