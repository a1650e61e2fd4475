"""Shared fixtures: no outbound network, the repo's kb/ folder, a tiny corpus, an embedder."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest

from kb.loader import KnowledgeBase, load_kb
from retrieval.corpus import load_chunks
from retrieval.embedders import HashingEmbedder
from retrieval.markdown import Chunk

REPO = Path(__file__).resolve().parent.parent

_real_create_connection = socket.create_connection
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback_host(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").split("%", 1)[0].lower()  # "[::1]", "fe80::1%eth0"
    if host in ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost: refuse before any DNS lookup
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _check(family: int, address: object) -> None:
    if hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if family in (socket.AF_INET, socket.AF_INET6) and _is_loopback_host(host):
        return
    raise RuntimeError(f"network disabled in tests: {address!r}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _check(self.family, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _check(self.family, address)
    return _real_connect_ex(self, address)


def _guarded_create_connection(address: tuple, *args: object, **kwargs: object) -> socket.socket:
    if not _is_loopback_host(address[0]):
        raise RuntimeError(f"network disabled in tests: {address!r}")
    return _real_create_connection(address, *args, **kwargs)


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> Iterator[None]:
    """Only loopback and unix sockets may connect; models and hubs must stay offline."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _guarded_connect)
        mp.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
        mp.setattr(socket, "create_connection", _guarded_create_connection)
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def kb_dir() -> Path:
    """The repo's real knowledge base (read it, never write to it)."""
    return REPO / "kb"


@pytest.fixture(scope="session")
def demo_kb(kb_dir: Path) -> KnowledgeBase:
    """The demo knowledge base, loaded once."""
    return load_kb(kb_dir)


@pytest.fixture(scope="session")
def sop_chunks(kb_dir: Path) -> list[Chunk]:
    """The demo SOPs' sections as the index reads them."""
    return load_chunks(kb_dir / "sops")


TINY_DOCS: dict[str, str] = {
    # front matter with id and title; nested headings
    "vpn.md": """\
        ---
        id: sop-vpn
        title: Connect to the GlobalConnect VPN
        service: vpn
        tags: [vpn, remote access]
        ---
        # Connect to the GlobalConnect VPN
        GlobalConnect VPN gives you the company network from home.

        ## Symptoms
        The VPN tunnel drops and GlobalConnect shows Disconnected.

        ## Steps
        Open GlobalConnect and press Connect.

        ### Windows
        Click the GlobalConnect shield icon in the Windows tray and choose Connect.

        ### macOS
        Click the GlobalConnect shield in the macOS menu bar and choose Connect.

        ## If that does not work
        Tell the network team the VPN error code shown by GlobalConnect.
        """,
    # no front matter: title is the first H1; a code fence holds a '# not a heading' line
    "printer.md": """\
        Printer article, read before printing.

        # Printer jams on floor 2
        The printer on floor 2 jams when the paper tray is overfilled.

        ## Clear the jam
        Open the printer front door, pull out the jammed paper, close the tray.

        ```bash
        # not a heading
        lpstat -p floor2-printer
        ```
        Print a test page afterwards.

        ## Toner
        Replace the toner cartridge when the printer shows low toner.
        """,
    # nested folder, no front matter, no H1: title comes from the file stem
    "guides/password-reset.md": """\
        Reset a forgotten KeyGate password in the self-service portal.

        ## Steps
        Open the KeyGate portal, choose forgot password and follow the reset email.
        """,
    # front matter with a title but no id: doc id comes from the path
    "payroll.md": """\
        ---
        title: Payslips in PayFlow
        ---
        ## Where to find payslips
        Payslips and salary statements are in PayFlow under My payslips each month.
        """,
    # CamelCase identifiers
    "alerts/kube.md": """\
        # Kubernetes alerts
        ## KubePodCrashLooping
        A pod restarts again and again; check the container logs and the last deploy.
        """,
}


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """Five small Markdown documents in tmp_path/corpus (ids: sop-vpn, printer,
    guides/password-reset, payroll, alerts/kube)."""
    root = tmp_path / "corpus"
    for rel, text in TINY_DOCS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text), encoding="utf-8")
    return root


@pytest.fixture
def hashing_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def demo_rows() -> list[dict]:
    """The demo tickets (written by the project), in file order."""
    from agents.jsonl import read_jsonl
    from agents.settings import DEMO_TICKETS

    return read_jsonl(DEMO_TICKETS)


@pytest.fixture(scope="session")
def trained_service(tmp_path_factory: pytest.TempPathFactory):
    """A real TriageService on the hashing embedder, trained once per session on the demo tickets."""
    from agents.app import build_service
    from agents.settings import Settings

    data_dir = tmp_path_factory.mktemp("triage-data")
    return build_service(Settings(data_dir=data_dir, embedder="hashing", policy="classical_only", train_folds=3))


@pytest.fixture(scope="session")
def served_data_dir(trained_service, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder with the session's trained models and SOP index; servers started by tests copy it."""
    from agents.classical.training import save_models

    root = tmp_path_factory.mktemp("served-data")
    save_models(trained_service.models, root / "models")
    trained_service.searcher.index.save(root / "index")
    return root


@pytest.fixture(scope="session")
def served_answerer(trained_service, served_data_dir: Path):
    """The `ask` path on the session's SOP index and embedder, built once for every app a test creates."""
    from agents.app import build_answerer
    from agents.settings import Settings

    settings = Settings(data_dir=served_data_dir, embedder="hashing", policy="classical_only")
    return build_answerer(settings, embedder=trained_service.embedder)


@pytest.fixture(params=["jira", "servicenow", "zammad", "zendesk"])
def kit(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each helpdesk vendor's test kit (tests/connector_kit.py) with its loopback server running."""
    from tests.connector_kit import KITS
    from tests.vendors.kit import running

    made = KITS[request.param]()
    with running(made.server):
        yield made
