"""LISTEN/NOTIFY wakeups survive a connection that goes silent without closing."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg

from app.wakeups import CHANNEL, Wakeups, listen_forever
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually, soon


async def woken_by_notify(dsn: str, wakeups: Wakeups, *, within_s: float) -> bool:
    event = wakeups.current()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"SELECT pg_notify('{CHANNEL}', '')")
    finally:
        await conn.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), within_s)
    return event.is_set()


async def test_a_half_open_listen_connection_is_noticed_and_replaced(database_url: str) -> None:
    parts = urlsplit(database_url)
    socket_dir = parse_qs(parts.query).get("host")
    if socket_dir:  # the embedded cluster: a unix socket
        proxy = TcpProxy(target_path=f"{socket_dir[0]}/.s.PGSQL.{parts.port or 5432}")
    else:
        proxy = TcpProxy(target=(parts.hostname or "127.0.0.1", parts.port or 5432))
    await proxy.start()
    netloc = f"{parts.username}:{parts.password or ''}@127.0.0.1:{proxy.port}"
    via_proxy = urlunsplit(parts._replace(netloc=netloc, query=""))
    wakeups = Wakeups()
    listener = asyncio.create_task(
        listen_forever(via_proxy, wakeups, retry_s=0.1, probe_every_s=0.2, probe_timeout_s=0.3)
    )
    try:
        await eventually(soon(lambda: proxy.connections == 1), what="listening", timeout_s=10)
        assert await woken_by_notify(database_url, wakeups, within_s=5)

        proxy.freeze()  # the listening connection goes silent; nothing closes
        assert not await woken_by_notify(database_url, wakeups, within_s=0.1)

        # The probe gets no answer: the listener drops it and listens on a new connection.
        await eventually(
            soon(lambda: proxy.connections >= 2), what="a new listen connection", timeout_s=10
        )
        await eventually(
            lambda: woken_by_notify(database_url, wakeups, within_s=1),
            what="a notification to wake the waiters again",
            timeout_s=10,
        )
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await proxy.close()
