"""`dispatch.processes.Child`: a real child's exit reaches the event loop, by pidfd or thread."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile

import pytest

from dispatch import processes
from dispatch.processes import Child, run_argv


async def start(command: str) -> Child:
    with tempfile.TemporaryFile() as output:
        return Child.start(
            ["/bin/sh", "-c", command],
            executable="/bin/sh",
            env=os.environ,
            cwd=None,
            output=output,
        )


@pytest.fixture(params=["pidfd", "thread"])
def waiting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of learning that a child exited: a pidfd, and a thread where there is none."""
    if request.param == "thread":

        def no_pidfds(pid: int) -> int:
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(processes.os, "pidfd_open", no_pidfds, raising=False)
    return str(request.param)


async def test_exit_codes_and_signals_reach_the_loop(waiting: str) -> None:
    assert await (await start("exit 0")).wait() == 0
    assert await (await start("exit 7")).wait() == 7
    assert await (await start("kill -TERM $$")).wait() == -signal.SIGTERM


async def test_a_cancelled_waiter_leaves_the_exit_to_the_next_one(waiting: str) -> None:
    child = await start("sleep 0.3; exit 3")
    first = asyncio.ensure_future(child.wait())
    await asyncio.sleep(0.05)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await child.wait() == 3
    assert await child.wait() == 3  # asked again: the same answer


async def test_the_child_is_reaped(waiting: str) -> None:
    child = await start("exit 0")
    await child.wait()
    with pytest.raises(ChildProcessError):  # nothing left to reap: no zombie stays behind
        os.waitpid(child.pid, os.WNOHANG)  # noqa: ASYNC222 (WNOHANG: it does not block)


async def test_run_argv_output_and_code_by_either_way(waiting: str) -> None:
    done = await run_argv(
        ["/bin/sh", "-c", "echo out; echo err >&2; exit 4"],
        executable="/bin/sh",
        env=os.environ,
    )
    assert done.exit_code == 4
    assert done.output.splitlines() == ["out", "err"]
