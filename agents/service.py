"""TriageService: one ticket in, one TriageResult out; classify, route, summarise, find SOPs and similar tickets."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from agents.classical.text_models import transform
from agents.classical.training import NEIGHBOURS, TriageModels
from agents.classify import Classification, Classifier, TicketContext
from agents.injection import InjectionDetector
from agents.llm.write import ReplyWriter, SummaryWriter
from agents.modes import ModeTable
from agents.priority_rules import PriorityRules
from agents.route import Router
from agents.similar import TicketMemory
from agents.summarise import ExtractiveSummariser
from agents.types import Deadline, FieldDecision, KbRef, Ticket, TriageResult
from kb.loader import KnowledgeBase
from retrieval.embedders import Embedder
from retrieval.hybrid import HybridSearcher

DUPLICATE_SCORE = 0.95
MIN_KNOWN_WORDS = 0.3
WORD = re.compile(r"[^\W\d_]{2,}")


def known_word_share(text: str, vocabulary: dict[str, int]) -> float:
    words = [w.lower() for w in WORD.findall(text)]
    return sum(w in vocabulary for w in words) / len(words) if words else 0.0


class TriageService:
    """Composes the agents; every collaborator is passed in (agents/app.py builds it from settings)."""

    def __init__(
        self,
        kb: KnowledgeBase,
        models: TriageModels,
        embedder: Embedder,
        classifier: Classifier,
        router: Router,
        searcher: HybridSearcher | None = None,
        summariser: ExtractiveSummariser | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        summary_writer: SummaryWriter | None = None,
        reply_writer: ReplyWriter | None = None,
        llm_timeout: float | None = None,
        modes: ModeTable | None = None,
    ) -> None:
        self.kb = kb
        self.models = models
        self.embedder = embedder
        self.classifier = classifier
        self.router = router
        self.searcher = searcher
        self.summariser = summariser or ExtractiveSummariser()
        self.rules = PriorityRules(kb.taxonomy)
        self.clock = clock
        self.summary_writer = summary_writer or SummaryWriter(self.summariser)
        self.reply_writer = reply_writer or ReplyWriter(kb, embedder=embedder)
        self.injections = InjectionDetector(kb.taxonomy)
        self.modes = modes or ModeTable()  # what may be applied to the ticket of record, per field and value
        self.llm_timeout = llm_timeout  # seconds of LLM time per ticket, shared by classify, summary and reply
        # each field model's labels in the order of its probabilities: fixed for the models' life, so built once
        self.classes = {name: [str(c) for c in m.classes_] for name, m in models.fields.items()}
        word_features = models.fields["category"].features_.transformer_list[0][1]
        self.vocabulary: dict[str, int] = word_features.vocabulary_

    @property
    def memory(self) -> TicketMemory:
        return self.models.memory

    def triage(self, ticket: Ticket) -> TriageResult:
        return self.triage_batch([ticket])[0]

    def triage_batch(self, tickets: list[Ticket]) -> list[TriageResult]:
        """Triage many tickets with one embedding call (the costly step)."""
        started = time.perf_counter()
        texts = [t.text for t in tickets]
        read = self.models.texts(tickets)  # the texts plus the intake tokens the models were trained with, if any
        vectors = self.embedder.embed([t or " " for t in read])
        tfidf = transform(self.models.fields["team"].features_, read)  # one featuriser shared by every field model
        proba = {name: m.predict_proba(read, vectors, tfidf) for name, m in self.models.fields.items()}
        batch_ms = (time.perf_counter() - started) * 1000 / max(1, len(tickets))  # each ticket's share
        return [
            self._triage_one(t, text, vectors[i], tfidf[i], {f: p[i] for f, p in proba.items()}, batch_ms)
            for i, (t, text) in enumerate(zip(tickets, texts, strict=True))
        ]

    def _triage_one(
        self, ticket: Ticket, text: str, vector: np.ndarray, tfidf: Any, proba: dict[str, np.ndarray], batch_ms: float
    ) -> TriageResult:
        started = time.perf_counter()
        reasons: list[str] = []
        # only the labelled history votes on the team: a stored ticket's team may be triage's own earlier guess
        neighbours, labelled = self.memory.neighbours(vector, NEIGHBOURS, exclude_id=ticket.id)
        hits = self.searcher.search(text, k=3, vector=vector) if self.searcher and text else []
        team_model = self.models.fields["team"]
        deadline = Deadline.after(self.llm_timeout) if self.llm_timeout else None
        context = TicketContext(
            text=text,
            vector=vector,
            neighbours=neighbours,
            kb_hits=hits,
            tfidf=tfidf,
            proba=proba,
            deadline=deadline,
            classes=self.classes,
        )
        classification: Classification = self.classifier.classify(ticket, context)
        priority = self.rules.apply(text, classification.priority)
        team_proba = dict(zip(team_model.classes_, proba["team"], strict=True))
        team, service = self.router.decide(text, team_proba, labelled)
        owner = self.router.owner(team.label, service, self.clock())
        decisions = {"category": classification.category, "priority": priority, "team": team}
        needs_human = self._abstain(decisions, reasons)
        hold = self._hold(text, classification, reasons)  # a reason no field of this ticket may be applied
        needs_human = needs_human or hold is not None
        for decision in decisions.values():
            reasons.extend(decision.reasons)
        duplicate = next((n.id for n in neighbours if n.score >= DUPLICATE_SCORE), None)
        summary = self.summary_writer.write(ticket, context)
        reply = self.reply_writer.write(
            ticket, classification.category.label, priority.label, team.label, hits, context
        )
        reasons = list(dict.fromkeys([*reasons, *summary.reasons, *reply.reasons]))  # one line per distinct reason
        return TriageResult(
            ticket_id=ticket.id,
            category=classification.category.label,
            priority=priority.label,
            team=team.label,
            owner=owner,
            summary=summary.text,
            kb_refs=[
                KbRef(doc_id=h.doc_id, title=h.title, section=h.section, path=h.path, score=h.score) for h in hits
            ],
            similar_tickets=neighbours,
            possible_duplicate_of=duplicate,
            confidence={k: d.confidence for k, d in decisions.items()},
            backend={
                **{k: d.backend for k, d in decisions.items()},
                "summary": summary.backend,
                "reply": reply.backend,
            },
            needs_human=needs_human,
            reasons=reasons,
            suggested_reply=reply.text,
            latency_ms=round(batch_ms + (time.perf_counter() - started) * 1000, 2),
            llm_calls=[*classification.llm_calls, *summary.llm_calls, *reply.llm_calls],
            actions={
                k: self.modes.act(k, d.label, d.confidence, self.models.thresholds.get(k), hold)
                for k, d in decisions.items()
            },
        )

    def _hold(self, text: str, classification: Classification, reasons: list[str]) -> str | None:
        """Why a human must look at the whole ticket whatever the confidences say, or None."""
        holds = []
        if self._overridden(classification, reasons):
            holds.append("the LLM overrode a confident classical label")
        injection = self.injections.find(text)
        if injection is not None:
            reasons.append(injection.reason())
            holds.append("the text tries to instruct the model")
        if not text:
            reasons.append("ticket has no text: title and body are empty")
            holds.append("the ticket has no text")
        elif known_word_share(text, self.vocabulary) < MIN_KNOWN_WORDS:
            reasons.append("most words are unknown to the model (another language or no real words)")
            holds.append("most words are unknown to the model")
        return "; ".join(holds) or None

    def _overridden(self, classification: Classification, reasons: list[str]) -> bool:
        """Whether the LLM's label replaced a classical label that was confident (at or above the field's threshold).

        A decision's alternatives are the classical model's view (the policies keep them on the LLM's decision), so
        a label that is not the classical best one came from the LLM.
        """
        overridden = False
        for name in ("category", "priority"):
            decision: FieldDecision = getattr(classification, name)
            choice = self.models.thresholds.get(name)
            if choice is None or not decision.alternatives:
                continue
            best = max(decision.alternatives, key=lambda label: decision.alternatives[label])
            if best != decision.label and decision.alternatives[best] >= choice.threshold:
                overridden = True
                reasons.append(
                    f"{decision.backend}'s {name} {decision.label} overrides the classical {best} at "
                    f"{decision.alternatives[best]:.2f}, at or above the threshold {choice.threshold:.2f}: "
                    "a human decides"
                )
        return overridden

    def _abstain(self, decisions: dict[str, FieldDecision], reasons: list[str]) -> bool:
        needs_human = False
        for name, decision in decisions.items():
            choice = self.models.thresholds.get(name)
            if choice is not None and decision.confidence < choice.threshold:
                needs_human = True
                limit = "never reached" if choice.threshold > 1 else f"{choice.threshold:.2f}"
                reasons.append(
                    f"{name} confidence {decision.confidence:.2f} is under the threshold {limit} "
                    f"(held-out precision target {choice.target_precision:.2f})"
                )
        return needs_human
