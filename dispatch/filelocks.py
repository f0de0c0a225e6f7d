"""Advisory file locks (`fcntl.flock`) shared by worker processes on one host.

Taken by polling with `LOCK_NB` rather than blocking in a thread: a task cancelled while it
waits then simply stops waiting, instead of leaving a thread that later takes the lock.

Lock files named after what they guard (a build, a commit) would pile up for ever, so the
caches delete a lock file together with what it guarded. That is safe because of two rules:
a lock file is deleted only by a holder of its exclusive lock (`delete_held`), and whoever
takes a lock checks afterwards that the path still names the file it locked, trying again
on the new file otherwise (`hold`, `try_hold`). Without the check, a process that opened
the file just before it was deleted would lock the deleted file while another created and
locked a new one, and both would think they held the lock.
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


async def hold(path: Path, kind: int) -> int:
    """A descriptor holding `kind` on the lock file that `path` names, waiting as long as it
    takes. Close it to release the lock."""
    while True:
        fd = open_lock(path)
        try:
            await flock(fd, kind)
        except BaseException:
            os.close(fd)
            raise
        if _still_named(path, fd):
            return fd
        os.close(fd)  # deleted while we waited: lock the file that replaced it


def try_hold(path: Path, kind: int) -> int | None:
    """`hold` without waiting: None when somebody holds a conflicting lock."""
    while True:
        fd = open_lock(path)
        if not try_flock(fd, kind):
            os.close(fd)
            return None
        if _still_named(path, fd):
            return fd
        os.close(fd)


def delete_held(path: Path, fd: int) -> None:
    """Delete the lock file at `path`, whose exclusive lock `fd` holds (from `hold` or
    `try_hold`). The lock itself lasts until `fd` is closed."""
    if _still_named(path, fd):
        path.unlink(missing_ok=True)


@asynccontextmanager
async def exclusive(path: Path) -> AsyncIterator[int]:
    """Hold an exclusive lock on the file at `path` for the block (its descriptor)."""
    fd = await hold(path, fcntl.LOCK_EX)
    try:
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases its lock


def _still_named(path: Path, fd: int) -> bool:
    """Whether `path` names the file open on `fd` (it was not deleted or replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
