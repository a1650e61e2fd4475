"""Routing signals, priority rules and extractive summaries, on the real demo knowledge base."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.priority_rules import PriorityRules
from agents.route import Router, RouteWeights, ServiceMatcher, combine_team_scores
from agents.summarise import ExtractiveSummariser
from agents.types import FieldDecision, SimilarTicket
from kb.loader import load_kb


@pytest.fixture(scope="module")
def kb(kb_dir):
    return load_kb(kb_dir)


def test_services_are_found_by_alias_and_longest_match_wins(kb) -> None:
    matcher = ServiceMatcher(kb.services)
    assert set(matcher.find("GlobalConnect drops and PrintHub is offline")) == {"vpn", "printing"}
    found = matcher.find("my keygate verify codes are rejected")
    assert "mfa" in found and "identity-portal" not in found  # 'keygate' sits inside 'keygate verify'
    assert matcher.find("nothing to see here") == {}


def test_signals_combine_and_a_named_service_can_overturn_a_weak_model() -> None:
    neighbours = [SimilarTicket(id="a", score=0.9, team="network"), SimilarTicket(id="b", score=0.3, team="collab")]
    scores = combine_team_scores({"collab": 0.55, "network": 0.45}, ["network"], neighbours, RouteWeights())
    assert max(scores, key=scores.get) == "network"
    assert sum(scores.values()) == pytest.approx(1.0, abs=0.01)
    alone = combine_team_scores({"collab": 0.55, "network": 0.45}, [], [], RouteWeights())
    assert max(alone, key=alone.get) == "collab"


def test_owner_comes_from_the_catalogue_with_the_person_on_call(kb) -> None:
    router = Router(kb)
    decision, service = router.decide("GlobalConnect keeps dropping", {"network": 0.9, "collab": 0.1}, [])
    assert (decision.label, service) == ("network", "vpn")
    vpn = kb.services["vpn"]
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    owner = router.owner("network", "vpn", now)
    assert owner.on_call == vpn.oncall.on_duty(now) and owner.channel == vpn.channel
    assert "catalogue.yaml" in owner.evidence[0]
    fallback = router.owner("network", None, now)
    assert fallback.on_call is None and fallback.people and "teams.yaml" in fallback.evidence[0]


def _decision(label: str, **alternatives: float) -> FieldDecision:
    return FieldDecision(label=label, confidence=0.8, backend="test", alternatives=alternatives)


def test_rules_raise_priority_and_say_which_rule_fired(kb) -> None:
    rules = PriorityRules(kb.taxonomy)
    raised = rules.apply("E-mail is down for everyone on the 3rd floor", _decision("P3", P3=0.6, P2=0.3, P1=0.1))
    assert raised.label == "P2"
    assert any("rule outage" in r or "rule many-users" in r for r in raised.reasons)
    assert raised.backend.endswith("+rules")
    critical = rules.apply("production is down, the warehouse has stopped shipping", _decision("P3", P3=0.9))
    assert critical.label == "P1"


def test_rules_never_lower_a_priority(kb) -> None:
    rules = PriorityRules(kb.taxonomy)
    kept = rules.apply("the vpn is down for everyone", _decision("P1", P1=0.7))
    assert kept.label == "P1" and kept.backend == "test"
    untouched = rules.apply("please order a new mouse", _decision("P4", P4=0.9))
    assert untouched == _decision("P4", P4=0.9)


@pytest.mark.parametrize(
    ("title", "body"),
    [
        (
            "Printer",
            "Hi team,\nThe printer on floor 2 jams every time I print labels. I tried restarting it twice. "
            "It shows error E-204 and the tray light blinks. Thanks\nMaria",
        ),
        ("", "word " * 400),
        ("", ""),
        ("", "😀😀😀 !!!"),
        ("VPN", "-----Original Message-----\nFrom: someone\nSubject: vpn"),
    ],
)
def test_summaries_are_short_and_never_empty(title: str, body: str) -> None:
    summary = ExtractiveSummariser().summarise(title, body)
    assert summary.strip()
    assert len(summary) <= 200


def test_summary_keeps_the_central_sentence() -> None:
    body = (
        "Hello,\nOutlook stopped receiving mail this morning. It shows disconnected in the status bar. "
        "I am in the Leeds office today. Kind regards, Tom"
    )
    summary = ExtractiveSummariser().summarise("", body)
    assert "Outlook" in summary and "Kind regards" not in summary
