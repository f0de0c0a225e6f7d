"""Which errors mean "the database went away" (503, retry) and which are bugs (500)."""

from __future__ import annotations

import asyncpg

from app.errors import lost_connection


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
