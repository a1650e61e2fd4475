"""Summaries and replies on 60 demo tickets with hand-written facts: fact coverage, length, SOP citations and cut
quotes; the v1 summariser and template (frozen below) beside today's in one run, and the LLM's with --llm."""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agents.errors import DataError
from agents.jsonl import read_jsonl
from agents.settings import DEMO_TICKETS, Settings
from agents.summarise import MAX_CHARS, centrality
from evals.facts import keeps_all_facts, mentions
from evals.reply_scores import ALIGNED_CANDIDATES, GROUPS, SopQuotes, aligned_sweep, score_replies, separation, sweep
from evals.summaries_report import KINDS, report_lines, write_outputs
from evals.writers_evidence import EVIDENCE_FILE, summaries_evidence, writers_evidence

DATA = Path(__file__).resolve().parent / "data" / "summaries.v1.jsonl"

GROUPS_ALL = {**GROUPS, "all": ("tune", "test", "holdout")}
System = Callable[[dict[str, Any]], tuple[str, str]]  # a row in, (text, backend) out


# ---- v1, frozen: the summariser and the template's SOP line before summaries.v1, scored as the baseline ----------
V1_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
V1_NOISE = re.compile(
    r"^(hi|hello|hey|dear|hola|bonjour|hallo|ciao|thanks|thank you|regards|best|cheers|kind regards|sent from)\b"
    r"|^-{3,}|^(from|sent|to|subject|cc):",
    re.IGNORECASE,
)


def v1_summary(title: str, body: str, max_words: int = 25) -> str:
    """The extractive summary of agents/summarise.py as of commit 74b05dd: central sentences up to 25 words."""
    candidates = [" ".join(p.split()) for p in V1_SENTENCE.split(body or "")]
    candidates = [p for p in candidates if len(p.split()) >= 2 and not V1_NOISE.match(p)]
    clip = lambda w: " ".join(w[:max_words]) + ("..." if len(w) > max_words else "")  # noqa: E731
    if not candidates:
        fallback = " ".join(f"{title} {body}".split())
        return clip(fallback.split()) if fallback else "(empty ticket)"
    scores = centrality(candidates, f"{title} {body}")
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    chosen, used = [], 0
    for i in order:
        if used + len(candidates[i].split()) <= max_words:
            chosen.append(i)
            used += len(candidates[i].split())
    if not chosen:
        return clip(candidates[order[0]].split())
    summary = " ".join(candidates[i] for i in sorted(chosen))
    if title and len(summary.split()) + len(title.split()) <= max_words and title.lower() not in summary.lower():
        summary = f"{title}: {summary}"
    return summary


def v1_guide_line(hits: Sequence[Any]) -> str:
    """The template's SOP line as of commit 74b05dd: the first 400 characters of the top section, wherever they end."""
    top = hits[0]
    return f'While you wait, the guide "{top.title}" [{top.ref}] may help: {" ".join(top.text.split())[:400]}'


# ---- scoring ------------------------------------------------------------------------------------------------
def score_summaries(rows: Sequence[dict[str, Any]], texts: Sequence[str], limit: int = MAX_CHARS) -> dict[str, Any]:
    """Coverage of each kind of fact over the rows that state it, all facts, and the lengths."""
    covered: dict[str, list[bool]] = {k: [] for k in KINDS}
    complete = []
    for row, text in zip(rows, texts, strict=True):
        stated = [k for k in KINDS if row["facts"][k]]
        for kind in stated:
            covered[kind].append(mentions(text, row["facts"][kind]))
        if (kept := keeps_all_facts(row, text)) is not None:
            complete.append(kept)
    lengths = [len(t) for t in texts]
    return {
        "coverage": {k: round(sum(v) / len(v), 3) if v else None for k, v in covered.items()},
        "stated": {k: len(v) for k, v in covered.items()},
        "all_facts": round(sum(complete) / len(complete), 3) if complete else None,
        "length_max": max(lengths, default=0),
        "length_median": statistics.median(lengths) if lengths else 0,
        "within_limit": round(sum(n <= limit for n in lengths) / len(lengths), 3) if lengths else 0.0,
        "empty": sum(not t.strip() for t in texts),
        "n": len(texts),
    }


def score_summary_groups(rows: Sequence[dict[str, Any]], texts: Sequence[str]) -> dict[str, Any]:
    """score_summaries on the reference set and on the holdout, each when present."""
    out = {}
    for group in ("reference", "holdout"):
        picked = [(r, t) for r, t in zip(rows, texts, strict=True) if r.get("split") in GROUPS[group]]
        if picked:
            out[group] = score_summaries([r for r, _ in picked], [t for _, t in picked])
    return out


