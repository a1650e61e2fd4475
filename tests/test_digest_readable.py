"""A digest people read at stand-up: on the demo history at 200 tickets a day, each ticket once, most urgent first,
at most 40 lines per team, one team's digest about that team only, measured AI figures, themes named by service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.digest.builder import DigestBuilder
from agents.digest.demo_history import DemoHistory
from agents.digest.models import Digest, DigestInput, Verdict
from agents.digest.render import LISTS, health_lines, to_json, to_markdown
from agents.digest.store import load_digest_input
from agents.digest.themes import ThemeFinder
from agents.store.tickets import Store
from evals.digest_bench import weekday_rate
from kb.loader import KnowledgeBase, load_kb
from retrieval.embedders import HashingEmbedder

END = datetime(2026, 7, 17, 18, 0, tzinfo=UTC)  # a Friday evening, as in evals/digest_bench.py
AT = END.replace(hour=15) - timedelta(days=1)  # Thursday afternoon: a full weekday in the window
MAX_LINES = 40


@pytest.fixture(scope="module")
def kb(kb_dir: Path) -> KnowledgeBase:
    return load_kb(kb_dir)


@pytest.fixture(scope="module")
def data(demo_rows: list[dict], kb: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> DigestInput:
    store = Store.open(tmp_path_factory.mktemp("readable"))
    history = DemoHistory(demo_rows, kb, days=14, per_day=weekday_rate(200), seed=11, burst=60)
    history.seed(store, END)
    loaded = load_digest_input(store, AT)
    store.close()
    return loaded


@pytest.fixture(scope="module")
def builder(kb: KnowledgeBase) -> DigestBuilder:
    return DigestBuilder(kb, ThemeFinder(HashingEmbedder(), distance=0.55))


@pytest.fixture(scope="module")
def digest(builder: DigestBuilder, data: DigestInput) -> Digest:
    return builder.build(data, now=END, at=AT)


def test_the_history_is_a_busy_day(digest: Digest) -> None:
    assert digest.new >= 150 and digest.breached > 40  # the load the 40-line budget is about


def test_every_team_digest_fits_in_forty_lines(builder: DigestBuilder, data: DigestInput, kb: KnowledgeBase) -> None:
    capped = 0
    for team in kb.teams:
        one = builder.build(data, now=END, at=AT, team=team)
        md = to_markdown(one)
        assert len(md.splitlines()) <= MAX_LINES, (team, md)
        capped += md.count("more (console / JSON has all)")
        for t in one.teams:  # the JSON keeps every ticket
            assert all(len(getattr(t, key).items) == getattr(t, key).count for key, _, _ in LISTS)
    assert capped > 0


def test_each_ticket_is_listed_once(digest: Digest) -> None:
    seen: dict[str, str] = {}
    for team in digest.teams:
        for key, _, _ in LISTS:
            for item in getattr(team, key).items:
                assert item.id not in seen, f"{item.id} in {seen.get(item.id)} and {key}"
                seen[item.id] = key
    assert len(seen) > 100
    assert to_json(digest).count('"delay_minutes"') == len(seen)


def test_breached_tickets_come_by_priority_then_lateness(digest: Digest, kb: KnowledgeBase) -> None:
    rank = {p: i for i, p in enumerate(kb.taxonomy.priority_ids)}
    checked = 0
    for team in digest.teams:
        items = team.breached.items
        if not items:
            continue
        keys = [(rank.get(x.priority or "", len(rank)), -x.delay_minutes) for x in items]
        assert keys[0][0] == min(k[0] for k in keys)  # the first breached ticket has the highest priority
        assert keys == sorted(keys)
        checked += 1
    assert checked >= 5
    assert any(t.breached.items[0].priority == "P1" for t in digest.teams if t.breached.items)


def test_a_one_team_digest_names_no_other_team(builder: DigestBuilder, data: DigestInput, kb: KnowledgeBase) -> None:
    one = builder.build(data, now=END, at=AT, team="network")
    md = to_markdown(one)
    assert "Busiest" not in md and "busiest" not in one.narrative
    others = [t.name for tid, t in kb.teams.items() if tid != "network"]
    assert not [name for name in others if name in md]
    assert all(set(theme.teams) == {"network"} for theme in one.themes)


def test_no_reviews_yet_is_said_and_nothing_is_implied(digest: Digest) -> None:
    assert digest.ai_health.reviewed == 0
    review = health_lines(digest)[-1]
    assert "no reviews yet" in review
    md = to_markdown(digest)
    assert "precision" not in md and "100%" not in md


def test_reviews_quote_reviewed_tickets_and_agreement(builder: DigestBuilder, data: DigestInput) -> None:
    ids = [t.id for t in data.tickets if t.created_at is not None and AT - timedelta(hours=3) < t.created_at <= AT]
    verdicts = [
        Verdict(ticket_id=ids[0], field="category", action="accept", created_at=AT - timedelta(minutes=5)),
        Verdict(ticket_id=ids[0], field="priority", action="accept", created_at=AT - timedelta(minutes=5)),
        Verdict(ticket_id=ids[1], field="priority", action="correct", created_at=AT - timedelta(minutes=4)),
    ]
    reviewed = builder.build(data.model_copy(update={"verdicts": verdicts}), now=END, at=AT)
    assert health_lines(reviewed)[-1] == (
        "Human review: 2 tickets reviewed; 2 fields accepted, 1 corrected (agreement 67% of reviewed fields)"
    )
    assert "implied" not in to_markdown(reviewed)


def test_a_theme_is_named_by_its_catalogue_service(digest: Digest, kb: KnowledgeBase) -> None:
    names = {svc.name for svc in kb.services.values()}
    by_service = [t for t in digest.themes if t.named_by == "catalogue"]
    assert by_service
    assert all(t.name.split(": ")[0] in names for t in by_service)
