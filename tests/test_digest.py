"""The digest on a small fixed history in a real SQLite store: known numbers (the JSON, not the prose), an empty
store, quiet teams, bad timestamps skipped and reported, and the three output formats."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.digest.builder import DigestBuilder
from agents.digest.html import to_html
from agents.digest.models import Digest, DigestInput, DigestTicket
from agents.digest.render import to_json, to_markdown
from agents.digest.store import load_digest_input
from agents.digest.themes import ThemeFinder
from agents.store.tables import AuditRow, FeedbackRow, TicketRow
from agents.store.tickets import Store
from kb.loader import KnowledgeBase, load_kb
from retrieval.embedders import HashingEmbedder

AT = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)  # a Tuesday; the window is (13 Jul 09:00, 14 Jul 09:00]


def ts(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 7, day, hour, minute, tzinfo=UTC)


def result(team: str, needs_human: bool, backend: str = "classical:ensemble") -> dict[str, Any]:
    return {
        "ticket_id": None,
        "category": "network",
        "priority": "P2",
        "team": team,
        "owner": {"team": team, "team_name": team},
        "summary": "s",
        "confidence": {"category": 0.9},
        "backend": {"category": backend, "priority": "classical:ensemble", "team": "classical:route"},
        "needs_human": needs_human,
    }


def add(store: Store, tid: str, title: str, created: datetime, **fields: Any) -> None:
    row = {
        "status": "triaged",
        "body": "",
        "channel": "portal",
        "meta": {},
        "needs_human": False,
        "reviewed": False,
        "attempts": 0,
        "updated_at": fields.get("updated_at", created),
        **fields,
    }
    with store.write() as session:
        session.add(TicketRow(id=tid, title=title, created_at=created, **row))


@pytest.fixture(scope="module")
def kb(kb_dir: Path) -> KnowledgeBase:
    return load_kb(kb_dir)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(tmp_path)
    yield store
    store.close()


@pytest.fixture
def history(store: Store) -> Store:
    """Nine tickets whose digest at AT is worked out by hand in test_a_fixed_history_gives_a_known_digest."""
    add(
        store,
        "A",
        "VPN down in Leeds",
        ts(14, 8),
        team="network",
        priority="P2",
        triaged_at=ts(14, 8),
        result=result("network", False),
    )
    add(
        store,
        "B",
        "Warehouse Wi-Fi outage",
        ts(13, 10),
        team="network",
        priority="P1",
        status="resolved",
        assignee="diego.ramos",
        triaged_at=ts(13, 10),
        first_response_at=ts(13, 10, 20),
        resolved_at=ts(13, 13),
        updated_at=ts(13, 13),
        result=result("identity", True, "llm:fallback->classical"),
    )
    add(
        store,
        "C",
        "Cannot open the finance share",
        ts(10, 9),
        team="identity",
        priority="P3",
        status="in_progress",
        assignee="priya.nair",
        first_response_at=ts(10, 10),
        updated_at=ts(11, 9),
    )
    add(
        store,
        "D",
        "Read access to cost centre reports",
        ts(12, 8),
        team="identity",
        priority="P4",
        triaged_at=ts(12, 8),
    )
    add(
        store,
        "E",
        "Dock does not see monitors",
        ts(13, 12),
        team="workplace",
        priority="P3",
        status="in_progress",
        assignee="mei.chen",
        triaged_at=ts(13, 12),
        first_response_at=ts(13, 12, 30),
        updated_at=ts(14, 8, 30),
        result=result("workplace", False),
    )
    add(store, "F", "From the future", ts(14, 10), team="collab", priority="P3")
    add(store, "G", "Closed without a time", ts(13, 11), team="collab", priority="P3", status="closed")
    add(store, "H", "Long done", ts(1, 9), team="collab", priority="P3", status="closed", resolved_at=ts(2, 9))
    add(store, "I", "hello?", ts(14, 7), status="received", priority="P4")
    with store.write() as session:
        session.add_all(
            [
                FeedbackRow(
                    ticket_id="A",
                    field="category",
                    action="accept",
                    predicted="network",
                    label="network",
                    author="diego.ramos",
                    created_at=ts(14, 8, 10),
                ),
                FeedbackRow(
                    ticket_id="A",
                    field="priority",
                    action="correct",
                    predicted="P2",
                    label="P1",
                    author="diego.ramos",
                    created_at=ts(14, 8, 11),
                ),
                FeedbackRow(
                    ticket_id="C",
                    field="team",
                    action="correct",
                    predicted="network",
                    label="identity",
                    author="priya.nair",
                    created_at=ts(10, 10),
                ),  # before the window
                AuditRow(
                    kind="update",
                    actor="mei.chen",
                    ticket_id="E",
                    created_at=ts(14, 8, 30),
                    detail={"status": ["resolved", "in_progress"], "reopened": True},
                ),
                AuditRow(
                    kind="update",
                    actor="mei.chen",
                    ticket_id="E",
                    created_at=ts(14, 8),
                    detail={"status": ["resolved", "in_progress"]},
                ),  # a change, not a reopening
            ]
        )
    return store


def build(store: Store, kb: KnowledgeBase, team: str | None = None, themes: ThemeFinder | None = None) -> Digest:
    return DigestBuilder(kb, themes).build(load_digest_input(store, AT), now=AT, team=team)


def line(
    tid: str,
    team: str,
    prio: str,
    status: str,
    assignee: str | None,
    created: datetime,
    delay: int,
    sla: list[str] | None = None,
    deadline: datetime | None = None,
    title: str = "",
) -> dict[str, Any]:
    return {
        "id": tid,
        "title": title,
        "team": team,
        "priority": prio,
        "status": status,
        "assignee": assignee,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "sla": sla or [],
        "deadline": deadline.isoformat().replace("+00:00", "Z") if deadline else None,
        "delay_minutes": delay,
    }


def listing(*items: dict[str, Any]) -> dict[str, Any]:
    return {"count": len(items), "items": list(items)}


def test_a_fixed_history_gives_a_known_digest(history: Store, kb: KnowledgeBase) -> None:
    facts = build(history, kb).facts()
    assert {k: facts[k] for k in ("new", "resolved", "reopened", "open", "breached", "about_to_breach")} == {
        "new": 4,
        "resolved": 1,
        "reopened": 1,
        "open": 5,
        "breached": 3,
        "about_to_breach": 1,
    }  # A B E I / B / E
    assert facts["nothing_happened"] is False
    teams = {t["team"]: t for t in facts["teams"]}
    assert list(teams) == [*kb.teams, "unrouted"]
    b, a = "Warehouse Wi-Fi outage", "VPN down in Leeds"
    assert teams["network"] == {
        "team": "network",
        "name": "Network Operations",
        "new": 2,
        "resolved": 1,
        "reopened": 0,
        "open": 1,
        "open_by_priority": {"P2": 1},
        "breached": listing(
            line("B", "network", "P1", "resolved", "diego.ramos", ts(13, 10), 5, ["response"], ts(13, 10, 15), b)
        ),  # answered 5 minutes late, resolved in time
        "about_to_breach": listing(
            line("A", "network", "P2", "triaged", None, ts(14, 8), 0, ["response"], ts(14, 9), a)
        ),  # due exactly now
        "unassigned": listing(),
        "stuck": listing(),
        "quiet": False,
    }
    c, d = "Cannot open the finance share", "Read access to cost centre reports"
    assert teams["identity"] == {
        "team": "identity",
        "name": "Identity and Access",
        "new": 0,
        "resolved": 0,
        "reopened": 0,
        "open": 2,
        "open_by_priority": {"P3": 1, "P4": 1},
        "breached": listing(  # P3 before P4 though D is later; both stuck and D unassigned, listed here only
            line("C", "identity", "P3", "in_progress", "priya.nair", ts(10, 9), 1440, ["resolution"], ts(13, 9), c),
            line("D", "identity", "P4", "triaged", None, ts(12, 8), 1500, ["response"], ts(13, 8), d),
        ),
        "about_to_breach": listing(),
        "unassigned": listing(),
        "stuck": listing(),
        "quiet": False,
    }
    assert {k: teams["workplace"][k] for k in ("new", "resolved", "reopened", "open", "quiet")} == {
        "new": 1,
        "resolved": 0,
        "reopened": 1,
        "open": 1,
        "quiet": False,
    }
    assert {k: teams["unrouted"][k] for k in ("new", "open", "open_by_priority")} == {
        "new": 1,
        "open": 1,
        "open_by_priority": {"P4": 1},
    }
    for quiet in ("service-desk", "collab", "apps", "infra", "security", "people-ops", "procurement"):
        assert teams[quiet]["quiet"] and teams[quiet]["open"] == 0 and teams[quiet]["new"] == 0
    assert facts["ai_health"] == {  # triaged in the window: A (auto), B (needs a human, fallback), E (auto)
        "triaged": 3,
        "auto_triaged": 2,
        "auto_share": 0.6667,
        "fallbacks": 1,
        "fallback_rate": 0.3333,
        "fields": {
            "category": {"accepted": 1, "corrected": 0, "precision": 1.0},
            "priority": {"accepted": 0, "corrected": 1, "precision": 0.0},
        },
        "reviewed": 1,  # both verdicts are on one ticket
        "accepted": 1,
        "corrected": 1,
        "precision": 0.5,
        "final_values": {},  # no agent set a final value in this history (shadow agreement: tests/test_modes_shadow.py)
        "final_agreement": {},
    }
    assert facts["skipped"] == {
        "total": 2,
        "by_reason": {"missing resolved_at": 1, "timestamp in the future": 1},
        "examples": {"missing resolved_at": ["G"], "timestamp in the future": ["F"]},
    }
    trend = [(p["at"][:10], {k: v for k, v in p["open"].items() if v}) for p in facts["open_trend"]]
    assert trend == [
        ("2026-07-08", {}),
        ("2026-07-09", {}),
        ("2026-07-10", {"identity": 1}),
        ("2026-07-11", {"identity": 1}),
        ("2026-07-12", {"identity": 2}),
        ("2026-07-13", {"identity": 2}),
        ("2026-07-14", {"network": 1, "identity": 2, "workplace": 1, "unrouted": 1}),
    ]


def test_one_team_only(history: Store, kb: KnowledgeBase) -> None:
    digest = build(history, kb, team="identity")
    assert [t.team for t in digest.teams] == ["identity"]
    assert (digest.scope, digest.new, digest.open, digest.breached) == ("identity", 0, 2, 2)
    assert digest.ai_health.triaged == 0 and digest.ai_health.fields == {}
    assert set(digest.open_trend[-1].open) == {"identity"}


def test_a_team_with_no_tickets_gets_one_line(history: Store, kb: KnowledgeBase) -> None:
    digest = build(history, kb)
    text = to_markdown(digest)
    assert "- **Procurement**: nothing new, nothing open" in text
    assert "### Procurement" not in text
    alone = build(history, kb, team="procurement")
    assert alone.teams[0].quiet and alone.nothing_happened
    assert "nothing came in" in alone.narrative


def test_an_empty_store_says_nothing_happened(store: Store, kb: KnowledgeBase) -> None:
    digest = build(store, kb, themes=ThemeFinder(HashingEmbedder()))
    assert digest.nothing_happened and digest.new == digest.open == 0 and digest.themes == []
    assert digest.skipped.total == 0 and all(t.quiet for t in digest.teams)
    assert "nothing came in, was resolved or was reopened" in digest.narrative
    assert "Nothing came in" in to_markdown(digest) and "Nothing came in" in to_html(digest)


def test_missing_and_future_timestamps_are_skipped_and_counted(kb: KnowledgeBase) -> None:
    tickets = [
        DigestTicket(id="ok", title="fine", status="triaged", team="apps", created_at=AT - timedelta(hours=1)),
        DigestTicket(id="no-created", title="x", status="triaged", team="apps"),
        DigestTicket(
            id="future-reply",
            title="x",
            status="in_progress",
            team="apps",
            created_at=AT - timedelta(hours=2),
            first_response_at=AT + timedelta(minutes=5),
        ),
        DigestTicket(
            id="backwards",
            title="x",
            status="resolved",
            team="apps",
            created_at=AT - timedelta(hours=2),
            resolved_at=AT - timedelta(hours=3),
        ),
        DigestTicket(id="naive", title="x", status="triaged", team="apps", created_at=datetime(2026, 7, 14, 8, 30)),
    ]
    digest = DigestBuilder(kb).build(DigestInput(tickets=tickets), now=AT)
    assert digest.skipped.by_reason == {
        "missing created_at": 1,
        "resolved_at before created_at": 1,
        "timestamp in the future": 1,
    }
    assert digest.skipped.examples["timestamp in the future"] == ["future-reply"]
    assert digest.new == 2  # "ok" and "naive" (a naive time is UTC, as the store writes it)
    assert "Skipped for bad timestamps: 3 tickets" in digest.narrative and "## Skipped" in to_markdown(digest)


def test_a_digest_of_the_past_ignores_what_happened_later(history: Store, kb: KnowledgeBase) -> None:
    digest = DigestBuilder(kb).build(load_digest_input(history, ts(13, 11)), now=AT, at=ts(13, 11))
    # E and A were created after `at` but before now: not there yet, not skipped; F is later than now: skipped
    assert digest.skipped.by_reason == {"missing resolved_at": 1, "timestamp in the future": 1}
    assert digest.open == 3  # B, C, D
    network = next(t for t in digest.teams if t.team == "network")
    assert (network.new, network.resolved, network.open) == (1, 0, 1)  # B was open at 11:00
    assert network.breached.items[0].id == "B" and network.breached.items[0].delay_minutes == 5  # answered 10:20


def test_the_three_formats(history: Store, kb: KnowledgeBase) -> None:
    digest = build(history, kb)
    assert Digest.model_validate_json(to_json(digest)) == digest
    md = to_markdown(digest)
    assert "**4 new · 1 resolved · 1 reopened · 5 open · 3 breached · 1 about to breach**" in md
    assert "`D` P4 Read access to cost centre reports — response 1 d 1 h late (unassigned)" in md
    page = to_html(digest)
    svg = page[page.index("<svg") : page.index("</svg>") + 6]
    root = ET.fromstring(svg)  # well-formed XML
    titles = [el.text for el in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "identity: 2 open" in titles and "network: 1 open" in titles


def test_untrusted_text_is_escaped(store: Store, kb: KnowledgeBase) -> None:
    add(store, "X", "<script>alert(1)</script> & <b>", AT - timedelta(hours=30), team="<img src=x>", priority="P1")
    digest = build(store, kb)
    page = to_html(digest)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;" in page
    assert "<img" not in page
    assert "\\<script\\>" in to_markdown(digest)
    assert json.loads(to_json(digest))["teams"][-1]["breached"]["items"][0]["title"].startswith("<script>")
