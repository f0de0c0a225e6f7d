"""Child process trees: run a command in its own session, keep its output's tail, kill it all.

A test command starts helpers (emulators, Appium, node workers) that outlive a plain
`kill(pid)`. Each command therefore runs as the leader of a new session and process group
(`start_new_session=True`), and stopping it signals the whole group: SIGTERM, then SIGKILL
after a grace period. Whether the group still has live members is read from `/proc`, because
orphans that no init reaps stay behind as zombies and would look alive to `kill(-pgid, 0)`.

A worker learns that a command exited through a pidfd where Linux has them
(`watch_children_with_pidfds`): Python 3.11's asyncio otherwise starts a thread per child
to wait for it, and the event loop blocks until that thread runs (3.12 chose pidfds itself).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

DEFAULT_TAIL_BYTES = 1024 * 1024
_POLL_S = 0.05
_SIGKILL_WAIT_S = 2.0
SHELL = "/bin/sh"


class Stop(StrEnum):
    """Why a command was stopped before it ended by itself."""

    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


def watch_children_with_pidfds() -> bool:
    """Make the running loop's subprocesses report their exit through pidfds; whether it
    did. Python 3.12+ does so by itself; without pidfds (not Linux, kernel < 5.3) asyncio's
    thread per child stays."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    watcher = asyncio.PidfdChildWatcher()
    watcher.attach_loop(asyncio.get_running_loop())
    asyncio.get_event_loop_policy().set_child_watcher(watcher)
    return True


@dataclass(frozen=True)
class Completed:
    """How a command ended. `exit_code` is negative (-signal) when a signal ended it."""

    exit_code: int
    output: str
    duration_ms: int
    stopped: Stop | None = None


def read_tail(output: BinaryIO, *, limit: int = DEFAULT_TAIL_BYTES) -> str:
    """The last `limit` bytes of a file as text, after a note of how much came before them."""
    size = output.seek(0, os.SEEK_END)
    dropped = max(0, size - limit)
    output.seek(dropped)
    text = output.read().decode("utf-8", errors="replace")
    if not dropped:
        return text
    note = f"[… {dropped} earlier bytes of output not kept …]\n"
    keep = max(limit - len(note), limit // 2, 1)
    return note + text[-keep:]


async def run_shell(
    command: str,
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout_s: float | None = None,
    cancel: asyncio.Event | None = None,
    kill_grace_s: float = 5.0,
    tail_bytes: int = DEFAULT_TAIL_BYTES,
) -> Completed:
    """Run `command` through the shell (`/bin/sh -c`); see `run_argv`."""
    return await run_argv(
        [SHELL, "-c", command],
        executable=SHELL,
        env=env,
        cwd=cwd,
        timeout_s=timeout_s,
        cancel=cancel,
        kill_grace_s=kill_grace_s,
        tail_bytes=tail_bytes,
    )


async def run_argv(
    argv: Sequence[str],
    *,
    executable: str,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout_s: float | None = None,
    cancel: asyncio.Event | None = None,
    kill_grace_s: float = 5.0,
    tail_bytes: int = DEFAULT_TAIL_BYTES,
) -> Completed:
    """Run the program at `executable` with `argv` and stdout+stderr captured, until it
    ends, times out or `cancel` is set. Cancelling the calling task kills the tree at once
    (SIGKILL).
    """
    if cancel is not None and cancel.is_set():
        return Completed(
            exit_code=-signal.SIGTERM, output="", duration_ms=0, stopped=Stop.CANCELLED
        )
    # Output goes to a file, not a pipe: helpers that outlive the command would hold a pipe
    # open, and asyncio reports a process as exited only once its pipes are closed.
    with tempfile.TemporaryFile(prefix="qgjob-output-") as output:
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *argv,
            executable=executable,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        try:
            stopped = await _wait(proc, timeout_s=timeout_s, cancel=cancel)
            duration_ms = int((time.monotonic() - started) * 1000)
            if stopped is not None:
                logger.info("stopping process tree pgid=%d reason=%s", proc.pid, stopped)
            # Also after a normal exit: helpers it left running in its group must not linger.
            await kill_tree(proc.pid, grace_s=kill_grace_s)
            exit_code = await proc.wait()
        except BaseException:
            signal_group(proc.pid, signal.SIGKILL)
            raise
        return Completed(
            exit_code=exit_code,
            output=read_tail(output, limit=tail_bytes),
            duration_ms=duration_ms,
            stopped=stopped,
        )


async def _wait(
    proc: asyncio.subprocess.Process, *, timeout_s: float | None, cancel: asyncio.Event | None
) -> Stop | None:
    """Wait for the leader to exit; the reason to stop it instead, if one comes first."""
    ended = asyncio.ensure_future(proc.wait())
    cancelled = asyncio.ensure_future(cancel.wait()) if cancel is not None else None
    waiting = {ended} if cancelled is None else {ended, cancelled}
    try:
        await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waiting:
            task.cancel()
    if ended.done() and not ended.cancelled():
        return None
    if cancelled is not None and cancelled.done() and not cancelled.cancelled():
        return Stop.CANCELLED
    return Stop.TIMEOUT


async def kill_tree(pgid: int, *, grace_s: float) -> None:
    """SIGTERM the process group, then SIGKILL whatever is still alive after `grace_s`."""
    if not group_alive(pgid) or not signal_group(pgid, signal.SIGTERM):
        return
    if await _gone(pgid, within_s=grace_s):
        return
    logger.info("process tree ignored SIGTERM for %.1f s, killing pgid=%d", grace_s, pgid)
    signal_group(pgid, signal.SIGKILL)
    # SIGKILL cannot be ignored, but dying takes a moment; return once it is done.
    await _gone(pgid, within_s=_SIGKILL_WAIT_S)


async def _gone(pgid: int, *, within_s: float) -> bool:
    """Wait up to `within_s` for the group to have no live member; whether it got there."""
    deadline = time.monotonic() + within_s
    while True:
        if not group_alive(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_S)


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to every process of the group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed user; nothing more we may do
        return False
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of group `pgid` is still running (zombies do not count).

    `killpg(pgid, 0)` answers "no member at all" cheaply, which is the common case after a
    job exits; only when members remain do we scan /proc to tell live ones from zombies
    (PID 1 in a container may never reap orphans, and a zombie is not worth waiting for).
    """
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False
