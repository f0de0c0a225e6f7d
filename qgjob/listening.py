"""The server's listening socket, bound before anything else starts.

`qgjob server` binds it before it starts the database, and `qgjob up` checks the port the
same way before it starts the server: a port in use or a host that is not this machine's is
one clear line, not uvicorn's log line after an embedded PostgreSQL was started for nothing
(nor, for `up`, a readiness check answered by some other server on that port).
"""

from __future__ import annotations

import errno
import socket


class CannotListen(Exception):
    """The address cannot be listened on; the message says why and what to change."""


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (not yet listening), or `CannotListen`."""
    where = f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CannotListen(
            f"cannot listen on {where}: the host {host!r} is unknown ({exc.strerror}); "
            "set --host or QGJOB_HOST to an address of this machine, such as 127.0.0.1"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = (
                f"port {port} is already in use (another qgjob server?); choose another "
                "with --port or QGJOB_PORT"
            )
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason = f"{host} is not an address of this machine; set --host or QGJOB_HOST"
        else:
            reason = exc.strerror or str(exc)
        raise CannotListen(f"cannot listen on {where}: {reason}") from None
    return sock


def local_url(host: str, port: int) -> str:
    """The url a client on this machine reaches a server bound to `host`:`port` at."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - every address: reach it on loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"
