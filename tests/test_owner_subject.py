"""Which service a text is about: inflected aliases, services the text says work, the subject before passing names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agents.answers.answer import Answerer
from agents.answers.owners import OwnerResolver
from agents.mentions import fold, stem, subject_end
from agents.route import Router, RouteWeights, ServiceMatcher, combine_team_scores
from agents.types import Ticket
from kb.loader import KnowledgeBase, load_kb
from retrieval.corpus import load_chunks
from retrieval.embedders import HashingEmbedder
from retrieval.hybrid import HybridSearcher
from retrieval.index import SopIndex

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SCANNER_TITLE = "All handheld scanners in the Rotterdam warehouse show 'server unreachable'"
SCANNER_BODY = "Trucks are queuing at the dock and nobody can pick. Wi-Fi on phones works fine."


@pytest.fixture(scope="module")
def kb(kb_dir: Path) -> KnowledgeBase:
    return load_kb(kb_dir)


@pytest.fixture(scope="module")
def matcher(kb: KnowledgeBase) -> ServiceMatcher:
    return ServiceMatcher(kb.services)


@pytest.fixture(scope="module")
def resolver(kb: KnowledgeBase) -> OwnerResolver:
    return OwnerResolver(kb, HashingEmbedder(), clock=lambda: NOW)


@pytest.fixture(scope="module")
def answerer(kb: KnowledgeBase, kb_dir: Path) -> Answerer:
    embedder = HashingEmbedder()
    searcher = HybridSearcher(SopIndex.build(load_chunks(kb_dir / "sops"), embedder))
    return Answerer(searcher, OwnerResolver(kb, embedder, clock=lambda: NOW), clock=lambda: NOW)


# ---- 1. plurals and inflections ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("printers", "printer"),
        ("scanners", "scanner"),
        ("boxes", "box"),
        ("viruses", "virus"),
        ("companies", "company"),
        ("scanning", "scan"),
        ("installing", "install"),
        ("locked", "lock"),
        ("dropped", "drop"),
        ("access", "access"),  # a double s is not a plural
        ("virus", "virus"),
        ("status", "status"),
        ("speed", "speed"),  # not a past tense
        ("string", "string"),  # no vowel would be left
        ("gps", "gps"),  # three letters stay
    ],
)
def test_the_stemmer_strips_plurals_and_inflections_only(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_routing_finds_inflected_aliases_as_whole_words(matcher: ServiceMatcher) -> None:
    assert "warehouse-scanners" in matcher.find(SCANNER_TITLE)  # "scanners" meets "handheld scanner"
    assert matcher.find("The printers on floor 2 jam") == {"printing": "printer"}
    assert "printing" not in matcher.find("The sprinter van of the night shift broke down")
    assert "printing" in matcher.find("Scanned to email but nothing arrived")  # "scan to email"
    assert "erp" in matcher.find("Invoicing is stuck")
    assert "erp" not in matcher.find("opened invoice_4471.zip from a stranger")  # a file name is one word


def test_the_owner_resolver_finds_inflected_aliases_as_whole_words(resolver: OwnerResolver) -> None:
    assert [m.service for m in resolver.match("Who fixes the printers?")] == ["printing"]
    assert "printing" not in {m.service for m in resolver.match("Who fixes the sprinter van?")}
    assert "erp" in {m.service for m in resolver.match("Who handles invoicing questions?")}
    assert "warehouse-scanners" in {m.service for m in resolver.match(SCANNER_TITLE)}


# ---- 2. services the text says work ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Scanners are down. Wi-Fi works fine.",
        "Scanners are down. Wi-Fi works ok.",
        "Scanners are down. Wi-Fi on phones works fine.",
        "Scanners are down. The Wi-Fi is fine.",
        "Scanners are down. The Wi-Fi for me is working.",
        "Scanners are down, the Wi-Fi is ok.",
        "Scanners are down. Wi-Fi is up.",
        "Scanners are down, it is not a Wi-Fi problem.",
        "Scanners are down, it's not a wifi issue.",
        "Scanners are down. No problems with the Wi-Fi.",
        "Scanners are down. No issue with wifi on phones.",
        "Scanners are down. Wi-Fi seems unaffected.",
        "Scanners are down. Wi-Fi is unaffected.",
        "Every system is down except Wi-Fi.",
    ],
)
def test_a_service_said_to_work_is_not_a_mention(matcher: ServiceMatcher, text: str) -> None:
    assert "wifi" not in matcher.find(text)
    denied = [m for m in matcher.mentions(text) if m.id == "wifi"]
    assert denied and all(m.denied for m in denied)


@pytest.mark.parametrize(
    "text",
    [
        "The VPN is down",
        "The VPN was working fine until this morning",  # it worked; now it does not
        "The VPN is working intermittently",
        "Everything works except the VPN",  # "except" after "works" names the broken one
        "VPN is not working",
        "Scanners are fine, the VPN drops every hour",  # the praise is for the scanners
        "The VPN is up and down all day",
        "The VPN works fine until lunch, then it drops",  # working for a while is not working
    ],
)
def test_a_broken_service_stays_a_mention(matcher: ServiceMatcher, text: str) -> None:
    assert "vpn" in matcher.find(text)


def test_a_ticket_that_says_the_vpn_is_down_routes_to_the_vpn_owner(trained_service) -> None:
    result = trained_service.triage(
        Ticket(title="VPN is down", body="The VPN is down since this morning, nobody at home can connect.")
    )
    assert result.team == "network" and result.owner.service == "vpn"
    assert not any(r.startswith("ignored:") for r in result.reasons)


def test_the_warehouse_scanner_ticket_goes_to_the_scanner_owner(trained_service) -> None:
    result = trained_service.triage(Ticket(title=SCANNER_TITLE, body=SCANNER_BODY))
    assert result.team == "workplace" and result.owner.service == "warehouse-scanners"
    assert any(r.startswith("ignored: text says wifi works") for r in result.reasons)
    assert not any("text names service wifi" in r for r in result.reasons)


def test_the_router_drops_a_working_service_and_says_so(kb: KnowledgeBase) -> None:
    proba = {"network": 0.5, "workplace": 0.5}
    decision, service = Router(kb).decide("Scanners are down. Wi-Fi on phones works fine.", proba, [])
    assert (decision.label, service) == ("workplace", "warehouse-scanners")
    assert "ignored: text says wifi works ('wi-fi on phones works fine')" in decision.reasons


def test_the_owner_resolver_rules_out_a_service_the_question_says_works(resolver: OwnerResolver) -> None:
    question = "Who owns the scanners? Wi-Fi on phones works fine."
    assert [m.service for m in resolver.match(question)] == ["warehouse-scanners"]
    # the Wi-Fi SOP ranks first (the words "Wi-Fi" and "phones"), but the question says the Wi-Fi works
    answer = resolver.resolve(question, sop_scores={"wifi": 0.9, "warehouse-scanners": 0.5})
    assert answer.owner is not None and answer.owner.service == "warehouse-scanners"
    assert "ignored: question says wifi works" in answer.note
    plain = resolver.resolve("Who owns the scanners? The Wi-Fi is slow.", sop_scores={"wifi": 0.9})
    assert plain.owner is not None and plain.owner.service == "wifi"  # a named complaint still counts


def test_the_warehouse_scanner_question_gets_the_scanner_owner(answerer: Answerer) -> None:
    result = answerer.ask(
        f"{SCANNER_TITLE}, trucks are queuing at the dock. Wi-Fi on phones works fine. Who owns this?"
    )
    assert result.owner is not None
    assert (result.owner.team, result.owner.service) == ("workplace", "warehouse-scanners")
    assert any("ignored: question says wifi works" in r for r in result.reasons)


# ---- 3. the subject outranks a service in passing -----------------------------------------------------


def test_the_subject_is_the_title_and_the_first_sentence(kb: KnowledgeBase) -> None:
    text = fold("Outlook crashes\nHi,\nIt happens at every start. Since then my dock flickers too.")
    assert text[: subject_end(text)] == "outlook crashes\nhi,\nit happens at every start."
    one_line = fold("The printer jams. The laptop is new.")
    assert one_line[: subject_end(one_line)] == "the printer jams."
    weights = {m.id: m.weight for m in ServiceMatcher(kb.services).mentions(text)}
    assert weights == {"email": 1.0, "laptops": 0.5}


def test_mention_weights_share_the_mention_signal() -> None:
    model = {"collab": 0.5, "workplace": 0.5}
    equal = combine_team_scores(model, ["collab", "workplace"], [], RouteWeights())
    assert equal["collab"] == pytest.approx(equal["workplace"])  # without weights: an equal share, as before
    weighted = combine_team_scores(model, ["workplace", "collab"], [], RouteWeights(), [0.5, 1.0])
    assert weighted["collab"] > weighted["workplace"]
    assert sum(weighted.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "team", "service"),
    [
        ("Outlook crashes at start\nIt happens every morning. Since then my dock flickers too.", "collab", "email"),
        (
            "My dock flickers\nIt happens every morning. Since then Outlook crashes at start too.",
            "workplace",
            "laptops",
        ),
    ],
)
def test_the_service_of_the_subject_wins_a_close_call(kb: KnowledgeBase, text: str, team: str, service: str) -> None:
    decision, chosen = Router(kb).decide(text, {"collab": 0.5, "workplace": 0.5}, [])
    assert (decision.label, chosen) == (team, service)
    assert any("in passing" in r for r in decision.reasons)


def test_within_a_team_the_subject_service_is_the_owner(kb: KnowledgeBase) -> None:
    text = "Label printer offline\nIt stopped at noon. The laptop next to it and its dock are fine otherwise."
    decision, service = Router(kb).decide(text, {"workplace": 0.9}, [])
    assert (decision.label, service) == ("workplace", "printing")


def test_the_owner_resolver_prefers_the_earliest_name(kb: KnowledgeBase) -> None:
    resolver = OwnerResolver(kb, None, clock=lambda: NOW)  # no embedder, no SOPs: the names alone decide
    first = resolver.resolve("The scanner stopped, and then the printer too")
    second = resolver.resolve("The printer stopped, and then the scanner too")
    assert first.mentioned == ["warehouse-scanners", "printing"] and second.mentioned == [
        "printing",
        "warehouse-scanners",
    ]
    assert first.owner is not None and first.owner.service == "warehouse-scanners"
    assert second.owner is not None and second.owner.service == "printing"
    denied = resolver.resolve("The scanner works fine, but the printer stopped")
    assert denied.mentioned == ["printing"] and denied.owner is not None and denied.owner.service == "printing"
