#!/usr/bin/env python3
"""A stand-in for `npx appwright test …` that needs no Node, Appium or device.

Invoked exactly like the real thing, from the AppWright project's directory:

    fake_npx.py appwright test /abs/tests/login.spec.ts --project android-emulator \
        --reporter=list,json --retries 1 --timeout 600000 --workers 1

It keeps the real tool's rules: AppWright joins its arguments with spaces and splits them
again (an argument with a space breaks), adds `--config appwright.config.ts`, and its
globalSetup demands `--project NAME` as two words. Positional filters are regular
expressions matched against the absolute paths of test files under the config's testDir.
Without --retries, retries are 2 when CI is set (AppWright's default), else 0. The JSON
report goes to $PLAYWRIGHT_JSON_OUTPUT_FILE (stdout without it) only when `json` is among
the reporters; list-reporter lines go to stdout. Exit 0 when no test failed, else 1.

What happens to each spec is decided by `// qgjob-fake:` comments in it (see
`directives.py`): pass (default), fail, flaky, timeout, skip, infra, crash, hang, sleep.

The project's provider is read from appwright.config.ts. For local providers the build
($QGJOB_BUILD_PATH, an existing .apk) is checked, and the device ($QGJOB_DEVICE_SERIAL) too
when $QGJOB_FAKE_ADB_STATE names fake_adb's state. For `browserstack` the credentials and a
`bs://` url in $QGJOB_BROWSERSTACK_APP_URL are required, and each attempt opens and closes a
session on the fake hub at $QGJOB_FAKE_BROWSERSTACK_HUB_URL (else $QGJOB_BROWSERSTACK_API_URL),
recording `sessionId` annotations as AppWright does.

$QGJOB_FAKE_NPX_LOG, when set, gets JSON lines: one `invoke` per invocation (argv, cwd, pid,
relevant env), `appium_started` (child pid) for hang, and `exit` (code) at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.standins import playwright_json as pj
from tests.standins.directives import DirectiveError, SpecPlan, parse_spec
from tests.standins.fake_appwright import (
    Config,
    Invocation,
    UsageError,
    find_spec_files,
    parse_invocation,
    read_config,
)
from tests.standins.fake_hub import HubError
from tests.standins.fake_run import run_tests, setup_checks

LOGGED_ENV = (
    "CI",
    "PLAYWRIGHT_JSON_OUTPUT_FILE",
    "PLAYWRIGHT_HTML_OPEN",
    "QGJOB_BUILD_PATH",
    "QGJOB_DEVICE_SERIAL",
    "QGJOB_BROWSERSTACK_APP_URL",
    "BROWSERSTACK_USERNAME",
    "ANDROID_SERIAL",
)


def main(argv: list[str]) -> int:
    log("invoke", argv=argv, cwd=os.getcwd(), env=_logged_env())
    code = 1
    try:
        code = run(argv)
    finally:
        log("exit", code=code)
    return code


def run(argv: list[str]) -> int:
    if not argv or argv[0] != "appwright":
        print(f"npm error could not determine executable to run: {' '.join(argv[:1])}")
        return 1
    try:
        invocation = parse_invocation(argv[1:], cwd=Path.cwd(), env=os.environ)
        config = read_config(invocation)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return _appwright_failed(str(exc))
    start = datetime.now(UTC)
    files = find_spec_files(config.root_dir, invocation.filters)
    try:
        plans = {path: parse_spec(path.read_text()) for path in files}
    except DirectiveError as exc:
        return _broken_run(invocation, config, f"Error: qgjob-fake directive: {exc}", start)
    if not any(plan.tests for plan in plans.values()):
        return _broken_run(
            invocation, config, "=================\n no tests found.\n=================", start
        )
    problem = setup_checks(invocation, config, env=os.environ)
    if problem is None:
        problem = next(
            (_infra_message(p) for p in plans.values() if p.directive.outcome == "infra"), None
        )
    if problem is not None:
        return _broken_run(invocation, config, problem, start)
    if any(p.directive.outcome == "crash" for p in plans.values()):
        print("[INFO] Appium server is up and running.")
        print(
            "node:internal/process/promises:391\n    triggerUncaughtException(err, true);\n"
            "    ^\n\nError: socket hang up\n    at Socket.socketOnEnd (node:_http_client:524:23)",
            file=sys.stderr,
        )
        return _appwright_failed("Error: socket hang up")
    if any(p.directive.hang for p in plans.values()):
        _hang()
    print("[INFO] Appium server is up and running.")
    try:
        suites, failed = run_tests(invocation, config, plans, env=os.environ)
    except HubError as exc:
        return _broken_run(invocation, config, str(exc), start)
    report = _report(invocation, config, suites=suites, errors=[], start=start)
    _write(invocation, report)
    if failed:
        return _appwright_failed("Error: tests failed")
    return 0


def _broken_run(invocation: Invocation, config: Config, message: str, start: datetime) -> int:
    """globalSetup (or test loading) failed: no tests ran, the reason is in `errors[]`."""
    print(message)
    error = {"message": message, "stack": message}
    report = _report(invocation, config, suites=[], errors=[error], start=start)
    _write(invocation, report)
    return _appwright_failed(message)


def _report(
    invocation: Invocation,
    config: Config,
    *,
    suites: list[pj.JSONDict],
    errors: list[pj.JSONDict],
    start: datetime,
) -> pj.JSONDict:
    elapsed_ms = (datetime.now(UTC) - start).total_seconds() * 1000
    return {
        "config": pj.config_entry(
            config_file=str(config.path),
            root_dir=str(config.root_dir),
            project=invocation.project or "",
            retries=invocation.retries,
            timeout_ms=invocation.timeout_ms,
            workers=invocation.workers,
            reporters=invocation.reporters,
        ),
        "suites": suites,
        "errors": errors,
        "stats": pj.stats_entry(start=start, duration_ms=elapsed_ms, suites=suites),
    }


def _write(invocation: Invocation, report: pj.JSONDict) -> None:
    if "json" not in invocation.reporters:
        return
    text = json.dumps(report, indent=2)
    target = os.environ.get("PLAYWRIGHT_JSON_OUTPUT_FILE")
    if not target:
        print(text)
        return
    path = Path(target)
    if not path.is_absolute():
        path = Path.cwd() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _infra_message(plan: SpecPlan) -> str:
    return f"Error: {plan.directive.message or 'Could not find online devices'}"


def _appwright_failed(detail: str) -> int:
    last = detail.strip().splitlines()[-1] if detail.strip() else ""
    print(f"\x1b[31m[ERROR]\x1b[39m Error while running playwright test: {last}")
    return 1


def _hang() -> None:
    # Like Appium under AppWright: a child that outlives nothing unless the group is killed.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    log("appium_started", child_pid=child.pid)
    print("[INFO] Appium server is up and running.", flush=True)
    while True:
        time.sleep(3600)


def log(event: str, **fields: object) -> None:
    target = os.environ.get("QGJOB_FAKE_NPX_LOG")
    if not target:
        return
    record = {"event": event, "pid": os.getpid(), "time": time.time(), **fields}
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def _logged_env() -> dict[str, str | None]:
    env: dict[str, str | None] = {name: os.environ.get(name) for name in LOGGED_ENV}
    env["BROWSERSTACK_ACCESS_KEY"] = "***" if os.environ.get("BROWSERSTACK_ACCESS_KEY") else None
    return env


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