# ---- the run ------------------------------------------------------------------------------------------------
def load_rows(data: Path, tickets: Path) -> list[dict[str, Any]]:
    by_id = {str(t["id"]): t for t in read_jsonl(tickets)}
    rows = read_jsonl(data)
    missing = [r["id"] for r in rows if r["id"] not in by_id]
    if missing:
        raise DataError(str(data), f"ids not in {tickets}: {missing[:5]}")
    return [{**r, "ticket": by_id[r["id"]]} for r in rows]


def run_system(rows: Sequence[dict[str, Any]], system: System) -> list[dict[str, Any]]:
    """One output per row; a row that raises is kept with an empty text (scored as a failure), never dropped."""
    out = []
    for row in rows:
        started = time.perf_counter()
        try:
            text, backend, error = *system(row), None
        except Exception as exc:  # noqa: BLE001 - an eval counts crashes, it does not stop on them
            text, backend, error = "", "error", f"{type(exc).__name__}: {exc}"[:300]
        ms = round((time.perf_counter() - started) * 1000, 2)
        out.append({"id": row["id"], "text": text, "backend": backend, "error": error, "ms": ms})
    return out


def systems(kb: Any, chat: Any, embedder: Any = None) -> tuple[dict[str, System], dict[str, System]]:
    """The summarisers and reply writers compared, by name; each row carries its ticket and SOP hits. With the
    index's embedder, the template with the aligned relevance rule beside the dense one."""
    from agents.llm.write import ReplyWriter, SummaryWriter
    from agents.types import Ticket

    def ticket(row: dict[str, Any]) -> Ticket:
        t = row["ticket"]
        return Ticket(title=t.get("title") or "", body=t.get("body") or "", requester=t.get("requester"))

    def summary(writer: SummaryWriter) -> System:
        def write(row: dict[str, Any]) -> tuple[str, str]:
            written = writer.write(ticket(row))
            return written.text, written.backend

        return write

    def reply(writer: ReplyWriter) -> System:
        def write(row: dict[str, Any]) -> tuple[str, str]:
            t = row["ticket"]
            written = writer.write(ticket(row), t["category"], t["priority"], t["team"], row["hits"])
            return written.text, written.backend

        return write

    template = ReplyWriter(kb)

    def v1_template(row: dict[str, Any]) -> tuple[str, str]:
        t = row["ticket"]
        text = template.template(ticket(row), t["category"], t["priority"], t["team"], [])
        if row["hits"]:
            head, sign = text.rsplit("\n\n", 1)
            text = f"{head}\n\n{v1_guide_line(row['hits'])}\n\n{sign}"
        return text, "classical:template v1"

    summaries: dict[str, System] = {
        "v1 extractive (25 words)": lambda r: (v1_summary(r["ticket"]["title"], r["ticket"]["body"]), "v1"),
        "v2 extractive (200 chars)": summary(SummaryWriter()),
    }
    replies: dict[str, System] = {"v1 template (400 chars)": v1_template, "v2 template (whole steps)": reply(template)}
    if embedder is not None:
        replies["v3 template (aligned relevance)"] = reply(ReplyWriter(kb, embedder=embedder))
    if chat is not None:
        llm_summary = SummaryWriter(chat=chat)
        summaries[f"llm {llm_summary.prompt.id}"] = summary(llm_summary)
        llm_reply = ReplyWriter(kb, chat)
        replies[f"llm {llm_reply.prompt.id}"] = reply(llm_reply)
    return summaries, replies


