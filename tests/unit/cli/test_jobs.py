"""`qgjob submit / status / list / cancel / stats` against the stand-in API on 127.0.0.1."""

from __future__ import annotations

import json
import re
import uuid

from tests.unit.cli.shell import Cli, one_error_line
from tests.unit.cli.standin import StandinState

UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SUBMIT = ("submit", "--org-id=qualgent", "--app-version-id=xyz123")


def submit_one(cli: Cli, state: StandinState) -> str:
    result = cli(*SUBMIT, "--test=tests/onboarding.spec.js", "--json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.stdout)["jobs"][0]["job_id"])


def test_submit_prints_the_seed_lines(cli: Cli, state: StandinState) -> None:
    result = cli(*SUBMIT, "--test=tests/onboarding.spec.js")
    assert result.exit_code == 0, result.output
    (job_id,) = state.jobs
    assert result.stdout.splitlines() == [
        "ℹ Submitting test job...",
        "ℹ Organization: qualgent",
        "ℹ App Version: xyz123",
        "ℹ Test: tests/onboarding.spec.js",
        "ℹ Target: emulator",
        "ℹ Priority: normal",
        "✓ Job submitted successfully!",
        f"ℹ Job ID: {job_id}",
        "ℹ Status: PENDING",
        f"ℹ Check status with: qgjob status --job-id={job_id}",
    ]
    assert result.stderr == ""


def test_submit_goes_through_runs_as_cli_with_an_idempotency_key(
    cli: Cli, state: StandinState
) -> None:
    result = cli(*SUBMIT, "--test=a.spec.js", "--target", "BrowserStack", "--priority=high")
    assert result.exit_code == 0, result.output
    (sent,) = state.requests
    assert sent["path"] == "/v1/runs"
    assert sent["json"]["source"] == "cli"
    assert sent["json"]["targets"] == ["browserstack"]
    assert sent["json"]["priority"] == "high"
    uuid.UUID(sent["idempotency_key"])


def test_submit_several_tests_is_one_run_listed_as_a_table(cli: Cli, state: StandinState) -> None:
    result = cli(*SUBMIT, "--test=tests/a.spec.js", "--test=tests/[b].spec.js")
    assert result.exit_code == 0, result.output
    (run_id,) = state.runs
    assert f"ℹ Run ID: {run_id}" in result.stdout
    for job in state.jobs.values():
        row = next(line for line in result.stdout.splitlines() if job["job_id"] in line)
        assert job["test_path"] in row  # brackets are printed, not taken for markup
        assert "emulator" in row
        assert "PENDING" in row
    assert f"qgjob status --run-id={run_id}" in result.stdout


def test_submit_json_prints_the_run_and_its_jobs(cli: Cli, state: StandinState) -> None:
    result = cli(*SUBMIT, "--test=a.spec.js", "--test=b.spec.js", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["run_id"] in state.runs
    assert [job["test_path"] for job in answer["jobs"]] == ["a.spec.js", "b.spec.js"]
    assert {job["status"] for job in answer["jobs"]} == {"PENDING"}
    assert answer["jobs"][0] == state.jobs[answer["jobs"][0]["job_id"]]


def test_status_prints_the_key_value_table(cli: Cli, state: StandinState) -> None:
    job_id = submit_one(cli, state)
    result = cli("status", f"--job-id={job_id}")
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    assert rows["Job ID"] == job_id
    assert rows["Status"] == "PENDING"
    assert rows["Organization"] == "qualgent"
    assert rows["App Version"] == "xyz123"
    assert rows["Test Path"] == "tests/onboarding.spec.js"
    assert (rows["Target"], rows["Priority"], rows["Worker ID"], rows["Started"]) == (
        "emulator",
        "normal",
        "-",
        "-",
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", rows["Created"])
    assert "Outcome" not in rows
    assert "Error" not in rows


def test_status_shows_outcome_error_and_attempts_when_set(cli: Cli, state: StandinState) -> None:
    job_id = submit_one(cli, state)
    state.jobs[job_id].update(
        status="FAILED", outcome="timed_out", error="spec exceeded 600 s", attempts=2
    )
    result = cli("status", "--job-id", job_id)
    assert result.exit_code == 0, result.output
    assert re.search(r"Outcome\s+│\s+timed_out", result.stdout)
    assert re.search(r"Error\s+│\s+spec exceeded 600 s", result.stdout)
    assert re.search(r"Attempts\s+│\s+2 of 3", result.stdout)


def test_status_watch_follows_until_completed(cli: Cli, state: StandinState) -> None:
    job_id = submit_one(cli, state)
    state.scripted[job_id] = ["ASSIGNED", "RUNNING", "COMPLETED"]
    result = cli("status", f"--job-id={job_id}", "--watch", "--interval=0.01")
    assert result.exit_code == 0, result.output
    assert "COMPLETED" in result.stdout
    assert result.stdout.splitlines()[-1] == "✓ Job completed (outcome passed)"
    assert sum(r["path"] == f"/v1/jobs/{job_id}" for r in state.requests) == 3


def test_status_watch_exits_1_when_the_job_failed(cli: Cli, state: StandinState) -> None:
    job_id = submit_one(cli, state)
    state.scripted[job_id] = ["RUNNING", "FAILED"]
    result = cli("status", f"--job-id={job_id}", "--watch", "--interval=0.01", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "FAILED"


def test_status_of_a_run_lists_its_jobs(cli: Cli, state: StandinState) -> None:
    result = cli(*SUBMIT, "--test=a.spec.js", "--test=b.spec.js", "--json")
    run_id = json.loads(result.stdout)["run_id"]
    result = cli("status", f"--run-id={run_id}")
    assert result.exit_code == 0, result.output
    assert run_id in result.stdout
    assert "2 total · 2 pending" in result.stdout
    for job_id in state.jobs:
        assert job_id in result.stdout


def test_list_follows_cursors_up_to_the_limit(cli: Cli, state: StandinState) -> None:
    cli(*SUBMIT, *(f"--test=t{i}.spec.js" for i in range(5)))
    state.page_cap = 2
    state.requests.clear()
    result = cli("list", "--org-id=qualgent", "--limit=3", "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert [job["test_path"] for job in answer["jobs"]] == [
        "t0.spec.js",
        "t1.spec.js",
        "t2.spec.js",
    ]
    assert answer["next_cursor"] is not None
    assert [r["query"].get("limit") for r in state.requests] == ["3", "1"]


def test_list_table_and_filters(cli: Cli, state: StandinState) -> None:
    job_id = submit_one(cli, state)
    cli(*SUBMIT, "--test=other.spec.js")
    state.jobs[job_id]["status"] = "RUNNING"
    result = cli("list", "--org-id=qualgent", "--status=running")
    assert result.exit_code == 0, result.output
    assert job_id in result.stdout
    assert "other.spec.js" not in result.stdout
    assert state.requests[-1]["query"]["status"] == "RUNNING"
    assert "ℹ 1 job shown" in result.stdout


def test_cancel_a_job_and_a_finished_one(cli: Cli, state: StandinState) -> None:
    job_id = submit_one(cli, state)
    result = cli("cancel", f"--job-id={job_id}")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"✓ Job {job_id} cancelled"]
    state.jobs[job_id]["status"] = "FAILED"
    again = cli("cancel", f"--job-id={job_id}")
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines() == [f"ℹ Job {job_id} already FAILED: nothing to cancel"]
    assert again.stderr == ""
    as_json = cli("cancel", f"--job-id={job_id}", "--json")
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["status"] == "FAILED"


def test_cancel_a_run(cli: Cli, state: StandinState) -> None:
    run_id = json.loads(cli(*SUBMIT, "--test=a.spec.js", "--test=b.spec.js", "--json").stdout)[
        "run_id"
    ]
    result = cli("cancel", "--run-id", run_id, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["cancelled"] == 2
    assert {job["status"] for job in state.jobs.values()} == {"CANCELLED"}


def test_cancel_a_run_counts_only_the_jobs_it_cancelled(cli: Cli, state: StandinState) -> None:
    answer = json.loads(cli(*SUBMIT, *(f"--test=t{i}.spec.js" for i in range(4)), "--json").stdout)
    first, second, *_ = answer["jobs"]
    state.jobs[first["job_id"]]["status"] = "CANCELLED"
    state.jobs[second["job_id"]]["status"] = "COMPLETED"
    result = cli("cancel", "--run-id", answer["run_id"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"✓ Run {answer['run_id']} cancelled",
        "ℹ Cancelled jobs: 2 of 4",
        "ℹ Status: CANCELLED",
    ]


def test_cancel_a_finished_run_says_there_was_nothing_to_cancel(
    cli: Cli, state: StandinState
) -> None:
    run_id = json.loads(cli(*SUBMIT, "--test=a.spec.js", "--test=b.spec.js", "--json").stdout)[
        "run_id"
    ]
    for job in state.jobs.values():
        job["status"] = "FAILED"
    result = cli("cancel", "--run-id", run_id)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"ℹ Run {run_id} already FAILED: nothing to cancel"]
    assert "✓" not in result.output


def test_cancelling_an_unknown_job_or_run_is_still_an_error(cli: Cli) -> None:
    for option in ("--job-id", "--run-id"):
        unknown = str(uuid.uuid4())
        result = cli("cancel", f"{option}={unknown}")
        assert result.exit_code == 1
        assert one_error_line(result).endswith(f"{unknown} not found (HTTP 404 not_found)")


def test_stats_prints_two_tables(cli: Cli, state: StandinState) -> None:
    cli(*SUBMIT, "--test=a.spec.js", "--test=b.spec.js", "--test=c.spec.js")
    next(iter(state.jobs.values()))["status"] = "COMPLETED"
    result = cli("stats")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("Job Statistics") < out.index("Worker Statistics")
    assert re.search(r"Total\s+│\s+3\b", out)
    assert re.search(r"Pending\s+│\s+2\b", out)
    assert re.search(r"Completed\s+│\s+1\b", out)
    assert re.search(r"Total Workers\s+│\s+3\b", out)
    assert re.search(r"Active Workers\s+│\s+2\b", out)
    assert re.search(r"Groups\s+│\s+7\b", out)
    as_json = json.loads(cli("stats", "--json").stdout)
    assert as_json["jobs"]["total"] == 3
    assert as_json["workers"] == {"total": 3, "active": 2}
