"""The "test run" of fake_npx: globalSetup checks, attempts per test, list-reporter output.

Spec files run on `--workers` threads (Playwright runs files in parallel, tests in a file in
order). Each attempt of a non-skipped test opens a device session: on BrowserStack through
the fake hub (so that the fake server sees real concurrency and parallel limits), locally
as an Appium session id. AppWright's `sessionId` and `providerName` annotations are added.
Standard library only: fake_npx imports it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from tests.standins import playwright_json as pj
from tests.standins.directives import SpecPlan, SpecTest
from tests.standins.fake_appwright import Config, Invocation
from tests.standins.fake_hub import Hub, SessionError

ALL_PROJECTS = (
    "Error: Capability to run all projects is not supported. "
    "Please specify the project name with --project flag."
)
_MARKS = {"passed": "✓", "failed": "✘", "timedOut": "✘", "skipped": "-"}


def setup_checks(invocation: Invocation, config: Config, *, env: Mapping[str, str]) -> str | None:
    """What AppWright's globalSetup would throw for this run, or None."""
    if invocation.project_flag_empty:
        return "Error: Project name is required with --project flag"
    if invocation.project is None:
        return ALL_PROJECTS
    if config.providers.get(invocation.project) == "browserstack":
        if not env.get("BROWSERSTACK_USERNAME") or not env.get("BROWSERSTACK_ACCESS_KEY"):
            return (
                "Error: BROWSERSTACK_USERNAME and BROWSERSTACK_ACCESS_KEY are required "
                "environment variables for this device provider."
            )
        app_url = env.get("QGJOB_BROWSERSTACK_APP_URL", "")
        if not app_url.startswith("bs://"):
            return f"Error: qgjob fake: buildPath must be a bs:// url (got {app_url!r})"
        return None
    build = env.get("QGJOB_BUILD_PATH", "")
    if not build:
        return "Error: Build path not found. Please set the build path in appwright.config.ts"
    if not build.endswith(".apk") or not Path(build).is_file():
        return f"Error: Build file not found or not an .apk: {build}"
    return _device_problem(env)


def _device_problem(env: Mapping[str, str]) -> str | None:
    state_file, serial = env.get("QGJOB_FAKE_ADB_STATE"), env.get("QGJOB_DEVICE_SERIAL")
    if not state_file or not serial:
        return None
    devices = json.loads(Path(state_file).read_text()).get("devices", [])
    state = next((d.get("state", "device") for d in devices if d.get("serial") == serial), None)
    if state != "device":
        return f"Error: Could not find online devices: {serial} is {state or 'not attached'}"
    return None


