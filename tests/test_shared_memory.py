"""The ticket memory shared through the database: every process reads the stored tickets at start and then what
changed since its last look, so a ticket triaged on one replica is a similar ticket (and a duplicate) on another
within MEMORY_WITHIN seconds, and a person's correction of its team reaches the other replica's memory too.

The sync itself runs on a real SQLite store with the real FAISS memory and the hashing embedder; the replicas are
two real `triage serve` processes on one PostgreSQL database (TRIAGE_TEST_PG_URL; skipped, saying so, without it)."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from agents.models.stored_memory import LOOKBACK, RememberingEmbedder, StoredMemorySync
from agents.similar import CombinedMemory, TicketMemory
from agents.store.records import TicketPatch
from agents.store.review import Review
from agents.store.tickets import Store, make_engine, utcnow
from agents.types import Ticket
from agents.web.desk import as_ticket
from retrieval.embedders import HashingEmbedder
from tests.serverkit import ServerProcess, fresh_data_dir
from tests.test_replicas_shared_state import pg_url  # noqa: F401  (a fixture)

POLL = "0.5"  # TRIAGE_MEMORY_POLL of the replicas under test
MEMORY_WITHIN = 10.0  # seconds from a ticket's 201 on one replica to its being similar on the other
ODD = [
    ("Plasma cutter badge reader refuses my badge", "The plasma cutter bay's badge reader beeps red at me."),
    ("Aquarium sensor dashboard shows seaweed", "Since Friday the aquarium telemetry dashboard is all green blobs."),
    ("Wind tunnel booking tool double-books", "Two teams got the same wind tunnel slot for next Tuesday."),
]


def odd(i: int) -> Ticket:
    """A ticket unlike any training ticket: its nearest neighbour is itself once stored."""
    return Ticket(title=ODD[i][0], body=ODD[i][1])


class Home:
    """A real SQLite store, tickets triaged by the session's service and saved, and a sync into a fresh memory."""

    def __init__(self, tmp_path: Path, service: Any, max_tickets: int = 1000, embedder: Any = None) -> None:
        self.store = Store.open(tmp_path)
        self.service, self.embedder = service, embedder or HashingEmbedder()
        self.memory = TicketMemory(self.embedder.dim)
        self.sync = StoredMemorySync(self.store, self.embedder, self.memory, max_tickets=max_tickets)

    def triage(self, tickets: list[Ticket], store: Store | None = None, service: Any = None) -> list[str]:
        """Store and triage `tickets` (with another process's store or engine when given)."""
        store = store or self.store
        records, _ = store.create(tickets)
        results = (service or self.service).triage_batch([as_ticket(r) for r in records])
        store.save_results({r.id: res for r, res in zip(records, results, strict=True)})
        return [r.id for r in records]

    def nearest(self, ticket: Ticket) -> Any:
        return self.memory.search(self.embedder.embed([ticket.text])[0], 1)[0]


@pytest.fixture
def home(tmp_path: Path, trained_service: Any) -> Any:
    made = Home(tmp_path, trained_service)
    yield made
    made.store.close()


def test_the_first_look_reads_every_stored_ticket_and_later_looks_only_what_changed(home: Home) -> None:
    first = home.triage([odd(0), odd(1)])
    home.store.create([odd(2)])  # received, not triaged yet: not in the memory
    assert home.sync.refresh() == 2 and len(home.memory) == 2
    assert home.nearest(odd(0)).id == first[0] and home.nearest(odd(0)).score > 0.99
    assert home.nearest(odd(2)).id not in first or home.nearest(odd(2)).score < 0.99
    assert home.sync.refresh() == 0  # re-read within the lookback, already taken: nothing added
    (later,) = home.triage([odd(2)])
    assert home.sync.refresh() == 1 and home.nearest(odd(2)).id == later
    status = home.sync.status()
    assert status.stored == 3 and status.vector_bytes == 3 * home.embedder.dim * 4 and status.watermark is not None


def test_a_correction_changes_the_record_not_the_vector(home: Home, trained_service: Any) -> None:
    (ticket_id,) = home.triage([odd(0)])
    home.sync.refresh()
    team = home.store.get(ticket_id).team
    other = next(t for t in trained_service.kb.teams if t != team)
    Review(home.store, trained_service.kb).update(ticket_id, TicketPatch(team=other, resolution="new badge"), "ann")
    assert home.sync.refresh() == 0 and len(home.memory) == 1
    found = home.nearest(odd(0))
    assert (found.id, found.team, found.resolution) == (ticket_id, other, "new badge")


