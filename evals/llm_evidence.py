"""`triage eval llm`: per field, classical against each LLM policy on the same held-out rows, with McNemar's test."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from agents.errors import DataError
from agents.llm.chat import ChatModel, ChatReply, Message
from agents.llm.evidence import (
    ALPHA,
    EvidenceData,
    EvidencePolicy,
    EvidenceSplit,
    FieldEvidence,
    LlmEvidence,
    verdict,
)
from agents.models.versions import file_digest
from agents.policy import CircuitBreaker
from agents.settings import Settings
from agents.types import Deadline, ticket_text
from evals.backends import ClassicalBackend
from evals.llm_eval import CachingChat, LlmPolicyBackend
from evals.mcnemar import PairedCounts
from evals.outputs import RowOutput
from evals.specs import Table, load_spec, read_table, split_indices
from evals.tables import read_rows
from kb.loader import KnowledgeBase, load_kb
from retrieval.embedders import Embedder
from retrieval.hybrid import HybridSearcher

POLICIES: tuple[EvidencePolicy, ...] = ("llm_first", "cascade")
LABEL_FIELDS = ("category", "priority", "team")  # the fields of a ticket export, when they are on every row
CLASSICAL = "classical:ensemble"  # what decided a field the LLM was not asked about


@dataclass(frozen=True)
class SplitOptions:
    """How the held-out rows are drawn: a seeded, stratified share, optionally capped."""

    test_size: float = 0.2
    seed: int = 42
    max_test: int | None = None  # at most this many held-out rows (a seeded sample): an LLM call is slow
    train_limit: int | None = None  # at most this many training rows (a seeded sample)


class MeteredChat:
    """A chat model that notes how long each of its calls took (a replayed reply: the latency measured back then)."""

    def __init__(self, chat: ChatModel) -> None:
        self.chat = chat
        self.name = chat.name
        self.latency_ms: list[float] = []

    def complete(
        self,
        messages: list[Message],
        schema: dict[str, Any] | None = None,
        *,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        deadline: Deadline | None = None,
    ) -> ChatReply:
        started = time.perf_counter()
        try:
            reply = self.chat.complete(
                messages, schema, schema_name=schema_name, max_tokens=max_tokens, deadline=deadline
            )
        except Exception:
            self.latency_ms.append((time.perf_counter() - started) * 1000)
            raise
        self.latency_ms.append(reply.latency_ms)
        return reply


def load_labelled(path: Path) -> tuple[Table, str, Path]:
    """The rows, the field to stratify on, and the file they came from: a data set spec (.yaml: its text columns
    and labels) or a ticket export (JSONL, CSV: title and body, and category, priority, team where every row has
    them). Rows without a category are left out."""
    if path.suffix in (".yaml", ".yml"):
        spec = load_spec(path)
        table, _ = read_table(spec, spec.path)
        return table, spec.split.stratify or next(iter(spec.labels)), spec.resolve(spec.path)
    rows = [r for r in read_rows(path) if str(r.get("category") or "").strip()]
    if not rows:
        raise DataError(str(path), "has no rows with a category: expected tickets with title, body and category")
    fields = [f for f in LABEL_FIELDS if all(str(r.get(f) or "").strip() for r in rows)]
    texts = [ticket_text(r.get("title"), r.get("body")) for r in rows]
    return Table(rows, texts, {f: [str(r[f]).strip() for r in rows] for f in fields}), "category", path


def split_table(table: Table, stratify: str, options: SplitOptions) -> tuple[Table, Table]:
    train, test = split_indices(table.labels[stratify], options.test_size, options.seed)
    if options.max_test and len(test) > options.max_test:
        test = sorted(random.Random(options.seed).sample(test, options.max_test))
    if options.train_limit and len(train) > options.train_limit:
        train = sorted(random.Random(options.seed).sample(train, options.train_limit))
    return table.take(train), table.take(test)


def field_evidence(
    name: str, policy: EvidencePolicy, truth: list[str], classical: list[RowOutput], outputs: list[RowOutput]
) -> FieldEvidence:
    """One field under one policy: both accuracies on the same rows, the labels changed, the LLM's share."""
    base = [o.fields[name].label for o in classical]
    mine = [o.fields[name].label if name in o.fields else "<failed>" for o in outputs]
    n = len(truth)
    counts = PairedCounts.of(truth, base, mine)
    asked = [o.fields[name].decided_by for o in outputs if name in o.fields and o.fields[name].decided_by != CLASSICAL]
    classical_acc = sum(t == p for t, p in zip(truth, base, strict=True)) / n if n else 0.0
    policy_acc = sum(t == p for t, p in zip(truth, mine, strict=True)) / n if n else 0.0
    return FieldEvidence(
        field=name,
        policy=policy,
        n=n,
        classical_accuracy=round(classical_acc, 4),
        policy_accuracy=round(policy_acc, 4),
        fixed=counts.c,
        broken=counts.b,
        p_value=float(f"{counts.p_value:.4g}"),  # significant digits: a tiny p-value is not 0
        llm_share=round(len(asked) / n, 4) if n else 0.0,
        llm_failures=sum("(fallback)" in by for by in asked),
        verdict=verdict(classical_acc, policy_acc, counts.p_value),
    )


