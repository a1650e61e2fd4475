"""The report of evals/summaries_eval.py: Markdown tables of fact coverage, citations and the relevance sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KINDS = ("service", "symptom", "impact", "start")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def summary_rows(result: dict[str, Any], group: str) -> list[str]:
    lines = [
        "| system | service | symptom | impact | start | all facts | max chars | median chars | <= 200 | errors "
        "| fallbacks | median ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, scored in result["summaries"].items():
        m, cov = scored[group], scored[group]["coverage"]
        lines.append(
            f"| {name} | {' | '.join(_pct(cov[k]) for k in KINDS)} | {_pct(m['all_facts'])} | {m['length_max']} "
            f"| {m['length_median']} | {_pct(m['within_limit'])} | {scored['errors']} | {scored['fallbacks']} "
            f"| {scored['ms_median']:.2f} |"
        )
    first = next(iter(result["summaries"].values()))[group]
    stated = ", ".join(f"{k} {first['stated'][k]}" for k in KINDS)
    return [*lines, "", f"Tickets ({first['n']}) stating each fact: {stated}.", ""]


def objective(scored: dict[str, Any]) -> str:
    """The right-SOP share minus twice the share citing where no SOP fits (a guide that does not fit costs more)."""
    right, wrong = scored["right_sop_when_relevant"], scored["cites_when_irrelevant"]
    return "n/a" if right is None or wrong is None else f"{right - 2 * wrong:+.2f}"


def reply_rows(result: dict[str, Any], group: str) -> list[str]:
    lines = [
        "| system | cites, no SOP fits (want 0) | cites, one fits | right SOP, one fits | right - 2 x cites, none fits "
        "| replies quoting an SOP | replies with a cut quote | errors | fallbacks | median ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["replies"].items():
        a = m[group]
        lines.append(
            f"| {name} | {_pct(a['cites_when_irrelevant'])} ({a['n_irrelevant']}) "
            f"| {_pct(a['cites_when_relevant'])} ({a['n_relevant']}) | {_pct(a['right_sop_when_relevant'])} "
            f"| {objective(a)} | {a['quoting']} | {_pct(a['cut_quote_share'])} | {m['errors']} | {m['fallbacks']} "
            f"| {m['ms_median']:.2f} |"
        )
    return [*lines, ""]


def report_lines(result: dict[str, Any], command: str) -> list[str]:
    groups = [g for g in ("reference", "holdout") if g in next(iter(result["summaries"].values()))]
    lines = [
        "# Summaries and replies on the demo tickets",
        "",
        f"`{command}`: {result['n']} tickets of {result.get('data', 'the reference facts')} (facts written by hand).",
        "",
    ]
    for group in groups:
        lines += [f"## Summaries, {group}: share of the tickets stating a fact whose summary keeps it", ""]
        lines += summary_rows(result, group)
    for group in groups:
        lines += [f"## Replies, {group}: citations and cut quotes", "", *reply_rows(result, group)]
    lines += sweep_rows(result, "relevance_sweep", "the top hit's dense similarity")
    if result.get("aligned_sweep"):
        lines += ["", *sweep_rows(result, "aligned_sweep", "mean(dense, best sentence-to-line similarity)")]
    lines += separation_lines(result.get("relevance_separation") or {})
    return lines


def sweep_rows(result: dict[str, Any], key: str, what: str) -> list[str]:
    """One row per threshold: the shares citing where no SOP fits / citing a right SOP, per half."""
    halves = [g for g in ("tune", "test", "holdout") if g in next(iter(result[key].values()))]
    lines = [
        f"## The template's relevance threshold ({what}): cites when no SOP fits / right SOP (objective)",
        "",
        "| threshold | " + " | ".join(halves) + " |",
        "|---|" + "---|" * len(halves),
    ]
    for threshold, by in result[key].items():
        cells = [
            f"{_pct(by[h]['cites_when_irrelevant'])} / {_pct(by[h]['right_sop_when_relevant'])} ({objective(by[h])})"
            for h in halves
        ]
        lines.append(f"| {threshold} | " + " | ".join(cells) + " |")
    return lines


def separation_lines(sep: dict[str, Any]) -> list[str]:
    """How well each top-hit score separates, on the tune half, and the fitted weights of the two similarities."""
    if not sep.get("n"):
        return []
    lines = [
        "",
        f'On the tune half ({sep["n"]} tickets), AUC of the top hit\'s score for "an SOP fits" / "the top hit is a '
        f'right SOP": dense {_pct(sep["dense_fits"])} / {_pct(sep["dense_top_right"])}, aligned '
        f"{_pct(sep['aligned_fits'])} / {_pct(sep['aligned_top_right'])}.",
    ]
    if "fit_weights" in sep:
        w = sep["fit_weights"]
        lines.append(
            f"A logistic regression over (dense, alignment) of the top-3 hits fitted there weighs them "
            f"{w['dense']:.2f} / {w['alignment']:.2f}, with p = 0.5 at a weighted score of "
            f"{sep['fit_mean_at_half']:.2f}."
        )
    return lines


def write_outputs(result: dict[str, Any], out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    outputs = result.pop("outputs")
    (out / "summary.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text("\n".join(report_lines(result, command)) + "\n", encoding="utf-8")
    with (out / "outputs.jsonl").open("w", encoding="utf-8") as fh:
        for name, rows in outputs.items():
            for row in rows:
                fh.write(json.dumps({"system": name, **row}, ensure_ascii=False) + "\n")
