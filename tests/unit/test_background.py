"""A background loop that hits a bug starts again instead of stopping for good."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app import background


async def test_a_loop_that_raises_is_started_again(caplog: pytest.LogCaptureFixture) -> None:
    runs = 0
    again = asyncio.Event()

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise KeyError("a bug")
        again.set()
        await asyncio.Event().wait()  # runs until cancelled, as the real loops do

    task = background.start("tracker", loop, restart_s=0.01)
    await asyncio.wait_for(again.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 2
    failures = [r for r in caplog.records if r.name == "app.background"]
    assert [r.levelno for r in failures] == [logging.ERROR]
    assert "loop=tracker" in failures[0].getMessage()
    assert failures[0].exc_info is not None


async def test_cancelling_stops_a_loop_for_good() -> None:
    runs = 0
    started = asyncio.Event()

    async def loop() -> None:
        nonlocal runs
        runs += 1
        started.set()
        await asyncio.sleep(60)

    task = background.start("reaper", loop, restart_s=0)
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 1


async def test_a_loop_that_returns_is_done() -> None:
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1

    await background.start("once", loop, restart_s=0)
    assert runs == 1
