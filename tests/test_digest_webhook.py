"""Posting the digest: a real HTTP server on 127.0.0.1 that fails first, one that refuses, and the digest on disk
before any post."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from agents.digest.builder import DigestBuilder
from agents.digest.job import deliver, latest_digest_html
from agents.digest.models import Digest, DigestInput, DigestTicket
from agents.digest.webhook import WebhookFailed, WebhookPoster
from kb.loader import load_kb

AT = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)


class Hook:
    """A Slack-like endpoint answering with the queued statuses (the last one repeats)."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses, self.headers, self.bodies = list(statuses), headers or {}, []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                status = hook.statuses.pop(0) if len(hook.statuses) > 1 else hook.statuses[0]
                self.send_response(status)
                for name, value in hook.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"server error")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def refused_url() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture(scope="module")
def digest(kb_dir: Path) -> Digest:
    ticket = DigestTicket(
        id="t1",
        title="VPN down",
        status="triaged",
        team="network",
        priority="P2",
        created_at=datetime(2026, 7, 14, 7, 30, tzinfo=UTC),
    )  # response due 08:30: breached
    return DigestBuilder(load_kb(kb_dir)).build(DigestInput(tickets=[ticket]), now=AT)


@pytest.fixture
def sleeps() -> Iterator[list[float]]:
    yield []


def test_a_500_is_retried_after_a_backoff_then_posted(digest: Digest, tmp_path: Path, sleeps: list[float]) -> None:
    with Hook([500, 200]) as hook:
        poster = WebhookPoster(hook.url, backoff=0.5, sleep=sleeps.append)
        run = deliver(digest, tmp_path, poster=poster)
    assert (run.posted, run.attempts, run.error) == (True, 2, None)
    assert sleeps == [0.5]
    assert len(hook.bodies) == 2 and "VPN down" in hook.bodies[-1]["text"]
    assert hook.bodies[-1]["text"].startswith("# Daily digest: all teams")


def test_backoff_doubles_and_gives_up_with_the_file_still_written(
    digest: Digest, tmp_path: Path, sleeps: list[float], refused_url: str
) -> None:
    poster = WebhookPoster(refused_url, retries=3, backoff=1.0, sleep=sleeps.append)
    run = deliver(digest, tmp_path, fmt="json", out=tmp_path / "out" / "digest.json", poster=poster)
    assert (run.posted, run.attempts) == (False, 4)
    assert sleeps == [1.0, 2.0, 4.0]
    assert "ConnectError" in (run.error or "") and "/hook" not in (run.error or "")  # the URL's path is a secret
    assert Digest.model_validate_json((tmp_path / "out" / "digest.json").read_text()) == digest
    for path in run.files.values():
        assert Path(path).is_file()
    assert "VPN down" in (latest_digest_html(tmp_path) or "")


def test_a_client_error_is_not_retried(digest: Digest, sleeps: list[float]) -> None:
    with Hook([404]) as hook, pytest.raises(WebhookFailed) as err:
        WebhookPoster(hook.url, sleep=sleeps.append).post({"text": "x"})
    assert (err.value.status, err.value.attempts, sleeps, len(hook.bodies)) == (404, 1, [], 1)
    assert "secret" not in str(err.value)


def test_retry_after_is_honoured_and_capped(sleeps: list[float]) -> None:
    with Hook([429, 503, 200], headers={"Retry-After": "7"}) as hook:
        attempts = WebhookPoster(hook.url, max_backoff=5.0, sleep=sleeps.append).post({"text": "x"})
    assert (attempts, sleeps) == (3, [5.0, 5.0])


def test_an_injected_transport_sees_the_request() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    poster = WebhookPoster("https://hooks.example/services/x", transport=httpx.MockTransport(handle))
    assert poster.post({"text": "hello"}) == 1
    assert seen[0].method == "POST" and json.loads(seen[0].content) == {"text": "hello"}


def test_a_bad_url_is_a_clear_error() -> None:
    with pytest.raises(WebhookFailed, match="must start with http"):
        WebhookPoster("ftp://example/hook")


def test_no_digest_yet_means_no_html(tmp_path: Path) -> None:
    assert latest_digest_html(tmp_path) is None
