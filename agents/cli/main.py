"""The `triage` command line: a composition root like server.py (it may import evals, nothing imports it)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agents.cli.output import write_json
from agents.errors import TriageError
from kb.loader import KbError
from retrieval.errors import RetrievalError
from retrieval.factory import EMBEDDERS

Handler = Callable[[argparse.Namespace], int]


def _embedder(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The embedder named by --embedder, else by the settings (TRIAGE_EMBEDDER)."""
    from retrieval.factory import make_embedder

    settings = _settings(args)
    return make_embedder(settings.embedder, settings.embed_precision)


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from agents.settings import Settings

    overrides = {
        k: v
        for k, v in {"data_dir": getattr(args, "data_dir", None), "embedder": getattr(args, "embedder", None)}.items()
        if v
    }
    return Settings(**overrides)


def cmd_kb_index(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from retrieval.corpus import content_hash, load_chunks
    from retrieval.index import SopIndex

    kb = Path(args.kb)
    chunks = load_chunks(kb)
    embedder = _embedder(args)
    with tqdm(total=len(chunks), unit="chunk", desc="embedding", disable=args.quiet) as bar:
        index = SopIndex.build(
            chunks,
            embedder,
            content_hash=content_hash(kb),
            source=str(kb),
            approximate=args.approximate,
            progress=bar.update,
        )
    index.save(Path(args.out))
    print(f"indexed {len(chunks)} chunks from {kb} into {args.out} ({embedder.name})")
    return 0


def cmd_kb_search(args: argparse.Namespace) -> int:
    from retrieval.factory import embedder_named
    from retrieval.hybrid import HybridSearcher
    from retrieval.index import SopIndex

    index_dir = Path(args.index) if args.index else _settings(args).index_dir
    embedder = embedder_named(SopIndex.read_manifest(index_dir)["embedder"])
    hits = HybridSearcher(SopIndex.load(index_dir, embedder)).search(args.query, k=args.k, mode=args.mode)
    if args.json:
        print(json.dumps([h.model_dump(exclude={"text", "meta"}) for h in hits], indent=2))
    else:
        for rank, h in enumerate(hits, 1):
            print(f"{rank}. {h.title} [{h.ref}] score={h.score:.4f}\n   {h.path}\n   {h.snippet[:160]}")
        if not hits:
            print("no hits")
    return 0


def cmd_eval_retrieval(args: argparse.Namespace) -> int:
    from evals.retrieval_eval import evaluate_retrieval
    from evals.tables import read_rows
    from retrieval.corpus import content_hash, load_chunks
    from retrieval.hybrid import HybridSearcher, Mode
    from retrieval.index import SopIndex

    kb = Path(args.kb)
    pairs = read_rows(args.pairs)
    started = time.perf_counter()
    index = SopIndex.build(load_chunks(kb), _embedder(args), content_hash=content_hash(kb))
    build_s = time.perf_counter() - started
    modes: list[Mode] = ["lexical", "dense", "hybrid"] if args.mode == "all" else [args.mode]
    metrics = evaluate_retrieval(HybridSearcher(index), pairs, args.query_field, args.target_field, modes)
    result = {
        **metrics[modes[-1]],
        "mode": modes[-1],
        "modes": metrics,
        "index_build_seconds": round(build_s, 2),
        "n_chunks": len(index),
        "kb": str(kb),
        "pairs": str(args.pairs),
    }
    path = write_json(Path(args.out), "metrics.json", result)
    for mode, m in metrics.items():
        print(
            f"{mode:8s} recall@1={m['recall_at_1']:.3f} recall@5={m['recall_at_5']:.3f} mrr={m['mrr']:.3f} "
            f"p50={m.get('latency_ms_p50', 0):.1f}ms"
        )
    print(f"wrote {path}")
    return 0


def cmd_eval_classify(args: argparse.Namespace) -> int:
    from evals.classify_eval import evaluate_classical, fit_ensemble, split
    from evals.tables import read_rows, texts_and_labels

    texts, labels = texts_and_labels(read_rows(args.data), args.text_col, args.label_col, str(args.data))
    if args.test:
        test_x, test_y = texts_and_labels(read_rows(args.test), args.text_col, args.label_col, str(args.test))
        train_x, train_y = texts, labels
    else:
        train_x, train_y, test_x, test_y = split(texts, labels, args.test_size, args.seed)
    if args.limit:
        train_x, train_y = train_x[: args.limit], train_y[: args.limit]
    embedder = _embedder(args)
    members = args.members or _settings(args).members
    fitted = fit_ensemble(train_x, train_y, embedder, target=args.precision_target, folds=args.folds, members=members)
    metrics = evaluate_classical(train_x, train_y, test_x, test_y, embedder, fitted=fitted)
    if args.backend != "classical":
        metrics[args.backend] = _eval_llm_policy(args, fitted, embedder, (train_x, train_y), (test_x, test_y))
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


def _eval_llm_policy(args, fitted, embedder, train, test) -> dict:  # type: ignore[no-untyped-def]
    """`eval classify --backend llm|cascade`: that policy on the same split, with the same fitted classical model."""
    from evals.llm_eval import chat_from_settings
    from evals.policy_eval import evaluate_policy
    from evals.specs import Table
    from kb.loader import load_kb

    settings = _settings(args)
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


def cmd_train(args: argparse.Namespace) -> int:
    from agents.classical.training import save_models, train_models
    from agents.jsonl import read_jsonl
    from kb.loader import load_kb
    from retrieval.factory import make_embedder

    settings = _settings(args)
    if args.label_col:  # any labelled data set: one classifier for that column
        from agents.cli.label import cmd_train_labels

        return cmd_train_labels(args, settings)
    rows = read_jsonl(Path(args.data)) if args.data else read_jsonl(settings.training_data)
    if args.with_feedback:
        from agents.store.review import feedback_training_rows
        from agents.store.tickets import Store

        reviewed = feedback_training_rows(Store.open(settings.data_dir, settings.database_url))
        print(f"adding {len(reviewed)} ticket(s) people reviewed (POST /v1/feedback) to {len(rows)} rows")
        rows = rows + reviewed
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    models = train_models(
        rows,
        embedder,
        load_kb(settings.kb_dir),
        target=settings.precision_target,
        folds=settings.train_folds,
        members=settings.members,
    )
    out = Path(args.out) if args.out else settings.model_dir
    save_models(models, out)
    for name, choice in models.thresholds.items():
        print(
            f"{name:9s} threshold={choice.threshold:.3f} held-out precision={choice.precision:.3f} "
            f"coverage={choice.coverage:.3f}"
        )
    print(f"trained on {len(rows)} tickets in {models.info['seconds']} s; saved to {out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    from agents.store.tickets import Store
    from agents.web.auth import KeyRing

    for name in ("data_dir", "embedder"):  # the server process builds its Settings from the environment
        if getattr(args, name, None):
            os.environ[f"TRIAGE_{name.upper()}"] = str(getattr(args, name))
    settings = _settings(args)
    if not settings.auth_dev_mode:
        store = Store.open(settings.data_dir, settings.database_url)
        secret = KeyRing(store).ensure_admin()
        store.close()
        if secret:
            print(f"first start: an admin API key was created; it is shown only now:\n\n    {secret}\n", flush=True)
    uvicorn.run("server:create_app", factory=True, host=args.host, port=args.port)
    return 0


def cmd_ticket(args: argparse.Namespace) -> int:
    from agents.app import build_service
    from agents.types import Ticket

    text = sys.stdin.read() if args.text == "-" else args.text
    result = build_service(_settings(args)).triage(Ticket(title=args.title or "", body=text))
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    print(f"category  {result.category} ({result.confidence['category']:.2f}, {result.backend['category']})")
    print(f"priority  {result.priority} ({result.confidence['priority']:.2f}, {result.backend['priority']})")
    print(
        f"team      {result.team} ({result.confidence['team']:.2f}); on call: {result.owner.on_call or '-'}; "
        f"channel {result.owner.channel}"
    )
    print(f"summary   {result.summary}")
    for ref in result.kb_refs:
        print(f"sop       {ref.title} [{ref.doc_id}#{ref.section}]")
    print(f"human     {'yes' if result.needs_human else 'no'}")
    for reason in result.reasons:
        print(f"  - {reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triage", description="AI triage for IT helpdesks")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    kb = sub.add_parser("kb", help="knowledge-base index").add_subparsers(dest="kb_command", required=True)
    p = kb.add_parser("index", help="build a FAISS + BM25 index of a folder of Markdown")
    p.add_argument("--kb", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--embedder", choices=EMBEDDERS)
    p.add_argument("--approximate", action="store_true", help="HNSW instead of exact search")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_kb_index)
    p = kb.add_parser("search", help="search an index")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--index")
    p.add_argument("--mode", choices=["lexical", "dense", "hybrid"], default="hybrid")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_kb_search)

    ev = sub.add_parser("eval", help="offline evaluation").add_subparsers(dest="eval_command", required=True)
    p = ev.add_parser("retrieval", help="recall@k and MRR on query -> document pairs")
    p.add_argument("--kb", required=True)
    p.add_argument("--pairs", required=True)
    p.add_argument("--query-field", default="query")
    p.add_argument("--target-field", default="runbook_file")
    p.add_argument("--mode", choices=["lexical", "dense", "hybrid", "all"], default="all")
    p.add_argument("--embedder", choices=EMBEDDERS)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_eval_retrieval)
    p = ev.add_parser("classify", help="the classical ensemble vs a TF-IDF + LR baseline on one split")
    p.add_argument("--data", required=True)
    p.add_argument("--text-col", action="append", required=True)
    p.add_argument("--label-col", required=True)
    p.add_argument("--test")
    p.add_argument("--test-size", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--members", help="ensemble members, e.g. svm,lr,knn10,knn30,ft1 (default: TRIAGE_MEMBERS)")
    p.add_argument("--limit", type=int, help="use at most N training rows")
    p.add_argument("--precision-target", type=float, default=0.9)
    p.add_argument("--embedder", choices=EMBEDDERS)
    p.add_argument(
        "--backend",
        choices=["classical", "llm", "cascade"],
        default="classical",
        help="llm, cascade: also score that policy on the same split against the TRIAGE_LLM_* endpoint",
    )
    p.add_argument("--out")
    p.set_defaults(func=cmd_eval_classify)
    from evals.commands import add_parsers as add_eval_parsers

    add_eval_parsers(ev, sub, _settings)  # eval run, eval gate, bench

    p = sub.add_parser("train", help="train the triage models, or one classifier for any labelled data set")
    p.add_argument("--data", help="JSONL with title, body, category, priority, team (default: demo tickets)")
    p.add_argument("--text-col", action="append", help="with --label-col: text column(s) of a CSV, JSONL or zip")
    p.add_argument("--label-col", help="train one classifier for this column instead of the triage models")
    p.add_argument("--members", help="ensemble members, e.g. svm,lr,knn10,knn30,ft1 (default: TRIAGE_MEMBERS)")
    p.add_argument("--embedder", choices=EMBEDDERS)
    p.add_argument("--out")
    p.add_argument("--data-dir")
    p.add_argument("--with-feedback", action="store_true", help="add tickets people corrected or accepted")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("serve", help="run the HTTP service (API, console, metrics)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--data-dir")
    p.add_argument("--embedder", choices=EMBEDDERS)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ticket", help="triage one ticket and print the result")
    p.add_argument("text", help="ticket body, or - to read standard input")
    p.add_argument("--title")
    p.add_argument("--json", action="store_true")
    p.add_argument("--data-dir")
    p.set_defaults(func=cmd_ticket)
    from agents.cli.digest import add_parsers as add_digest_parsers

    add_digest_parsers(sub, _settings)  # digest, scheduler, demo seed
    from agents.cli.label import add_parsers as add_label_parsers

    add_label_parsers(sub, _settings)
    from agents.cli.ask import add_parsers as add_ask_parsers

    add_ask_parsers(sub, ev, _settings)  # ask, eval answers, eval owners
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args))
    except (TriageError, KbError, RetrievalError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
