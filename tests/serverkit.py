"""Helpers for tests that run the real service: a free loopback port and `triage serve` in a subprocess."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

KEY = re.compile(r"tri_[0-9a-f]{12}_[A-Za-z0-9_-]+")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def head_revision() -> str:
    """The newest Alembic revision: what every migrated database must be at."""
    from alembic.script import ScriptDirectory

    from agents.store.tickets import MIGRATIONS

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


def fresh_data_dir(template: Path, target: Path) -> Path:
    """A new data folder with the trained models and index of `template`, and no database yet."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("models", "index"):
        shutil.copytree(template / name, target / name)
    return target


@contextmanager
def redis_namespace(url: str, socket_timeout: float = 1.0) -> Iterator[tuple[redis.Redis, str]]:
    """A key namespace of its own in the real Redis at `url`, emptied afterwards; the test skips without Redis."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=socket_timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {url} ({type(exc).__name__}); set TRIAGE_TEST_REDIS_URL to run these tests")
    namespace = f"triage_test_{secrets.token_hex(6)}"
    try:
        yield client, namespace
    finally:
        for key in client.scan_iter(f"{namespace}:*"):
            client.delete(key)
        client.close()


def stop_process(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """Ask a child process to stop (SIGTERM), wait `grace` seconds, then kill it; nothing if it already ended."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float, what: str) -> None:
    """Until `url`/readyz answers 200; RuntimeError with the log's text when the process exits first or `timeout`
    seconds pass (the process is stopped then)."""
    output = lambda: log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""  # noqa: E731
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{output()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError(f"{what} not ready within {timeout} s:\n{output()}")


class ServerProcess:
    """`triage serve` on 127.0.0.1 in its own process, with the hashing embedder and the classical path."""

    def __init__(self, data_dir: Path, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.data_dir, self.log, self.cwd = data_dir, log, cwd  # cwd: another checkout's code (python -m runs it)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "TRIAGE_EMBEDDER": "hashing", "TRIAGE_POLICY": "classical_only", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "agents.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        wait_ready(self.proc, self.url, self.log, timeout, "server")
        return self

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def printed_keys(self) -> list[str]:
        return KEY.findall(self.output())

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.proc)
