"""TriageService end to end on real (hashing) models: fields stay in the taxonomy, doubt goes to a human."""

from __future__ import annotations

import pytest

from agents.types import Ticket


def test_result_fields_are_inside_the_taxonomy_and_catalogue(trained_service) -> None:
    kb = trained_service.kb
    result = trained_service.triage(Ticket(title="VPN", body="GlobalConnect disconnects every ten minutes"))
    assert result.category in kb.taxonomy.category_ids
    assert result.priority in kb.taxonomy.priority_ids
    assert result.team in kb.teams
    assert set(result.confidence) == {"category", "priority", "team"}
    assert result.backend["category"] == "classical:ensemble"
    assert result.owner.team == result.team
    assert 0 < len(result.summary) <= 200
    assert result.kb_refs and result.kb_refs[0].doc_id.startswith("sop-")


@pytest.mark.parametrize("body", ["", "   ", "😀😀😀🙏", "\x00\x01\x02 ÿþ"])
def test_empty_or_wordless_tickets_go_to_a_human_with_a_reason(trained_service, body: str) -> None:
    result = trained_service.triage(Ticket(body=body))
    assert result.needs_human
    assert any("no text" in r or "unknown to the model" in r for r in result.reasons)


@pytest.mark.parametrize(
    "body",
    [
        "Tulostin ei toimi kolmannessa kerroksessa, paperi juuttuu jatkuvasti",
        "三階のプリンターが動きません。紙詰まりです。",
    ],
)
def test_a_language_the_model_never_saw_goes_to_a_human_with_a_reason(trained_service, body: str) -> None:
    result = trained_service.triage(Ticket(body=body))
    assert result.needs_human and result.category in {c.id for c in trained_service.kb.taxonomy.categories}
    assert any("unknown to the model" in r for r in result.reasons)


def test_low_confidence_fields_are_still_suggested_but_flagged(trained_service) -> None:
    result = trained_service.triage(Ticket(body="it doesnt work again"))
    assert result.category and result.team
    if result.needs_human:
        assert any("under the threshold" in r for r in result.reasons)
    thresholds = trained_service.models.thresholds
    below = [f for f, c in result.confidence.items() if c < thresholds[f].threshold]
    assert result.needs_human == bool(below) or any("unknown" in r for r in result.reasons)


def test_priority_rule_fires_for_an_outage(trained_service) -> None:
    result = trained_service.triage(Ticket(body="E-mail is down for all users in the Bristol warehouse"))
    assert result.priority in ("P1", "P2")
    assert any("rule" in r for r in result.reasons)


def test_a_known_ticket_is_found_as_similar_and_possible_duplicate(trained_service, demo_rows) -> None:
    row = demo_rows[0]
    result = trained_service.triage(Ticket(title=row["title"], body=row["body"]))
    assert result.similar_tickets[0].id == row["id"]
    assert result.possible_duplicate_of == row["id"]
    excluded = trained_service.triage(Ticket(id=row["id"], title=row["title"], body=row["body"]))
    assert all(s.id != row["id"] for s in excluded.similar_tickets)


def test_batch_equals_one_by_one(trained_service) -> None:
    tickets = [Ticket(body="printer jammed"), Ticket(body="need a new licence for Visio"), Ticket(body="")]
    batch = trained_service.triage_batch(tickets)
    single = [trained_service.triage(t) for t in tickets]
    assert [(r.category, r.priority, r.team) for r in batch] == [(r.category, r.priority, r.team) for r in single]


def test_oversized_or_unknown_fields_are_refused_before_any_model_runs() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Ticket(body="x" * 1_000_000)
    with pytest.raises(ValidationError):
        Ticket(body="ok", priority="P1")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Ticket(body=12345)  # type: ignore[arg-type]
