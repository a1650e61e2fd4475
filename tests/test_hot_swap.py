"""Hot swap on real processes: two `triage serve` replicas on one data folder (one SQLite file, one models folder)
serve requests without a pause while `triage models promote` and `rollback` move the pointer; both report the new
version within SWAP_WITHIN seconds and answer with its models; a version that does not load is refused by the CLI,
and where the pointer names it anyway the replicas keep the old one and say why. A `triage worker` swaps too.

The versions are real models on the hashing embedder: v0001 is the session's trained models; v0002 learnt one
category for every ticket (so an answer shows which version gave it); v0003 has a damaged models.joblib."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.classical.training import save_models, train_models
from agents.cli.main import main
from agents.models.records import TrainingData, VersionRecord
from agents.models.versions import VersionStore
from agents.store.tickets import Store
from agents.types import Ticket
from agents.workers.queues import TicketQueue
from tests.serverkit import ServerProcess, fresh_data_dir
from tests.test_workers import Deployment, broker, deployment, small_training, wait_for  # noqa: F401  (fixtures)

POLL = "0.5"  # TRIAGE_MODELS_POLL of the replicas under test
SWAP_WITHIN = 30.0  # seconds from the promote to both replicas serving the version (poll + load, on a busy machine)
UNLIMITED = {"TRIAGE_RATE_LIMIT_PER_SECOND": "1000000", "TRIAGE_RATE_LIMIT_BURST": "1000000"}  # load, not limits
PROBE = {"title": "VPN drops every few minutes", "body": "GlobalConnect disconnects when I work from home."}


@dataclass(frozen=True)
class Versions:
    """A data folder template holding v0001 (current), v0002 (one category for all) and v0003 (broken)."""

    template: Path
    ids: tuple[str, str, str]
    category: dict[str, str]  # version id -> the category it gives PROBE


@pytest.fixture(scope="module")
def versions(trained_service, served_data_dir: Path, demo_rows: list[dict], tmp_path_factory) -> Versions:
    root = fresh_data_dir(served_data_dir, tmp_path_factory.mktemp("swap") / "data")
    store = VersionStore(root / "models")
    first = store.adopt_legacy()
    assert first is not None
    before = trained_service.triage(Ticket(**PROBE)).category
    other = next(r["category"] for r in demo_rows if r["category"] != before)
    rows = [{**r, "category": other} for r in demo_rows[::4]]
    models = train_models(rows, trained_service.embedder, trained_service.kb, folds=3)
    record = VersionRecord(
        source="train", embedder=models.embedder_name, data=TrainingData(source_file=None, source_rows=len(rows))
    )
    second = store.create(lambda out: save_models(models, out), record, make_current=False)

    def broken(out: Path) -> None:
        out.mkdir()
        shutil.copy(store.model_dir(second.id) / "manifest.json", out / "manifest.json")
        (out / "models.joblib").write_bytes(b"these bytes are not a model")

    third = store.create(broken, record.model_copy(update={"note": "damaged on purpose"}), make_current=False)
    return Versions(root, (first.id, second.id, third.id), {first.id: before, second.id: other})


@dataclass
class Load:
    """One client per replica, each sending requests back to back (stateless triage, every fifth one stored)."""

    key: str
    urls: list[str]
    results: list[list[tuple[float, int | str, str | None]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for url in self.urls:
            seen: list[tuple[float, int | str, str | None]] = []
            self.results.append(seen)
            self.threads.append(threading.Thread(target=self._run, args=(url, seen), daemon=True))
        for thread in self.threads:
            thread.start()
        return self

    def _run(self, url: str, seen: list[tuple[float, int | str, str | None]]) -> None:
        with httpx.Client(base_url=url, headers={"X-API-Key": self.key}, timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                path = "/v1/tickets" if n % 5 == 0 else "/v1/triage"
                try:
                    reply = client.post(path, json=PROBE)
                    body = reply.json() if reply.status_code < 300 else {}
                    category = (body.get("result") or body).get("category")  # a stored ticket's result, or the result
                    seen.append((time.monotonic(), reply.status_code, category))
                except httpx.HTTPError as exc:
                    seen.append((time.monotonic(), type(exc).__name__, None))

    def finish(self) -> list[list[tuple[float, int | str, str | None]]]:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        return self.results


def failures(results: list[list[tuple[float, int | str, str | None]]]) -> list[tuple[float, int | str, str | None]]:
    return [r for seen in results for r in seen if r[1] not in (200, 201)]


@pytest.fixture
def replicas(versions: Versions, tmp_path: Path) -> Iterator[tuple[list[ServerProcess], str, Path]]:
    """Two replicas on one copy of the template (one SQLite file, one models folder), polling every POLL s."""
    data = tmp_path / "data"
    shutil.copytree(versions.template, data)
    env = {"TRIAGE_MODELS_POLL": POLL, "TRIAGE_MEMORY_POLL": POLL, **UNLIMITED}
    first = ServerProcess(data, tmp_path / "a.log", env).start()
    (key,) = first.printed_keys()
    running = [first]
    try:
        running.append(ServerProcess(data, tmp_path / "b.log", env).start())
        yield running, key, data
    finally:
        for server in running:
            server.stop()


def models_of(server: ServerProcess, key: str) -> dict[str, Any]:
    reply = httpx.get(f"{server.url}/v1/models", headers={"X-API-Key": key}, timeout=10)
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["version"])


def until_all_serve(servers: list[ServerProcess], key: str, version: str) -> list[float]:
    """Seconds from now until each replica reports `version` loaded (polled every 20 ms)."""
    started, seen = time.monotonic(), {}
    while len(seen) < len(servers):
        for i, server in enumerate(servers):
            if i not in seen and models_of(server, key)["loaded"] == version:
                seen[i] = time.monotonic() - started
        assert time.monotonic() - started < SWAP_WITHIN, f"not every replica serves {version}: {seen}"
        time.sleep(0.02)
    return [seen[i] for i in range(len(servers))]


def cli(data: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setenv("TRIAGE_EMBEDDER", "hashing")
    return main(["models", *args, "--data-dir", str(data)])


def test_a_promote_and_a_rollback_reach_both_replicas_with_no_failed_request(
    replicas: tuple[list[ServerProcess], str, Path], versions: Versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers, key, data = replicas
    v1, v2, _ = versions.ids
    assert [models_of(s, key)["loaded"] for s in servers] == [v1, v1]
    load = Load(key, [s.url for s in servers]).start()
    try:
        time.sleep(1.0)
        marks = [time.monotonic()]
        assert cli(data, monkeypatch, "promote", v2) == 0
        promoted = until_all_serve(servers, key, v2)
        time.sleep(1.0)
        marks.append(time.monotonic())
        assert cli(data, monkeypatch, "rollback") == 0
        rolled_back = until_all_serve(servers, key, v1)
        time.sleep(1.0)
    finally:
        results = load.finish()
    print(f"promote seen after {promoted} s, rollback after {rolled_back} s; requests {[len(r) for r in results]}")
    assert not failures(results), failures(results)[:5]
    old, new = versions.category[v1], versions.category[v2]
    for seen in results:  # each client saw v1's answers, then v2's from one request on, then v1's from one on
        phases = [[c for t, _, c in seen if a <= t < b] for a, b in zip([0.0, *marks], [*marks, 1e18], strict=True)]
        assert all(phases), "a phase without requests: the load did not run through the swaps"
        assert set(phases[0]) == {old}
        assert set(phases[1]) <= {old, new} and set(phases[1][phases[1].index(new) :]) == {new}
        assert set(phases[2]) <= {old, new} and set(phases[2][phases[2].index(old) :]) == {old}
    for server in servers:
        status = models_of(server, key)
        assert status["swaps"] == 2 and status["failed"] is None and status["pointer"] == v1


def test_a_version_that_does_not_load_is_refused_and_the_old_one_stays(
    replicas: tuple[list[ServerProcess], str, Path], versions: Versions, monkeypatch: pytest.MonkeyPatch
) -> None:
    servers, key, data = replicas
    v1, v2, broken = versions.ids
    store = VersionStore(data / "models")
    assert cli(data, monkeypatch, "promote", broken) != 0  # the CLI loads it first and refuses it
    assert store.current_id() == v1
    load = Load(key, [s.url for s in servers]).start()
    try:
        store.promote(broken)  # the pointer names it anyway (moved by hand, or by an older CLI)
        deadline = time.monotonic() + SWAP_WITHIN
        while any(models_of(s, key)["failed"] != broken for s in servers):
            assert time.monotonic() < deadline, [models_of(s, key) for s in servers]
            time.sleep(0.05)
        time.sleep(1.0)
        statuses = [models_of(s, key) for s in servers]
        metrics = httpx.get(f"{servers[0].url}/metrics", headers={"X-API-Key": key}, timeout=10).text
        store.promote(v2)  # the next good version is taken as usual
        until_all_serve(servers, key, v2)
    finally:
        results = load.finish()
    assert not failures(results), failures(results)[:5]
    for status in statuses:
        assert status["loaded"] == v1 and status["pointer"] == broken and status["error"], status
    assert "triage_model_load_failed 1.0" in metrics and f'triage_model_version_info{{version="{v1}"}} 1.0' in metrics
    for seen in results:
        assert {c for _, _, c in seen[:5]} == {versions.category[v1]}  # served by v1 while the pointer was broken


def test_a_worker_swaps_in_a_promoted_version(
    deployment: Deployment,  # noqa: F811
    versions: Versions,
    tmp_path: Path,
) -> None:
    d = deployment
    v1, v2, _ = versions.ids
    d.worker_data = tmp_path / "worker-versions"
    shutil.copytree(versions.template, d.worker_data)
    worker = d.worker(start=True, TRIAGE_MODELS_POLL=POLL).ready()
    store = Store.open(d.tmp_path, d.database_url)
    queue = TicketQueue.from_settings(d.settings())
    assert queue is not None

    def triaged_category() -> str:
        (record,), _ = store.create([Ticket(**PROBE)])
        queue.enqueue([record.id])
        done = wait_for(lambda: (r := store.get(record.id)).status == "triaged" and r, "the probe triaged", 60)
        return str(done.result.category)

    try:
        assert triaged_category() == versions.category[v1]
        started = time.monotonic()
        VersionStore(d.worker_data / "models").promote(v2)
        wait_for(lambda: f"model version {v2} now served" in worker.output(), "the worker's swap", SWAP_WITHIN)
        print(f"worker swapped {time.monotonic() - started:.2f} s after the promote")
        assert [triaged_category() for _ in range(3)] == [versions.category[v2]] * 3
    finally:
        queue.close()
        store.close()
