"""Which SOP the template reply may quote: the top hit's dense similarity (the old rule) or its mean with the best
sentence-to-line similarity (the aligned rule), and the aligned rule on the demo tickets that defeated the old one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sop_kit import hit, section

from agents.answers.relevance import (
    ALIGNED,
    MAX_SENTENCES,
    RELEVANCE,
    AlignedRelevance,
    DenseRelevance,
    sop_lines,
    ticket_sentences,
)
from agents.answers.steps import SopSections
from agents.llm.write import ReplyWriter
from agents.types import MAX_BODY_CHARS, Ticket, ticket_text
from retrieval.embedders import Embedder, HashingEmbedder

DEMO = Path(__file__).resolve().parents[1] / "evals" / "data" / "demo_tickets.v1.jsonl"


class CountingEmbedder:
    """A real embedder that counts the texts it embeds (to check what is embedded once)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.dim = inner, inner.name, inner.dim
        self.texts: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return self.inner.embed(texts)


@pytest.fixture
def sections(kb_dir: Path) -> SopSections:
    return SopSections(kb_dir / "sops")


def test_the_dense_rule_quotes_the_top_hit_from_its_threshold_on(sop_chunks) -> None:
    steps = section(sop_chunks, "sop-printer-add", "Before you start")
    rule = DenseRelevance()
    assert rule.threshold == RELEVANCE
    assert rule.choose("x", [hit(steps, RELEVANCE)]) is not None
    assert rule.choose("x", [hit(steps, RELEVANCE - 0.01), hit(steps, 0.99)]) is None  # only the top hit counts
    assert rule.choose("x", []) is None


def test_an_sop_is_read_as_its_title_headings_and_lines_without_markers(sop_chunks) -> None:
    drive = [c for c in sop_chunks if c.doc_id == "sop-shared-drive-access"]
    lines = sop_lines(drive[0].title, drive)
    assert lines[0] == "Get access to a shared drive or team folder"
    assert "The S: drive is missing" in lines  # a heading of three words or more
    assert "Steps" not in lines and "Symptoms" not in lines  # a bare heading aligns with anything
    assert any(line.startswith("Opening a folder shows **Access is denied**") for line in lines)  # "- " dropped
    assert not any(line[0] in "-*#" or line[:2] in ("1.", "2.") for line in lines)
    assert len(lines) == len(set(lines))


def test_a_ticket_is_read_as_its_sentences_without_greeting_or_signature() -> None:
    text = ticket_text("Outlook stuck", "Hi team,\nOutlook has said 'updating inbox' for 2 hours.\n\nThanks,\nAnna")
    assert ticket_sentences(text) == ["Outlook stuck", "Outlook has said 'updating inbox' for 2 hours."]
    assert ticket_sentences("help") == ["help"] and ticket_sentences("  ") == []


def test_a_ticket_that_states_an_sop_line_is_aligned_with_it_and_one_that_does_not_is_not(sop_chunks, sections) -> None:
    embedder = HashingEmbedder()
    drive = hit(section(sop_chunks, "sop-shared-drive-access", "Symptoms"), dense=0.40)
    rule = AlignedRelevance(embedder, sections, threshold=0.6)
    stated = ticket_text("S drive", "The S: drive is not listed under This PC.")
    assert rule.scores(stated, [drive])[0] == pytest.approx((0.40 + 1.0) / 2, abs=1e-4)  # the same line: cosine 1
    assert rule.choose(stated, [drive]) == drive
    assert rule.choose(ticket_text("Lunch", "The canteen has run out of soup."), [drive]) is None


def test_the_best_of_the_first_hits_is_quoted_and_only_among_them(sop_chunks, sections) -> None:
    embedder = HashingEmbedder()
    printer = hit(section(sop_chunks, "sop-printer-add", "Before you start"), dense=0.45)
    drive = hit(section(sop_chunks, "sop-shared-drive-access", "Symptoms"), dense=0.40)
    stated = ticket_text("S drive", "The S: drive is not listed under This PC.")
    assert AlignedRelevance(embedder, sections, threshold=0.6, candidates=2).choose(stated, [printer, drive]) == drive
    assert AlignedRelevance(embedder, sections, threshold=0.6, candidates=1).choose(stated, [printer, drive]) is None


def test_the_sop_lines_are_embedded_once_per_file_and_the_ticket_once_per_reply(sop_chunks, sections) -> None:
    embedder = CountingEmbedder(HashingEmbedder())
    rule = AlignedRelevance(embedder, sections, candidates=3)
    hits = [hit(section(sop_chunks, "sop-shared-drive-access", name), 0.5) for name in ("Symptoms", "Things to know")]
    text = ticket_text("Drive", "Cannot open the team folder. It says access denied.")
    rule.scores(text, hits)
    first = len(embedder.texts)
    rule.scores(text, hits)
    assert len(embedder.texts) - first == len(ticket_sentences(text)) == 2  # the same file's lines, cached


