"""Which errors mean "the database went away" (503, retry) and which are bugs (500)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

import asyncpg
import pytest

from app.database import DATABASE_ERRORS
from app.errors import DATABASE_DOWN, lost_connection
from app.reaper import reap_forever


def _raised_while_handling(first: BaseException, second: BaseException) -> BaseException:
    try:
        try:
            raise first
        except BaseException:
            raise second  # noqa: B904 - the implicit context is what asyncpg leaves
    except BaseException as exc:
        return exc


def test_a_connection_cut_inside_a_transaction_is_a_lost_connection() -> None:
    closed = asyncpg.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection is closed"
    )
    cut = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")
    assert lost_connection(_raised_while_handling(cut, closed))
    assert lost_connection(closed)
    assert lost_connection(ConnectionRefusedError(111, "Connection refused"))
    assert lost_connection(asyncpg.CannotConnectNowError("the database system is starting up"))
    crash = "terminating connection because of crash of another server process"
    assert lost_connection(asyncpg.CrashShutdownError(crash))
    assert lost_connection(asyncpg.InternalClientError("unexpected protocol state"))


def test_misuse_of_a_connection_is_not() -> None:
    busy = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    assert not lost_connection(busy)
    assert not lost_connection(ValueError("no"))


def test_background_loops_retry_whatever_the_http_layer_calls_database_down() -> None:
    for kind in DATABASE_DOWN:
        assert issubclass(kind, DATABASE_ERRORS), kind


class _PoolLosingItsConnections:
    """Hands out no connection: acquiring fails the way asyncpg did in CI while PostgreSQL
    restarted under a pooled connection."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self) -> Any:
        self.acquired += 1
        raise asyncpg.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        )


async def test_the_reaper_shrugs_off_a_lost_protocol_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = _PoolLosingItsConnections()
    caplog.set_level(logging.WARNING, logger="app.reaper")
    task = asyncio.create_task(
        reap_forever(cast(asyncpg.Pool, pool), interval_s=0.01, backoff_s=1, offline_after_s=30)
    )
    try:
        while pool.acquired < 2:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [r.levelno for r in caplog.records if r.name == "app.reaper"][:2] == [
        logging.WARNING,
        logging.WARNING,
    ]
    assert all(r.exc_info is None for r in caplog.records)
