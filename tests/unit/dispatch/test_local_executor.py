"""The `local` executor with real subprocesses: outcomes, quoting, logs, timeouts, cancels."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shlex
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dispatch.errors import InfrastructureError
from dispatch.executors.base import JobSpec
from dispatch.executors.local import (
    JOB_PLACEHOLDERS,
    LocalExecutor,
    check_template,
    fill,
    plain_argv,
)
from dispatch.processes import read_tail
from qgjob.types import Outcome, Target
from qgjob.worker_api import ClaimedGroup, ClaimedJob

PY = shlex.quote(sys.executable)


def group(app_version_id: str = "v1.2.3") -> ClaimedGroup:
    return ClaimedGroup(
        group_id=uuid.uuid4(),
        lease_token=1,
        lease_expires_at=datetime.now(UTC),
        org_id="qualgent",
        app_version_id=app_version_id,
        target=Target.EMULATOR,
        jobs=(),
        source=None,
    )


def job(test_path: str = "tests/login.spec.ts", *, attempt: int = 1) -> JobSpec:
    claimed = ClaimedJob(
        job_id=uuid.uuid4(), test_path=test_path, attempt=attempt, run_id=uuid.uuid4(), source=None
    )
    return JobSpec.of(group(), claimed)


def python(code: str) -> str:
    return f"{PY} -c {shlex.quote(code)}"


def alive(pid: int) -> bool:
    """Running, as opposed to exited or a zombie nobody reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in ("Z", "X")


