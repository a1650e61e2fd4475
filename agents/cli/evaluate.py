"""`triage eval retrieval` and `triage eval classify`: offline figures on one split, written as metrics.json."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from agents.cli.common import MEMBERS_HELP, SettingsFn, add_embedder, command
from agents.cli.output import write_json


def cmd_eval_retrieval(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from evals.retrieval_eval import evaluate_retrieval
    from evals.tables import read_rows
    from retrieval.corpus import content_hash, load_chunks
    from retrieval.factory import make_embedder
    from retrieval.hybrid import FUSIONS, Fusion, HybridSearcher, Mode
    from retrieval.index import SopIndex

    kb = Path(args.kb)
    if not kb.is_dir() or not Path(args.pairs).is_file():
        print(f"skipped: {kb if not kb.is_dir() else args.pairs} is not on this machine")
        return 0
    pairs = read_rows(args.pairs)
    settings = settings_fn(args)
    started = time.perf_counter()
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    if args.index:  # a saved index of the same folder and embedder: refused when either differs
        index = SopIndex.load(Path(args.index), embedder, expected_hash=content_hash(kb))
    else:
        index = SopIndex.build(load_chunks(kb), embedder, content_hash=content_hash(kb))
    build_s = time.perf_counter() - started
    modes: list[Mode] = ["lexical", "dense", "hybrid"] if args.mode == "all" else [args.mode]
    fusions: list[Fusion] = sorted(FUSIONS) if args.fusion == "both" else [args.fusion]  # chunks first
    metrics = evaluate_retrieval(
        HybridSearcher(index, fusion=fusions[0]),
        pairs,
        args.query_field,
        args.target_field,
        modes,
        fusions=fusions,
        split_field=args.split_field,
    )
    last = next(label for label in metrics if label.startswith(modes[-1]))  # hybrid: the default fusion
    result = {
        **{key: value for key, value in metrics[last].items() if key != "splits"},
        "mode": last,
        "modes": metrics,
        "index_build_seconds": round(build_s, 2),
        "n_chunks": len(index),
        "embedder": settings.embedder,
        "kb": str(kb),
        "pairs": str(args.pairs),
    }
    path = write_json(Path(args.out), "metrics.json", result)
    for label, m in metrics.items():
        for part, row in [("all", m), *sorted(m.get("splits", {}).items())]:
            print(
                f"{label:16s} {part:5s} n={row['n']:<4d} recall@1={row['recall_at_1']:.3f} "
                f"recall@5={row['recall_at_5']:.3f} recall@10={row['recall_at_10']:.3f} mrr={row['mrr']:.3f} "
                f"p50={row.get('latency_ms_p50', 0):.1f}ms"
            )
    print(f"wrote {path}")
    return 0


def cmd_eval_classify(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from evals.classify_eval import evaluate_classical, fit_ensemble, split
    from evals.tables import read_rows, texts_and_labels
    from retrieval.factory import make_embedder

    texts, labels = texts_and_labels(read_rows(args.data), args.text_col, args.label_col, str(args.data))
    if args.test:
        test_x, test_y = texts_and_labels(read_rows(args.test), args.text_col, args.label_col, str(args.test))
        train_x, train_y = texts, labels
    else:
        train_x, train_y, test_x, test_y = split(texts, labels, args.test_size, args.seed)
    if args.limit:
        train_x, train_y = train_x[: args.limit], train_y[: args.limit]
    settings = settings_fn(args)
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    members = args.members or settings.members
    fitted = fit_ensemble(train_x, train_y, embedder, target=args.precision_target, folds=args.folds, members=members)
    metrics = evaluate_classical(train_x, train_y, test_x, test_y, embedder, fitted=fitted)
    if args.backend != "classical":
        train, test = (train_x, train_y), (test_x, test_y)
        metrics[args.backend] = _eval_llm_policy(args, settings, fitted, embedder, train, test)
    metrics.update(
        {
            "data": str(args.data),
            "label_col": args.label_col,
            "text_cols": args.text_col,
            "split": "given test file" if args.test else f"stratified {args.test_size} seed {args.seed}",
        }
    )
    print(
        f"accuracy={metrics['accuracy']:.4f} macro_f1={metrics['macro_f1']:.4f} "
        f"(baseline {metrics['baseline_accuracy']:.4f}/{metrics['baseline_macro_f1']:.4f}) "
        f"precision@thr={metrics['precision_at_threshold']:.3f} coverage={metrics['coverage_at_threshold']:.3f}"
    )
    for name in ("llm_first", "llm_alone", "cascade"):
        if figures := metrics.get(args.backend, {}).get(name):
            print(
                f"{name}: accuracy={figures[args.label_col]['accuracy']:.4f} "
                f"macro_f1={figures[args.label_col]['macro_f1']:.4f} "
                f"llm_calls/100={figures.get('llm_calls_per_100', '-')} fallback={figures.get('fallback_rate', '-')}"
            )
    if args.out:
        print(f"wrote {write_json(Path(args.out), 'metrics.json', metrics)}")
    return 0


def _eval_llm_policy(args, settings, fitted, embedder, train, test) -> dict:  # type: ignore[no-untyped-def]
    """`eval classify --backend llm|cascade`: that policy on the same split, with the same fitted classical model."""
    from evals.llm_eval import chat_from_settings
    from evals.policy_eval import evaluate_policy
    from evals.specs import Table
    from kb.loader import load_kb

    chat = chat_from_settings(settings)  # BackendUnavailable with the reason when no endpoint answers
    field = args.label_col  # named as in the data: "category" or "priority" get the taxonomy's descriptions
    train_table, test_table = (Table([{} for _ in x], list(x), {field: list(y)}) for x, y in (train, test))
    return evaluate_policy(
        args.backend,
        chat,
        train_table,
        test_table,
        embedder,
        model=fitted.model,
        choice=fitted.choice,
        train_vectors=fitted.vectors,
        kb=load_kb(settings.kb_dir),
        top_k=settings.cascade_top_k,
        max_share=settings.cascade_max_share,
        progress=lambda i, n: print(f"  {args.backend}: {i}/{n}", flush=True) if i % 25 == 0 or i == n else None,
    )


def add_parsers(ev: Any, settings_fn: SettingsFn) -> None:
    p = command(
        ev,
        "retrieval",
        "recall@k and MRR of the SOP search on query -> document pairs",
        "triage eval retrieval --kb runbooks/ --pairs runbooks/alert_runbook_pairs.jsonl --out /tmp/retrieval",
        "triage eval retrieval --kb ../shared/data/runbooks --pairs evals/data/runbook_questions.v1.jsonl "
        "--query-field question --target-field target --split-field split --fusion both --out /tmp/questions",
    )
    p.add_argument("--kb", required=True, help="folder of Markdown to index")
    p.add_argument("--pairs", required=True, help="CSV, JSONL or zip of queries and the document each should find")
    p.add_argument("--query-field", default="query", help="column holding the query (default: %(default)s)")
    p.add_argument("--target-field", default="runbook_file", help="column naming the document (default: %(default)s)")
    p.add_argument("--split-field", help="column splitting the rows (e.g. split: tune/test); figures per value too")
    p.add_argument(
        "--fusion",
        choices=["chunks", "documents", "both"],
        default="both",
        help="hybrid fusion: of chunks (the search default), of whole files, or both side by side (default)",
    )
    p.add_argument("--index", help="a saved index of --kb (triage kb index) instead of building one")
    p.add_argument(
        "--mode",
        choices=["lexical", "dense", "hybrid", "all"],
        default="all",
        help="search mode to score (default: all three, side by side)",
    )
    add_embedder(p)
    p.add_argument("--out", required=True, help="folder for metrics.json")
    p.set_defaults(func=lambda a: cmd_eval_retrieval(a, settings_fn))

    p = command(
        ev,
        "classify",
        "the classical ensemble vs a TF-IDF + LR baseline on one split",
        "triage eval classify --data evals/data/demo_tickets.v1.jsonl --text-col title --text-col body "
        "--label-col category --out /tmp/classify",
        "triage eval classify --data tickets.csv --text-col text --label-col queue --backend cascade",
    )
    p.add_argument("--data", required=True, help="labelled rows: CSV, TSV, JSONL or a zip holding one")
    p.add_argument("--text-col", action="append", required=True, help="text column (repeat to join several)")
    p.add_argument("--label-col", required=True, help="the column to predict")
    p.add_argument("--test", help="a separate test file (default: a stratified split of --data)")
    p.add_argument("--test-size", type=float, default=0.2, help="share of --data held out (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="seed of the split (default: %(default)s)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds of the ensemble (default: %(default)s)")
    p.add_argument("--members", help=MEMBERS_HELP)
    p.add_argument("--limit", type=int, help="use at most N training rows")
    p.add_argument(
        "--precision-target", type=float, default=0.9, help="precision the threshold aims for (default: %(default)s)"
    )
    add_embedder(p)
    p.add_argument(
        "--backend",
        choices=["classical", "llm", "cascade"],
        default="classical",
        help="llm, cascade: also score that policy on the same split against the TRIAGE_LLM_* endpoint",
    )
    p.add_argument("--out", help="folder for metrics.json (default: print only)")
    p.set_defaults(func=lambda a: cmd_eval_classify(a, settings_fn))
