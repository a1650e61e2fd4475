"""`triage eval cold-start`: classical against LLM few-shot with a few labelled tickets per class, as a report."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.cli.common import SettingsFn, add_embedder, command

if TYPE_CHECKING:
    from evals.cold_start import ColdStartResult, ColdStartRuns


def parse_ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ValueError(f"--k must be numbers separated by commas, e.g. 5,10,20 (got {text!r})") from None
    if not ks or ks[0] < 1:
        raise ValueError(f"--k needs pool sizes of 1 or more per class (got {text!r})")
    return ks


def cmd_eval_cold_start(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from evals.backends import ClassicalBackend
    from evals.cold_start import ColdStartOptions, measure
    from evals.llm_eval import chat_from_settings
    from evals.llm_evidence import load_labelled
    from evals.specs import DataAbsent
    from kb.loader import load_kb
    from retrieval.factory import make_embedder

    ks = parse_ks(args.k)
    if args.test_per_class < 1 or args.max_examples < 0 or args.pools < 1 or args.example_chars < 1:
        raise ValueError("--test-per-class, --pools and --example-chars must be at least 1, --max-examples 0 or more")
    settings = settings_fn(args)
    try:
        table, stratify, source = load_labelled(Path(args.data))
    except DataAbsent as exc:
        print(f"skipped: {exc}")
        return 0
    chat = chat_from_settings(settings)  # BackendUnavailable, with the reason, when no endpoint answers
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    options = ColdStartOptions(ks, args.test_per_class, args.seed, args.max_examples, args.example_chars, args.pools)
    print(f"cold start on {source}: k={','.join(map(str, ks))}, {args.test_per_class} test rows per class")
    result = measure(
        chat,
        embedder,
        table,
        source,
        args.field or stratify,
        options,
        model=settings.llm_model or chat.name.removeprefix("llm:"),
        base_url=settings.llm_base_url,
        kb=load_kb(settings.kb_dir),
        classical_factory=lambda: ClassicalBackend(
            embedder, folds=settings.train_folds, target=settings.precision_target, members=settings.members
        ),
        cache=Path(args.cache) if args.cache else None,
        progress=lambda line: print(f"  {line}", flush=True),
    )
    out = Path(args.out)
    runs = read_runs(out.with_suffix(".json")).with_run(result.model_copy(update={"command": reproduce(args)}))
    if args.target is not None:
        runs.target_points = args.target
    if args.note:
        runs.notes = list(args.note)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(runs.model_dump_json(indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(report_markdown(runs), encoding="utf-8")
    for p in result.points:
        print(
            f"k={p.k:<3d} classical {p.classical_accuracy:.3f}  llm {p.llm_accuracy:.3f}  "
            f"fixed {p.fixed} broken {p.broken} p={p.p_value:.3g} ({p.verdict})"
        )
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')} ({len(runs.runs)} data set(s))")
    return 0


def read_runs(path: Path) -> ColdStartRuns:
    """The runs already in the report's JSON (those of other data sets are kept), or none."""
    from evals.cold_start import ColdStartRuns

    return ColdStartRuns.model_validate_json(path.read_text(encoding="utf-8")) if path.is_file() else ColdStartRuns()


def reproduce(args: argparse.Namespace) -> str:
    words = ["triage", "eval", "cold-start", "--data", str(args.data), "--k", args.k]
    words += ["--test-per-class", str(args.test_per_class), "--seed", str(args.seed)]
    words += ["--max-examples", str(args.max_examples), "--example-chars", str(args.example_chars)]
    words += ["--pools", str(args.pools)]
    for option, value in (("--field", args.field), ("--embedder", args.embedder)):
        if value is not None:
            words += [option, str(value)]
    return shlex.join([*words, "--out", str(args.out)])


def data_name(result: ColdStartResult) -> str:
    path = Path(result.data.path)
    return f"{path.parent.name}/{path.name}"


def met(result: ColdStartResult, target: float) -> list[int]:
    """The pool sizes at which the LLM gained at least `target` points over classical, significantly."""
    return [
        p.k
        for p in result.points
        if 100 * (p.llm_accuracy - p.classical_accuracy) >= target and p.p_value < result.alpha
    ]


def report_markdown(runs: ColdStartRuns) -> str:
    """A section per data set, then the target (met or not, per data set) and the notes."""
    lines = ["# Cold start: LLM few-shot against the classical model with k labelled tickets per class", ""]
    for result in runs.runs:
        lines += [*run_markdown(result), ""]
    if runs.target_points is not None:
        alpha = runs.runs[0].alpha if runs.runs else 0.05
        verdicts = [
            f"{data_name(r)}: k = {', '.join(map(str, met(r, runs.target_points))) or 'none'}" for r in runs.runs
        ]
        lines += [
            f"**Target**: the LLM at least {runs.target_points:+g} points over classical with p < {alpha:g}. "
            f"Met at {'; '.join(verdicts)}.",
            "",
        ]
    for note in runs.notes:
        lines += [note, ""]
    return "\n".join(lines).rstrip() + "\n"


