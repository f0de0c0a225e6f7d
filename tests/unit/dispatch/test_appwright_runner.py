"""Running one spec with AppWright (fake_npx as a real process): command, results, limits."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest

from dispatch.errors import InfrastructureError, JobError
from dispatch.executors.appwright import (
    AppwrightOptions,
    HostLock,
    command,
    run_spec,
    spec_filter,
    spec_path,
)
from qgjob.types import Outcome
from tests.support.executors import NPX, spec, workspace


def options(root: Path, **overrides: object) -> AppwrightOptions:
    values: dict[str, object] = {
        "project": "android-emulator",
        "workspace": root,
        "npx": NPX,
        "retries": 1,
        "test_timeout_s": 30,
        "job_timeout_s": 60,
        "kill_grace_s": 1,
    }
    values.update(overrides)
    return AppwrightOptions(**values)  # type: ignore[arg-type]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = workspace(
        tmp_path / "app",
        {
            "login.spec.ts": spec(),
            "relogin.spec.ts": spec("outcome=fail"),
            "flaky.spec.ts": spec("outcome=flaky fails=1"),
            "broken.spec.ts": spec("outcome=infra message='Could not find online devices'"),
            "crash.spec.ts": spec("outcome=crash"),
            "hang.spec.ts": spec("hang"),
        },
    )
    (root / "app.apk").write_bytes(b"apk")
    return root


def env(root: Path, log: Path | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("QGJOB_") and k != "CI"}
    base["QGJOB_BUILD_PATH"] = str(root / "app.apk")
    if log is not None:
        base["QGJOB_FAKE_NPX_LOG"] = str(log)
    return base


def test_the_spec_filter_matches_that_file_only() -> None:
    pattern = spec_filter(Path("/w/tests/login.spec.ts"))
    assert re.search(pattern, "/w/tests/login.spec.ts")
    assert not re.search(pattern, "/w/tests/relogin.spec.ts")
    assert not re.search(pattern, "/w/tests/loginXspec.ts")


def test_the_command_has_explicit_retries_timeout_and_a_two_word_project(project: Path) -> None:
    argv = command(options(project, retries=2, test_timeout_s=90), project / "tests/a.spec.ts")
    start = argv.index("appwright")
    assert argv[start : start + 4] == [
        "appwright",
        "test",
        spec_filter(project / "tests/a.spec.ts"),
        "--project",
    ]
    assert argv[argv.index("--project") + 1] == "android-emulator"
    assert "--reporter=list,json" in argv
    assert argv[argv.index("--retries") + 1] == "2"
    assert argv[argv.index("--timeout") + 1] == "90000"


def test_a_spec_outside_the_workspace_or_with_a_space_is_a_job_error(project: Path) -> None:
    with pytest.raises(JobError, match="not in the workspace"):
        spec_path(project, "tests/absent.spec.ts")
    spaced = project / "tests" / "with space.spec.ts"
    spaced.write_text(spec())
    with pytest.raises(JobError, match="space"):
        spec_path(project, "tests/with space.spec.ts")


async def test_outcomes_come_from_the_report(project: Path, tmp_path: Path) -> None:
    log = tmp_path / "npx.jsonl"
    passed = await run_spec(
        options(project), project / "tests/login.spec.ts", env=env(project, log), cancel=None
    )
    assert passed.outcome is Outcome.PASSED
    failed = await run_spec(
        options(project), project / "tests/relogin.spec.ts", env=env(project, log), cancel=None
    )
    assert failed.outcome is Outcome.FAILED
    assert failed.error is not None and "Element was not found" in failed.error
    assert failed.error.startswith("relogin.spec.ts:")  # file:line of the failure
    flaky = await run_spec(
        options(project), project / "tests/flaky.spec.ts", env=env(project, log), cancel=None
    )
    assert flaky.outcome is Outcome.FLAKY and flaky.spec is not None and flaky.spec.attempts == 2
    invocations = [json.loads(line) for line in log.read_text().splitlines()]
    first = next(i for i in invocations if i["event"] == "invoke")
    assert first["env"]["CI"] == "1"
    assert first["env"]["PLAYWRIGHT_JSON_OUTPUT_FILE"].endswith("report.json")


@pytest.mark.parametrize(
    ("name", "code"), [("broken.spec.ts", "no_tests_ran"), ("crash.spec.ts", "no_report")]
)
async def test_a_run_that_broke_is_an_infrastructure_error(
    project: Path, name: str, code: str
) -> None:
    with pytest.raises(InfrastructureError) as caught:
        await run_spec(options(project), project / "tests" / name, env=env(project), cancel=None)
    assert caught.value.code == code
    assert caught.value.log  # what the run wrote: the job's log (`qgjob logs`)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in ("Z", "X")


async def test_the_wall_clock_limit_kills_the_whole_process_tree(
    project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "npx.jsonl"
    run = await run_spec(
        options(project, job_timeout_s=3),
        project / "tests/hang.spec.ts",
        env=env(project, log),
        cancel=None,
    )
    assert run.outcome is Outcome.TIMED_OUT
    assert run.error is not None and "process tree was killed" in run.error
    events = [json.loads(line) for line in log.read_text().splitlines()]
    appium = next(e["child_pid"] for e in events if e["event"] == "appium_started")
    npx = next(e["pid"] for e in events if e["event"] == "invoke")
    assert not alive(appium) and not alive(npx)


async def test_the_host_lock_admits_one_holder_at_a_time(tmp_path: Path) -> None:
    lock = HostLock(tmp_path, "appwright")
    inside: list[int] = []
    most = 0

    async def hold(number: int) -> None:
        nonlocal most
        async with lock.held():
            inside.append(number)
            most = max(most, len(inside))
            await asyncio.sleep(0.05)
            inside.remove(number)

    await asyncio.gather(*(hold(n) for n in range(4)))
    assert most == 1
    fd = lock.try_acquire()
    assert fd is not None  # free again after the block
    assert HostLock(tmp_path, "appwright").try_acquire() is None  # another opener is refused
    os.close(fd)
