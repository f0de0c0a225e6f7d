"""Test results from a Playwright JSON reporter report (the file AppWright writes).

The report's shape is Playwright's `JSONReport` (`packages/playwright/types/testReporter.d.ts`):
`{config, suites[], errors[], stats}`; one suite per spec file with nested `suites[]` for
`describe` blocks; `specs[].tests[]` (one per project) carry `status`
(`expected|unexpected|flaky|skipped`) and `results[]`, one per attempt, each with a
`status` (`passed|failed|timedOut|skipped|interrupted`), `retry`, `duration`, `error`,
`errors[]` and `annotations`.

Results always come from this file, never from stdout. A missing, unreadable or non-JSON
report, and a report where no test ran but top-level `errors[]` say why (globalSetup threw,
no device, a failed upload), raise `InfrastructureError`: the run broke, no test failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dispatch.errors import InfrastructureError
from qgjob.text import strip_ansi
from qgjob.types import Outcome

__all__ = [
    "Annotation",
    "Report",
    "SpecResult",
    "TestResult",
    "loads_report",
    "parse_report",
    "read_report",
    "strip_ansi",
]

MAX_ERROR_CHARS = 8000
_TITLE_SEPARATOR = " › "  # Playwright's own separator between describe titles and test title.
# When a spec holds several tests, the one that decides the spec's outcome, strongest first.
_SEVERITY = (Outcome.FAILED, Outcome.TIMED_OUT, Outcome.ERROR, Outcome.FLAKY, Outcome.PASSED)


@dataclass(frozen=True)
class Annotation:
    """A Playwright annotation, e.g. AppWright's `sessionId` (the BrowserStack session)."""

    type: str
    description: str | None = None


@dataclass(frozen=True)
class TestResult:
    """One test (one `test(...)` call, for one project) and what became of it."""

    __test__ = False  # not a pytest class, despite the name

    title: str
    outcome: Outcome
    attempts: int
    duration_ms: int
    error: str | None
    location: str | None
    annotations: tuple[Annotation, ...] = ()
    project: str | None = None

    @property
    def session_ids(self) -> tuple[str, ...]:
        """AppWright's `sessionId` annotations, one per attempt that opened a device session."""
        return tuple(
            a.description for a in self.annotations if a.type == "sessionId" and a.description
        )


@dataclass(frozen=True)
class SpecResult:
    """One spec file: the outcome qgjob records for its job, and the tests behind it."""

    file: str
    outcome: Outcome
    attempts: int
    duration_ms: int
    error: str | None
    location: str | None
    tests: tuple[TestResult, ...]


@dataclass(frozen=True)
class Report:
    """A parsed report: spec results, top-level errors (ANSI stripped) and the run's duration."""

    root_dir: str
    specs: tuple[SpecResult, ...]
    errors: tuple[str, ...]
    duration_ms: int
    start_time: str | None

    def spec_for(self, path: str | Path) -> SpecResult | None:
        """The result for a spec given as an absolute path or as a path relative to root_dir."""
        wanted = PurePosixPath(Path(path).as_posix())
        for spec in self.specs:
            relative = PurePosixPath(spec.file)
            if wanted == relative or wanted == PurePosixPath(self.root_dir) / relative:
                return spec
        return None


def read_report(path: Path) -> Report:
    """Read and parse the report file; a missing or unreadable file is an infrastructure error."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise InfrastructureError(
            f"AppWright wrote no JSON report at {path}: the run died before its reporters ran",
            code="no_report",
        ) from exc
    except OSError as exc:
        raise InfrastructureError(
            f"cannot read JSON report {path}: {exc}", code="no_report"
        ) from exc
    return loads_report(raw)


def loads_report(raw: str | bytes) -> Report:
    """Parse the text of a report; text that is not JSON is an infrastructure error."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InfrastructureError(
            f"JSON report is not valid JSON: {exc}", code="bad_report"
        ) from exc
    return parse_report(data)


def parse_report(data: object) -> Report:
    """Turn a decoded `JSONReport` into spec results (pure)."""
    report = _mapping(data, "report")
    config = _mapping(report.get("config") or {}, "config")
    root_dir = str(config.get("rootDir") or "")
    errors = tuple(_error_text(e) for e in _sequence(report.get("errors") or [], "errors"))
    stats = _mapping(report.get("stats") or {}, "stats")
    specs = tuple(_parse_file_suite(s, root_dir) for s in _sequence(report.get("suites"), "suites"))
    specs = tuple(spec for spec in specs if spec.tests)
    ran = any(test.attempts for spec in specs for test in spec.tests)
    if not ran and errors:
        raise InfrastructureError(
            f"no test ran: {_headline(errors[0])}",
            code="no_tests_ran",
        )
    start = stats.get("startTime")
    return Report(
        root_dir=root_dir,
        specs=specs,
        errors=errors,
        duration_ms=_ms(stats.get("duration")),
        start_time=start if isinstance(start, str) else None,
    )


def _parse_file_suite(raw: object, root_dir: str) -> SpecResult:
    suite = _mapping(raw, "suite")
    tests = tuple(_walk_tests(suite, titles=(), root_dir=root_dir))
    # The strongest outcome among the tests decides, and its test supplies the error.
    decisive = next((t for o in _SEVERITY for t in tests if t.outcome is o), None)
    return SpecResult(
        file=str(suite.get("file") or suite.get("title") or ""),
        outcome=decisive.outcome if decisive else Outcome.SKIPPED,
        attempts=max((t.attempts for t in tests), default=0),
        duration_ms=sum(t.duration_ms for t in tests),
        error=decisive.error if decisive else None,
        location=decisive.location if decisive else None,
        tests=tests,
    )