def run_markdown(result: ColdStartResult) -> list[str]:
    """One data set: how it was drawn, a row per k with the paired test and the LLM's cost, the learning curves."""
    d = result.data
    lines = [
        f"## {data_name(result)}: {result.model}",
        "",
        f"Measured {result.created_at:%Y-%m-%d %H:%M} UTC with `{result.command}`: LLM time "
        f"{sum(p.llm_seconds for p in result.points) / 60:.1f} min for {sum(p.llm_calls for p in result.points)} "
        f"requests ({sum(p.live_calls for p in result.points)} sent in this run of {result.elapsed_s / 60:.1f} min, "
        "the others replayed from the reply cache with the latency measured when they were made).",
        "",
        f"Data: `{d.path}` ({d.rows} rows, sha256 {d.sha256[:12]}), field `{d.field}`, {len(d.classes)} classes"
        + (f" ({', '.join(d.skipped_classes)} left out: too few rows)" if d.skipped_classes else "")
        + f". Held out: {result.test_per_class} rows per class (seed {result.seed}), the same rows for every k. "
        "Pool: k labelled rows per class drawn from the rest, nested (the pool of 10 holds the pool of 5). The "
        "classical model (the calibrated ensemble of `triage train`) is fitted on the pool; the LLM gets the "
        f"{result.max_examples} pool tickets nearest to each test ticket ({result.embedder}; each cut to "
        f"{result.example_chars} characters) as few-shot examples and may answer only one of the {len(d.classes)} "
        "labels (anything else is re-asked once, then a failure, scored as wrong). Classical on other pools: the "
        "same test rows, pools of k drawn with the next seeds.",
        "",
        "| k | pool | classical | classical, other pools | LLM | points | fixed | broken | McNemar p | verdict "
        "| LLM failed | LLM p50 s | LLM p90 s | prompt tokens p50 / max |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for p in result.points:
        others = ", ".join(f"{a:.3f}" for a in p.classical_other_pools) or "-"
        seconds = [f"{v / 1000:.1f}" if v is not None else "-" for v in (p.llm_latency_ms_p50, p.llm_latency_ms_p90)]
        tokens = f"{p.prompt_tokens_p50:.0f} / {p.prompt_tokens_max}" if p.prompt_tokens_max else "-"
        points = 100 * (p.llm_accuracy - p.classical_accuracy)
        lines.append(
            f"| {p.k} | {p.n_pool} | {p.classical_accuracy:.3f} | {others} | {p.llm_accuracy:.3f} | {points:+.1f} | "
            f"{p.fixed} | {p.broken} | {p.p_value:.3g} | **{p.verdict}** | {p.llm_failures} | {seconds[0]} | "
            f"{seconds[1]} | {tokens} |"
        )
    curve = " -> ".join
    return [
        *lines,
        "",
        "Learning curves (accuracy at k = "
        + ", ".join(str(p.k) for p in result.points)
        + "): classical "
        + curve(f"{p.classical_accuracy:.3f}" for p in result.points)
        + "; LLM "
        + curve(f"{p.llm_accuracy:.3f}" for p in result.points)
        + ".",
        "",
        "fixed: classical wrong and the LLM right; broken: classical right and the LLM wrong. The p-value is the "
        f"exact McNemar test on fixed and broken. **helps** needs the LLM more accurate with p < {result.alpha:g}, "
        f"**hurts** less accurate with p < {result.alpha:g}; else **no evidence**. LLM time: per ticket, a re-ask "
        "included.",
    ]


def add_parsers(ev: Any, settings_fn: SettingsFn) -> None:
    p = command(
        ev,
        "cold-start",
        "a new helpdesk with k labelled tickets per class: LLM few-shot against classical, on the same rows",
        "triage eval cold-start --data evals/datasets/it_service_tickets.v1.yaml --out /tmp/cold-start.md",
        "triage eval cold-start --data tickets.jsonl --k 5,10 --test-per-class 4 --cache /tmp/replies.jsonl "
        "--out /tmp/cold.md",
        more="Against the TRIAGE_LLM_* endpoint. A fixed held-out sample per class; for each k a pool of k labelled "
        "tickets per class: the classical model is fitted on it, and the LLM labels each held-out ticket with the "
        "pool's nearest tickets as examples. Per k: both accuracies, the labels the LLM fixed and broke, the exact "
        "McNemar p-value and the LLM's latency. OUT (.md) and the same with .json hold one section per data set: "
        "a run on another data set is added, a new run of the same data set replaces its section.",
    )
    p.add_argument("--data", required=True, help="labelled tickets (JSONL, CSV) or a data set spec (.yaml)")
    p.add_argument("--out", required=True, help="the report (.md); the JSON goes next to it")
    p.add_argument("--k", default="5,10,20", help="labelled tickets per class, comma-separated (default: %(default)s)")
    p.add_argument("--test-per-class", type=int, default=8, help="held-out rows per class (default: %(default)s)")
    p.add_argument("--seed", type=int, default=7, help="seed of the held-out rows and pools (default: %(default)s)")
    p.add_argument("--max-examples", type=int, default=4, help="few-shot examples per prompt (default: %(default)s)")
    p.add_argument("--example-chars", type=int, default=220, help="characters per example (default: %(default)s)")
    p.add_argument("--pools", type=int, default=5, help="classical pools per k, for the spread (default: %(default)s)")
    p.add_argument("--field", help="the label field (default: the one the data set stratifies on)")
    p.add_argument("--target", type=float, help="points the LLM must gain over classical (kept in the report)")
    p.add_argument("--note", action="append", help="a paragraph for the end of the report (repeatable; replaces)")
    p.add_argument("--cache", help="JSONL of the LLM's replies: a stopped run resumes, a rerun replays")
    add_embedder(p)
    p.set_defaults(func=lambda a: cmd_eval_cold_start(a, settings_fn))
