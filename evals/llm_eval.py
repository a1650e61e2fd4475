"""The LLM policies (llm_first and cascade) as eval backends, and a side-by-side run of the three policies."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agents.classical.calibration import budgeted_threshold
from agents.errors import BackendUnavailable, TriageError
from agents.llm.chat import ChatModel, ChatReply, Message
from agents.llm.classify import Example, ExampleBank, LabelField, Labelled, LlmLabeller
from agents.llm.factory import llm_problem, make_chat, probe
from agents.policy import Attempt, CircuitBreaker, LlmGuard, among_top
from agents.settings import Settings
from agents.similar import TicketMemory
from evals.backends import ClassicalBackend
from evals.outputs import Prediction, RowOutput
from evals.specs import Table
from kb.loader import KnowledgeBase, load_kb
from retrieval.embedders import Embedder
from retrieval.hybrid import HybridSearcher

NAMES = ("llm", "llm_first", "cascade")


def label_fields(labels: dict[str, list[str]], kb: KnowledgeBase | None) -> list[LabelField]:
    """Each field's labels as seen in training; described from the taxonomy when they are the taxonomy's own."""
    known: dict[str, dict[str, str]] = {}
    if kb is not None:
        tax = kb.taxonomy
        known["category"] = {c.id: f"{c.name}. {c.description}" for c in tax.categories}
        known["priority"] = {p.id: f"{p.name}. {p.description}" for p in tax.priorities}
        known["team"] = {t.id: t.name for t in kb.teams.values()}
    fields = []
    for name, values in labels.items():
        seen = sorted(set(values))
        described = known.get(name, {})
        if described and set(seen) <= set(described):
            fields.append(LabelField(name=name, labels=dict(described)))
        else:
            fields.append(LabelField(name=name, labels={label: "" for label in seen}))
    return fields


class CachingChat:
    """Replays an earlier reply to the same request (temperature 0): the cascade reuses the llm policy's answers.

    With `path`, replies are appended to a JSONL file and read back on the next run, so an interrupted
    evaluation resumes where it stopped; failures are not cached.
    """

    def __init__(self, chat: ChatModel, path: Path | None = None) -> None:
        self.chat = chat
        self.name = chat.name
        self.path = path
        self.cache: dict[str, ChatReply] = {}
        self.live_calls = 0
        self.live_latency_ms: list[float] = []  # requests made in this run (replayed ones keep their old latency)
        if path is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                self.cache[entry["key"]] = ChatReply(**entry["reply"])

    def complete(self, messages: list[Message], schema: dict[str, Any] | None = None, **kw: Any) -> ChatReply:
        key = hashlib.sha256(json.dumps([messages, schema], sort_keys=True).encode()).hexdigest()
        if key not in self.cache:
            self.live_calls += 1
            self.cache[key] = self.chat.complete(messages, schema, **kw)
            self.live_latency_ms.append(self.cache[key].latency_ms)
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"key": key, "reply": self.cache[key].model_dump()}) + "\n")
        return self.cache[key]


class LlmPolicyBackend:
    """The policies with an LLM, scored per ticket.

    `llm`: the LLM alone labels every ticket; its failures are raised, so the runner scores them as failed rows.
    `llm_first`: the LLM labels every ticket, the classical answer when it fails (the service's llm_first).
    `cascade`: the classical answer, and the LLM only for fields under the threshold chosen on training rows.
    """

    batch_size = 1

    def __init__(
        self,
        name: str,
        chat: ChatModel,
        embedder: Embedder,
        *,
        kb: KnowledgeBase | None = None,
        searcher: HybridSearcher | None = None,
        classical: ClassicalBackend | None = None,
        breaker: CircuitBreaker | None = None,
        folds: int = 5,
        target: float = 0.9,
        ask_fields: list[str] | None = None,
        top_k: int = 0,
        max_share: float = 1.0,
    ) -> None:
        if name not in NAMES:
            raise ValueError(f"unknown LLM policy {name!r}: choose from {NAMES}")
        self.name = name
        self.chat = chat
        self.embedder = embedder
        self.kb = kb
        self.searcher = searcher
        self.classical = classical or ClassicalBackend(embedder, folds=folds, target=target)
        self.guard = LlmGuard(chat.name, breaker)
        self.ask_fields = ask_fields  # None: every field the LLM labels; else only these go to the LLM
        self.top_k = top_k  # cascade: the LLM's label counts only among the classical top k (0: any label)
        self.max_share = max_share  # cascade: the LLM budget, as in the service (agents.classical.calibration)
        self.thresholds: dict[str, float] = {}
        self.stats: Counter[str] = Counter()
        self.latency_ms: list[float] = []

    def fit(self, train: Table, vectors: np.ndarray | None) -> None:
        vectors = vectors if vectors is not None else self.embedder.embed([t or " " for t in train.texts])
        if not self.classical.models:  # a shared, already fitted classical backend is used as it is
            self.classical.fit(train, vectors)
        choices = self.classical.choices
        self.cascade_thresholds = {
            f: budgeted_threshold(choices[f], self.max_share) if f in choices else t
            for f, t in self.classical.thresholds.items()
        }
        self.thresholds = self.cascade_thresholds if self.name == "cascade" else {}
        ids = [f"train-{i}" for i in range(len(train))]
        self.memory = TicketMemory(self.embedder.dim)
        self.memory.add(vectors, [{"id": i} for i in ids])
        labels = train.labels
        self.bank = ExampleBank(
            Example(id=i, text=t, labels={f: labels[f][n] for f in labels})
            for n, (i, t) in enumerate(zip(ids, train.texts, strict=True))
        )
        fields = label_fields(labels, self.kb)
        self.hits_on = any(any(f.labels.values()) for f in fields)  # SOPs help only with the demo taxonomy
        # as in the service, the catalogue's teams are routed classically: the LLM labels the other fields
        fields = [f for f in fields if not (f.name == "team" and any(f.labels.values()))]
        self.llm_fields = [f.name for f in fields]
        self.labeller = LlmLabeller(self.chat, fields)

    def predict(self, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]:
        return [self._one(row, text) for row, text in zip(rows, texts, strict=True)]

    def _one(self, row: dict[str, Any], text: str) -> RowOutput:
        started = time.perf_counter()
        out = self.classical.predict([row], [text])[0]
        classical_ms = (time.perf_counter() - started) * 1000
        ask = [f for f in out.fields if f in self.llm_fields and (self.ask_fields is None or f in self.ask_fields)]
        if self.name == "cascade":
            ask = [f for f in ask if out.fields[f].confidence < self.cascade_thresholds.get(f, float("-inf"))]
        self.stats["tickets"] += 1
        if not ask:
            self.latency_ms.append(classical_ms)
            return out
        self.stats["llm_tickets"] += 1
        vector = self.embedder.embed([text or " "])[0]
        examples = self.bank.for_neighbours(self.memory.search(vector, 5), self.labeller.max_examples)
        hits = self.searcher.search(text, k=3, vector=vector) if self.hits_on and self.searcher and text else []
        if self.name == "llm":
            attempt = Attempt(self._alone(text, examples, hits))
        else:
            attempt = self.guard.run("classify", lambda: self.labeller.label(text, examples, hits))
        result = attempt.value
        if result is None:
            error = attempt.reason or ""
            kind = (
                "skipped" if "circuit open" in error else "unavailable" if "BackendUnavailable" in error else "invalid"
            )
            self.stats[kind] += 1
            self.stats["fallbacks"] += 1
            out.llm_calls = {"skipped": 0, "unavailable": 1, "invalid": 2}[kind]  # invalid: asked, then re-asked
            self.latency_ms.append(classical_ms + sum(c.latency_ms for c in attempt.calls))
            for f in ask:
                p = out.fields[f]
                out.fields[f] = Prediction(p.label, p.confidence, f"{p.decided_by} (fallback)")
        else:
            self.stats["valid_after_reask" if result.reasked else "valid_first_try"] += 1
            out.llm_calls = len(result.calls)
            out.tokens = sum((c.prompt_tokens or 0) + (c.completion_tokens or 0) for c in result.calls)
            self.latency_ms.append(classical_ms + sum(c.latency_ms for c in result.calls))
            for f in ask:
                p = out.fields[f]
                if self.name == "cascade" and not among_top(list(p.ranked), result.labels[f], self.top_k):
                    out.fields[f] = Prediction(p.label, p.confidence, f"{p.decided_by} (llm outside top {self.top_k})")
                else:
                    out.fields[f] = Prediction(result.labels[f], result.confidence, self.chat.name)
        self.stats["llm_requests"] += out.llm_calls
        return out

    def _alone(self, text: str, examples: list[Example], hits: list[Any]) -> Labelled:
        try:
            return self.labeller.label(text, examples, hits)
        except TriageError as exc:
            self.stats["unavailable" if isinstance(exc, BackendUnavailable) else "invalid"] += 1
            raise


def chat_from_settings(settings: Settings) -> ChatModel:
    """The configured endpoint, checked once: BackendUnavailable (the runner reports it as skipped) if it is down."""
    problem = llm_problem(settings) or probe(settings)
    if problem:
        raise BackendUnavailable(f"llm:{settings.llm_model}", problem)
    return make_chat(settings)


def make_backend(
    name: str, *, settings: Settings, embedder: Embedder, chat: ChatModel | None = None
) -> LlmPolicyBackend:
    """The plug-in `evals.backends` looks for: the `llm` and `cascade` policies against the configured endpoint."""
    from retrieval.corpus import load_chunks
    from retrieval.index import SopIndex

    chat = chat if chat is not None else chat_from_settings(settings)
    kb = load_kb(settings.kb_dir)
    searcher = HybridSearcher(SopIndex.build(load_chunks(settings.kb_dir / "sops"), embedder))
    breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown)
    # as the service's cascade (but every field may go to the LLM)
    top_k, share = (settings.cascade_top_k, settings.cascade_max_share) if name == "cascade" else (0, 1.0)
    return LlmPolicyBackend(
        name, chat, embedder, kb=kb, searcher=searcher, breaker=breaker, top_k=top_k, max_share=share
    )
