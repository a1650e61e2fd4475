"""`triage eval owners`: for alerts whose runbook has an OWNERS file, does the owner answer name its approvers?"""

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
