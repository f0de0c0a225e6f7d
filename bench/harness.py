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
from urllib.parse import urlsplit, urlunsplit

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


def cpu_s(pid: int, *, with_children: bool = False) -> float:
    """CPU seconds (user + system) a live process has used; with its waited-for children
    (such as the shells a worker ran) when `with_children`."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if with_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_pids(pgdata: Path) -> list[int]:
    """The postmaster under `pgdata` and its live children (backends, walwriter, …)."""
    try:
        postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return []
    pids = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(stat.parent.name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return pids


def start_workers(
    server: Server, *, count: int, command: str, log_dir: Path
) -> list[subprocess.Popen[bytes]]:
    """`count` real `qgjob worker` processes (local executor, capacity 1) named b0, b1, …,
    each logging to `log_dir/bN.log`. Stop them with SIGTERM: they drain and exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QGJOB_")}
    env.update({"QGJOB_SERVER_URL": server.url, "QGJOB_TOKEN": server.token})
    env["QGJOB_LOG_LEVEL"] = "WARNING"
    procs = []
    for n in range(count):
        argv = [sys.executable, "-m", "qgjob", "worker", "--target", "emulator"]
        argv += ["--executor", "local", "--command", command, "--capacity", "1"]
        with (log_dir / f"b{n}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [*argv, "--name", f"b{n}"], env=env, cwd=REPO, stdout=log, stderr=log
                )
            )
    return procs


def log_tails(log_dir: Path, chars: int = 1500) -> str:
    return "\n".join(f"{p.name}: {p.read_text()[-chars:]}" for p in sorted(log_dir.glob("*.log")))


async def fresh_database(admin_dsn: str, prefix: str) -> str:
    """Create an empty database named `prefix_<random>` on the cluster; returns its dsn."""
    from urllib.parse import urlsplit

    import asyncpg

    name = f"{prefix}_{os.urandom(4).hex()}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(admin_dsn)._replace(path="/" + name))


def raw_client(server: Server) -> RawClient:
    """A (not yet connected) RawClient for `server`, with its admin token."""
    parts = urlsplit(server.url)
    return RawClient(parts.hostname or "", parts.port or 0, server.token)


def percentile_ms(values_s: list[float], q: float) -> float:
    ordered = sorted(values_s)
    return round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


def cpu_by_party(server: Server, workers: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU seconds so far of the server, the workers (with their commands) and PostgreSQL
    (the embedded one's live processes; backends that exited are not counted)."""
    postgres = postgres_pids(server.data_dir / "pgdata")
    return {
        "server": cpu_s(server.pid),
        "workers": sum(cpu_s(w.pid, with_children=True) for w in workers),
        "postgres": sum(cpu_s(pid) for pid in postgres),
    }


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """An admin dsn: QGJOB_DATABASE_URL if set, else a fresh embedded PostgreSQL."""
    from app.embedded import start_embedded

    if os.environ.get("QGJOB_DATABASE_URL"):
        yield os.environ["QGJOB_DATABASE_URL"]
        return
    with tempfile.TemporaryDirectory(prefix="qgjob-bench-pg-") as tmp:
        embedded = start_embedded(Path(tmp))
        try:
            yield embedded.dsn
        finally:
            embedded.stop()


async def settle(dsn: str) -> None:
    """Fresh planner statistics and a clean checkpoint, before a timed drain."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
