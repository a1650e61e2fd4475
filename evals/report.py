"""Write an eval run as DIR/summary.json, DIR/report.md and DIR/report.html with PNG plots beside them."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from evals import plots

Block = tuple[str, Any]  # ("h1"|"h2"|"h3"|"p"|"img"|"table"|"details", payload)
NA = "–"
NUMBER_LIST = re.compile(r"\[\s*((?:-?[0-9.eE+-]+,\s*)*-?[0-9.eE+-]+)\s*\]")


def _f(value: Any, digits: int = 3) -> str:
    return NA if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _slug(*parts: str) -> str:
    return "__".join(re.sub(r"[^A-Za-z0-9_.-]+", "-", p) for p in parts)


def headline_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per data set, field and backend that produced figures."""
    rows = []
    for ds_id, ds in summary["datasets"].items():
        for field, by_backend in ds.get("results", {}).items():
            for backend, m in by_backend.items():
                info = ds.get("backends", {}).get(backend, {})
                rows.append({**m, **_cost(info), "dataset": ds_id, "field": field, "backend": backend})
    return rows


def _cost(info: dict[str, Any]) -> dict[str, Any]:
    keys = ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "llm_calls_per_ticket", "tokens_per_ticket")
    return {k: info[k] for k in keys if k in info}


def _headline(summary: dict[str, Any]) -> list[Block]:
    cls_rows, ret_rows, ans_rows = [], [], []
    for r in headline_rows(summary):
        if "accuracy" in r:
            at_thr = (
                f"{r['precision_at_threshold']:.3f} / {r['coverage_at_threshold']:.3f}"
                if "coverage_at_threshold" in r
                else NA
            )
            latency = "/".join(_f(r.get(f"latency_ms_p{q}"), 1) for q in (50, 95, 99))
            cls_rows.append(
                [r["dataset"], r["field"], r["backend"], r["n_scored"], _f(r["accuracy"]), _f(r["macro_f1"]),
                 at_thr, _f(r.get("oracle_coverage")), _f(r.get("ece")), latency,
                 _f(r.get("llm_calls_per_ticket"), 2), r.get("failures", 0)]
            )  # fmt: skip
        elif "owner_accuracy" in r:
            ans_rows.append(
                [r["dataset"], r["backend"], r.get("n"), _f(r.get("retrieval_recall_at_5")), _f(r["owner_accuracy"]),
                 _f(r.get("citation_precision")), _f(r.get("abstain_recall")), _f(r.get("false_abstain_rate")),
                 _f(r.get("latency_ms_p50"), 1)]
            )  # fmt: skip
        elif "mrr" in r:
            ret_rows.append(
                [r["dataset"], r["field"], r["backend"], r.get("n"), _f(r["recall_at_1"]), _f(r["recall_at_5"]),
                 _f(r["mrr"]), _f(r.get("latency_ms_p50"), 1)]
            )  # fmt: skip
    target = summary.get("precision_target", 0.9)
    blocks: list[Block] = []
    if cls_rows:
        head = ["data set", "field", "backend", "n test", "accuracy", "macro-F1",
                f"precision / coverage at threshold (P>={target:.2f}, chosen on train)",
                "coverage at P>=target (best on test)", "ECE", "latency ms p50/p95/p99", "LLM calls/ticket",
                "failures"]  # fmt: skip
        blocks.append(("table", (head, cls_rows)))
    if ret_rows:
        head = ["data set", "target", "mode", "queries", "recall@1", "recall@5", "MRR", "latency ms p50"]
        blocks.append(("table", (head, ret_rows)))
    if ans_rows:
        head = ["data set", "backend", "questions", "retrieval recall@5", "owner accuracy", "citation precision",
                "abstain recall", "false-abstain rate", "latency ms p50"]  # fmt: skip
        blocks.append(("table", (head, ans_rows)))
    return blocks


