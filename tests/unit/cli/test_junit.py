"""JUnit XML for a run (qgjob.junit): valid, grouped per build and target, Surefire-style."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from dispatch.results import SpecResult
from qgjob.junit import JUnitCase, render_junit
from qgjob.types import Outcome, Target

PASSED = JUnitCase(
    name="tests/login.spec.ts",
    classname="emulator.v1",
    app_version_id="v1",
    target=Target.EMULATOR,
    duration_ms=8412,
    outcome=Outcome.PASSED,
)


def render(*cases: JUnitCase) -> ET.Element:
    document = render_junit(cases, name="qgjob run 42")
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return ET.fromstring(document.encode())  # noqa: S314 - our own output


def only_case(root: ET.Element) -> ET.Element:
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 1
    return cases[0]


def test_a_passing_case_is_an_empty_testcase_with_seconds() -> None:
    root = render(PASSED)
    assert root.tag == "testsuites"
    assert root.get("name") == "qgjob run 42"
    case = only_case(root)
    assert case.attrib == {
        "name": "tests/login.spec.ts",
        "classname": "emulator.v1",
        "time": "8.412",
    }
    assert list(case) == []


def test_suites_group_cases_by_build_and_target_in_order_of_appearance() -> None:
    cases = [
        PASSED,
        replace(PASSED, name="tests/a.spec.ts", target=Target.BROWSERSTACK),
        replace(PASSED, name="tests/b.spec.ts"),
        replace(PASSED, name="tests/c.spec.ts", app_version_id="v2"),
    ]
    root = render(*cases)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        "v1 [emulator]",
        "v1 [browserstack]",
        "v2 [emulator]",
    ]
    assert [[c.get("name") for c in s.findall("testcase")] for s in suites] == [
        ["tests/login.spec.ts", "tests/b.spec.ts"],
        ["tests/a.spec.ts"],
        ["tests/c.spec.ts"],
    ]
    props = {p.get("name"): p.get("value") for p in suites[1].findall("./properties/property")}
    assert props == {"app_version_id": "v1", "target": "browserstack"}
    assert root.get("tests") == "4"


@pytest.mark.parametrize("outcome", [Outcome.FAILED, Outcome.TIMED_OUT])
def test_failed_and_timed_out_cases_carry_a_failure(outcome: Outcome) -> None:
    error = "Error: expected 'Welcome' got 'Error'\n\n  at tests/login.spec.ts:12"
    case = only_case(render(replace(PASSED, outcome=outcome, error=error, attempts=2)))
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "Error: expected 'Welcome' got 'Error'"
    assert failure.get("type") == str(outcome)
    assert failure.text == error
    props = {p.get("name"): p.get("value") for p in case.findall("./properties/property")}
    assert props == {"attempts": "2"}


def test_an_infrastructure_error_is_an_error_not_a_failure() -> None:
    root = render(replace(PASSED, outcome=Outcome.ERROR, error="no test ran: device offline"))
    case = only_case(root)
    assert case.find("failure") is None
    error = case.find("error")
    assert error is not None
    assert error.get("message") == "no test ran: device offline"
    assert (root.get("errors"), root.get("failures")) == ("1", "0")


def test_a_flaky_case_passes_and_holds_a_flaky_failure_with_the_message() -> None:
    error = "Error: Element was not found on the screen\nsecond line"
    root = render(replace(PASSED, outcome=Outcome.FLAKY, error=error, attempts=2))
    case = only_case(root)
    assert case.find("failure") is None
    assert case.find("error") is None
    flaky = case.find("flakyFailure")
    assert flaky is not None
    assert flaky.get("message") == "Error: Element was not found on the screen"
    assert flaky.get("type") == "flaky"
    trace = flaky.find("stackTrace")
    assert trace is not None
    assert trace.text == error
    assert (root.get("failures"), root.get("errors"), root.get("skipped")) == ("0", "0", "0")


@pytest.mark.parametrize(("outcome", "message"), [(Outcome.SKIPPED, "skipped"), (None, "not run")])
def test_skipped_and_unfinished_cases_are_skipped(outcome: Outcome | None, message: str) -> None:
    root = render(replace(PASSED, outcome=outcome))
    skipped = only_case(root).find("skipped")
    assert skipped is not None
    assert skipped.get("message") == message
    assert root.get("skipped") == "1"


def test_counts_and_times_add_up_per_suite_and_overall() -> None:
    cases = [
        PASSED,
        replace(PASSED, name="b", outcome=Outcome.FAILED, duration_ms=1000),
        replace(PASSED, name="c", outcome=Outcome.TIMED_OUT, duration_ms=588),
        replace(PASSED, name="d", outcome=Outcome.SKIPPED, duration_ms=0),
        replace(PASSED, name="e", target=Target.DEVICE, outcome=Outcome.ERROR, duration_ms=1),
    ]
    root = render(*cases)
    first, second = root.findall("testsuite")
    counts = ("tests", "failures", "errors", "skipped", "time")
    assert [first.get(k) for k in counts] == ["4", "2", "0", "1", "10.000"]
    assert [second.get(k) for k in counts] == ["1", "0", "1", "0", "0.001"]
    assert [root.get(k) for k in counts] == ["5", "2", "1", "1", "10.001"]


def test_text_is_escaped_and_terminal_and_control_characters_removed() -> None:
    nasty = "Error: <tag attr=\"x\"> & 'quotes' \x1b[31mred\x1b[39m \x00\x08 ]]> end"
    case = replace(
        PASSED,
        name='tests/<weird> & "odd".spec.ts',
        outcome=Outcome.FAILED,
        error=nasty,
        log_url="https://qgjob.example/jobs/1/log?a=1&b=2",
    )
    element = only_case(render(case))
    assert element.get("name") == 'tests/<weird> & "odd".spec.ts'
    failure = element.find("failure")
    assert failure is not None
    assert failure.text == "Error: <tag attr=\"x\"> & 'quotes' red \ufffd\ufffd ]]> end"
    out = element.find("system-out")
    assert out is not None
    assert out.text == "log: https://qgjob.example/jobs/1/log?a=1&b=2"


def test_a_timestamp_is_written_per_suite_without_microseconds() -> None:
    document = render_junit(
        [PASSED], name="r", timestamp=datetime(2025, 1, 14, 9, 21, 3, 123456, tzinfo=UTC)
    )
    suite = ET.fromstring(document).find("testsuite")  # noqa: S314 - our own output
    assert suite is not None
    assert suite.get("timestamp") == "2025-01-14T09:21:03+00:00"


def test_no_cases_is_still_a_valid_document() -> None:
    root = render()
    assert root.tag == "testsuites"
    assert root.get("tests") == "0"
    assert root.findall("testsuite") == []


def test_spec_results_map_onto_cases() -> None:
    spec = SpecResult(
        file="search.spec.ts",
        outcome=Outcome.FLAKY,
        attempts=2,
        duration_ms=64000,
        error="Error: Element was not found on the screen",
        location="search.spec.ts:11",
        tests=(),
    )
    case = JUnitCase(
        name=f"tests/{spec.file}",
        classname="browserstack",
        app_version_id="abc123",
        target=Target.BROWSERSTACK,
        duration_ms=spec.duration_ms,
        outcome=spec.outcome,
        error=spec.error,
        attempts=spec.attempts,
    )
    element = only_case(render(case))
    assert element.get("time") == "64.000"
    assert element.find("flakyFailure") is not None
