"""`triage eval cold-start`: a helpdesk with k labelled tickets per class, classical against LLM few-shot."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from agents.errors import DataError, TriageError
from agents.llm.calls import recording
from agents.llm.chat import ChatModel
from agents.llm.classify import Example, ExampleBank, LlmLabeller
from agents.llm.evidence import ALPHA, Verdict, verdict
from agents.models.versions import file_digest
from agents.similar import TicketMemory
from agents.types import LlmCall
from evals.backends import ClassicalBackend
from evals.llm_eval import CachingChat, label_fields
from evals.mcnemar import PairedCounts
from evals.specs import Table
from kb.loader import KnowledgeBase
from retrieval.embedders import Embedder

FAILED = "<failed>"  # the LLM's label on a row where it gave none (transport, invalid answer): scored as wrong


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColdStartPoint(_Model):
    """One pool size: both labellers on the same held-out rows, the labels the LLM fixed and broke, its cost."""

    k: int  # labelled tickets per class
    n_pool: int
    n_test: int
    classical_accuracy: float  # fitted on the pool drawn with the run's seed (the paired comparison)
    classical_other_pools: list[float]  # the same test rows, pools of k drawn with the next seeds: the spread
    llm_accuracy: float  # a row the LLM failed on counts as wrong
    fixed: int  # classical wrong, the LLM right
    broken: int  # classical right, the LLM wrong
    p_value: float  # exact McNemar on fixed and broken
    verdict: Verdict
    llm_failures: int
    llm_reasked: int
    llm_latency_ms_p50: float | None
    llm_latency_ms_p90: float | None
    prompt_tokens_p50: float | None
    prompt_tokens_max: int | None
    llm_seconds: float  # the LLM time of all its calls at this k (a replayed call: as measured when it was made)
    llm_calls: int
    live_calls: int  # requests sent in this run (the others were replayed from the reply cache)


class ColdStartData(_Model):
    path: str
    sha256: str
    rows: int
    field: str
    classes: list[str]
    skipped_classes: list[str]  # too few rows for the test rows and the largest pool


class ColdStartResult(_Model):
    """One data set: the draw, the setup and a point per k."""

    command: str = ""  # the command line that measures the same again
    model: str
    base_url: str | None
    created_at: datetime
    data: ColdStartData
    seed: int
    test_per_class: int
    max_examples: int
    example_chars: int
    embedder: str
    alpha: float = ALPHA
    elapsed_s: float
    points: list[ColdStartPoint]


class ColdStartRuns(_Model):
    """What the report shows: one run per data set (a new run of a data set replaces its old one), the target."""

    format: Literal["cold_start.v1"] = "cold_start.v1"
    runs: list[ColdStartResult] = []
    target_points: float | None = None  # the LLM must gain this many points over classical, with p < alpha
    notes: list[str] = []

    def with_run(self, result: ColdStartResult) -> ColdStartRuns:
        kept = [r for r in self.runs if r.data.path != result.data.path]
        return self.model_copy(update={"runs": [*kept, result]})


@dataclass(frozen=True)
class ColdStartOptions:
    ks: tuple[int, ...] = (5, 10, 20)
    test_per_class: int = 8
    seed: int = 7
    max_examples: int = 4  # few-shot examples per prompt: the pool tickets nearest to the one being labelled
    example_chars: int = 220  # each example's text cut to this many characters
    classical_pools: int = 5  # pools per k the classical model is fitted on (the first one is the paired one)


def split_cold(labels: Sequence[str], options: ColdStartOptions) -> tuple[list[int], dict[str, list[int]], list[str]]:
    """The held-out rows (test_per_class of each class, one seeded draw for every k), the other rows of each class
    (candidates for the pools), and the classes left out because they have too few rows."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    need = options.test_per_class + max(options.ks)
    skipped = sorted(c for c, rows in by_class.items() if len(rows) < need)
    test: list[int] = []
    candidates: dict[str, list[int]] = {}
    for label in sorted(set(by_class) - set(skipped)):
        rows = list(by_class[label])
        random.Random(f"test:{options.seed}:{label}").shuffle(rows)
        test += rows[: options.test_per_class]
        candidates[label] = sorted(rows[options.test_per_class :])
    return sorted(test), candidates, skipped


def draw_pools(candidates: dict[str, list[int]], ks: Sequence[int], seed: int) -> dict[int, list[int]]:
    """k labelled rows per class for every k, nested (the pool of 10 holds the pool of 5): one helpdesk growing."""
    order = {}
    for label, rows in candidates.items():
        order[label] = list(rows)
        random.Random(f"pool:{seed}:{label}").shuffle(order[label])
    return {k: sorted(i for rows in order.values() for i in rows[:k]) for k in ks}