def _walk_tests(
    suite: Mapping[str, Any], *, titles: tuple[str, ...], root_dir: str
) -> Iterator[TestResult]:
    for raw_spec in _sequence(suite.get("specs") or [], "specs"):
        spec = _mapping(raw_spec, "spec")
        title = _TITLE_SEPARATOR.join((*titles, str(spec.get("title", ""))))
        for raw_test in _sequence(spec.get("tests") or [], "tests"):
            yield _parse_test(_mapping(raw_test, "test"), title=title, root_dir=root_dir)
    for raw_child in _sequence(suite.get("suites") or [], "suites"):
        child = _mapping(raw_child, "suite")
        yield from _walk_tests(
            child, titles=(*titles, str(child.get("title", ""))), root_dir=root_dir
        )


def _parse_test(test: Mapping[str, Any], *, title: str, root_dir: str) -> TestResult:
    results = [_mapping(r, "result") for r in _sequence(test.get("results") or [], "results")]
    failed = [r for r in results if _first_error(r) is not None]
    last_failed = failed[-1] if failed else None
    annotations = _annotations(test, results)
    outcome = _test_outcome(str(test.get("status", "")), results)
    error = location = None
    if last_failed is not None and outcome is not Outcome.PASSED:
        error, location = _first_error(last_failed), _location(last_failed, root_dir)
    elif outcome is Outcome.FAILED:  # `test.fail()` that passed: no error object to quote
        error = "Expected to fail, but passed."
    project = test.get("projectName")
    return TestResult(
        title=title,
        outcome=outcome,
        attempts=len(results),
        duration_ms=sum(_ms(r.get("duration")) for r in results),
        error=error,
        location=location,
        annotations=annotations,
        project=project if isinstance(project, str) else None,
    )


def _test_outcome(status: str, results: Sequence[Mapping[str, Any]]) -> Outcome:
    last = str(results[-1].get("status", "")) if results else ""
    if last == "interrupted":  # the run was cut short (signal, global timeout, max failures)
        return Outcome.ERROR
    if status == "expected":
        return Outcome.PASSED
    if status == "flaky":
        return Outcome.FLAKY
    if status == "unexpected":
        return Outcome.TIMED_OUT if last == "timedOut" else Outcome.FAILED
    if status == "skipped":
        return Outcome.SKIPPED
    raise InfrastructureError(
        f"JSON report has a test with status {status!r}; "
        "expected one of expected, unexpected, flaky, skipped",
        code="bad_report",
    )


def _first_error(result: Mapping[str, Any]) -> str | None:
    # `error` is the first error as thrown; `errors[]` repeat it with code frame and stack.
    raw = result.get("error")
    if raw is None:
        errors = _sequence(result.get("errors") or [], "errors")
        raw = errors[0] if errors else None
    if raw is None:
        return None
    return _error_text(raw) or None


def _location(result: Mapping[str, Any], root_dir: str) -> str | None:
    # The thrown error's own location first, then those of the other errors (a timeout has
    # none, the action it interrupted has one).
    errors = _sequence(result.get("errors") or [], "errors")
    candidates = [
        result.get("errorLocation"),
        _mapping(result.get("error") or {}, "error").get("location"),
        *(_mapping(e, "error").get("location") for e in errors),
    ]
    prefix = root_dir.rstrip("/") + "/"
    for raw in candidates:
        if isinstance(raw, Mapping) and raw.get("file"):
            file = str(raw["file"])
            if root_dir and file.startswith(prefix):
                file = file[len(prefix) :]
            return f"{file}:{_ms(raw.get('line'))}"
    return None


def _annotations(
    test: Mapping[str, Any], results: Sequence[Mapping[str, Any]]
) -> tuple[Annotation, ...]:
    seen: dict[tuple[str, str | None], None] = {}
    sources = [test.get("annotations") or [], *(r.get("annotations") or [] for r in results)]
    for source in sources:
        for raw in _sequence(source, "annotations"):
            item = _mapping(raw, "annotation")
            description = item.get("description")
            key = (str(item.get("type", "")), description if isinstance(description, str) else None)
            seen.setdefault(key, None)
    return tuple(Annotation(type=t, description=d) for t, d in seen)


def _headline(text: str) -> str:
    # Playwright frames some errors in rules ("=====\n no tests found.\n=====").
    lines = (line.strip() for line in text.splitlines())
    return next((line for line in lines if any(c.isalnum() for c in line)), "unknown error")


def _error_text(raw: object) -> str:
    if isinstance(raw, Mapping):
        text = raw.get("message") or raw.get("value") or raw.get("stack") or ""
    else:
        text = raw
    cleaned = strip_ansi(str(text)).strip()
    if len(cleaned) > MAX_ERROR_CHARS:
        cleaned = cleaned[: MAX_ERROR_CHARS - 1].rstrip() + "…"
    return cleaned


def _ms(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return max(0, round(value))


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InfrastructureError(
            f"JSON report is not a Playwright report: {what} should be an object, "
            f"got {type(value).__name__}",
            code="bad_report",
        )
    return value


def _sequence(value: object, what: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise InfrastructureError(
            f"JSON report is not a Playwright report: {what} should be a list, "
            f"got {type(value).__name__}",
            code="bad_report",
        )
    return value