class Runner:
    """Runs the planned spec files and prints list-reporter lines as attempts finish."""

    def __init__(self, invocation: Invocation, config: Config, env: Mapping[str, str]) -> None:
        self.invocation, self.config = invocation, config
        self.hub = Hub(invocation, config, env)
        self.timeout_ms = invocation.timeout_ms or 30000
        self.lock = threading.Lock()
        self.counter = 0
        self.slots = list(range(invocation.workers))
        self.failures: list[tuple[str, str]] = []
        self.flaky: list[str] = []
        self.counts = {"passed": 0, "skipped": 0}

    def spec_file(self, path: Path, plan: SpecPlan) -> pj.JSONDict:
        with self.lock:
            slot = self.slots.pop(0)
        try:
            return self._suite(path, plan, slot)
        finally:
            with self.lock:
                self.slots.append(slot)

    def _suite(self, path: Path, plan: SpecPlan, slot: int) -> pj.JSONDict:
        rel = path.relative_to(self.config.root_dir).as_posix()
        source = path.read_text().splitlines()
        targets = plan.targets()
        root: pj.JSONDict = {"title": rel, "file": rel, "column": 0, "line": 0, "specs": []}
        for test in plan.tests:
            mode = plan.directive.outcome if test in targets else "pass"
            spec = self._spec(path, rel, source, test, mode=mode, plan=plan, slot=slot)
            _suite_for(root, test, rel)["specs"].append(spec)
        return root

    def _spec(
        self,
        path: Path,
        rel: str,
        source: list[str],
        test: SpecTest,
        *,
        mode: str,
        plan: SpecPlan,
        slot: int,
    ) -> pj.JSONDict:
        label = f"[{self.invocation.project}] › {rel}:{test.line}:{test.column} › " + " › ".join(
            (*test.describe, test.title)
        )
        skipped = test.skipped or mode == "skip"
        results: list[pj.JSONDict] = []
        attempts = 1 if skipped else self.invocation.retries + 1
        for retry in range(attempts):
            started, clock = datetime.now(UTC), time.monotonic()
            status: str = "skipped"
            error: pj.JSONDict | None = None
            annotations: list[pj.JSONDict] = []
            if not skipped:
                status, error, annotations = self._attempt(path, source, test, mode, plan, retry)
            measured = (time.monotonic() - clock) * 1000
            duration = (
                plan.directive.duration_ms if plan.directive.duration_ms is not None else measured
            )
            if status == "timedOut":
                duration = max(duration, self.timeout_ms)
            results.append(
                pj.result_entry(
                    status=status,
                    retry=retry,
                    duration_ms=duration,
                    start=started,
                    worker_index=slot,
                    error=error,
                    annotations=annotations,
                )
            )
            self._print(label, status, retry, duration)
            if status in ("passed", "skipped"):
                break
        entry = pj.test_entry(
            project=self.invocation.project or "",
            timeout_ms=self.invocation.timeout_ms,
            expected_status="skipped" if skipped else "passed",
            results=results,
        )
        with self.lock:
            if entry["status"] == "flaky":
                self.flaky.append(label)
            elif entry["status"] == "unexpected":
                message = (
                    pj.formatted(results[-1]["error"])["message"]
                    if results[-1].get("error")
                    else ""
                )
                self.failures.append((label, message))
            else:
                self.counts["skipped" if skipped else "passed"] += 1
        title_path = (*test.describe, test.title)
        return pj.spec_entry(
            title_path=title_path, file=rel, line=test.line, column=test.column, tests=[entry]
        )

    def _attempt(
        self, path: Path, source: list[str], test: SpecTest, mode: str, plan: SpecPlan, retry: int
    ) -> tuple[str, pj.JSONDict | None, list[pj.JSONDict]]:
        directive = plan.directive
        try:
            session = self.hub.open(test.title)
        except SessionError as exc:
            return "failed", {"message": f"Error: {exc}", "stack": f"Error: {exc}"}, []
        annotations = [
            {"type": "sessionId", "description": session},
            {"type": "providerName", "description": self.hub.provider},
        ]
        time.sleep(directive.sleep_s)
        status, error = "passed", None
        if mode == "fail" or (mode == "flaky" and retry < directive.fails):
            line = directive.line or test.expect_line or test.line
            text = source[line - 1] if 0 < line <= len(source) else ""
            column = (text.find("expect(") + 1) or (len(text) - len(text.lstrip()) + 1)
            message = directive.message or "Element was not found on the screen"
            status = "failed"
            error = pj.failure_error(
                message=message, file=path.as_posix(), line=line, column=column, source=source
            )
        elif mode == "timeout":
            status, error = "timedOut", pj.timeout_error(self.timeout_ms)
        reason = str(error["message"]) if error else None  # AppWright sends error.message
        self.hub.close(session, status=status, reason=reason)
        return status, error, annotations

    def _print(self, label: str, status: str, retry: int, duration_ms: float) -> None:
        with self.lock:
            self.counter += 1
            suffix = f" (retry #{retry})" if retry else ""
            timing = "" if status == "skipped" else f" ({_human(duration_ms)})"
            print(f"  {_MARKS[status]}  {self.counter} {label}{suffix}{timing}", flush=True)

    def summary(self, elapsed_ms: float) -> None:
        for number, (label, message) in enumerate(self.failures, start=1):
            print(f"\n  {number}) {label} " + "─" * 20 + "\n")
            plain = re.sub(r"\x1b\[[0-9;]*m", "", message)  # not a terminal: no colours
            print("\n".join(("    " + line).rstrip() for line in plain.splitlines()))
        print()
        if self.failures:
            print(f"  {len(self.failures)} failed")
            print("\n".join(f"    {label}" for label, _ in self.failures))
        if self.flaky:
            print(f"  {len(self.flaky)} flaky")
            print("\n".join(f"    {label}" for label in self.flaky))
        if self.counts["skipped"]:
            print(f"  {self.counts['skipped']} skipped")
        if self.counts["passed"]:
            print(f"  {self.counts['passed']} passed ({_human(elapsed_ms)})")


def run_tests(
    invocation: Invocation,
    config: Config,
    plans: Mapping[Path, SpecPlan],
    *,
    env: Mapping[str, str],
) -> tuple[list[pj.JSONDict], bool]:
    """Run every planned file; returns the file suites and whether any test failed."""
    runner = Runner(invocation, config, env)
    total = sum(len(plan.tests) for plan in plans.values())
    workers = min(invocation.workers, max(1, len(plans)))
    print(f"\nRunning {total} tests using {workers} worker{'s' if workers > 1 else ''}\n")
    clock = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        suites = list(pool.map(lambda item: runner.spec_file(*item), plans.items()))
    runner.summary((time.monotonic() - clock) * 1000)
    return suites, bool(runner.failures)


def _suite_for(root: pj.JSONDict, test: SpecTest, rel: str) -> pj.JSONDict:
    suite = root
    for title, line in zip(test.describe, test.describe_lines, strict=True):
        children = suite.setdefault("suites", [])
        found = next((s for s in children if s["line"] == line), None)
        if found is None:
            found = {"title": title, "file": rel, "line": line, "column": 1, "specs": []}
            children.append(found)
        suite = found
    return suite


def _human(duration_ms: float) -> str:
    if duration_ms < 1000:
        return f"{round(duration_ms)}ms"
    if duration_ms < 60_000:
        return f"{duration_ms / 1000:.1f}s"
    return f"{duration_ms / 60_000:.1f}m"