def _p(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    return round(sum(t == p for t, p in zip(truth, predicted, strict=True)) / len(truth), 4) if truth else 0.0


def measure(
    chat: ChatModel,
    embedder: Embedder,
    table: Table,
    source: Path,
    name: str,
    options: ColdStartOptions,
    *,
    model: str,
    base_url: str | None = None,
    kb: KnowledgeBase | None = None,
    classical_factory: Callable[[], ClassicalBackend] | None = None,
    cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> ColdStartResult:
    """For each k: the classical model fitted on the pool, and the LLM with few-shot examples retrieved from the
    same pool, on the same held-out rows. Replies go to `cache` (JSONL) when given: a stopped run resumes."""
    started = time.perf_counter()
    say = progress or (lambda _: None)
    if name not in table.labels:
        raise DataError(str(source), f"has no label field {name!r} (fields: {sorted(table.labels)})")
    labels = table.labels[name]
    test_idx, candidates, skipped = split_cold(labels, options)
    if len(candidates) < 2:
        raise DataError(str(source), f"needs 2 classes with {options.test_per_class + max(options.ks)} rows or more")
    pools = [draw_pools(candidates, options.ks, options.seed + s) for s in range(max(1, options.classical_pools))]
    needed = sorted(set(test_idx).union(*(p for draw in pools for p in draw.values())))
    vectors = dict(zip(needed, embedder.embed([table.texts[i] or " " for i in needed]), strict=True))
    test = _only(table.take(test_idx), name)
    truth = test.labels[name]
    new_classical = classical_factory or (lambda: ClassicalBackend(embedder))
    cached = CachingChat(chat, cache)
    fields = label_fields({name: sorted(candidates)}, kb)
    labeller = LlmLabeller(cached, fields, max_examples=options.max_examples, example_chars=options.example_chars)
    points = []
    for k in options.ks:
        predicted = []  # per pool drawn: the classical labels of the test rows (the first pool is the paired one)
        for draw in pools:
            classical = new_classical()
            classical.fit(_only(table.take(draw[k]), name), np.stack([vectors[i] for i in draw[k]]))
            predicted.append([o.fields[name].label for o in classical.predict(test.rows, test.texts)])
        base = predicted[0]
        accuracies = [_accuracy(truth, p) for p in predicted]
        say(f"k={k}: classical {accuracies[0]:.3f} on {len(truth)} rows; the LLM on the same rows")
        llm, calls, reasked = _llm_labels(labeller, table, pools[0][k], vectors, test_idx, name)
        counts = PairedCounts.of(truth, base, llm)
        latency = [sum(c.latency_ms for c in row) for row in calls]
        tokens = [c.prompt_tokens for row in calls for c in row if c.prompt_tokens]
        points.append(
            ColdStartPoint(
                k=k,
                n_pool=len(pools[0][k]),
                n_test=len(truth),
                classical_accuracy=accuracies[0],
                classical_other_pools=accuracies[1:],
                llm_accuracy=_accuracy(truth, llm),
                fixed=counts.c,
                broken=counts.b,
                p_value=float(f"{counts.p_value:.4g}"),
                verdict=verdict(_accuracy(truth, base), _accuracy(truth, llm), counts.p_value),
                llm_failures=llm.count(FAILED),
                llm_reasked=reasked,
                llm_latency_ms_p50=_p(latency, 50),
                llm_latency_ms_p90=_p(latency, 90),
                prompt_tokens_p50=_p(tokens, 50),
                prompt_tokens_max=max(tokens) if tokens else None,
                llm_seconds=round(sum(latency) / 1000, 1),
                llm_calls=sum(len(row) for row in calls),
                live_calls=cached.live_calls,
            )
        )
        cached.live_calls = 0
        say(f"k={k}: LLM {points[-1].llm_accuracy:.3f}, p50 {points[-1].llm_latency_ms_p50} ms")
    return ColdStartResult(
        model=model,
        base_url=base_url,
        created_at=datetime.now(UTC),
        data=ColdStartData(
            path=str(source),
            sha256=file_digest(source),
            rows=len(table),
            field=name,
            classes=sorted(candidates),
            skipped_classes=skipped,
        ),
        seed=options.seed,
        test_per_class=options.test_per_class,
        max_examples=options.max_examples,
        example_chars=options.example_chars,
        embedder=embedder.name,
        elapsed_s=round(time.perf_counter() - started, 1),
        points=points,
    )


def _only(table: Table, name: str) -> Table:
    return Table(table.rows, table.texts, {name: table.labels[name]})


def _llm_labels(
    labeller: LlmLabeller, table: Table, pool: list[int], vectors: dict[int, np.ndarray], test: list[int], name: str
) -> tuple[list[str], list[list[LlmCall]], int]:
    """The LLM's label per held-out row (FAILED where it gave none), with the nearest pool tickets as examples (the
    pool held as the service holds past tickets: vectors in FAISS, labelled tickets by id); the calls of each row,
    and how many rows were re-asked."""
    memory = TicketMemory(len(vectors[pool[0]]))
    memory.add(np.stack([vectors[i] for i in pool]), [{"id": f"row-{i}"} for i in pool])
    bank = ExampleBank(Example(id=f"row-{i}", text=table.texts[i], labels={name: table.labels[name][i]}) for i in pool)
    labels, calls, reasked = [], [], 0
    for i in test:
        shots = bank.for_neighbours(memory.search(vectors[i], labeller.max_examples), labeller.max_examples)
        with recording() as made:  # failed calls too: their time counts
            try:
                out = labeller.label(table.texts[i], shots)
                labels.append(out.labels[name])
                reasked += out.reasked
            except TriageError:
                labels.append(FAILED)
        calls.append(list(made))
    return labels, calls, reasked
