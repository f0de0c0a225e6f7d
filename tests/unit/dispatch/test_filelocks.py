"""Lock files that can be deleted: whoever locked a file that was deleted meanwhile locks
the new one instead, so two holders never both believe they hold the lock."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from dispatch.filelocks import delete_held, exclusive, hold, open_lock, try_hold


async def test_a_waiter_whose_lock_file_was_deleted_locks_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    deleter = await hold(path, fcntl.LOCK_EX)
    waiter = asyncio.create_task(hold(path, fcntl.LOCK_EX))
    await asyncio.sleep(0.2)  # the waiter opened the old file and polls its lock
    assert not waiter.done()
    delete_held(path, deleter)
    newcomer = try_hold(path, fcntl.LOCK_EX)  # makes and locks a new file at once
    assert newcomer is not None
    os.close(deleter)
    await asyncio.sleep(0.2)  # the old file's lock is free now: the waiter got it, saw the
    assert not waiter.done()  # path names another file, and waits for the newcomer's lock
    os.close(newcomer)
    fd = await asyncio.wait_for(waiter, 5)
    try:
        assert os.fstat(fd).st_ino == os.stat(path).st_ino
    finally:
        os.close(fd)


def test_try_hold_is_refused_while_another_descriptor_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    shared = open_lock(path)
    fcntl.flock(shared, fcntl.LOCK_SH)
    try:
        assert try_hold(path, fcntl.LOCK_EX) is None
        also_shared = try_hold(path, fcntl.LOCK_SH)
        assert also_shared is not None
        os.close(also_shared)
    finally:
        os.close(shared)
    fd = try_hold(path, fcntl.LOCK_EX)
    assert fd is not None
    delete_held(path, fd)
    os.close(fd)
    assert not path.exists()


async def test_exclusive_holds_the_file_the_path_names(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    async with exclusive(path) as fd:
        assert os.fstat(fd).st_ino == os.stat(path).st_ino
        assert try_hold(path, fcntl.LOCK_SH) is None
    fd = try_hold(path, fcntl.LOCK_SH)
    assert fd is not None
    os.close(fd)
