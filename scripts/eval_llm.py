"""Classical-only, llm_first and cascade side by side on one held-out split, against the configured LLM endpoint.

    TRIAGE_LLM_BASE_URL=http://127.0.0.1:8088/v1 TRIAGE_LLM_MODEL=qwen2.5-1.5b \\
        .venv/bin/python scripts/eval_llm.py evals/datasets/demo_tickets.v1.yaml --test 300 --out evals/reports/llm

The classical model is fitted once on the training rows; the llm policy asks the LLM about every test ticket and
the cascade only about fields whose classical confidence is under the threshold chosen on training rows. At
temperature 0 the same prompt gives the same answer, so the cascade replays the llm policy's answers (with their
measured latency) instead of asking twice. Ctrl-C writes the tickets scored so far.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.settings import Settings  # noqa: E402
from evals.backends import ClassicalBackend  # noqa: E402
from evals.llm_eval import CachingChat, LlmPolicyBackend, chat_from_settings  # noqa: E402
from evals.metrics import latency_summary  # noqa: E402
from evals.outputs import RowOutput  # noqa: E402
from evals.policy_eval import alone, policy_figures  # noqa: E402
from evals.specs import Table, load_spec, read_table, split_indices  # noqa: E402
from retrieval.factory import EMBEDDERS  # noqa: E402


class LastTicket:
    """Computes the classical answer and the embedding of the current ticket once for all policies."""

    def __init__(self, classical: ClassicalBackend, embedder: Any) -> None:
        self.classical = classical
        self.embedder = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self.models, self.thresholds, self.choices = classical.models, classical.thresholds, classical.choices
        self._answer: tuple[list[str], list[RowOutput]] | None = None
        self._vector: tuple[list[str], Any] | None = None

    def predict(self, rows: list[dict[str, Any]], texts: list[str]) -> list[RowOutput]:
        if self._answer is None or self._answer[0] != texts:
            self._answer = (list(texts), self.classical.predict(rows, texts))
        return [RowOutput(dict(o.fields)) for o in self._answer[1]]

    def embed(self, texts: list[str]) -> Any:
        if len(texts) > 1:
            return self.embedder.embed(texts)
        if self._vector is None or self._vector[0] != texts:
            self._vector = (list(texts), self.embedder.embed(texts))
        return self._vector[1]


def split(table: Table, field: str, n_test: int, seed: int, train_limit: int | None) -> tuple[Table, Table]:
    train_idx, test_idx = split_indices(table.labels[field], min(0.9, n_test / len(table)), seed)
    test_idx = sorted(test_idx)[:n_test] if len(test_idx) > n_test else test_idx
    if train_limit and len(train_idx) > train_limit:
        train_idx = random.Random(seed).sample(list(train_idx), train_limit)
    return table.take(list(train_idx)), table.take(list(test_idx))


def subset_accuracy(field: str, outputs: dict[str, list[RowOutput]], test: Table) -> dict[str, Any]:
    """On the tickets where the cascade asked the LLM: how classical alone and the cascade did there."""
    idx = [i for i, o in enumerate(outputs["cascade"]) if "llm:" in o.fields[field].decided_by]
    if not idx:
        return {"n": 0}
    truth = [test.labels[field][i] for i in idx]

    def acc(name: str) -> float:
        hits = sum(outputs[name][i].fields[field].label == t for i, t in zip(idx, truth, strict=True))
        return round(hits / len(idx), 4)

    return {"n": len(idx), "classical": acc("classical"), "cascade_llm": acc("cascade")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("--test", type=int, default=300, help="held-out tickets to score")
    ap.add_argument("--train-limit", type=int, help="train on a seeded sample of at most N rows")
    ap.add_argument("--fields", help="comma-separated label fields (default: all of the spec's but team)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--embedder", choices=EMBEDDERS, default="minilm")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from kb.loader import load_kb
    from retrieval.corpus import load_chunks
    from retrieval.factory import make_embedder
    from retrieval.hybrid import HybridSearcher
    from retrieval.index import SopIndex

    settings = Settings()
    spec = load_spec(args.spec)
    table, _ = read_table(spec, spec.path)
    fields = args.fields.split(",") if args.fields else [f for f in spec.labels if f != "team"]
    table = Table(table.rows, table.texts, {f: table.labels[f] for f in fields})
    train, test = split(table, spec.split.stratify or fields[0], args.test, args.seed, args.train_limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chat = CachingChat(chat_from_settings(settings), out / f"{spec.id}.replies.jsonl")  # resumable
    embedder = make_embedder(args.embedder, settings.embed_precision)
    started = time.perf_counter()
    classical = ClassicalBackend(embedder, folds=args.folds, target=settings.precision_target)
    vectors = embedder.embed([t or " " for t in train.texts])
    classical.fit(train, vectors)
    print(f"{spec.id}: fitted classical on {len(train)} rows in {time.perf_counter() - started:.0f}s", flush=True)
    kb = load_kb(settings.kb_dir) if spec.kb else None
    searcher = HybridSearcher(SopIndex.build(load_chunks(settings.kb_dir / "sops"), embedder)) if spec.kb else None
    last = LastTicket(classical, embedder)
    shared: dict[str, Any] = {"kb": kb, "searcher": searcher, "classical": last}
    asked = [f for f in fields if f in settings.cascade_fields] or fields[:1]
    guarded: dict[str, Any] = {**shared, "ask_fields": asked, "top_k": settings.cascade_top_k}
    policies = {
        "llm_first": LlmPolicyBackend("llm_first", chat, last, **shared),  # type: ignore[arg-type]
        # the service's cascade: only the configured fields, the LLM's label only among the classical top k,
        # and at most the configured share of tickets (least confident first)
        "cascade": LlmPolicyBackend(
            "cascade",
            chat,
            last,
            max_share=settings.cascade_max_share,
            **guarded,  # type: ignore[arg-type]
        ),
        # the same with no budget: every ticket under the abstention threshold goes to the LLM
        "cascade_unbudgeted": LlmPolicyBackend("cascade", chat, last, **guarded),  # type: ignore[arg-type]
        # the same without either guard: every field, any label the LLM gives
        "cascade_unguarded": LlmPolicyBackend("cascade", chat, last, **shared),  # type: ignore[arg-type]
    }
    for backend in policies.values():
        backend.fit(train, vectors)
    outputs: dict[str, list[RowOutput]] = {"classical": [], **{name: [] for name in policies}}
    classical_ms: list[float] = []
    started = time.perf_counter()
    try:
        for i, (row, text) in enumerate(zip(test.rows, test.texts, strict=True), 1):
            t0 = time.perf_counter()
            outputs["classical"].extend(last.predict([row], [text]))
            classical_ms.append((time.perf_counter() - t0) * 1000)
            for name, backend in policies.items():
                outputs[name].extend(backend.predict([row], [text]))
            if i % 25 == 0 or i == len(test):
                print(f"  {i}/{len(test)} tickets, {time.perf_counter() - started:.0f}s", flush=True)
    except KeyboardInterrupt:
        print("interrupted: writing the tickets scored so far", flush=True)
    n = len(outputs["cascade"])
    llm_first_ms = policies["llm_first"].latency_ms

    def with_classical(llm_ms: list[float]) -> list[float]:
        """The classical work is done once per ticket (shared): each policy's latency is it plus its LLM time."""
        return [c + m for c, m in zip(classical_ms[:n], llm_ms[:n], strict=True)]

    outputs = {k: v[:n] for k, v in outputs.items()}
    result = {
        "spec": spec.id,
        "model": chat.name,
        "base_url": settings.llm_base_url,
        "timeout_s": settings.llm_timeout,
        "n_train": len(train),
        "n_test": n,
        "partial": n < len(test),
        "fields": fields,
        "embedder": embedder.name,
        "thresholds": classical.thresholds,
        "cascade": {
            "fields": asked,
            "top_k": settings.cascade_top_k,
            "max_share": settings.cascade_max_share,
            "thresholds": policies["cascade"].cascade_thresholds,
        },
        "live_llm_requests": chat.live_calls,
        "replayed_from_earlier_runs": len(chat.cache) - chat.live_calls,
        "live_llm_latency": latency_summary(chat.live_latency_ms),  # the only LLM latencies measured in this run
        "seconds": round(time.perf_counter() - started, 1),
        "policies": [
            policy_figures("classical", outputs["classical"], test, classical_ms[:n], {}),
            *(policy_figures(k, outputs[k], test, with_classical(b.latency_ms), b.stats) for k, b in policies.items()),
            policy_figures("llm_alone", alone(outputs["llm_first"]), test, with_classical(llm_first_ms), {}),
        ],
        "cascade_llm_subset": {f: subset_accuracy(f, outputs, test) for f in fields},
    }
    path = out / f"{spec.id}.json"
    path.write_text(json.dumps(result, indent=2), encoding="utf-8")
    with open(out / f"{spec.id}.tickets.jsonl", "w", encoding="utf-8") as fh:  # per ticket, for later questions
        for i in range(n):
            row = {"i": i, "truth": {f: test.labels[f][i] for f in fields}}
            for name, outs in outputs.items():
                row[name] = {f: [p.label, round(p.confidence, 4), p.decided_by] for f, p in outs[i].fields.items()}
            fh.write(json.dumps(row) + "\n")
    for p in result["policies"]:
        accs = " ".join(f"{f}={p[f]['accuracy']:.3f}" for f in fields)
        extra = f" llm_calls/100={p.get('llm_calls_per_100')} fallback={p.get('fallback_rate')}" if "stats" in p else ""
        print(f"{p['policy']:9s} {accs} p50={p.get('latency_ms_p50')}ms{extra}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
