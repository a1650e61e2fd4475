"""The demo history generator: reproducible, shaped like a real desk, stored with its own timestamps, and a digest
of it that sees the incident burst."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.digest.builder import DigestBuilder
from agents.digest.demo_history import COMPANY_TZ, DemoAlreadySeeded, DemoHistory
from agents.digest.store import load_digest_input
from agents.digest.themes import ThemeFinder
from agents.store.tickets import Store
from kb.loader import KnowledgeBase, load_kb
from retrieval.embedders import HashingEmbedder

END = datetime(2026, 7, 17, 12, 0, tzinfo=UTC)  # a Friday noon


@pytest.fixture(scope="module")
def kb(kb_dir: Path) -> KnowledgeBase:
    return load_kb(kb_dir)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path)
    yield store
    store.close()


def summary(lives: list) -> list[tuple[Any, ...]]:
    return [(x.created, x.row["id"], x.team, x.priority, [(t, k) for t, k, _ in x.events]) for x in lives]


def test_the_same_seed_gives_the_same_history(demo_rows: list[dict], kb: KnowledgeBase) -> None:
    first = DemoHistory(demo_rows, kb, days=4, per_day=30, seed=3).generate(END)
    assert summary(first) == summary(DemoHistory(demo_rows, kb, days=4, per_day=30, seed=3).generate(END))
    assert summary(first) != summary(DemoHistory(demo_rows, kb, days=4, per_day=30, seed=4).generate(END))


def test_arrivals_follow_office_hours_and_weekdays(demo_rows: list[dict], kb: KnowledgeBase) -> None:
    lives = DemoHistory(demo_rows, kb, days=14, per_day=100, seed=1, burst=0).generate(END)
    local = [x.created.astimezone(COMPANY_TZ) for x in lives]
    per_weekday = Counter(t.weekday() for t in local)
    assert min(per_weekday[d] for d in range(5)) > 3 * max(per_weekday[5], per_weekday[6])
    office = sum(8 <= t.hour < 17 for t in local)
    assert office / len(local) > 0.6
    assert 900 < len(lives) < 1400  # 10 weekdays x ~100 plus quiet weekends
    assert all(END - timedelta(days=14) <= x.created < END for x in lives)


def test_seeding_writes_a_history_a_digest_can_read(demo_rows: list[dict], kb: KnowledgeBase, store: Store) -> None:
    history = DemoHistory(demo_rows, kb, days=5, per_day=40, seed=5, burst=25)
    counts = history.seed(store, END)
    assert counts["tickets"] > 100 and counts["audit"] > counts["tickets"]
    statuses = store.count_by_status()
    assert {"resolved", "closed", "in_progress"} <= set(statuses)
    with pytest.raises(DemoAlreadySeeded):
        history.seed(store, END)
    assert history.seed(store, END, replace=True)["replaced"] == counts["tickets"]
    assert sum(store.count_by_status().values()) == counts["tickets"]

    builder = DigestBuilder(kb, ThemeFinder(HashingEmbedder(), distance=0.55))
    final = builder.build(load_digest_input(store, END), now=END)
    assert final.skipped.total == 0 and final.open > 0 and final.reopened + final.resolved > 0
    assert any(t.stuck.count for t in final.teams) and final.breached > 0
    burst_day = (END - timedelta(days=3)).astimezone(COMPANY_TZ).replace(hour=14, minute=0).astimezone(UTC)
    digest = builder.build(load_digest_input(store, burst_day), now=END, at=burst_day)
    network = next(t for t in digest.teams if t.team == "network")
    assert network.new >= 25 and network.resolved >= 20  # the outage: reported together, fixed together
    assert digest.themes[0].teams.get("network", 0) > digest.themes[0].size / 2
    outage = [t for t in digest.themes if t.teams.get("network", 0) > t.size / 2]
    assert sum(t.size for t in outage) >= 10
    assert {"vpn", "globalconnect", "gc"} & {w for t in outage for term in t.terms for w in term.split()}


def test_with_the_real_service_the_results_are_stored(
    demo_rows: list[dict], kb: KnowledgeBase, store: Store, trained_service
) -> None:  # type: ignore[no-untyped-def]
    rows = demo_rows[::8]  # every distinct text is triaged once: a sample keeps the test fast
    counts = DemoHistory(rows, kb, days=2, per_day=25, seed=2, burst=0, triager=trained_service).seed(store, END)
    records, total = store.list({}, limit=500, offset=0)
    assert total == counts["tickets"]
    triaged = [r for r in records if r.result is not None]
    assert len(triaged) == total and all(r.result.ticket_id == r.id for r in triaged)
    assert {r.metadata["source"] for r in records} <= {r["id"] for r in rows}
    digest = DigestBuilder(kb).build(load_digest_input(store, END), now=END)
    assert digest.ai_health.triaged > 0 and digest.ai_health.auto_share is not None
    assert sum(f.accepted + f.corrected for f in digest.ai_health.fields.values()) > 0
