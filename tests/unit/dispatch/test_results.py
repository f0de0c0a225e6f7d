"""Parsing Playwright JSON reports into per-spec outcomes (dispatch.results).

The fixtures under `fixtures/` are reports in the shape Playwright's JSON reporter writes
(`packages/playwright/src/reporters/json.ts`), written by hand for the cases that matter:
a failure with retries inside a describe block, a flaky test on BrowserStack with session
annotations, a timeout, a globalSetup error and a file whose tests were all skipped.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dispatch.errors import InfrastructureError, JobError, is_transient
from dispatch.results import (
    MAX_ERROR_CHARS,
    Report,
    loads_report,
    parse_report,
    read_report,
    strip_ansi,
)
from qgjob.types import Outcome

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = "/home/runner/work/shop/examples/tests"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def report(name: str) -> Report:
    return read_report(FIXTURES / name)


def one_test_report(*results: dict[str, Any], status: str, expected: str = "passed") -> Report:
    """A report of one spec file holding one test with the given attempts."""
    data = fixture("all_skipped.json")
    test = data["suites"][0]["specs"][0]["tests"][0]
    test.update(results=list(results), status=status, expectedStatus=expected, annotations=[])
    return parse_report(data)


def attempt(status: str, *, retry: int = 0, message: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "workerIndex": 0,
        "status": status,
        "duration": 1000,
        "errors": [],
        "retry": retry,
        "startTime": "2025-01-14T13:00:00.000Z",
        "annotations": [],
        "attachments": [],
    }
    if message is not None:
        result["error"] = {"message": message}
        result["errors"] = [{"message": message}]
    return result


def test_a_failure_with_retries_gives_the_final_error_its_location_and_all_attempts() -> None:
    parsed = report("failed_with_retries.json")
    login = parsed.spec_for("login.spec.ts")
    assert login is not None
    assert login.outcome is Outcome.FAILED
    assert login.attempts == 2
    assert login.duration_ms == 8412 + 21873 + 21044
    assert login.error == (
        "Error: expect(locator).toBeVisible()\n\n"
        'Element textContains("Email or password is incorrect") was not found on the screen'
    )
    assert login.location == "login.spec.ts:19"
    titles = [t.title for t in login.tests]
    assert titles == [
        "signs in with valid credentials",
        "errors › shows an error for a wrong password",
    ]
    assert [t.outcome for t in login.tests] == [Outcome.PASSED, Outcome.FAILED]
    assert login.tests[0].error is None
    assert login.tests[0].location is None


def test_every_spec_file_is_reported_with_the_run_totals() -> None:
    parsed = report("failed_with_retries.json")
    assert [s.file for s in parsed.specs] == ["login.spec.ts", "onboarding.spec.ts"]
    onboarding = parsed.specs[1]
    assert (onboarding.outcome, onboarding.attempts, onboarding.error) == (Outcome.PASSED, 1, None)
    assert onboarding.duration_ms == 6120  # 6120.5 ms, rounded
    assert parsed.root_dir == ROOT
    assert parsed.duration_ms == 61022
    assert parsed.start_time == "2025-01-14T09:21:01.503Z"
    assert parsed.errors == ()


def test_spec_for_accepts_absolute_and_relative_paths() -> None:
    parsed = report("failed_with_retries.json")
    assert parsed.spec_for(f"{ROOT}/onboarding.spec.ts") is parsed.specs[1]
    assert parsed.spec_for(Path(ROOT) / "login.spec.ts") is parsed.specs[0]
    assert parsed.spec_for("/elsewhere/login.spec.ts") is None
    assert parsed.spec_for("checkout.spec.ts") is None


def test_a_test_that_passed_on_retry_is_flaky_and_keeps_the_failed_attempts_error() -> None:
    search = report("flaky_browserstack.json").specs[0]
    assert search.outcome is Outcome.FLAKY
    assert search.attempts == 2
    assert search.error is not None
    assert search.error.endswith(
        'Element textContains("Running shoes") was not found on the screen'
    )
    assert search.location == "search.spec.ts:11"
    flaky, steady = search.tests
    assert flaky.outcome is Outcome.FLAKY
    assert steady.outcome is Outcome.PASSED
    assert flaky.project == "android-browserstack"


def test_browserstack_session_ids_come_from_annotations_once_per_attempt() -> None:
    flaky = report("flaky_browserstack.json").specs[0].tests[0]
    assert flaky.session_ids == (
        "3f9b2c1d7e8a4b5c6d7e8f9a0b1c2d3e4f5a6b7c",
        "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0",
    )
    providers = {a.description for a in flaky.annotations if a.type == "providerName"}
    assert providers == {"browserstack"}


def test_a_timeout_is_timed_out_with_the_message_and_the_interrupted_actions_location() -> None:
    checkout = report("timed_out.json").specs[0]
    assert checkout.outcome is Outcome.TIMED_OUT
    assert checkout.error == "Test timeout of 30000ms exceeded."
    assert checkout.location == "checkout.spec.ts:12"
    assert checkout.tests[0].title == "checkout › pays for a cart with a saved card"


def test_a_file_whose_tests_were_all_skipped_is_skipped() -> None:
    settings = report("all_skipped.json").specs[0]
    assert settings.outcome is Outcome.SKIPPED
    assert (settings.attempts, settings.error, settings.location) == (1, None, None)


def test_a_global_setup_error_with_no_tests_is_a_transient_infrastructure_error() -> None:
    with pytest.raises(InfrastructureError) as caught:
        report("global_setup_error.json")
    error = caught.value
    assert error.code == "no_tests_ran"
    assert "BROWSERSTACK_USERNAME and BROWSERSTACK_ACCESS_KEY are required" in error.reason
    assert "\x1b" not in error.reason
    assert is_transient(error)


def test_tests_that_never_ran_count_as_no_test_when_errors_say_why() -> None:
    data = fixture("all_skipped.json")
    data["suites"][0]["specs"][0]["tests"][0]["results"] = []
    data["errors"] = [{"message": "Error: Could not find online devices"}]
    with pytest.raises(InfrastructureError, match="Could not find online devices"):
        parse_report(data)


def test_a_report_with_tests_keeps_top_level_errors_without_raising() -> None:
    data = fixture("failed_with_retries.json")
    data["errors"] = [{"message": "\x1b[31mError: worker teardown timed out\x1b[39m"}]
    parsed = parse_report(data)
    assert parsed.errors == ("Error: worker teardown timed out",)
    assert len(parsed.specs) == 2


def test_an_empty_report_without_errors_has_no_specs() -> None:
    data = fixture("global_setup_error.json")
    data["errors"] = []
    assert parse_report(data).specs == ()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "bad_report"),
        (b'{"config": {}, "suites": [', "bad_report"),  # cut short: the process died writing
        (b"\xff\xfe not utf-8", "bad_report"),
        (b"[1, 2, 3]", "bad_report"),
        (b'{"suites": {"not": "a list"}}', "bad_report"),
        (b'{"errors": []}', "bad_report"),
    ],
)
def test_text_that_is_not_a_playwright_report_is_an_infrastructure_error(
    raw: bytes, code: str
) -> None:
    with pytest.raises(InfrastructureError) as caught:
        loads_report(raw)
    assert caught.value.code == code


def test_a_missing_report_file_is_an_infrastructure_error(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError) as caught:
        read_report(tmp_path / "results.json")
    assert caught.value.code == "no_report"
    assert str(tmp_path / "results.json") in caught.value.reason


def test_an_unknown_test_status_is_refused_with_the_accepted_ones() -> None:
    with pytest.raises(InfrastructureError, match="expected one of expected, unexpected"):
        one_test_report(attempt("passed"), status="weird")


def test_a_test_cut_short_by_an_interruption_is_an_error() -> None:
    parsed = one_test_report(
        attempt("failed", message="Error: boom"),
        attempt("interrupted", retry=1),
        status="unexpected",
    )
    assert parsed.specs[0].outcome is Outcome.ERROR


def test_an_expected_failure_that_passed_is_failed_with_playwrights_words() -> None:
    parsed = one_test_report(attempt("passed"), status="unexpected", expected="failed")
    assert parsed.specs[0].outcome is Outcome.FAILED
    assert parsed.specs[0].error == "Expected to fail, but passed."


def test_an_expected_failure_that_failed_is_passed() -> None:
    parsed = one_test_report(
        attempt("failed", message="Error: known bug"), status="expected", expected="failed"
    )
    assert parsed.specs[0].outcome is Outcome.PASSED
    assert parsed.specs[0].error is None


def test_a_real_failure_outranks_a_timeout_in_the_same_file() -> None:
    data = fixture("timed_out.json")
    describe = data["suites"][0]["suites"][0]
    failing = copy.deepcopy(describe["specs"][0])
    failing["title"] = "applies a coupon"
    failing["tests"][0]["results"] = [attempt("failed", message="Error: coupon rejected")]
    describe["specs"].append(failing)
    spec = parse_report(data).specs[0]
    assert spec.outcome is Outcome.FAILED
    assert spec.error == "Error: coupon rejected"
    assert [t.outcome for t in spec.tests] == [Outcome.TIMED_OUT, Outcome.FAILED]


def test_long_errors_are_trimmed_and_cut_to_the_limit() -> None:
    parsed = one_test_report(
        attempt("failed", message="\n  Error: " + "x" * 20000 + "  \n"), status="unexpected"
    )
    error = parsed.specs[0].error
    assert error is not None
    assert error.startswith("Error: xxx")
    assert len(error) == MAX_ERROR_CHARS
    assert error.endswith("…")


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("\x1b[31mred\x1b[39m plain", "red plain"),
        ("\x1b[2mexpect(\x1b[22m\x1b[31mlocator\x1b[39m\x1b[2m)\x1b[22m", "expect(locator)"),
        ("\x1b[1;38;5;196mbold 256\x1b[0m", "bold 256"),
        ("\x1b]8;;https://example.com\x07link\x1b]8;;\x07", "link"),
        ("\x1b[2K\x1b[1Aline", "line"),
        ("login.spec.ts:12 › title ✓", "login.spec.ts:12 › title ✓"),
    ],
)
def test_strip_ansi_removes_escape_sequences_and_keeps_text(text: str, plain: str) -> None:
    assert strip_ansi(text) == plain


def test_only_infrastructure_errors_are_worth_a_retry() -> None:
    assert is_transient(InfrastructureError("device offline", code="offline"))
    assert not is_transient(JobError("tests/missing.spec.ts is not in the workspace"))
    assert not is_transient(ValueError("unclassified"))
    assert repr(JobError("x", code="c")) == "JobError('x', code='c')"
