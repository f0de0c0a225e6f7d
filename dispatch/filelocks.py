"""Advisory file locks (`fcntl.flock`) shared by worker processes on one host.

Taken by polling with `LOCK_NB` rather than blocking in a thread: a task cancelled while it
waits then simply stops waiting, instead of leaving a thread that later takes the lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

POLL_S = 0.05


def open_lock(path: Path) -> int:
    """A descriptor on the lock file at `path` (created when missing)."""
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


async def flock(fd: int, kind: int) -> None:
    """Take `kind` (`fcntl.LOCK_SH` or `LOCK_EX`) on `fd`, waiting as long as it takes."""
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            await asyncio.sleep(POLL_S)


def try_flock(fd: int, kind: int) -> bool:
    """Take `kind` on `fd` if nobody holds a conflicting lock; never waits."""
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@asynccontextmanager
async def exclusive(path: Path) -> AsyncIterator[None]:
    """Hold an exclusive lock on the file at `path` for the block."""
    fd = open_lock(path)
    try:
        await flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases its lock
