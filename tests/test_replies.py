"""Suggested replies: whole steps of the best section of a relevant SOP, never a cut sentence, no SOP when none
fits; and the eval's detector of cut quotes, which must catch the old template's."""

from __future__ import annotations

import pytest
from sop_kit import hit, section

from agents.answers.relevance import RELEVANCE
from agents.answers.steps import quote_steps, whole_steps
from agents.llm.chat import ScriptedChat
from agents.llm.write import ReplyWriter
from agents.types import Ticket
from evals.facts import cited
from evals.reply_scores import SopQuotes, score_replies
from evals.summaries_eval import v1_guide_line
from retrieval.markdown import Chunk

CALENDAR = Ticket(
    title="Can't see Paul's calendar any more",
    body="I used to see my manager's calendar to book his meetings; since Monday it says 'you do not have permission'.",
    requester="deborah.lane",
)


@pytest.fixture(scope="module")
def sops(sop_chunks: list[Chunk]) -> SopQuotes:
    return SopQuotes([c.text for c in sop_chunks])


def guide_lines(reply: str) -> list[str]:
    """The lines a reply quotes: after its 'may help:' line, up to the sign-off."""
    lines = reply.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("may help:"))
    return [line for line in lines[start + 1 :] if line and line != "IT Service Desk"]


def test_every_quoted_step_of_every_sop_section_ends_where_the_sop_ends_it(demo_kb, sop_chunks, sops) -> None:
    writer = ReplyWriter(demo_kb)
    quoting = 0
    for chunk in sop_chunks:
        reply = writer.template(CALENDAR, "email", "P3", "collab", [hit(chunk)])
        ends = [sops.quote_end(line) for line in reply.splitlines()]
        assert False not in ends, (chunk.doc_id, chunk.section, reply)
        quoting += True in ends
    assert quoting > len(sop_chunks) * 0.8  # nearly every section is quoted, each quote whole


def test_the_old_template_cut_long_sections_and_the_detector_sees_it(sop_chunks, sops) -> None:
    long_steps = section(sop_chunks, "sop-email-not-syncing", "Steps")
    assert sops.quote_end(v1_guide_line([hit(long_steps)])) is False
    short = section(sop_chunks, "sop-account-locked", "")  # one sentence, under 400 characters: whole
    assert sops.quote_end(v1_guide_line([hit(short)])) is True
    assert sops.quote_end("Thank you for your ticket, the team will respond within four hours.") is None


def test_at_most_n_whole_steps_are_quoted_and_the_rest_counted(demo_kb, sop_chunks) -> None:
    steps = section(sop_chunks, "sop-email-not-syncing", "Steps")
    reply = ReplyWriter(demo_kb, max_steps=2).template(CALENDAR, "email", "P3", "collab", [hit(steps)])
    quoted = guide_lines(reply)
    assert quoted[0].startswith("1. In Outlook") and quoted[1].startswith("2. Look at the bottom right")
    assert quoted[2] == "(4 more steps in the guide.)" and len(quoted) == 3
    assert "**" not in reply  # Markdown emphasis is dropped, the words kept


def test_a_step_with_nested_items_is_quoted_with_them(sop_chunks) -> None:
    purchase = section(sop_chunks, "sop-purchase-request", "Steps")
    items, _ = whole_steps(purchase.text)
    approvals = next(i for i in items if i.startswith("6."))
    assert approvals.count("\n") == 4 and approvals.rstrip().endswith("also the Finance Director.")


def test_a_symptoms_hit_is_answered_from_the_section_of_its_sop_that_fits_the_ticket(demo_kb, sop_chunks) -> None:
    symptoms = section(sop_chunks, "sop-shared-mailbox", "Symptoms")
    reply = ReplyWriter(demo_kb).template(CALENDAR, "email", "P3", "collab", [hit(symptoms)])
    assert "[sop-shared-mailbox#Steps > A colleague's calendar]" in reply
    assert guide_lines(reply)[0].startswith("1. Ask the colleague to open their calendar")


def test_no_sop_at_all_when_the_best_hit_is_not_relevant(demo_kb, sop_chunks) -> None:
    printer = section(sop_chunks, "sop-printer-not-printing", "Steps")
    reply = ReplyWriter(demo_kb).template(CALENDAR, "email", "P3", "collab", [hit(printer, dense=RELEVANCE - 0.01)])
    assert "[sop-" not in reply and "guide" not in reply and "within 4 hours" in reply
    relevant = ReplyWriter(demo_kb).template(CALENDAR, "email", "P3", "collab", [hit(printer, dense=RELEVANCE)])
    assert "[sop-printer-not-printing#Steps]" in relevant


def test_prose_is_quoted_in_whole_sentences() -> None:
    text = "First sentence here. Second one follows! Third is a question? Fourth is left out."
    assert quote_steps(text, max_steps=3) == (
        ["First sentence here.", "Second one follows!", "Third is a question?"],
        0,
    )


def test_a_lead_in_ending_with_a_colon_comes_with_its_list() -> None:
    text = "Check these after any password change:\n1. Phone: Outlook.\n2. Tablet: switch it off.\n\nTrailing note."
    assert quote_steps(text, max_steps=5) == (
        ["Check these after any password change:", "1. Phone: Outlook.", "2. Tablet: switch it off."],
        0,
    )


def test_the_llm_may_cite_no_sop_and_sees_whole_steps(demo_kb, sop_chunks) -> None:
    printer = section(sop_chunks, "sop-printer-not-printing", "Steps")
    chat = ScriptedChat([{"reply": "Hello Deborah, the team will look into your calendar access.", "sources": []}])
    written = ReplyWriter(demo_kb, chat).write(CALENDAR, "email", "P3", "collab", [hit(printer)])
    assert written.backend == "llm:scripted" and "See [" not in written.text
    user = chat.calls[0]["messages"][1]["content"]
    assert "1. Check you printed to Kestrel-FollowMe" in user and "Printer faults" not in user
    assert "Then print again." not in user or "Cancel all stuck jobs, then print again." in user
    assert chat.calls[0]["messages"][0]["content"].count("at most 3 of its steps") == 1


# ---- the eval's reply scores -----------------------------------------------------------------------------------
def test_the_eval_scores_citations_against_the_reference(sops) -> None:
    rows = [
        {"id": "a", "split": "tune", "sop_relevant": True, "sops": ["sop-payroll"]},
        {"id": "b", "split": "test", "sop_relevant": True, "sops": ["sop-payroll"]},
        {"id": "c", "split": "test", "sop_relevant": False, "sops": []},
    ]
    texts = ["See [sop-payroll#Tax forms].", "See [sop-leave-requests].", "See [sop-made-up#Steps] and [not-a-ref]."]
    scored = score_replies(rows, texts, sops, {"sop-payroll", "sop-leave-requests"})
    assert scored["reference"]["cites_when_relevant"] == 1.0 and scored["reference"]["right_sop_when_relevant"] == 0.5
    assert scored["reference"]["cites_when_irrelevant"] == 0.0  # an id that is no SOP of ours is not a citation
    assert "holdout" not in scored and scored["reference"]["quoting"] == 0
    assert scored["test"]["right_sop_when_relevant"] == 0.0 and scored["tune"]["right_sop_when_relevant"] == 1.0
    assert cited("[sop-payroll#Steps] [sop-payroll]", {"sop-payroll"}) == ["sop-payroll", "sop-payroll"]
