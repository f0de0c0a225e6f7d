"""A TCP proxy on 127.0.0.1 whose open connections can go silent: a half-open connection.

`freeze()` stops relaying bytes on every connection open at that moment without closing
either side, as a dropped network path or a NAT that forgot the flow does; connections
made afterwards are relayed normally.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class _Link:
    frozen: asyncio.Event = field(default_factory=asyncio.Event)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class TcpProxy:
    """Listens on 127.0.0.1 and relays to a unix socket (`target_path`) or a TCP address."""

    def __init__(
        self, *, target_path: str | None = None, target: tuple[str, int] | None = None
    ) -> None:
        assert (target_path is None) != (target is None)
        self.target_path = target_path
        self.target = target
        self.links: list[_Link] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def connections(self) -> int:
        return len(self.links)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def freeze(self) -> None:
        for link in self.links:
            link.frozen.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self.links:
            for writer in link.writers:
                writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.target_path is not None:
            upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.target_path)
        else:
            assert self.target is not None
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        link = _Link(writers=[writer, upstream_writer])
        self.links.append(link)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._relay(source, sink, link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                if link.frozen.is_set():
                    await asyncio.Event().wait()  # swallow it, and everything after: silence
                sink.write(data)
                await sink.drain()
