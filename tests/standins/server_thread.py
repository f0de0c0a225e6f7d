"""Serving an ASGI app for real, on 127.0.0.1, from a background thread.

For tests whose own code is synchronous (subprocesses of fake executables, plain httpx
calls): the server gets its own event loop in a daemon thread and stops when the block ends.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp


@contextmanager
def serve_in_thread(app: ASGIApp, *, name: str = "server", **config: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on a free 127.0.0.1 port in a daemon thread; yields its URL.
    `config` goes to `uvicorn.Config` (e.g. `date_header=False`)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {name} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
