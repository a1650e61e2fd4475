"""Summaries and replies: the LLM writes within the rules, or the extractive summary and the SOP template step in."""

from __future__ import annotations

import pytest

from agents.errors import BackendUnavailable
from agents.llm.chat import ScriptedChat
from agents.llm.write import ReplyWriter, SummaryWriter, duration
from agents.types import Ticket

TICKET = Ticket(
    title="VPN error 809 at the hotel",
    body="Since this morning GlobalConnect says error 809 at the hotel. Reach me on jo@kestrel.example.",
    requester="jo.baker",
)


@pytest.fixture(scope="module")
def hits(trained_service):
    return trained_service.searcher.search(TICKET.text, k=3)


def test_without_an_llm_the_summary_is_extractive() -> None:
    written = SummaryWriter().write(TICKET)
    assert written.backend == "classical:extractive" and written.llm_calls == [] and written.text


def test_the_llm_summary_is_redacted_going_out_and_restored_coming_back() -> None:
    chat = ScriptedChat([{"summary": "User [EMAIL_1] gets VPN error 809 on hotel Wi-Fi since this morning"}])
    written = SummaryWriter(chat=chat).write(TICKET)
    assert written.backend == "llm:scripted" and "jo@kestrel.example" in written.text
    assert "jo@kestrel.example" not in chat.calls[0]["messages"][1]["content"]
    assert written.llm_calls[0].task == "summarise" and written.llm_calls[0].ok


def test_a_long_llm_summary_is_clipped_to_the_character_limit_between_words() -> None:
    chat = ScriptedChat([{"summary": " ".join(["word"] * 60)}])
    written = SummaryWriter(chat=chat, max_chars=30).write(TICKET)
    assert written.text == " ".join(["word"] * 6) + "…" and len(written.text) == 30


@pytest.mark.parametrize("failure", [BackendUnavailable("llm:scripted", "HTTP 500"), "no json here", {"summary": ""}])
def test_a_failed_llm_summary_falls_back_with_the_reason(failure) -> None:
    written = SummaryWriter(chat=ScriptedChat([failure])).write(TICKET)
    assert written.backend == "classical:extractive (fallback)"
    assert written.text == SummaryWriter().write(TICKET).text
    assert "extractive summary instead" in written.reasons[0] and written.llm_calls[0].ok is False


def test_the_template_reply_cites_the_top_sop_and_states_the_sla(trained_service, hits) -> None:
    text = ReplyWriter(trained_service.kb, relevance=0.0).write(TICKET, "network", "P2", "network", hits).text
    assert text.startswith("Hello Jo,")
    assert "Network and connectivity, priority P2 (High)" in text and "within 1 hour" in text
    assert f"[{hits[0].doc_id}" in text and hits[0].title in text  # a section of the top SOP, quoted in whole steps


def test_the_template_reply_without_sops_makes_no_promise_of_steps(trained_service) -> None:
    text = ReplyWriter(trained_service.kb).write(Ticket(body="hello?"), "other", "P4", "service-desk", []).text
    assert text.startswith("Hello,") and "guide" not in text and "within 1 working day" in text


def test_the_llm_reply_cites_only_sops_it_was_shown(trained_service, hits) -> None:
    def good(messages, schema):  # cites the first SOP it was shown, by the id it was shown under
        first = schema["properties"]["sources"]["items"]["enum"][0]
        return {
            "reply": "Hi Jo, switch to SSL fallback in GlobalConnect settings, as the guide says.",
            "sources": [first],
        }

    chat = ScriptedChat(fn=good)
    written = ReplyWriter(trained_service.kb, chat).write(TICKET, "network", "P2", "network", hits)
    shown = chat.calls[0]["schema"]["properties"]["sources"]["items"]["enum"]
    assert written.backend == "llm:scripted"
    assert written.text.endswith(f"See [{shown[0]}]")  # the citation is added when the text forgot it
    user = chat.calls[0]["messages"][1]["content"]
    assert "category Network and connectivity, priority P2 (High)" in user and f'<sop id="{shown[0]}"' in user
    assert [ref.split("#")[0] for ref in shown] == [h.doc_id for h in hits[:2]]  # the top two SOPs, a section each


@pytest.mark.parametrize(
    "bad",
    [
        {"reply": "Hi Jo, follow the steps in the guide below to reconnect.", "sources": ["sop-made-up#Steps"]},
        {"reply": "Hi Jo, please send us your password so we can test the VPN.", "sources": []},
    ],
)
def test_a_reply_citing_an_unknown_sop_or_asking_for_a_password_falls_back(trained_service, hits, bad) -> None:
    written = ReplyWriter(trained_service.kb, ScriptedChat([bad])).write(TICKET, "network", "P2", "network", hits)
    assert written.backend == "classical:template (fallback)"
    assert "template reply instead" in written.reasons[0]
    assert written.text == ReplyWriter(trained_service.kb).template(TICKET, "network", "P2", "network", hits)


def test_durations_read_naturally() -> None:
    assert [duration(m) for m in (15, 60, 240, 1440, 7200)] == [
        "15 minutes",
        "1 hour",
        "4 hours",
        "1 working day",
        "5 working days",
    ]
