"""Shared pieces of the benchmarks: a real `qgjob server` process, a lean HTTP client, RSS.

The load generator speaks HTTP/1.1 with keep-alive over raw asyncio streams, like `wrk`,
so that the client's own overhead does not hide the server's throughput on a 2-core box.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    token: str
    pid: int
    data_dir: Path
    log_path: Path


@contextmanager
def running_server(*, extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """`qgjob server` on a fresh embedded PostgreSQL (or QGJOB_DATABASE_URL if set)."""
    with tempfile.TemporaryDirectory(prefix="qgjob-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("QGJOB_")}
        if os.environ.get("QGJOB_DATABASE_URL"):
            env["QGJOB_DATABASE_URL"] = os.environ["QGJOB_DATABASE_URL"]
        env.update({"QGJOB_DATA_DIR": str(data_dir), "QGJOB_LOG_LEVEL": "WARNING"})
        env.update(extra_env or {})
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "qgjob", "server", "--port", str(port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc, log_path)
            token = (data_dir / "admin.token").read_text().strip()
            yield Server(url=url, token=token, pid=proc.pid, data_dir=data_dir, log_path=log_path)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 60
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited:\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not become ready")


def rss_kib(pid: int, key: str = "VmHWM") -> int:
    """Peak (VmHWM) or current (VmRSS) resident memory of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class RssSampler:
    """Samples a process's RSS in a thread; `peak_kib` is the highest seen (and VmHWM)."""

    pid: int
    interval_s: float = 0.05
    peak_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, rss_kib(self.pid))

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, rss_kib(self.pid, "VmRSS"))
            self._stop.wait(self.interval_s)


class RawClient:
    """One keep-alive HTTP/1.1 connection that sends JSON and reads the whole answer."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        payload = json.dumps(body).encode()
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            f"Authorization: Bearer {self.token}",
            "Content-Type: application/json",
            f"Content-Length: {len(payload)}",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()