def test_a_huge_ticket_costs_what_a_short_one_does(sop_chunks, sections) -> None:
    embedder = CountingEmbedder(HashingEmbedder())
    rule = AlignedRelevance(embedder, sections)
    drive = hit(section(sop_chunks, "sop-shared-drive-access", "Symptoms"), 0.5)
    rule.scores("warm", [drive])
    before = len(embedder.texts)
    paste = " ".join(f"Line {i} of the log says the share is unreachable." for i in range(2_000))
    rule.scores(ticket_text("Drive", paste[:MAX_BODY_CHARS]), [drive])
    assert len(embedder.texts) - before == MAX_SENTENCES


def test_a_file_gone_since_the_index_was_built_is_read_from_the_hit(sop_chunks, tmp_path) -> None:
    gone = hit(section(sop_chunks, "sop-shared-drive-access", "Symptoms"), dense=0.40)
    rule = AlignedRelevance(HashingEmbedder(), SopSections(tmp_path), threshold=0.6)
    assert rule.choose(ticket_text("S drive", "The S: drive is not listed under This PC."), [gone]) == gone


def test_the_reply_writer_takes_the_aligned_rule_with_an_embedder_and_the_dense_one_without(
    demo_kb, sop_chunks
) -> None:
    assert isinstance(ReplyWriter(demo_kb).rule, DenseRelevance)
    assert ReplyWriter(demo_kb, relevance=0.3).rule.name == "dense >= 0.30"
    aligned = ReplyWriter(demo_kb, embedder=HashingEmbedder()).rule
    assert isinstance(aligned, AlignedRelevance) and aligned.threshold == ALIGNED
    drive = hit(section(sop_chunks, "sop-shared-drive-access", "Symptoms"), dense=0.40)
    ticket = Ticket(title="S drive", body="The S: drive is not listed under This PC.")
    writer = ReplyWriter(
        demo_kb, rule=AlignedRelevance(HashingEmbedder(), SopSections(Path(demo_kb.root) / "sops"), threshold=0.6)
    )
    reply = writer.template(ticket, "storage", "P3", "infra", [drive])
    assert '"Get access to a shared drive or team folder" [sop-shared-drive-access#' in reply
    assert "[sop-shared-drive-access" not in ReplyWriter(demo_kb).template(ticket, "storage", "P3", "infra", [drive])


# ---- with the default embedder: the tickets of evals/reports/summaries.md ---------------------------------------
@pytest.fixture(scope="module")
def minilm() -> Embedder:
    from retrieval.factory import make_embedder

    return make_embedder("minilm-int8")


def demo_ticket(ticket_id: str) -> str:
    row = next(json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if ticket_id in line)
    return ticket_text(row["title"], row["body"])


@pytest.mark.slow  # loads the real MiniLM (exported to ONNX once per machine)
@pytest.mark.parametrize(
    ("ticket_id", "doc_id", "fits"),
    [
        ("DTB-0016", "sop-shared-drive-access", False),  # a save fails only for file names with '#'
        ("DTB-0013", "sop-leave-requests", False),  # TimeAway down for the whole HR team
        ("DTA-0010", "sop-email-not-syncing", True),  # "my emails arent working"
        ("DTB-0004", "sop-payroll", True),  # where is the year-end tax summary
    ],
)
def test_the_aligned_rule_on_tickets_the_dense_rule_got_wrong(minilm, sop_chunks, sections, ticket_id, doc_id, fits):
    from retrieval.markdown import split_identifiers

    text = demo_ticket(ticket_id)
    own = [c for c in sop_chunks if c.doc_id == doc_id]
    vectors = minilm.embed([split_identifiers(text), *(c.search_text() for c in own)])
    similarities = vectors[1:] @ vectors[0]
    best = int(np.argmax(similarities))
    top = hit(own[best], float(similarities[best]))  # the SOP's best section, scored as the search scores it
    assert (DenseRelevance().choose(text, [top]) is not None) is not fits  # the old rule: wrong both ways
    assert (AlignedRelevance(minilm, sections).choose(text, [top]) is not None) is fits


@pytest.mark.parametrize(("choice", "rule"), [("aligned", AlignedRelevance), ("dense", DenseRelevance)])
def test_the_service_judges_relevance_by_the_setting(served_data_dir: Path, tmp_path: Path, choice, rule) -> None:
    from serverkit import fresh_data_dir

    from agents.app import build_service
    from agents.settings import Settings

    data_dir = fresh_data_dir(served_data_dir, tmp_path / "data")
    settings = Settings(data_dir=data_dir, embedder="hashing", reply_relevance=choice, _env_file=None)
    service = build_service(settings)
    assert isinstance(service.reply_writer.rule, rule)
    if choice == "aligned":  # in the vector space of the SOP index the hits were scored in
        assert service.reply_writer.rule.embedder is service.embedder
    assert service.triage(Ticket(title="Printer on floor 3 jams", body="Every job stops at page 2.")).suggested_reply
