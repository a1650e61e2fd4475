"""SLA breach and about-to-breach exactly at their boundaries, with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.digest.builder import DigestBuilder
from agents.digest.models import DigestInput, DigestTicket
from agents.digest.sla import SlaClock, clock_state, margin_of, sla_view
from kb.loader import KnowledgeBase, load_kb

T0 = datetime(2026, 7, 14, 8, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@pytest.fixture(scope="module")
def kb(kb_dir: Path) -> KnowledgeBase:
    return load_kb(kb_dir)


def ticket(priority: str = "P2", **stamps: datetime) -> DigestTicket:
    fields = {"created_at": T0, "updated_at": T0, **stamps}
    return DigestTicket(id="t1", title="VPN down", status="triaged", team="network", priority=priority, **fields)


def test_margin_is_a_share_of_the_target_in_whole_seconds() -> None:
    assert margin_of(timedelta(minutes=60), 0.2) == timedelta(minutes=12)
    assert margin_of(timedelta(minutes=15), 0.2) == timedelta(minutes=3)
    assert margin_of(timedelta(minutes=60), 0.0) == timedelta(0)


@pytest.mark.parametrize(
    ("elapsed", "state"),
    [(47, "ok"), (48, "at_risk"), (49, "at_risk"), (59, "at_risk"), (60, "at_risk"), (61, "breached")],
)
def test_a_running_clock_around_the_margin_and_the_deadline(elapsed: int, state: str) -> None:
    clock = SlaClock("response", T0, timedelta(minutes=60), None)
    assert clock_state(clock, T0 + elapsed * MIN, 0.2) == state


@pytest.mark.parametrize(("stopped", "state"), [(59, "met"), (60, "met"), (61, "breached")])
def test_a_stopped_clock_one_minute_before_at_and_after_the_deadline(stopped: int, state: str) -> None:
    clock = SlaClock("resolution", T0, timedelta(minutes=60), T0 + stopped * MIN)
    assert clock_state(clock, T0 + timedelta(days=3), 0.2) == state


@pytest.mark.parametrize(
    ("minute", "breached", "at_risk"), [(59, [], ["response"]), (60, [], ["response"]), (61, ["response"], [])]
)
def test_p2_response_target_from_the_taxonomy(kb: KnowledgeBase, minute: int, breached: list, at_risk: list) -> None:
    view = sla_view(ticket("P2"), kb.taxonomy, T0 + minute * MIN, 0.2)  # P2: respond within 60 min
    assert [c.kind for c in view.breached] == breached
    assert [c.kind for c in view.at_risk] == at_risk


@pytest.mark.parametrize(("minute", "breached"), [(239, []), (240, []), (241, ["resolution"])])
def test_p1_resolution_judged_on_the_resolution_time(kb: KnowledgeBase, minute: int, breached: list) -> None:
    resolved = T0 + minute * MIN  # P1: resolve within 240 min; responded in time
    view = sla_view(
        ticket("P1", first_response_at=T0 + 5 * MIN, resolved_at=resolved, updated_at=resolved),
        kb.taxonomy,
        T0 + timedelta(days=1),
        0.2,
    )
    assert [c.kind for c in view.breached] == breached
    assert view.at_risk == []


def test_a_response_stamped_after_at_has_not_happened_yet(kb: KnowledgeBase) -> None:
    late_reply = ticket("P2", first_response_at=T0 + 90 * MIN, updated_at=T0 + 90 * MIN)
    assert [c.kind for c in sla_view(late_reply, kb.taxonomy, T0 + 61 * MIN, 0.2).breached] == ["response"]
    assert [c.kind for c in sla_view(late_reply, kb.taxonomy, T0 + 30 * MIN, 0.2).at_risk] == []


@pytest.mark.parametrize(("minute", "breached", "about"), [(59, 0, 1), (60, 0, 1), (61, 1, 0)])
def test_digest_lists_at_the_boundaries(kb: KnowledgeBase, minute: int, breached: int, about: int) -> None:
    at = T0 + minute * MIN
    digest = DigestBuilder(kb).build(DigestInput(tickets=[ticket("P2")]), now=at)
    network = next(t for t in digest.teams if t.team == "network")
    assert (network.breached.count, network.about_to_breach.count) == (breached, about)
    assert (digest.breached, digest.about_to_breach) == (breached, about)
    if breached:
        line = network.breached.items[0]
        assert (line.sla, line.delay_minutes, line.deadline) == (["response"], 1, T0 + 60 * MIN)
    else:
        line = network.about_to_breach.items[0]
        assert (line.sla, line.delay_minutes) == (["response"], 60 - minute)


def test_the_margin_setting_moves_the_about_to_breach_boundary(kb: KnowledgeBase) -> None:
    at = T0 + 40 * MIN  # 20 minutes left of 60
    assert DigestBuilder(kb, breach_margin=0.2).build(DigestInput(tickets=[ticket()]), now=at).about_to_breach == 0
    assert DigestBuilder(kb, breach_margin=0.5).build(DigestInput(tickets=[ticket()]), now=at).about_to_breach == 1