def _anchors(summary: dict[str, Any]) -> list[Block]:
    rows = []
    for ds_id, ds in summary["datasets"].items():
        spec, results = ds.get("spec") or {}, ds.get("results", {})
        for kind, items in (("anchor", spec.get("anchors", [])), ("target", spec.get("targets", []))):
            for a in items:
                ours = results.get(a["field"], {})
                figures = ", ".join(f"{b} {_f(m.get(a['metric']))}" for b, m in ours.items() if a["metric"] in m)
                if kind == "anchor":
                    theirs = f"{a['value']:.4g} ({a['label']}; {a['source']}{'; ' + a['note'] if a['note'] else ''})"
                else:
                    best = max(
                        (m.get(a["metric"], -1) for b, m in ours.items() if b != summary["reference"]), default=-1
                    )
                    met = NA if best < 0 else ("yes" if best >= a["min"] else "no")
                    theirs = f"target >= {a['min']:.2f} (met: {met})"
                rows.append([ds_id, a["field"], a["metric"], theirs, figures or "not run"])
    if not rows:
        return []
    return [("table", (["data set", "field", "metric", "published anchor or target", "ours (this run)"], rows))]


def _dataset(ds_id: str, ds: dict[str, Any], target: float, out: Path) -> list[Block]:
    spec = ds.get("spec") or {}
    blocks: list[Block] = [("h2", ds_id)]
    if spec:
        blocks.append(("p", f"{spec.get('description', '')} Licence: {spec['licence']}. Source: {spec['source']}."))
    blocks.append(("p", f"Status: **{ds['status']}**" + (f" ({ds['reason']})" if ds.get("reason") else "")))
    if ds.get("data"):
        n_folds = ds.get("folds") or (spec.get("folds") if spec.get("kind") == "classification" else None)
        folds = f"; ensemble folds {n_folds}" if n_folds else ""
        blocks.append(("p", "Data: " + ", ".join(f"{k} {v}" for k, v in ds["data"].items()) + folds))
    for field, info in ds.get("fields", {}).items():
        unseen = info["test_classes_unseen_in_train"]
        text = f"Field `{field}`: {info['classes_train']} classes in training, {info['classes_test']} in test"
        if unseen["count"]:
            text += f"; {unseen['count']} test classes never seen in training ({unseen['rows']} rows, all wrong)"
        blocks.append(("p", text + (f". **{info['error']}**" if info.get("error") else ".")))
    for name, reason in ds.get("skipped_backends", {}).items():
        blocks.append(("p", f"Backend `{name}` skipped: {reason}"))
    for name, info in ds.get("backends", {}).items():
        extra = f" ({info['reason']})" if info.get("reason") else ""
        cost = ", ".join(f"{k} {v}" for k, v in info.items() if k not in ("status", "reason", "failure_examples"))
        blocks.append(("p", f"Backend `{name}`: {info['status']}{extra}; {cost}"))
        if info.get("failure_examples"):
            blocks.append(("p", "Failure examples: " + "; ".join(info["failure_examples"])))
    for field, by_backend in ds.get("results", {}).items():
        scored = {b: m for b, m in by_backend.items() if m.get("precision_coverage")}
        if not scored:
            continue
        blocks.append(("h3", f"{ds_id} / {field}"))
        pc = plots.precision_coverage(
            scored, target, f"{ds_id} {field}", out / "plots" / f"{_slug(ds_id, field)}_pc.png"
        )
        rel = plots.reliability(scored, f"{ds_id} {field}", out / "plots" / f"{_slug(ds_id, field)}_reliability.png")
        blocks += [("img", pc.relative_to(out)), ("img", rel.relative_to(out))]
        main = next(iter(scored))
        cm = out / "plots" / f"{_slug(ds_id, field, main)}_confusion.png"
        blocks.append(("img", plots.confusion(scored[main], f"{ds_id} {field}: {main}", cm).relative_to(out)))
        per_class = scored[main]["per_class"]
        rows = [[k, _f(v["precision"]), _f(v["recall"]), _f(v["f1"]), v["support"]] for k, v in per_class.items()]
        blocks.append(("details", (f"per-class precision and recall ({main})", (["class", "P", "R", "F1", "n"], rows))))
    return blocks