def test_a_change_committed_late_within_the_lookback_is_still_taken(home: Home, tmp_path: Path) -> None:
    home.triage([odd(0)])
    home.sync.refresh()

    def stamped(ago: timedelta) -> Store:  # a writer whose rows carry an older stamp than they commit at
        return Store(make_engine(f"sqlite:///{tmp_path / 'triage.db'}"), clock=lambda: utcnow() - ago)

    late, too_late = stamped(LOOKBACK / 2), stamped(LOOKBACK * 2)
    (within,) = home.triage([odd(1)], late)
    (beyond,) = home.triage([odd(2)], too_late)
    assert home.sync.refresh() == 1
    assert home.nearest(odd(1)).id == within
    assert home.nearest(odd(2)).id != beyond  # the stated bound: a commit later than LOOKBACK after its stamp
    late.close()
    too_late.close()


def test_the_memory_keeps_the_newest_stored_tickets_only(tmp_path: Path, trained_service: Any) -> None:
    home = Home(tmp_path, trained_service, max_tickets=2)
    try:
        ids = [home.triage([odd(i)])[0] for i in range(3)]
        assert home.sync.refresh() == 2 and {r["id"] for r in home.memory.records} == set(ids[1:])
        more = [home.triage([Ticket(title=f"Odd request number {i}", body="unlike the others")])[0] for i in range(2)]
        home.sync.refresh()
        assert [r["id"] for r in home.memory.records] == more  # 4 > 2 * 1.1: trimmed back to the newest two
        assert home.nearest(Ticket(title="Odd request number 1", body="unlike the others")).id == more[1]
    finally:
        home.store.close()


class RecordingEmbedder(HashingEmbedder):
    """The hashing embedder, keeping every text it embedded."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return super().embed(texts)


def test_a_ticket_this_process_triaged_is_not_embedded_again(tmp_path: Path, trained_service: Any) -> None:
    inner = RecordingEmbedder()
    remembering = RememberingEmbedder(inner)
    here = copy.copy(trained_service)  # this process's engine, on the remembering embedder
    here.embedder = remembering
    home, elsewhere = Home(tmp_path, here, embedder=remembering), Store.open(tmp_path)
    try:
        (mine,) = home.triage([odd(0)])
        (theirs,) = home.triage([odd(1)], elsewhere, trained_service)  # another process's store and engine
        assert home.sync.refresh() == 2
        assert inner.texts.count(odd(0).text) == 1  # by the engine only: the sync took its vector
        assert inner.texts.count(odd(1).text) == 1  # by the sync only (the engine here never saw it)
        assert home.nearest(odd(0)).id == mine and home.nearest(odd(1)).id == theirs
    finally:
        home.store.close()
        elsewhere.close()


def test_a_ticket_in_the_version_and_in_the_store_counts_once_with_its_stored_labels() -> None:
    a, b, c = np.eye(3, 8, dtype=np.float32)
    b = (a + b) / np.linalg.norm(a + b)  # b is near a (cosine 0.71), c far from it (0)
    trained, stored = TicketMemory(8), TicketMemory(8)
    trained.add(np.stack([a, b, c]), [{"id": "a", "team": "old"}, {"id": "b", "team": "x"}, {"id": "c", "team": "y"}])
    stored.add(a[None, :], [{"id": "a", "team": "new"}])
    both = CombinedMemory(trained, stored)
    assert [(h.id, h.team) for h in both.search(a, 2)] == [("a", "new"), ("b", "x")]
    assert [h.id for h in both.search(a, 2, exclude_id="a")] == ["b", "c"]
    assert len(both) == 3  # the version's part: what saving these models writes


# ---- two replicas on one PostgreSQL database ------------------------------------------------------------------


def within(check: Callable[[], Any], what: str, timeout: float = MEMORY_WITHIN) -> float:
    """Seconds until `check()` holds (polled every 50 ms); fails after `timeout`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout:.0f} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def test_a_ticket_stored_on_one_replica_is_similar_on_the_other(
    pg_url: str,  # noqa: F811
    served_data_dir: Path,
    tmp_path: Path,
) -> None:
    env = {"TRIAGE_DATABASE_URL": pg_url, "TRIAGE_MEMORY_POLL": POLL}
    a = ServerProcess(fresh_data_dir(served_data_dir, tmp_path / "a"), tmp_path / "a.log", env).start()
    b = None
    try:
        (key,) = a.printed_keys()
        headers = {"X-API-Key": key}

        def post(server: ServerProcess, path: str, ticket: Ticket) -> dict[str, Any]:
            reply = httpx.post(f"{server.url}{path}", json=ticket.model_dump(mode="json"), headers=headers, timeout=30)
            assert reply.status_code in (200, 201), reply.text
            return dict(reply.json())

        def twin_on(server: ServerProcess, ticket: Ticket) -> dict[str, Any]:
            return post(server, "/v1/triage", ticket)  # stateless: the same text, looked up in that replica's memory

        before = post(a, "/v1/tickets", odd(0))["id"]  # stored before b starts: b reads it in its first look
        b = ServerProcess(fresh_data_dir(served_data_dir, tmp_path / "b"), tmp_path / "b.log", env).start()
        at_start = within(lambda: twin_on(b, odd(0))["possible_duplicate_of"] == before, "b's first look")

        assert twin_on(b, odd(1))["possible_duplicate_of"] is None  # not stored yet: nothing to find
        stored = post(a, "/v1/tickets", odd(1))
        seen = within(lambda: twin_on(b, odd(1))["possible_duplicate_of"] == stored["id"], "a's ticket on b")
        similar = twin_on(b, odd(1))["similar_tickets"][0]
        assert similar["id"] == stored["id"] and similar["score"] > 0.99 and similar["team"] == stored["team"]

        other = "network" if stored["team"] != "network" else "identity"
        patched = httpx.patch(f"{a.url}/v1/tickets/{stored['id']}", json={"team": other}, headers=headers, timeout=30)
        assert patched.status_code == 200, patched.text
        relabelled = within(lambda: twin_on(b, odd(1))["similar_tickets"][0]["team"] == other, "the correction on b")

        memory = httpx.get(f"{b.url}/v1/models", headers=headers, timeout=10).json()["memory"]
        assert memory["stored"] == 2 and memory["error"] is None and memory["watermark"]
        print(
            f"b found: the earlier ticket {at_start:.2f} s after start, a new one after {seen:.2f} s, "
            f"a correction after {relabelled:.2f} s; first look {memory['first_fill_seconds']} s"
        )
    finally:
        for server in (a, b):
            if server is not None:
                server.stop()


