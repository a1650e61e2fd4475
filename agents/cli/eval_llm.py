"""`triage eval llm`: the evidence the service needs before its LLM may classify, as evidence.json and report.md."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.cli.common import SettingsFn, add_data_dir, add_embedder, command

if TYPE_CHECKING:
    from agents.llm.evidence import LlmEvidence

POLICY_CHOICES = ("llm_first", "cascade", "both")


def cmd_eval_llm(args: argparse.Namespace, settings_fn: SettingsFn) -> int:
    from agents.llm.evidence import EVIDENCE_FILE
    from evals.llm_eval import chat_from_settings
    from evals.llm_evidence import POLICIES, SplitOptions, measure
    from retrieval.factory import make_embedder

    if not 0.0 < args.test_size < 1.0 or (args.test is not None and args.test < 1):
        raise ValueError("--test-size must be between 0 and 1, and --test at least 1")
    settings = settings_fn(args)
    data = Path(args.data) if args.data else settings.training_data
    out = Path(args.out)
    chat = chat_from_settings(settings)  # BackendUnavailable, with the reason, when no endpoint answers
    embedder = make_embedder(settings.embedder, settings.embed_precision)
    options = SplitOptions(args.test_size, args.seed, args.test, args.train_limit)
    policies = POLICIES if args.policy == "both" else (args.policy,)
    print(f"measuring {settings.llm_model} on {data} ({', '.join(policies)}); replies kept in {out}/replies.jsonl")
    evidence = measure(
        settings,
        chat,
        embedder,
        data,
        out,
        options,
        policies=policies,
        progress=lambda i, n: print(f"  {i}/{n} tickets", flush=True) if i % 25 == 0 or i == n else None,
    )
    path, report = write_evidence(evidence, out, reproduce(args, data))
    for r in evidence.results:
        print(f"{r.field:9s} {r.policy:9s} {r.describe()} (llm share {r.llm_share:.0%})")
    print(f"wrote {path} and {report}")
    print(f"to use it: copy {path} to {settings.data_dir / EVIDENCE_FILE} (or set TRIAGE_LLM_EVIDENCE={path})")
    return 0


def reproduce(args: argparse.Namespace, data: Path) -> str:
    """The command line that measures the same again (TRIAGE_LLM_* set as for this run)."""
    words = [
        "triage",
        "eval",
        "llm",
        "--data",
        str(data),
        "--test-size",
        f"{args.test_size:g}",
        "--seed",
        str(args.seed),
    ]
    for option, value in (("--test", args.test), ("--train-limit", args.train_limit), ("--embedder", args.embedder)):
        if value is not None:
            words += [option, str(value)]
    return shlex.join([*words, "--policy", args.policy, "--out", str(args.out)])


def report_markdown(evidence: LlmEvidence, command: str) -> str:
    """The evidence for people: one row per field and policy, the verdict, and how the service uses it."""
    split = evidence.split
    lines = [
        f"# Does the LLM help? {evidence.model} on {Path(evidence.data.path).name}",
        "",
        f"Measured {evidence.created_at:%Y-%m-%d %H:%M} UTC" + (f" with `{command}`." if command else "."),
        f"Data: `{evidence.data.path}` ({evidence.data.rows} rows, sha256 {evidence.data.sha256[:12]}); held out "
        f"{split.n_test} rows (stratified on {split.stratify}, share {split.test_size:g}, seed {split.seed}); the "
        f"classical model fitted on the other {split.n_train} with the {evidence.embedder} embedder. Cascade: the "
        f"LLM's label only among the classical top {evidence.cascade_top_k}, at most "
        f"{evidence.cascade_max_share:.0%} of tickets to the LLM.",
        "",
        "| field | policy | n | classical | policy | points | fixed | broken | McNemar p | LLM share | LLM p50 ms "
        "| verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in evidence.results:
        p50 = f"{r.llm_latency_ms_p50:.0f}" if r.llm_latency_ms_p50 is not None else "-"
        failed = f" ({r.llm_failures} failed)" if r.llm_failures else ""
        lines.append(
            f"| {r.field} | {r.policy} | {r.n} | {r.classical_accuracy:.3f} | {r.policy_accuracy:.3f} | "
            f"{r.points:+.1f} | {r.fixed} | {r.broken} | {r.p_value:.3g} | {r.llm_share:.0%}{failed} | {p50} | "
            f"**{r.verdict}** |"
        )
    lines += [
        "",
        "fixed: classical wrong and the policy right; broken: classical right and the policy wrong. The p-value is "
        "the exact McNemar test on fixed and broken (two-sided binomial at 1/2). **helps** needs the policy more "
        f"accurate and p < {evidence.alpha:g}; **hurts** is less accurate with p < {evidence.alpha:g}; anything else "
        "is **no evidence**. LLM share: the held-out tickets whose field went to the LLM; LLM p50: the LLM time per "
        "such ticket, a re-ask included. A field the LLM is not asked about (teams are routed from the catalogue) "
        "has a share of 0%.",
        "",
        "The service reads this file as `llm_evidence.json` in its data folder (or the file TRIAGE_LLM_EVIDENCE "
        "names): with TRIAGE_POLICY llm_first or cascade and this TRIAGE_LLM_MODEL, the LLM classifies only the "
        "fields marked **helps** for that policy; every other field stays classical, and the start log says why.",
    ]
    return "\n".join(lines) + "\n"


def write_evidence(evidence: LlmEvidence, out: Path, command: str) -> tuple[Path, Path]:
    """OUT/evidence.json (what the service reads) and OUT/report.md (the same for people)."""
    out.mkdir(parents=True, exist_ok=True)
    path, report = out / "evidence.json", out / "report.md"
    path.write_text(evidence.model_dump_json(indent=2) + "\n", encoding="utf-8")
    report.write_text(report_markdown(evidence, command), encoding="utf-8")
    return path, report


def add_parsers(ev: Any, settings_fn: SettingsFn) -> None:
    p = command(
        ev,
        "llm",
        "does the LLM classify better than the classical model? per field and policy, on held-out rows",
        "triage eval llm --out /tmp/llm-evidence",
        "triage eval llm --data evals/datasets/it_service_tickets.v1.yaml --test 150 --seed 7 --out /tmp/it-llm",
        more="Against the TRIAGE_LLM_* endpoint: the classical model is fitted on the training part of the data, "
        "then it and each LLM policy label the same held-out rows. Per field: both accuracies, the labels the LLM "
        "fixed and broke, the exact McNemar p-value, the LLM's share of tickets and its latency, and a verdict "
        "(helps only when more accurate and p < 0.05). Copy OUT/evidence.json to the data folder as "
        "llm_evidence.json: the service then uses the LLM only for the fields it helps with.",
    )
    p.add_argument(
        "--data", help="labelled tickets (JSONL, CSV) or a data set spec (.yaml); default: the training data"
    )
    p.add_argument("--out", required=True, help="folder for evidence.json, report.md and replies.jsonl")
    p.add_argument("--policy", choices=POLICY_CHOICES, default="both", help="LLM policies to measure (default: both)")
    p.add_argument("--test-size", type=float, default=0.2, help="share of the rows held out (default: %(default)s)")
    p.add_argument("--seed", type=int, default=42, help="seed of the split (default: %(default)s)")
    p.add_argument("--test", type=int, help="score at most N held-out rows (a seeded sample): each is an LLM call")
    p.add_argument("--train-limit", type=int, help="fit the classical model on at most N training rows")
    add_embedder(p)
    add_data_dir(p)
    p.set_defaults(func=lambda a: cmd_eval_llm(a, settings_fn))