def build_blocks(summary: dict[str, Any], out: Path) -> list[Block]:
    target = summary.get("precision_target", 0.9)
    blocks: list[Block] = [("h1", "Evaluation report")]
    if summary.get("partial"):
        blocks.append(("p", "**PARTIAL RESULTS: the run was interrupted; figures cover only the rows scored.**"))
    blocks.append(
        ("p", f"Run {summary['started_at']} ({summary.get('seconds', NA)} s); embedder {summary['embedder']}; "
              f"backends {', '.join(summary['backends'])} plus the reference {summary['reference']} "
              f"(TF-IDF + LR, trained and scored on the same split); precision target {target:.2f}; "
              f"test rows limit {summary.get('limit') or 'none'}. Failed answers count as wrong.")
    )  # fmt: skip
    blocks += [("p", f"Note: {note}") for note in summary.get("notes", [])]
    commands = [summary.get("command")] if summary.get("command") else summary.get("commands", [])
    blocks += [("p", f"Command: `{c}`") for c in commands if c]
    blocks += [("h2", "Headline"), *_headline(summary), ("h2", "Beside the published figures"), *_anchors(summary)]
    for ds_id, ds in summary["datasets"].items():
        blocks += _dataset(ds_id, ds, target, out)
    return blocks


def _md_table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def to_markdown(blocks: list[Block]) -> str:
    out = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + payload)
        elif kind == "p":
            out.append(payload)
        elif kind == "img":
            out.append(f"![{Path(payload).stem}]({Path(payload).as_posix()})")
        elif kind == "table":
            out.append(_md_table(*payload))
        elif kind == "details":
            out.append(f"<details><summary>{payload[0]}</summary>\n\n{_md_table(*payload[1])}\n\n</details>")
    return "\n\n".join(out) + "\n"


def _html_inline(text: str) -> str:
    text = html.escape(text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text))


def _html_table(head: list[str], rows: list[list[Any]]) -> str:
    th = "".join(f"<th>{html.escape(str(h))}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def to_html(blocks: list[Block]) -> str:
    parts = []
    for kind, payload in blocks:
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{html.escape(payload)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{_html_inline(payload)}</p>")
        elif kind == "img":
            parts.append(f'<img src="{html.escape(Path(payload).as_posix())}" alt="{Path(payload).stem}">')
        elif kind == "table":
            parts.append(_html_table(*payload))
        elif kind == "details":
            parts.append(f"<details><summary>{html.escape(payload[0])}</summary>{_html_table(*payload[1])}</details>")
    style = (
        "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:48%;margin:4px}"
    )
    body = "\n".join(parts)
    head = f'<meta charset="utf-8"><title>Evaluation report</title><style>{style}</style>'
    return f"<!doctype html><html><head>{head}</head><body>{body}</body></html>\n"


def dumps(data: Any) -> str:
    """Indented JSON with lists of numbers kept on one line (confusion matrices stay readable and small)."""
    text = json.dumps(data, indent=2, default=str)
    return NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def merge_summaries(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary from several runs (e.g. the large data sets run apart); a data set seen twice keeps the last."""
    if len(summaries) == 1:
        return summaries[0]
    out = {k: v for k, v in summaries[0].items() if k != "datasets"}
    out["datasets"] = {ds_id: ds for s in summaries for ds_id, ds in s["datasets"].items()}
    out["partial"] = any(s.get("partial") for s in summaries)
    out["seconds"] = round(sum(s.get("seconds") or 0 for s in summaries), 1)
    out["backends"] = list(dict.fromkeys(b for s in summaries for b in s["backends"]))
    out["embedder"] = ", ".join(dict.fromkeys(s["embedder"] for s in summaries))
    out["merged_from"] = [s["started_at"] for s in summaries]
    out["commands"] = [s.get("command") for s in summaries]
    out.pop("command", None)
    return out


def write_report(summary: dict[str, Any], out: Path) -> dict[str, Path]:
    """summary.json first (machines need it even if plotting fails), then the plots, Markdown and HTML."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out / "summary.json", "markdown": out / "report.md", "html": out / "report.html"}
    paths["summary"].write_text(dumps(summary), encoding="utf-8")
    blocks = build_blocks(summary, out)
    paths["markdown"].write_text(to_markdown(blocks), encoding="utf-8")
    paths["html"].write_text(to_html(blocks), encoding="utf-8")
    return paths
