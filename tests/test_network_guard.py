"""The autouse guard in conftest.py refuses outbound connections but lets loopback and unix work."""

from __future__ import annotations

import os
import socket
import threading
import urllib.request
from pathlib import Path

import pytest

BLOCKED = "network disabled in tests"


def test_environment_is_offline_for_model_hubs() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


@pytest.mark.parametrize("address", [("10.255.255.1", 80), ("pypi.org", 443)])
def test_create_connection_to_outside_is_refused(address: tuple[str, int]) -> None:
    with pytest.raises(RuntimeError, match=BLOCKED) as info:
        socket.create_connection(address, timeout=1)
    assert address[0] in str(info.value)


@pytest.mark.parametrize("address", [("10.255.255.1", 80), ("pypi.org", 443)])
def test_raw_socket_connect_to_outside_is_refused(address: tuple[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        with pytest.raises(RuntimeError, match=BLOCKED):
            sock.connect(address)
        with pytest.raises(RuntimeError, match=BLOCKED):
            sock.connect_ex(address)


def test_ipv6_outside_is_refused() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    with (
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock,
        pytest.raises(RuntimeError, match=BLOCKED),
    ):
        sock.connect(("2001:4860:4860::8888", 53, 0, 0))


def test_http_client_to_outside_is_refused() -> None:
    # urllib wraps OSError in URLError; the guard's RuntimeError must come through unchanged
    with pytest.raises(RuntimeError, match=BLOCKED):
        urllib.request.urlopen("https://pypi.org/simple/", timeout=1)


def _serve_once(server: socket.socket, received: list[bytes]) -> None:
    conn, _ = server.accept()
    with conn:
        received.append(conn.recv(16))
        conn.sendall(b"pong")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_server_still_accepts(host: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(5)
        port = server.getsockname()[1]
        received: list[bytes] = []
        thread = threading.Thread(target=_serve_once, args=(server, received))
        thread.start()
        with socket.create_connection((host, port), timeout=5) as client:
            client.sendall(b"ping")
            assert client.recv(16) == b"pong"
        thread.join(5)
    assert received == [b"ping"]


def test_unix_socket_still_connects(tmp_path: Path) -> None:
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no unix sockets on this platform")
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            conn, _ = server.accept()
            with conn:
                client.sendall(b"hi")
                assert conn.recv(2) == b"hi"
