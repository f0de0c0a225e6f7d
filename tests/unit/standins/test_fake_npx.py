"""fake_npx as a real process: AppWright's rules, directives, and reports dispatch can parse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from dispatch.errors import InfrastructureError
from dispatch.results import read_report
from qgjob.types import Outcome
from tests.standins import FAKE_NPX
from tests.standins.directives import DirectiveError, parse_directive, parse_spec
from tests.standins.fake_adb import FakeDevice, write_state
from tests.unit.standins.conftest import EXAMPLES, Project, base_env, spec_source

EMULATOR = ("--project", "android-emulator", "--reporter=list,json")


def npx_test(*specs: Path, retries: int = 0, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    return ("appwright", "test", *map(str, specs), *EMULATOR, "--retries", str(retries), *extra)


def test_passing_specs_exit_0_print_list_lines_and_write_a_parsable_report(
    project: Project,
) -> None:
    a = project.spec("a.spec.ts", spec_source("opens the app", "shows the home screen"))
    b = project.spec("nested/b.spec.ts", spec_source("logs out"))
    run = project.run(*npx_test(a, b))
    assert run.code == 0, run.stdout + run.stderr
    assert "Running 3 tests using 2 workers" in run.stdout
    assert "  ✓  " in run.stdout
    assert "[android-emulator] › nested/b.spec.ts:3:1 › logs out" in run.stdout
    assert "3 passed" in run.stdout
    report = read_report(run.report)
    assert [s.file for s in report.specs] == ["a.spec.ts", "nested/b.spec.ts"]
    assert all(s.outcome is Outcome.PASSED and s.attempts == 1 for s in report.specs)
    assert report.root_dir == str(project.tests)
    assert report.spec_for(b) is report.specs[1]


def test_a_failing_spec_reports_the_message_and_line_on_every_attempt(project: Project) -> None:
    directive = "outcome=fail message=\"expected 'Welcome' got 'Error'\" line=4"
    spec = project.spec("login.spec.ts", spec_source("signs in", "signs out", directive=directive))
    run = project.run(*npx_test(spec, retries=2))
    assert run.code == 1
    assert "[ERROR]" in run.stdout
    assert "1 failed" in run.stdout
    result = read_report(run.report).specs[0]
    assert result.outcome is Outcome.FAILED
    assert result.attempts == 3
    assert result.error == "Error: expected 'Welcome' got 'Error'"
    assert result.location == "login.spec.ts:4"
    assert [t.outcome for t in result.tests] == [Outcome.FAILED, Outcome.PASSED]


def test_the_failure_points_at_the_first_expect_of_the_chosen_test(project: Project) -> None:
    spec = project.spec("a.spec.ts", spec_source("one", "two", directive='outcome=fail test="two"'))
    result = read_report(project.run(*npx_test(spec)).report).specs[0]
    assert [t.outcome for t in result.tests] == [Outcome.PASSED, Outcome.FAILED]
    assert result.location == "a.spec.ts:12"  # test "two" starts on line 10
    assert result.error == "Error: Element was not found on the screen"


def test_a_flaky_spec_passes_on_retry_and_exits_0(project: Project) -> None:
    spec = project.spec(
        "search.spec.ts", spec_source("finds shoes", directive="outcome=flaky fails=2")
    )
    run = project.run(*npx_test(spec, retries=2))
    assert run.code == 0
    assert "1 flaky" in run.stdout
    assert "(retry #2)" in run.stdout
    result = read_report(run.report).specs[0]
    assert (result.outcome, result.attempts) == (Outcome.FLAKY, 3)
    assert result.error == "Error: Element was not found on the screen"


def test_a_flaky_spec_without_enough_retries_fails(project: Project) -> None:
    spec = project.spec("search.spec.ts", spec_source("finds shoes", directive="outcome=flaky"))
    run = project.run(*npx_test(spec, retries=0))
    assert run.code == 1
    assert read_report(run.report).specs[0].outcome is Outcome.FAILED


def test_a_timeout_is_reported_with_the_timeout_given(project: Project) -> None:
    spec = project.spec("checkout.spec.ts", spec_source("pays", directive="outcome=timeout"))
    run = project.run(*npx_test(spec, retries=1, extra=("--timeout", "45000")))
    assert run.code == 1
    result = read_report(run.report).specs[0]
    assert result.outcome is Outcome.TIMED_OUT
    assert result.error == "Test timeout of 45000ms exceeded."
    assert result.duration_ms >= 2 * 45000
    assert result.attempts == 2


def test_skip_skips_every_test_without_retries(project: Project) -> None:
    spec = project.spec("settings.spec.ts", spec_source("a", "b", directive="outcome=skip"))
    run = project.run(*npx_test(spec, retries=2))
    assert run.code == 0
    assert "2 skipped" in run.stdout
    result = read_report(run.report).specs[0]
    assert (result.outcome, result.attempts) == (Outcome.SKIPPED, 1)


def test_test_skip_in_the_source_is_a_skipped_test(project: Project) -> None:
    source = spec_source("runs") + 'test.skip("not yet", async ({ device }) => {});\n'
    result = read_report(project.run(*npx_test(project.spec("a.spec.ts", source))).report).specs[0]
    assert result.outcome is Outcome.PASSED
    assert [t.outcome for t in result.tests] == [Outcome.PASSED, Outcome.SKIPPED]


def test_describe_blocks_nest_suites_and_prefix_titles(project: Project) -> None:
    source = (
        'import { test, expect } from "appwright";\n\n'
        'test.describe("checkout", () => {\n'
        '  test.describe("cards", () => {\n'
        '    test("pays", async ({ device }) => {});\n'
        "  });\n"
        '  test("keeps the cart", async ({ device }) => {});\n'
        "});\n"
        'test("top level", async ({ device }) => {});\n'
    )
    run = project.run(*npx_test(project.spec("c.spec.ts", source)))
    titles = [t.title for t in read_report(run.report).specs[0].tests]
    assert titles == ["top level", "checkout › keeps the cart", "checkout › cards › pays"]
    suite = json.loads(run.report.read_text())["suites"][0]
    assert [s["title"] for s in suite["suites"]] == ["checkout"]
    assert suite["suites"][0]["line"] == 3
    assert suite["suites"][0]["suites"][0]["specs"][0]["line"] == 5


def test_infra_writes_a_report_with_errors_and_no_tests(project: Project) -> None:
    spec = project.spec(
        "a.spec.ts", spec_source("x", directive='outcome=infra message="emulator-5554 is offline"')
    )
    run = project.run(*npx_test(spec))
    assert run.code == 1
    assert json.loads(run.report.read_text())["suites"] == []
    with pytest.raises(InfrastructureError, match="emulator-5554 is offline"):
        read_report(run.report)


def test_crash_writes_no_report(project: Project) -> None:
    spec = project.spec("a.spec.ts", spec_source("x", directive="outcome=crash"))
    run = project.run(*npx_test(spec))
    assert run.code == 1
    assert "triggerUncaughtException" in run.stderr
    assert not run.report.exists()
    with pytest.raises(InfrastructureError) as caught:
        read_report(run.report)
    assert caught.value.code == "no_report"


@pytest.mark.parametrize(
    "project_args",
    [("--project=android-emulator",), ()],
    ids=["project-as-one-word", "no-project"],
)
def test_appwright_needs_project_as_two_words(
    project: Project, project_args: tuple[str, ...]
) -> None:
    spec = project.spec("a.spec.ts", spec_source("x"))
    run = project.run("appwright", "test", str(spec), *project_args, "--reporter=list,json")
    assert run.code == 1
    assert "Capability to run all projects is not supported" in run.stdout
    with pytest.raises(InfrastructureError, match="specify the project name with --project flag"):
        read_report(run.report)


def test_an_unknown_project_fails_before_any_report(project: Project) -> None:
    spec = project.spec("a.spec.ts", spec_source("x"))
    run = project.run("appwright", "test", str(spec), "--project", "ios", "--reporter=list,json")
    assert run.code == 1
    assert 'Project(s) "ios" not found. Available projects: "android-emulator"' in run.stderr
    assert not run.report.exists()


def test_a_missing_config_fails_before_any_report(project: Project) -> None:
    spec = project.spec("a.spec.ts", spec_source("x"))
    (project.root / "appwright.config.ts").unlink()
    run = project.run(*npx_test(spec))
    assert run.code == 1
    assert "appwright.config.ts does not exist" in run.stderr
    assert not run.report.exists()


def test_filters_are_regular_expressions_over_absolute_paths(project: Project) -> None:
    project.spec("login.spec.ts", spec_source("a"))
    project.spec("relogin.spec.ts", spec_source("b"))
    project.spec("logout.spec.ts", spec_source("c"))
    run = project.run("appwright", "test", "login.spec.ts", *EMULATOR)
    assert [s.file for s in read_report(run.report).specs] == ["login.spec.ts", "relogin.spec.ts"]


def test_a_filter_matching_nothing_is_no_tests_found(project: Project) -> None:
    project.spec("login.spec.ts", spec_source("a"))
    run = project.run("appwright", "test", str(project.tests / "missing.spec.ts"), *EMULATOR)
    assert run.code == 1
    with pytest.raises(InfrastructureError, match="no tests found"):
        read_report(run.report)


@pytest.mark.parametrize(("ci", "attempts"), [("1", 3), (None, 1)])
def test_without_retries_ci_means_appwrights_two_retries(
    project: Project, ci: str | None, attempts: int
) -> None:
    spec = project.spec("a.spec.ts", spec_source("x", directive="outcome=fail"))
    env = {"CI": ci} if ci else {}
    run = project.run("appwright", "test", str(spec), *EMULATOR, env=env)
    assert read_report(run.report).specs[0].attempts == attempts


def test_without_the_json_reporter_there_is_no_report(project: Project) -> None:
    spec = project.spec("a.spec.ts", spec_source("x"))
    run = project.run("appwright", "test", str(spec), "--project", "android-emulator")
    assert run.code == 0
    assert not run.report.exists()


def test_local_projects_need_an_existing_apk(project: Project) -> None:
    spec = project.spec("a.spec.ts", spec_source("x"))
    run = project.run(*npx_test(spec), env={"QGJOB_BUILD_PATH": str(project.root / "nope.apk")})
    with pytest.raises(InfrastructureError, match=r"nope\.apk"):
        read_report(run.report)


def test_the_device_must_be_online_in_the_fake_adb_state(project: Project, tmp_path: Path) -> None:
    state = tmp_path / "adb.json"
    write_state(state, [FakeDevice("emulator-5554", state="offline")])
    spec = project.spec("a.spec.ts", spec_source("x"))
    env = {"QGJOB_FAKE_ADB_STATE": str(state), "QGJOB_DEVICE_SERIAL": "emulator-5554"}
    with pytest.raises(InfrastructureError, match="emulator-5554 is offline"):
        read_report(project.run(*npx_test(spec), env=env).report)


def test_the_log_records_each_invocation_with_its_environment(
    project: Project, tmp_path: Path
) -> None:
    log = tmp_path / "npx.jsonl"
    spec = project.spec("a.spec.ts", spec_source("x"))
    env = {
        "QGJOB_FAKE_NPX_LOG": str(log),
        "CI": "1",
        "QGJOB_DEVICE_SERIAL": "emulator-5554",
        "BROWSERSTACK_ACCESS_KEY": "s3cret",
    }
    project.run(*npx_test(spec), env=env)
    project.run(*npx_test(spec), env=env)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["event"] for e in events] == ["invoke", "exit", "invoke", "exit"]
    invoke = events[0]
    assert invoke["argv"] == list(npx_test(spec))
    assert invoke["cwd"] == str(project.root)
    assert invoke["env"]["CI"] == "1"
    assert invoke["env"]["QGJOB_DEVICE_SERIAL"] == "emulator-5554"
    assert invoke["env"]["QGJOB_BUILD_PATH"] == project.env["QGJOB_BUILD_PATH"]
    assert invoke["env"]["BROWSERSTACK_ACCESS_KEY"] == "***"
    assert "s3cret" not in log.read_text()
    assert events[1]["code"] == 0
    assert events[0]["time"] <= events[1]["time"] <= events[2]["time"]


def test_hang_runs_until_its_process_group_is_killed(project: Project, tmp_path: Path) -> None:
    log = tmp_path / "npx.jsonl"
    spec = project.spec("a.spec.ts", spec_source("x", directive="hang"))
    env = {**project.env, "QGJOB_FAKE_NPX_LOG": str(log)}
    process = subprocess.Popen(
        [str(FAKE_NPX), *npx_test(spec)],
        cwd=project.root,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        child = wait_for_event(log, "appium_started")["child_pid"]
        time.sleep(0.3)
        assert process.poll() is None
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        assert wait_until_gone(child)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_the_examples_project_shows_every_kind_of_outcome(tmp_path: Path) -> None:
    build = tmp_path / "app.apk"
    build.write_bytes(b"PK")
    report = tmp_path / "examples.json"
    env = {**base_env(), "QGJOB_BUILD_PATH": str(build), "PLAYWRIGHT_JSON_OUTPUT_FILE": str(report)}
    specs = sorted(str(p) for p in (EXAMPLES / "tests").glob("*.spec.ts"))
    assert len(specs) >= 6
    args = ["appwright", "test", *specs, *EMULATOR, "--retries", "1", "--workers", "3"]
    subprocess.run(
        [str(FAKE_NPX), *args], cwd=EXAMPLES, env=env, capture_output=True, timeout=60, check=False
    )
    outcomes = {s.file: s.outcome for s in read_report(report).specs}
    assert outcomes == {
        "checkout.spec.ts": Outcome.PASSED,
        "login.spec.ts": Outcome.PASSED,
        "onboarding.spec.ts": Outcome.PASSED,
        "profile.spec.ts": Outcome.FAILED,
        "search.spec.ts": Outcome.FLAKY,
        "settings.spec.ts": Outcome.PASSED,
    }


def test_reports_carry_every_field_of_playwrights_json_types(project: Project) -> None:
    spec = project.spec("a.spec.ts", spec_source("x", "y", directive="outcome=flaky"))
    data = json.loads(project.run(*npx_test(spec, retries=1)).report.read_text())
    assert set(data) == {"config", "suites", "errors", "stats"}
    assert {"rootDir", "projects", "version", "workers"} <= set(data["config"])
    assert set(data["stats"]) == {
        "startTime",
        "duration",
        "expected",
        "unexpected",
        "flaky",
        "skipped",
    }
    assert (data["stats"]["expected"], data["stats"]["flaky"]) == (1, 1)
    suite = data["suites"][0]
    assert {"title", "file", "line", "column", "specs"} <= set(suite)
    spec_entry = suite["specs"][0]
    assert set(spec_entry) == {"title", "ok", "tags", "tests", "id", "file", "line", "column"}
    test = spec_entry["tests"][0]
    assert set(test) == {
        "timeout",
        "annotations",
        "expectedStatus",
        "projectId",
        "projectName",
        "results",
        "status",
    }
    assert test["status"] == "flaky"
    failed, passed = test["results"]
    required = {
        "workerIndex",
        "parallelIndex",
        "status",
        "duration",
        "errors",
        "stdout",
        "stderr",
        "retry",
        "startTime",
        "annotations",
        "attachments",
    }
    assert required <= set(failed)
    assert required <= set(passed)
    assert (failed["retry"], failed["status"], passed["retry"], passed["status"]) == (
        0,
        "failed",
        1,
        "passed",
    )
    assert "\x1b[" in failed["error"]["message"]
    assert failed["errorLocation"]["file"] == str(spec)
    assert "error" not in passed


def test_directives_reject_unknown_keys_and_values() -> None:
    with pytest.raises(DirectiveError, match="unknown key 'outcom'"):
        parse_directive("// qgjob-fake: outcom=fail")
    with pytest.raises(DirectiveError, match="outcome='broken'; accepted: pass, fail"):
        parse_directive("// qgjob-fake: outcome=broken")
    with pytest.raises(DirectiveError, match="line 2"):
        parse_directive("ok\n/* qgjob-fake: sleep=soon */")


def test_directives_merge_and_find_tests_with_their_lines() -> None:
    source = (
        spec_source("a", "b", directive="outcome=fail test=b") + "// qgjob-fake: sleep=0.25 hang\n"
    )
    plan = parse_spec(source)
    assert (plan.directive.outcome, plan.directive.sleep_s, plan.directive.hang) == (
        "fail",
        0.25,
        True,
    )
    assert [(t.title, t.line, t.expect_line) for t in plan.tests] == [("a", 5, 7), ("b", 10, 12)]
    assert [t.title for t in plan.targets()] == ["b"]


def wait_for_event(log: Path, event: str, *, timeout_s: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text().splitlines():
                record: dict[str, Any] = json.loads(line)
                if record["event"] == event:
                    return record
        time.sleep(0.05)
    raise AssertionError(f"no {event} event in {log}")


def wait_until_gone(pid: int, *, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
