"""Owner evaluations: OWNERS approvers of runbook alerts (`triage eval owners`); catalogue owners of any text."""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from agents.answers.ownership_files import DocumentOwners
from evals.metrics import latency_summary
from evals.tables import read_rows

PREFIX = ("openshift_runbooks", "alerts")


def component_of(runbook_file: str) -> str | None:
    """`openshift_runbooks/alerts/<component>/<file>` -> component, else None."""
    parts = PurePosixPath(runbook_file.replace("\\", "/")).parts
    return parts[2] if len(parts) >= 4 and parts[:2] == PREFIX else None


def expected_approvers(root: Path, component: str) -> list[str] | None:
    """The approvers in the component's OWNERS file, read here on its own (the truth, not the code under test)."""
    path = root.joinpath(*PREFIX, component, "OWNERS")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    people = data.get("approvers") if isinstance(data, dict) else None
    return [str(p) for p in people] if isinstance(people, list) and people else None


def _searcher(root: Path, embedder_name: str) -> Any:
    from retrieval.corpus import load_chunks
    from retrieval.factory import make_embedder
    from retrieval.hybrid import HybridSearcher
    from retrieval.index import SopIndex

    return HybridSearcher(SopIndex.build(load_chunks(root), make_embedder(embedder_name)))


def evaluate_owners(root: Path, pairs_path: Path, *, embedder_name: str = "hashing") -> dict[str, Any]:
    """Two ways to ask, per alert: `Who owns the <Alert> alert?` (the name finds the runbook file) and the alert's
    description alone (hybrid search over every runbook finds it). Both must name all OWNERS approvers."""
    cases = []
    for row in read_rows(pairs_path):
        component = component_of(str(row.get("runbook_file") or ""))
        approvers = expected_approvers(root, component) if component else None
        if approvers:
            cases.append((row, component, approvers))
    if not cases:
        return {"n": 0, "modes": {}, "root": str(root), "pairs": str(pairs_path)}
    started = time.perf_counter()
    owners = DocumentOwners.load(root, searcher=_searcher(root, embedder_name))
    build_s = time.perf_counter() - started
    questions = {
        "by_name": lambda row: f"Who owns the {row['alert']} alert?",
        "by_text": lambda row: str(row.get("query") or row.get("summary_raw") or ""),
    }
    modes: dict[str, Any] = {}
    misses: dict[str, list[dict[str, Any]]] = {}
    for mode, make in questions.items():
        named = exact = 0
        ms = []
        for row, component, approvers in cases:
            t0 = time.perf_counter()
            owner, doc = owners.owner_for(make(row))
            ms.append((time.perf_counter() - t0) * 1000)
            people = set(owner.people) if owner else set()
            ok = set(approvers) <= people
            named += ok
            exact += people == set(approvers)
            if not ok:
                misses.setdefault(mode, []).append({"alert": row.get("alert"), "component": component, "found": doc})
        modes[mode] = {
            "n": len(cases),
            "accuracy": named / len(cases),
            "exact": exact / len(cases),
            **latency_summary(ms),
        }
    return {
        "n": len(cases),
        "components": sorted({c for _, c, _ in cases}),
        "modes": modes,
        "accuracy": modes["by_name"]["accuracy"],
        "misses": misses,
        "owners_files": len(owners.tree),
        "skipped_owners_files": owners.tree.skipped,
        "index_build_seconds": round(build_s, 2),
        "embedder": embedder_name,
        "root": str(root),
        "pairs": str(pairs_path),
    }


# ---- catalogue owners of questions and tickets (any language) --------------------------------------------------


def question_text(row: dict[str, Any]) -> str:
    """The text to ask: `text` (multilingual set), `question` (questions set), else a ticket's title and body."""
    text = row.get("text") or row.get("question")
    if text:
        return str(text)
    return "\n".join(str(row.get(k) or "") for k in ("title", "body")).strip()


def expected_team(row: dict[str, Any]) -> str | None:
    team = row.get("team") or row.get("owner_team")
    return str(team) if team else None