def test_no_stored_tickets_are_searched_with_memory_poll_zero(tmp_path: Path, served_data_dir: Path) -> None:
    data = fresh_data_dir(served_data_dir, tmp_path / "data")
    server = ServerProcess(data, tmp_path / "s.log", {"TRIAGE_MEMORY_POLL": "0"}).start()
    try:
        (key,) = server.printed_keys()
        headers = {"X-API-Key": key}
        body = odd(2).model_dump(mode="json")
        assert httpx.post(f"{server.url}/v1/tickets", json=body, headers=headers, timeout=30).status_code == 201
        time.sleep(1.0)
        again = httpx.post(f"{server.url}/v1/triage", json=body, headers=headers, timeout=30).json()
        assert again["possible_duplicate_of"] is None
        assert httpx.get(f"{server.url}/v1/models", headers=headers, timeout=10).json()["memory"] is None
    finally:
        server.stop()


def test_stored_tickets_are_similar_tickets_but_do_not_vote_on_the_team(trained_service: Any) -> None:
    """A stored ticket's team may be triage's own guess: it must not feed back into routing."""
    ticket = Ticket(id="probe", title="Wi-Fi drops in the warehouse", body="Scanners lose the wireless every hour.")
    plain = trained_service.triage(ticket)
    vector = trained_service.embedder.embed([ticket.text])[0]
    stored = TicketMemory(len(vector))
    wrong = next(t for t in sorted(trained_service.kb.teams) if t != plain.team)
    stored.add(np.stack([vector] * 5), [{"id": f"s{i}", "team": wrong} for i in range(5)])
    here = copy.copy(trained_service)
    here.models = dataclasses.replace(trained_service.models, memory=CombinedMemory(trained_service.memory, stored))
    shared = here.triage(ticket)
    assert {"s0", "s1"} <= {n.id for n in shared.similar_tickets}  # shared: the stored tickets are found
    # and five identical stored tickets with another team moved neither the team nor its confidence
    assert (shared.team, shared.confidence["team"]) == (plain.team, plain.confidence["team"])
