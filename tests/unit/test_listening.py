"""Binding the server's port up front: a clear reason when it cannot be done."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from qgjob.listening import CannotListen, bind_listener, local_url


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_port_in_use_says_so_and_what_to_change(taken: int) -> None:
    with pytest.raises(CannotListen) as caught:
        bind_listener("127.0.0.1", taken)
    assert str(caught.value) == (
        f"cannot listen on 127.0.0.1:{taken}: port {taken} is already in use (another qgjob "
        "server?); choose another with --port or QGJOB_PORT"
    )


def test_an_unknown_host_names_the_setting() -> None:
    with pytest.raises(CannotListen, match=r"the host .no such host. is unknown .*QGJOB_HOST"):
        bind_listener("no such host", 8000)


def test_an_address_of_another_machine_names_the_setting() -> None:
    with pytest.raises(CannotListen, match=r"192\.0\.2\.1 is not an address of this machine"):
        bind_listener("192.0.2.1", 8000)  # TEST-NET-1: never assigned to this host


def test_a_free_port_is_bound() -> None:
    with bind_listener("127.0.0.1", 0) as sock:
        host, port = sock.getsockname()
    assert host == "127.0.0.1" and port > 0


def test_the_local_url_reaches_a_server_bound_to_every_address() -> None:
    assert local_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"  # noqa: S104
    assert local_url("127.0.0.1", 9001) == "http://127.0.0.1:9001"
    assert local_url("::1", 9001) == "http://[::1]:9001"
    assert local_url("10.1.2.3", 80) == "http://10.1.2.3:80"
