"""Builders for Playwright's JSON reporter output, field for field as `json.ts` writes it.

Shapes follow `JSONReport*` in `packages/playwright/types/testReporter.d.ts` and the
serialisation in `packages/playwright/src/reporters/json.ts`: file suites whose `file` is
relative to `config.rootDir`, optional nested `suites` only when there are describe blocks,
one `tests[]` entry per project, one `results[]` entry per attempt, absolute paths in error
locations, ANSI colours in error messages, and `stats` counted by test outcome.
Standard library only: fake_npx imports it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

PLAYWRIGHT_VERSION = "1.49.1"
RED, RED_OFF, DIM, DIM_OFF = "\x1b[31m", "\x1b[39m", "\x1b[2m", "\x1b[22m"
JSONDict = dict[str, Any]


def iso(moment: datetime) -> str:
    """A JS `Date.toISOString()`: UTC, milliseconds, `Z`."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def short_hash(text: str) -> str:
    """Playwright's ids are 20 hex characters of a sha1."""
    return hashlib.sha1(text.encode()).hexdigest()[:20]  # noqa: S324 - an id, not security


def config_entry(
    *,
    config_file: str,
    root_dir: str,
    project: str,
    retries: int,
    timeout_ms: int,
    workers: int,
    reporters: Sequence[str],
) -> JSONDict:
    """`report.config`: the resolved config, private fields removed, one project serialised."""
    base = root_dir.rsplit("/", 1)[0]
    return {
        "configFile": config_file,
        "rootDir": root_dir,
        "forbidOnly": False,
        "fullyParallel": False,
        "globalSetup": f"{base}/node_modules/appwright/dist/global-setup.js",
        "globalTeardown": None,
        "globalTimeout": 0,
        "grep": {},
        "grepInvert": None,
        "maxFailures": 0,
        "metadata": {"actualWorkers": workers},
        "preserveOutput": "always",
        "reporter": [[name, None] for name in reporters],
        "reportSlowTests": {"max": 5, "threshold": 300000},
        "quiet": False,
        "projects": [
            {
                "outputDir": f"{base}/test-results",
                "repeatEach": 1,
                "retries": retries,
                "metadata": {},
                "id": project,
                "name": project,
                "testDir": root_dir,
                "testIgnore": [],
                "testMatch": ["**/*.@(spec|test).?(c|m)[jt]s?(x)"],
                "timeout": timeout_ms,
            }
        ],
        "shard": None,
        "updateSnapshots": "missing",
        "updateSourceMethod": "patch",
        "version": PLAYWRIGHT_VERSION,
        "workers": workers,
        "webServer": None,
    }


def failure_error(
    *, message: str, file: str, line: int, column: int, source: Sequence[str]
) -> JSONDict:
    """`result.error` for a failed assertion at file:line:column (a TestError)."""
    frame = code_frame(source, line=line, column=column)
    return {
        "message": f"Error: {RED}{message}{RED_OFF}",
        "stack": f"Error: {message}\n    at {file}:{line}:{column}",
        "location": {"file": file, "column": column, "line": line},
        "snippet": frame,
    }


def timeout_error(timeout_ms: int) -> JSONDict:
    """`result.error` when a test exceeds its timeout."""
    return {"message": f"{RED}Test timeout of {timeout_ms}ms exceeded.{RED_OFF}"}


def formatted(error: JSONDict) -> JSONDict:
    """`result.errors[]` entry: `formatError()` output, message plus code frame and stack."""
    parts = [error["message"]]
    if error.get("snippet"):
        parts += ["", error["snippet"]]
    if error.get("location"):
        loc = error["location"]
        parts += ["", f"{DIM}    at {loc['file']}:{loc['line']}:{loc['column']}{DIM_OFF}"]
    entry: JSONDict = {"message": "\n".join(parts)}
    if error.get("location"):
        entry["location"] = error["location"]
    return entry


def code_frame(source: Sequence[str], *, line: int, column: int) -> str:
    """Playwright's code frame: two lines of context, `>` on the failing line, a caret."""
    first, last = max(1, line - 2), min(len(source), line + 2)
    width = len(str(last))
    rows = []
    for number in range(first, last + 1):
        text = source[number - 1] if number - 1 < len(source) else ""
        marker = f"{RED}>{RED_OFF}" if number == line else " "
        rows.append(f"{marker} {number:>{width}} | {text}")
        if number == line:
            rows.append(f"  {' ' * width} | {' ' * (column - 1)}{RED}^{RED_OFF}")
    return "\n".join(rows)


def result_entry(
    *,
    status: str,
    retry: int,
    duration_ms: float,
    start: datetime,
    worker_index: int,
    error: JSONDict | None,
    annotations: Sequence[JSONDict],
) -> JSONDict:
    """One attempt (`JSONReportTestResult`)."""
    entry: JSONDict = {
        "workerIndex": worker_index,
        "parallelIndex": worker_index,
        "status": status,
        "duration": round(duration_ms),
        "errors": [formatted(error)] if error else [],
        "stdout": [],
        "stderr": [],
        "retry": retry,
        "startTime": iso(start),
        "annotations": list(annotations),
        "attachments": [],
    }
    if error is not None:
        entry["error"] = error
        if error.get("location"):
            entry["errorLocation"] = error["location"]
    return entry


def test_outcome(results: Sequence[JSONDict], expected_status: str) -> str:
    """Playwright's `TestCase.outcome()`: skipped, expected, unexpected or flaky."""
    counted = [r for r in results if r["status"] != "interrupted"]
    if all(r["status"] == "skipped" for r in counted):
        return "skipped"
    failures = [r for r in counted if r["status"] != expected_status]
    if not failures:
        return "expected"
    if len(failures) == len(counted):
        return "unexpected"
    return "flaky"


def test_entry(
    *, project: str, timeout_ms: int, expected_status: str, results: Sequence[JSONDict]
) -> JSONDict:
    """One test of a spec, for one project (`JSONReportTest`)."""
    annotations = [a for r in results for a in r["annotations"]]
    if expected_status == "skipped":
        annotations.insert(0, {"type": "skip"})
    return {
        "timeout": timeout_ms,
        "annotations": annotations,
        "expectedStatus": expected_status,
        "projectId": project,
        "projectName": project,
        "results": list(results),
        "status": test_outcome(results, expected_status),
    }


def spec_entry(
    *, title_path: Sequence[str], file: str, line: int, column: int, tests: Sequence[JSONDict]
) -> JSONDict:
    """One `test(...)` call (`JSONReportSpec`); `ok` is false only for unexpected outcomes."""
    return {
        "title": title_path[-1],
        "ok": all(t["status"] != "unexpected" for t in tests),
        "tags": [],
        "tests": list(tests),
        "id": f"{short_hash(file)}-{short_hash(' '.join(title_path))}",
        "file": file,
        "line": line,
        "column": column,
    }


def stats_entry(*, start: datetime, duration_ms: float, suites: Sequence[JSONDict]) -> JSONDict:
    """`report.stats`: tests counted by outcome."""
    counts = {"expected": 0, "unexpected": 0, "flaky": 0, "skipped": 0}
    for test in all_tests(suites):
        counts[test["status"]] += 1
    return {"startTime": iso(start), "duration": round(duration_ms, 3), **counts}


def all_tests(suites: Sequence[JSONDict]) -> list[JSONDict]:
    """Every `tests[]` entry under `suites`, depth first."""
    found = []
    for suite in suites:
        found += [test for spec in suite["specs"] for test in spec["tests"]]
        found += all_tests(suite.get("suites", []))
    return found
