"""Recurring themes: clusters of similar tickets named by their top terms, or by a namer with the terms as fallback;
and the narrative writer with the template as fallback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from agents.digest.builder import DigestBuilder
from agents.digest.models import DigestInput, DigestTicket
from agents.digest.themes import ThemeFinder, VectorCache, clip
from agents.errors import BackendUnavailable
from kb.loader import KnowledgeBase, load_kb
from retrieval.embedders import HashingEmbedder

AT = datetime(2026, 7, 14, 9, 0, tzinfo=UTC)
HASHING_DISTANCE = 0.55  # hashed n-grams sit further apart than MiniLM vectors
TEXTS = [
    ("network", "VPN keeps disconnecting from home"),
    ("network", "VPN disconnecting every hour at home"),
    ("network", "GlobalConnect VPN disconnecting again"),
    ("identity", "vpn disconnecting when working from home"),
    ("network", "VPN disconnected, cannot reconnect from home"),
    ("workplace", "Printer on floor 2 jams"),
    ("workplace", "printer jams on floor 2 again"),
    ("workplace", "Floor 2 printer paper jam"),
    ("workplace", "the printer jams every morning floor 2"),
    ("people-ops", "payslip missing for June"),
    ("procurement", "new laptop request"),
    ("identity", "password expired"),
]


def tickets() -> list[DigestTicket]:
    return [
        DigestTicket(
            id=f"t{i:02d}",
            title=text,
            status="triaged",
            team=team,
            priority="P3",
            created_at=AT - timedelta(hours=1 + i),
        )
        for i, (team, text) in enumerate(TEXTS)
    ]


@pytest.fixture(scope="module")
def kb(kb_dir: Path) -> KnowledgeBase:
    return load_kb(kb_dir)


class Namer:
    """Plays the LLM: names from the terms it is given, or fails like an unreachable endpoint."""

    name = "scripted-llm"

    def __init__(self, fail: bool = False, reply: str | None = None) -> None:
        self.fail, self.reply, self.calls = fail, reply, []

    def name_theme(self, texts: list[str], terms: list[str]) -> str:
        self.calls.append((texts, terms))
        if self.fail:
            raise BackendUnavailable("llm", "connection refused")
        return self.reply if self.reply is not None else f"Trouble with {terms[0]}"


def test_similar_tickets_form_themes_named_by_their_top_terms() -> None:
    themes = ThemeFinder(HashingEmbedder(), distance=HASHING_DISTANCE).find(tickets())
    assert [t.size for t in themes] == [5, 4]
    vpn, printer = themes
    assert vpn.terms[0] == "vpn" and "disconnecting" in vpn.name
    assert vpn.teams == {"network": 4, "identity": 1} and vpn.named_by == "terms"
    assert printer.terms[0] in {"printer", "jams", "floor"} and set(printer.ticket_ids) == {"t05", "t06", "t07", "t08"}


def test_a_tight_threshold_or_few_tickets_give_no_themes() -> None:
    assert ThemeFinder(HashingEmbedder(), distance=0.05).find(tickets()) == []
    assert ThemeFinder(HashingEmbedder(), distance=HASHING_DISTANCE).find(tickets()[:2]) == []


def test_a_namer_names_themes_and_falls_back_to_the_terms() -> None:
    namer = Namer()
    themes = ThemeFinder(HashingEmbedder(), distance=HASHING_DISTANCE, namer=namer).find(tickets())
    assert themes[0].name == "Trouble with vpn" and themes[0].named_by == "scripted-llm"
    assert len(namer.calls[0][0]) == 5 and namer.calls[0][1] == themes[0].terms
    down = ThemeFinder(HashingEmbedder(), distance=HASHING_DISTANCE, namer=Namer(fail=True)).find(tickets())
    assert down[0].named_by == "terms" and down[0].name == " / ".join(down[0].terms)
    rambling = ThemeFinder(HashingEmbedder(), distance=HASHING_DISTANCE, namer=Namer(reply="x" * 200)).find(tickets())
    assert rambling[0].named_by == "terms"


class Writer:
    name = "scripted-llm"

    def __init__(self, reply: str | Exception) -> None:
        self.reply, self.seen = reply, []

    def write(self, facts: dict, draft: str) -> str:
        self.seen.append((facts, draft))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def test_the_narrative_comes_from_a_writer_or_the_template(kb: KnowledgeBase) -> None:
    data = DigestInput(tickets=tickets())
    writer = Writer("Twelve tickets; VPN trouble again.")
    themes = ThemeFinder(HashingEmbedder(), distance=HASHING_DISTANCE)
    digest = DigestBuilder(kb, themes, writer=writer).build(data, now=AT)
    assert (digest.narrative, digest.narrative_by) == ("Twelve tickets; VPN trouble again.", "scripted-llm")
    facts, draft = writer.seen[0]
    assert facts["new"] == 12 and facts["themes"][0]["size"] == 5 and "12 tickets came in" in draft
    failing = DigestBuilder(kb, writer=Writer(BackendUnavailable("llm", "timeout"))).build(data, now=AT)
    assert failing.narrative_by == "template" and "12 tickets came in" in failing.narrative
    assert failing.facts() | {"themes": []} == digest.facts() | {"themes": [], "params": failing.facts()["params"]}


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, remembering what it was asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.seen.extend(texts)
        return super().embed(texts)


def test_each_text_is_embedded_once_and_cached_between_digests(tmp_path: Path) -> None:
    path = tmp_path / "digests" / "vectors.npz"
    first = CountingEmbedder()
    cache = VectorCache(path)
    themes = ThemeFinder(first, distance=HASHING_DISTANCE, cache=cache).find(tickets() + tickets()[:3])
    assert len(first.seen) == len(TEXTS)  # the three repeated tickets were not embedded twice
    cache.save()
    second = CountingEmbedder()
    again = ThemeFinder(second, distance=HASHING_DISTANCE, cache=VectorCache(path)).find(tickets())
    assert second.seen == [] and [t.name for t in again] == [t.name for t in themes]
    path.write_bytes(b"not a zip file")
    assert VectorCache(path).vectors == {}  # a damaged cache is rebuilt, not fatal


def test_long_texts_are_cut_between_words() -> None:
    assert clip("Printer  on\nfloor 2 jams", 14) == "Printer on"
    assert clip("short", 160) == "short"
