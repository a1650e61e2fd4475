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


def reply_rows(result: dict[str, Any], group: str) -> list[str]:
    lines = [
        "| system | cites, no SOP fits (want 0) | cites, one fits | right SOP, one fits | replies quoting an SOP "
        "| replies with a cut quote | errors | fallbacks | median ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["replies"].items():
        a = m[group]
        lines.append(
            f"| {name} | {_pct(a['cites_when_irrelevant'])} ({a['n_irrelevant']}) "
            f"| {_pct(a['cites_when_relevant'])} ({a['n_relevant']}) | {_pct(a['right_sop_when_relevant'])} "
            f"| {a['quoting']} | {_pct(a['cut_quote_share'])} | {m['errors']} | {m['fallbacks']} "
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
    halves = [g for g in ("tune", "test", "holdout") if g in next(iter(result["relevance_sweep"].values()))]
    lines += [
        "## The template's relevance threshold (top hit's dense similarity): cites when no SOP fits / right SOP",
        "",
        "| threshold | " + " | ".join(halves) + " |",
        "|---|" + "---|" * len(halves),
    ]
    for threshold, by in result["relevance_sweep"].items():
        cells = [f"{_pct(by[h]['cites_when_irrelevant'])} / {_pct(by[h]['right_sop_when_relevant'])}" for h in halves]
        lines.append(f"| {threshold} | " + " | ".join(cells) + " |")
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