def _accuracy(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    right = sum(r["ok"] for r in records)
    return {
        "n": n,
        "right": right,
        "accuracy": round(right / n, 4) if n else 0.0,
        "service_accuracy": round(sum(r["service_ok"] for r in records) / n, 4) if n else 0.0,
        "abstained": sum(r["abstained"] for r in records),
        "named": sum(r["named_team"] is not None for r in records),  # texts that name a catalogue service
        "named_right": sum(r["named_team"] == r["team"] for r in records),  # ... whose first one is the right team
    }


def evaluate_catalogue_owners(answerer: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Owner accuracy of `ask` (agents/answers/answer.Answerer): the team of the answer's owner (an abstention's
    "ask instead" team included, as in evals/answers_eval.py) against the row's team; overall, per `lang` and per
    `split`. A row without `lang` counts as the language detected in it (English when none or unsure), without
    `split` as "all". Rows without an expected team (unanswerable questions) are skipped."""
    from agents.language import detect_language

    records = []
    for row in rows:
        team = expected_team(row)
        if team is None:
            continue
        text = question_text(row)
        t0 = time.perf_counter()
        result = answerer.ask(text)
        ms = (time.perf_counter() - t0) * 1000
        owner = result.owner
        detected = detect_language(text)
        named = answerer.resolver.match(text)  # the catalogue names in the text: what triage's router sees
        named_team = answerer.resolver.kb.services[named[0].service].owner_team if named else None
        records.append(
            {
                "id": row.get("id"),
                "lang": str(row.get("lang") or (detected.lang if detected.foreign else "en")),
                "split": str(row.get("split") or "all"),
                "team": team,
                "service": row.get("service"),
                "found_team": owner.team if owner else None,
                "found_service": owner.service if owner else None,
                "ok": bool(owner and owner.team == team),
                "service_ok": bool(owner and row.get("service") and owner.service == row.get("service")),
                "abstained": result.abstained,
                "named_team": named_team,
                "detected": detected.lang,
                "reasons": result.reasons,
                "ms": ms,
            }
        )
    by_lang: dict[str, Any] = {}
    for lang in sorted({r["lang"] for r in records}):
        in_lang = [r for r in records if r["lang"] == lang]
        by_lang[lang] = {
            "all": _accuracy(in_lang),
            **{s: _accuracy([r for r in in_lang if r["split"] == s]) for s in sorted({r["split"] for r in in_lang})},
        }
    splits = sorted({r["split"] for r in records})
    foreign = [r for r in records if r["lang"] != "en"]
    return {
        **_accuracy(records),
        "by_split": {s: _accuracy([r for r in records if r["split"] == s]) for s in splits},
        "by_lang": by_lang,
        "language_detected": round(sum(r["detected"] == r["lang"] for r in foreign) / len(foreign), 4)
        if foreign
        else 0.0,
        **latency_summary([r["ms"] for r in records]),
        "misses": [{k: v for k, v in r.items() if k != "ms"} for r in records if not r["ok"]],
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m evals.owners_eval --data A.jsonl [B.jsonl ...] --out DIR`: catalogue owner accuracy of `ask`."""
    import argparse
    import json

    from agents.app import build_answerer
    from agents.settings import Settings
    from retrieval.factory import make_embedder

    parser = argparse.ArgumentParser(prog="python -m evals.owners_eval", description=main.__doc__)
    parser.add_argument("--data", nargs="+", required=True, help="JSONL sets: multilingual, questions or tickets")
    parser.add_argument("--out", required=True, help="folder for one <set>.json per set")
    parser.add_argument("--embedder", help="embedder (default: the setting)")
    args = parser.parse_args(argv)
    settings = Settings()
    embedder = make_embedder(args.embedder or settings.embedder, settings.embed_precision)
    answerer = build_answerer(settings, embedder=embedder, in_memory=True)
    answerer.ask("warm-up question about the VPN")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for data in args.data:
        metrics = evaluate_catalogue_owners(answerer, read_rows(data))
        metrics.update({"data": data, "embedder": settings.embedder if not args.embedder else args.embedder})
        name = Path(data).name.removesuffix(".jsonl")
        (out / f"{name}.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(
            f"{name}: owner accuracy {metrics['accuracy']:.3f} ({metrics['right']}/{metrics['n']}); "
            f"first named service's team right {metrics['named_right']}/{metrics['n']} (named {metrics['named']})"
        )
        for split, m in metrics["by_split"].items():
            print(f"  {split:5s} {m['accuracy']:.3f} ({m['right']}/{m['n']})")
        for lang, by in metrics["by_lang"].items():
            cells = "  ".join(f"{s} {m['accuracy']:.3f} ({m['right']}/{m['n']})" for s, m in by.items())
            print(f"  {lang:3s} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
