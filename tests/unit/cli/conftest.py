"""Fixtures for the CLI and client tests: the stand-in API, in process and on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tests.unit.cli.shell import Cli
from tests.unit.cli.standin import StandinState, build_app

_STATE = StandinState()


@pytest.fixture
def state() -> StandinState:
    return _STATE


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No QGJOB_* variable leaks in; the data dir (and its admin.token) is the test's own."""
    for name in ("QGJOB_TOKEN", "QGJOB_SERVER_URL", "FORCE_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("QGJOB_DATA_DIR", str(data_dir))
    _STATE.reset()
    return data_dir


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """The stand-in API served by uvicorn in a thread on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_app(_STATE), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the stand-in server did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def cli(server_url: str) -> Cli:
    return Cli(server_url)
