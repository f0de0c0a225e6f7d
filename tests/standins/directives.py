"""What fake_npx should pretend happened to a spec file, read from the file itself.

A spec file steers the fake with comment lines (any comment style; several lines merge,
later keys win):

    // qgjob-fake: outcome=fail message="expected 'Welcome' got 'Error'" line=12
    // qgjob-fake: outcome=flaky fails=1 sleep=0.2

Keys:
    outcome=pass|fail|flaky|timeout|skip|infra|crash   default pass
        fail     the target test fails on every attempt (with `message`, at `line`)
        flaky    the target test fails `fails` attempts, then passes (needs --retries >= fails)
        timeout  the target test exceeds the --timeout (reported, not waited for)
        skip     every test in the file is skipped
        infra    the whole run breaks before any test: no tests, top-level errors[] (`message`)
        crash    the whole run dies: no report is written, exit 1
    message="…"    the error message (fail, flaky, infra)
    line=N         the line the failure points at (default: first `expect(` in the test)
    test="…"       apply fail/flaky/timeout to tests whose title contains this (default: the first)
    fails=N        flaky: failing attempts before the pass (default 1)
    sleep=S        real seconds each test attempt takes (default 0)
    duration=MS    reported duration of each attempt instead of the measured one
    hang           the run never ends (a child "appium" process is started too)

The module also finds the tests in the file (`test("…")`, `test.skip("…")`, inside
`test.describe("…")` blocks) with their line and column, so reports carry real titles.
Standard library only: fake_npx imports it.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace

OUTCOMES = ("pass", "fail", "flaky", "timeout", "skip", "infra", "crash")
MARKER = "qgjob-fake:"
_QUOTED = r"""(?P<q>["'`])(?P<title>(?:\\.|(?!(?P=q)).)*)(?P=q)"""
_TEST = re.compile(r"^(?P<indent>\s*)test(?:\.(?P<mod>only|skip|fixme|fail|slow))?\(\s*" + _QUOTED)
_DESCRIBE = re.compile(
    r"^(?P<indent>\s*)test\.describe(?:\.(?:only|skip|serial|parallel|fixme))?\(\s*" + _QUOTED
)
_CLOSE = re.compile(r"^(?P<indent>\s*)\}\)")


class DirectiveError(ValueError):
    """A `qgjob-fake:` comment that the fake cannot understand; the message says why."""


@dataclass(frozen=True)
class Directive:
    """The merged directives of one spec file."""

    outcome: str = "pass"
    message: str | None = None
    line: int | None = None
    test: str | None = None
    fails: int = 1
    sleep_s: float = 0.0
    duration_ms: int | None = None
    hang: bool = False


@dataclass(frozen=True)
class SpecTest:
    """One `test(...)` call found in a spec file."""

    title: str
    describe: tuple[str, ...]  # enclosing `test.describe` titles, outermost first
    describe_lines: tuple[int, ...]  # and the lines they start on
    line: int
    column: int
    skipped: bool
    expect_line: int | None


@dataclass(frozen=True)
class SpecPlan:
    """The tests of a spec file and what the fake should make of them."""

    tests: tuple[SpecTest, ...]
    directive: Directive

    def targets(self) -> tuple[SpecTest, ...]:
        """The tests that get the directive's outcome (the others pass)."""
        if self.directive.outcome == "skip":
            return self.tests
        if self.directive.test is not None:
            return tuple(t for t in self.tests if self.directive.test in t.title)
        runnable = [t for t in self.tests if not t.skipped]
        return tuple(runnable[:1])


def parse_spec(text: str) -> SpecPlan:
    """Find the tests and the merged directive of a spec file's source."""
    return SpecPlan(tests=_find_tests(text), directive=parse_directive(text))


def parse_directive(text: str) -> Directive:
    """Merge every `qgjob-fake:` comment in `text` (later keys win)."""
    directive = Directive()
    for number, line in enumerate(text.splitlines(), start=1):
        _, marker, rest = line.partition(MARKER)
        if marker:
            try:
                directive = _apply(directive, shlex.split(rest.rstrip().removesuffix("*/")))
            except ValueError as exc:
                raise DirectiveError(f"line {number}: {exc}") from exc
    return directive


def _apply(directive: Directive, tokens: list[str]) -> Directive:
    for token in tokens:
        key, has_value, value = token.partition("=")
        if key == "hang" and not has_value:
            directive = replace(directive, hang=True)
        elif not has_value:
            raise ValueError(f"{token!r} is not key=value (or the flag `hang`)")
        elif key == "outcome":
            if value not in OUTCOMES:
                raise ValueError(f"outcome={value!r}; accepted: {', '.join(OUTCOMES)}")
            directive = replace(directive, outcome=value)
        elif key == "message":
            directive = replace(directive, message=value)
        elif key == "test":
            directive = replace(directive, test=value)
        elif key == "line":
            directive = replace(directive, line=_count(key, value))
        elif key == "fails":
            directive = replace(directive, fails=_count(key, value))
        elif key == "duration":
            directive = replace(directive, duration_ms=_count(key, value))
        elif key == "sleep":
            directive = replace(directive, sleep_s=float(value))
        else:
            raise ValueError(
                f"unknown key {key!r}; accepted: outcome, message, line, test, fails, "
                "sleep, duration, hang"
            )
    return directive


def _count(key: str, value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"{key} must not be negative, got {number}")
    return number


def _find_tests(text: str) -> tuple[SpecTest, ...]:
    lines = text.splitlines()
    describes: list[tuple[int, str, int]] = []
    found: list[tuple[int, SpecTest]] = []
    for index, line in enumerate(lines):
        closing = _CLOSE.match(line)
        if closing and describes and len(closing["indent"]) <= describes[-1][0]:
            describes.pop()
            continue
        opening = _DESCRIBE.match(line)
        if opening:
            describes.append((len(opening["indent"]), _unescape(opening["title"]), index + 1))
            continue
        match = _TEST.match(line)
        if match:
            test = SpecTest(
                title=_unescape(match["title"]),
                describe=tuple(title for _, title, _ in describes),
                describe_lines=tuple(line for _, _, line in describes),
                line=index + 1,
                column=len(match["indent"]) + 1,
                skipped=match["mod"] in ("skip", "fixme"),
                expect_line=None,
            )
            found.append((index, test))
    tests = []
    for position, (index, test) in enumerate(found):
        end = found[position + 1][0] if position + 1 < len(found) else len(lines)
        expect_at = next((i + 1 for i in range(index, end) if "expect(" in lines[i]), None)
        tests.append(replace(test, expect_line=expect_at))
    return tuple(tests)


def _unescape(title: str) -> str:
    return re.sub(r"\\(.)", r"\1", title)