def written_line(path: Path) -> str | None:
    """The file's text once a whole line is in it, else None."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return text if text.endswith("\n") else None


async def wait_for_file(path: Path, *, timeout_s: float = 10) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = written_line(path)
        if text is not None:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was not written in {timeout_s} s")
        await asyncio.sleep(0.02)


async def until_dead(pid: int, *, timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if not alive(pid):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)


async def test_exit_zero_passes_and_keeps_the_output() -> None:
    executor = LocalExecutor(command="echo out; echo err >&2")
    result = await executor.run(job(), cancel=asyncio.Event())
    assert result.outcome is Outcome.PASSED
    assert result.error is None
    assert result.log is not None
    assert "out" in result.log
    assert "err" in result.log
    assert result.duration_ms >= 0


async def test_non_zero_exit_fails_with_the_code() -> None:
    executor = LocalExecutor(command="echo boom; exit 3")
    result = await executor.run(job(), cancel=asyncio.Event())
    assert result.outcome is Outcome.FAILED
    assert result.error is not None
    assert "exited with code 3" in result.error
    assert result.log == "boom\n"


async def test_placeholders_are_shell_quoted_and_exported(tmp_path: Path) -> None:
    out = tmp_path / "argv.txt"
    tricky = 'tests/it\'s a "quoted" $(touch pwned) spec.ts'
    code = (
        "import json, os, sys; "
        f"open({str(out)!r}, 'w').write(json.dumps([sys.argv[1:], "
        "[os.environ[k] for k in ('QGJOB_TEST_PATH', 'QGJOB_JOB_ID', 'QGJOB_APP_VERSION_ID', "
        "'QGJOB_TARGET', 'QGJOB_ATTEMPT')], 'QGJOB_TOKEN' in os.environ]))"
    )
    executor = LocalExecutor(
        command=python(code) + " {test_path} {app_version_id} {target} {job_id} {attempt}",
        env={**os.environ, "QGJOB_TOKEN": "secret-worker-token"},
        cwd=tmp_path,
    )
    spec = job(tricky, attempt=2)
    result = await executor.run(spec, cancel=asyncio.Event())
    assert result.outcome is Outcome.PASSED, result.log
    argv, env, token_seen = json.loads(out.read_text())
    expected = [tricky, "v1.2.3", "emulator", str(spec.job_id), "2"]
    assert argv == expected
    assert env == [tricky, str(spec.job_id), "v1.2.3", "emulator", "2"]
    assert token_seen is False  # the worker's token is not handed to test code
    assert not (tmp_path / "pwned").exists()


def test_plain_words_run_without_the_shell_with_the_same_arguments() -> None:
    values = {"test_path": "it's a $(spec).ts", "attempt": "2", "target": ""}
    assert plain_argv("npx appwright test {test_path} --retries=0 a{attempt}b", values) == [
        "npx",
        "appwright",
        "test",
        "it's a $(spec).ts",
        "--retries=0",
        "a2b",
    ]
    assert plain_argv("run  {target} ", values) == ["run", ""]  # an empty value stays a word
    shell = ["echo hi; exit 3", "echo $HOME", "a > f", "ls *.ts", "x 'q'", "A=1 cmd", "~/bin/x"]
    shell += ["cmd {other}", "cmd ${test_path}", "a\tb", "cmd # note", "a && b", "(cmd)"]
    for template in shell:
        assert plain_argv(template, values) is None, template


async def test_a_plain_command_gets_each_value_as_one_argument(tmp_path: Path) -> None:
    script = tmp_path / "argv.py"
    script.write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    executor = LocalExecutor(command=f"{sys.executable} {script} {{test_path}} x{{attempt}}y")
    tricky = 'tests/it\'s a "quoted" $(touch pwned) spec.ts'
    result = await executor.run(job(tricky, attempt=3), cancel=asyncio.Event())
    assert result.outcome is Outcome.PASSED, result.log
    assert json.loads(result.log or "") == [tricky, "x3y"]


async def test_builtins_and_unknown_programs_still_go_through_the_shell(tmp_path: Path) -> None:
    result = await LocalExecutor(command="exit 3").run(job(), cancel=asyncio.Event())
    assert result.outcome is Outcome.FAILED
    assert result.error == "the command exited with code 3"
    missing = LocalExecutor(command="qgjob-no-such-program {test_path}")
    result = await missing.run(job(), cancel=asyncio.Event())
    assert result.outcome is Outcome.FAILED
    assert result.error == "the command exited with code 127"
    assert "not found" in (result.log or "")


def test_shell_braces_are_left_alone() -> None:
    assert fill("echo ${HOME} {test_path} {other}", {"test_path": "a b"}) == (
        "echo ${HOME} 'a b' {other}"
    )


def test_prepare_command_cannot_use_job_placeholders() -> None:
    with pytest.raises(ValueError, match=r"--prepare-command cannot use \{test_path\}"):
        check_template(
            "install {test_path}", allowed=("app_version_id", "target"), option="--prepare-command"
        )
    with pytest.raises(ValueError, match="must not be empty"):
        LocalExecutor(command="  ")


def test_a_misspelt_placeholder_is_refused_other_braces_are_not() -> None:
    with pytest.raises(ValueError, match=r"has \{test_paht\}: did you mean \{test_path\}\?"):
        LocalExecutor(command="npx appwright test {test_paht}")
    with pytest.raises(ValueError, match=r"did you mean \{app_version_id\}\?"):
        LocalExecutor(command="run {test_path}", prepare_command="install {app_versionid}")
    awk = "awk '{print}' {test_path}; echo ${HOME} {nope}"
    assert check_template(awk, allowed=("test_path",), option="--command") == awk


async def test_timeout_kills_the_whole_process_tree(tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    # The command starts a child, which starts a grandchild `sleep`; both write their pid.
    child = (
        "import os, subprocess, sys, time; "
        "g = subprocess.Popen(['sleep', '60']); "
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{g.pid}}\\n'); "
        "time.sleep(60)"
    )
    executor = LocalExecutor(command=python(child), job_timeout_s=1.0, kill_grace_s=1.0)
    result = await asyncio.wait_for(executor.run(job(), cancel=asyncio.Event()), 20)
    assert result.outcome is Outcome.TIMED_OUT
    assert result.error is not None
    assert "timed out after 1 s" in result.error
    child_pid, grandchild_pid = (int(p) for p in (await wait_for_file(pids)).split())
    assert not alive(child_pid)
    assert not alive(grandchild_pid)


async def test_sigterm_is_followed_by_sigkill_after_the_grace(tmp_path: Path) -> None:
    ready = tmp_path / "ready.txt"
    stubborn = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"open({str(ready)!r}, 'w').write(f'{{os.getpid()}}\\n'); time.sleep(60)"
    )
    executor = LocalExecutor(command=python(stubborn), job_timeout_s=0.5, kill_grace_s=0.5)
    result = await asyncio.wait_for(executor.run(job(), cancel=asyncio.Event()), 20)
    assert result.outcome is Outcome.TIMED_OUT
    assert not alive(int(await wait_for_file(ready)))


async def test_cancel_event_kills_the_tree(tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    executor = LocalExecutor(command=f"sleep 60 & echo $! > {shlex.quote(str(pids))}; wait")
    cancel = asyncio.Event()
    running = asyncio.create_task(executor.run(job(), cancel=cancel))
    sleeper = int(await wait_for_file(pids))
    assert alive(sleeper)
    cancel.set()
    result = await asyncio.wait_for(running, 20)
    assert result.outcome is Outcome.ERROR
    assert result.error is not None
    assert "cancelled" in result.error
    assert not alive(sleeper)


async def test_cancelling_the_task_kills_the_tree_at_once(tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    executor = LocalExecutor(command=f"sleep 60 & echo $! > {shlex.quote(str(pids))}; wait")
    running = asyncio.create_task(executor.run(job(), cancel=asyncio.Event()))
    sleeper = int(await wait_for_file(pids))
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await until_dead(sleeper)


async def test_helpers_left_behind_by_a_finished_job_are_stopped(tmp_path: Path) -> None:
    pids = tmp_path / "pids.txt"
    executor = LocalExecutor(command=f"sleep 60 & echo $! > {shlex.quote(str(pids))}")
    result = await asyncio.wait_for(executor.run(job(), cancel=asyncio.Event()), 20)
    assert result.outcome is Outcome.PASSED
    assert not alive(int(await wait_for_file(pids)))


async def test_prepare_runs_with_group_placeholders(tmp_path: Path) -> None:
    out = tmp_path / "prepared.txt"
    executor = LocalExecutor(
        command="true",
        prepare_command="echo {app_version_id} {target} $QGJOB_TARGET > " + shlex.quote(str(out)),
    )
    prepared = await executor.prepare(group("build 42"))
    assert out.read_text() == "build 42 emulator emulator\n"
    assert prepared.build == "build 42"
    assert prepared.install_ms >= 0


async def test_prepare_failure_is_an_infrastructure_error_with_its_output() -> None:
    executor = LocalExecutor(command="true", prepare_command="echo adb: device offline; exit 1")
    with pytest.raises(InfrastructureError) as caught:
        await executor.prepare(group())
    assert caught.value.transient
    assert "exited with code 1" in caught.value.reason
    assert "adb: device offline" in caught.value.reason


async def test_without_prepare_command_nothing_is_installed() -> None:
    prepared = await LocalExecutor(command="true").prepare(group("v9"))
    assert prepared.install_ms == 0
    assert prepared.build == "v9"


async def test_only_the_last_part_of_a_long_log_is_kept() -> None:
    executor = LocalExecutor(
        command=python("print('first'); print('x' * 5000); print('last')"),
        log_limit_bytes=1000,
    )
    result = await executor.run(job(), cancel=asyncio.Event())
    assert result.log is not None
    assert len(result.log) <= 1000
    assert result.log.endswith("last\n")
    assert "first" not in result.log
    assert "earlier bytes of output not kept" in result.log


def test_read_tail_notes_what_it_drops() -> None:
    output = io.BytesIO(b"abcdefgh")
    assert read_tail(output, limit=100) == "abcdefgh"
    text = read_tail(output, limit=4)
    assert text.startswith("[… 4 earlier bytes")
    assert text.endswith("gh")


@pytest.mark.parametrize(
    "command",
    [
        'echo "[{test_path}]"',
        "echo '{test_path}'",
        'run --spec="{test_path}" --target {target}',
        'echo "it\'s {job_id}"',
    ],
)
def test_a_placeholder_inside_quotes_is_refused(command: str) -> None:
    # Its quoted value would close the template's quotes: `$(…)` in a test path would run.
    with pytest.raises(ValueError, match="inside quotes; write it bare"):
        check_template(command, allowed=JOB_PLACEHOLDERS, option="--command")


@pytest.mark.parametrize(
    "command",
    [
        'cd "$HOME/app" && npx appwright test {test_path}',
        'echo \\"{test_path}',  # an escaped quote opens nothing
        "awk '{print}' {test_path}",
        'grep "{nope}" {test_path}',  # not a placeholder of ours
    ],
)
def test_a_placeholder_outside_quotes_is_accepted(command: str) -> None:
    assert check_template(command, allowed=JOB_PLACEHOLDERS, option="--command") == command


async def test_a_test_path_holding_shell_code_stays_a_word(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    executor = LocalExecutor(command="echo ran {test_path}; true", cwd=tmp_path)
    spec = job(f"tests/a b'$(touch {marker})'`id`.spec.ts")
    result = await executor.run(spec, cancel=asyncio.Event())
    assert not marker.exists()
    assert result.log == f"ran {spec.test_path}\n"