def evaluate(rows: list[dict[str, Any]], kb: Any, searcher: Any, chat: Any = None) -> dict[str, Any]:
    """Every system on every row, scored; hits are searched once per ticket as the service does (k=3)."""
    from agents.answers.relevance import AlignedRelevance
    from agents.answers.steps import SopSections
    from agents.types import Ticket
    from retrieval.corpus import load_chunks

    for row in rows:
        t = row["ticket"]
        row["text"] = Ticket(title=t.get("title") or "", body=t.get("body") or "").text
        row["hits"] = searcher.search(row["text"], k=3) if row["text"].strip() else []
    sops = SopQuotes([c.text for c in load_chunks(Path(kb.root) / "sops")])
    sop_ids = set(kb.sops)
    embedder = searcher.index.embedder
    aligned = AlignedRelevance(embedder, SopSections(Path(kb.root) / "sops"), candidates=max(ALIGNED_CANDIDATES))
    for row in rows:
        row["aligned"] = aligned.scores(row["text"], row["hits"])
    summarisers, writers = systems(kb, chat, embedder)
    result: dict[str, Any] = {"n": len(rows), "summaries": {}, "replies": {}, "outputs": {}}
    for kind, group, scorer in (
        ("summaries", summarisers, lambda texts: score_summary_groups(rows, texts)),
        ("replies", writers, lambda texts: score_replies(rows, texts, sops, sop_ids)),
    ):
        for name, system in group.items():
            outputs = run_system(rows, system)
            metrics = scorer([o["text"] for o in outputs])
            metrics["errors"] = sum(o["error"] is not None for o in outputs)
            metrics["fallbacks"] = sum(o["backend"].endswith("(fallback)") for o in outputs)
            metrics["ms_median"] = statistics.median(o["ms"] for o in outputs) if outputs else 0.0
            result[kind][name] = metrics
            result["outputs"][name] = outputs
    result["relevance_sweep"] = sweep(rows, sops, sop_ids)
    result["aligned_sweep"] = aligned_sweep(rows, sops, sop_ids)
    result["relevance_separation"] = separation(rows)
    for row in rows:
        del row["aligned"]
    return result


def main(argv: list[str] | None = None) -> int:
    """Score the summaries and replies on the reference facts; with --llm, the configured LLM's beside them."""
    from agents.app import load_sop_index
    from agents.llm.factory import llm_problem, make_chat
    from agents.llm.writer_evidence import save_writers_evidence
    from kb.loader import load_kb
    from retrieval.factory import make_embedder
    from retrieval.hybrid import HybridSearcher

    parser = argparse.ArgumentParser(prog="python -m evals.summaries_eval", description=main.__doc__)
    parser.add_argument("--out", required=True, help="folder for report.md, summary.json and outputs.jsonl")
    parser.add_argument("--data", default=str(DATA), help="reference facts (JSONL)")
    parser.add_argument("--tickets", default=str(DEMO_TICKETS), help="the tickets the facts are about (JSONL)")
    parser.add_argument("--embedder", help="embedder for the SOP search (default: the setting)")
    parser.add_argument(
        "--rows", choices=["all", *GROUPS], default="all", help="which rows: all, or one group (an LLM run is slow)"
    )
    parser.add_argument("--llm", action="store_true", help="also the LLM of TRIAGE_LLM_MODEL / TRIAGE_LLM_BASE_URL")
    parser.add_argument(
        "--evidence",
        help="with --llm: also write the summary and reply verdicts into this writers' evidence file (the service "
        "reads <data_dir>/llm_writers_evidence.json); other writers' results there are kept",
    )
    args = parser.parse_args(argv)
    settings = Settings()
    if args.embedder:
        settings = settings.model_copy(update={"embedder": args.embedder})
    chat = None
    if args.llm:
        problem = llm_problem(settings)
        if problem:
            print(f"--llm: {problem}")
            return 2
        chat = make_chat(settings)
    rows = [r for r in load_rows(Path(args.data), Path(args.tickets)) if r.get("split") in GROUPS_ALL[args.rows]]
    kb = load_kb(settings.kb_dir)
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    searcher = HybridSearcher(load_sop_index(settings, embedder, in_memory=True))
    result = evaluate(rows, kb, searcher, chat)
    data = Path(args.data).resolve()
    shown = data.relative_to(Path.cwd()) if data.is_relative_to(Path.cwd()) else data
    result.update({"data": str(shown), "embedder": settings.embedder, "llm": settings.llm_model if chat else None})
    command = " ".join(["python -m evals.summaries_eval", *(argv if argv is not None else sys.argv[1:])])
    outputs = result["outputs"]
    write_outputs(result, Path(args.out), command)
    print("\n".join(report_lines(result, command)))
    if chat is not None and settings.llm_model:  # what the service reads to let the LLM write (or not)
        results = summaries_evidence(rows, outputs, set(kb.sops), Path(shown))
        evidence = writers_evidence(settings.llm_model, settings.llm_base_url, settings.embedder, results)
        for path in [Path(args.out) / EVIDENCE_FILE, *([Path(args.evidence)] if args.evidence else [])]:
            save_writers_evidence(path, evidence)
        for found in results:
            print(f"{found.field:8} {found.describe()} (n={found.n})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