def measure(
    settings: Settings,
    chat: ChatModel,
    embedder: Embedder,
    data: Path,
    out: Path,
    options: SplitOptions | None = None,
    *,
    policies: tuple[EvidencePolicy, ...] = POLICIES,
    progress: Callable[[int, int], None] | None = None,
) -> LlmEvidence:
    """Fit the classical model on the training part, then score it and each policy on the held-out rows.

    Replies go to OUT/replies.jsonl: at temperature 0 the cascade replays the llm_first answer to the same prompt,
    and a run stopped half-way resumes where it stopped.
    """
    options = options or SplitOptions()
    table, stratify, source = load_labelled(data)
    train, test = split_table(table, stratify, options)
    classical = ClassicalBackend(
        embedder, folds=settings.train_folds, target=settings.precision_target, members=settings.members
    )
    vectors = embedder.embed([t or " " for t in train.texts])
    classical.fit(train, vectors)
    base = classical.predict(test.rows, test.texts)
    out.mkdir(parents=True, exist_ok=True)
    cached = CachingChat(chat, out / "replies.jsonl")
    metered = {p: MeteredChat(cached) for p in policies}
    kb, searcher = knowledge(settings, embedder)
    backends = {p: _backend(p, metered[p], embedder, classical, settings, kb, searcher) for p in policies}
    for backend in backends.values():
        backend.fit(train, vectors)  # the classical model is shared and already fitted: the LLM's few-shot bank
    outputs: dict[str, list[RowOutput]] = {p: [] for p in policies}
    ticket_ms: dict[str, list[float]] = {p: [] for p in policies}
    for i, (row, text) in enumerate(zip(test.rows, test.texts, strict=True), 1):
        for p, backend in backends.items():
            before = len(metered[p].latency_ms)
            outputs[p].extend(backend.predict([row], [text]))
            if spent := metered[p].latency_ms[before:]:
                ticket_ms[p].append(sum(spent))
        if progress is not None:
            progress(i, len(test))
    results = []
    for p in policies:
        p50 = round(float(np.percentile(ticket_ms[p], 50)), 1) if ticket_ms[p] else None
        for name in test.labels:
            found = field_evidence(name, p, test.labels[name], base, outputs[p])
            results.append(found.model_copy(update={"llm_latency_ms_p50": p50 if found.llm_share else None}))
    return LlmEvidence(
        model=settings.llm_model or chat.name.removeprefix("llm:"),
        base_url=settings.llm_base_url,
        created_at=datetime.now(UTC),
        data=EvidenceData(path=str(source), sha256=file_digest(source), rows=len(table), fields=list(test.labels)),
        split=EvidenceSplit(
            test_size=options.test_size, seed=options.seed, stratify=stratify, n_train=len(train), n_test=len(test)
        ),
        embedder=embedder.name,
        alpha=ALPHA,
        cascade_top_k=settings.cascade_top_k,
        cascade_max_share=settings.cascade_max_share,
        results=results,
    )


def knowledge(settings: Settings, embedder: Embedder) -> tuple[KnowledgeBase, HybridSearcher | None]:
    """The served helpdesk's taxonomy (it describes the labels to the LLM) and its SOP search, as in the service."""
    from retrieval.corpus import load_chunks
    from retrieval.index import SopIndex

    kb = load_kb(settings.kb_dir)
    sops = settings.kb_dir / "sops"
    chunks = load_chunks(sops) if sops.is_dir() and any(sops.rglob("*.md")) else []
    return kb, HybridSearcher(SopIndex.build(chunks, embedder)) if chunks else None


def _backend(
    policy: EvidencePolicy,
    chat: ChatModel,
    embedder: Embedder,
    classical: ClassicalBackend,
    settings: Settings,
    kb: KnowledgeBase,
    searcher: HybridSearcher | None,
) -> LlmPolicyBackend:
    """The policy as the service runs it; the cascade asks about every field, so each gets its own evidence."""
    cascade = policy == "cascade"
    return LlmPolicyBackend(
        policy,
        chat,
        embedder,
        kb=kb,
        searcher=searcher,
        classical=classical,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown),
        top_k=settings.cascade_top_k if cascade else 0,
        max_share=settings.cascade_max_share if cascade else 1.0,
    )
