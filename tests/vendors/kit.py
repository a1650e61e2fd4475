"""The base of every loopback vendor server: a real HTTP server on 127.0.0.1 that records each request and
misbehaves on purpose (429 with Retry-After, 500, a hang, 401, a lost answer after the write was applied)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Recorded:
    """One request as the vendor received it (header names in lower case)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Fault:
    """How to misbehave for the next `times` requests that match `method` and the path prefix.

    status: answer with this status (and `retry_after` as the Retry-After header when set);
    hang: sleep this many seconds before answering (the client should time out first);
    apply_first: do the real work, then hang or fail: the write happened but its answer is lost.
    """

    method: str | None = None
    path_prefix: str = ""
    status: int | None = None
    retry_after: str | None = None
    hang: float = 0.0
    apply_first: bool = False
    times: int = 1
    body: Any = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and path.startswith(self.path_prefix)


Reply = tuple[int, Any, dict[str, str]]  # status, JSON body (None: empty), extra headers


@dataclass
class VendorState:
    """What every vendor server keeps: the requests received, faults to inject, and a lock for both."""

    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    every: tuple[int, Fault] | None = None  # (n, fault): every n-th write request gets the fault
    writes_seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class VendorServer(ThreadingHTTPServer):
    """Subclasses implement `route(request) -> Reply` for the vendor's paths and check its auth there."""

    daemon_threads = True
    WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = VendorState()
        self._thread: threading.Thread | None = None

    # --- for tests ----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fail(self, fault: Fault) -> None:
        with self.state.lock:
            self.state.faults.append(fault)

    def fail_every(self, n: int, fault: Fault) -> None:
        """Every n-th write request (POST, PUT, PATCH, DELETE) gets `fault` (e.g. 429 one time in five)."""
        with self.state.lock:
            self.state.every = (n, fault)

    def received(self, method: str | None = None, path_prefix: str = "") -> list[Recorded]:
        with self.state.lock:
            return [
                r
                for r in self.state.requests
                if (method is None or r.method == method) and r.path.startswith(path_prefix)
            ]

    def clear(self) -> None:
        with self.state.lock:
            self.state.requests.clear()

    # --- for subclasses -----------------------------------------------------------------------------------------

    def route(self, request: Recorded) -> Reply:
        raise NotImplementedError

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _fault_for(self, request: Recorded) -> Fault | None:
        with self.state.lock:
            self.state.requests.append(request)
            for fault in self.state.faults:
                if fault.times > 0 and fault.matches(request.method, request.path):
                    fault.times -= 1
                    return fault
            if self.state.every and request.method in self.WRITE_METHODS:
                self.state.writes_seen += 1
                n, fault = self.state.every
                if self.state.writes_seen % n == 0:
                    return fault
        return None

    def answer(self, request: Recorded) -> Reply:
        fault = self._fault_for(request)
        if fault is None:
            return self.route(request)
        if fault.apply_first:
            self.route(request)
        if fault.hang:
            time.sleep(fault.hang)
        if fault.status is None:
            return self.route(request) if not fault.apply_first else (200, {}, {})
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        return fault.status, fault.body if fault.body is not None else {"error": f"injected {fault.status}"}, headers

    def handle_error(self, request: Any, client_address: Any) -> None:  # a client that hung up is not an error here
        pass

    def start(self) -> VendorServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: VendorServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        request = Recorded(self.command, parts.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
        status, payload, headers = self.server.answer(request)
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


S = TypeVar("S", bound="VendorServer")


@contextmanager
def running(server: S) -> Iterator[S]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
