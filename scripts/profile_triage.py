"""Where a classical `POST /v1/triage` spends its time, stage by stage: medians in ms over the demo tickets.

Builds the engine the way `triage serve` does (`build_engine(Settings())`, so TRIAGE_* settings apply), then for
each demo ticket, one at a time as a single request is triaged, times every stage the service runs in the order it
runs them, with the collaborators the service holds; then the whole `triage()` call, so that the stages can be
checked against it, and the HTTP-side work done on the event loop (body validation, the response's validation and
JSON, the metrics). Wall time (perf_counter) and this thread's CPU time (thread_time: onnxruntime's own threads
are not in it). Example:

    TRIAGE_POLICY=classical_only TRIAGE_DATA_DIR=DATA_DIR .venv/bin/python scripts/profile_triage.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.load_test import DEMO  # noqa: E402


class Stopwatch:
    """Per stage, the wall and thread-CPU milliseconds of every block timed under its name."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        yield
        self.cpu.setdefault(name, []).append((time.thread_time() - cpu) * 1000)
        self.wall.setdefault(name, []).append((time.perf_counter() - wall) * 1000)

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "stage": name,
                "wall_ms_p50": round(statistics.median(values), 3),
                "cpu_ms_p50": round(statistics.median(self.cpu[name]), 3),
                "wall_ms_mean": round(statistics.fmean(values), 3),
            }
            for name, values in self.wall.items()
        ]


def profile(rounds: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from pydantic import TypeAdapter

    from agents.app import build_engine
    from agents.classical.text_models import transform
    from agents.classical.training import NEIGHBOURS
    from agents.classify import TicketContext
    from agents.settings import Settings
    from agents.types import Ticket, TriageResult
    from agents.web.metrics import ServiceMetrics

    settings = Settings()
    engine = build_engine(settings)
    service = engine.service
    assert service.searcher is not None
    metrics = ServiceMetrics()
    response = TypeAdapter(TriageResult)  # what FastAPI does with the route's return value
    bodies = [
        json.dumps({"title": r["title"], "body": r["body"]}).encode()
        for r in (json.loads(line) for line in DEMO.read_text(encoding="utf-8").splitlines() if line.strip())
    ]
    for body in bodies[:20]:  # warm-up: sessions, caches, lazy imports
        service.triage(Ticket.model_validate_json(body))
    watch = Stopwatch()
    fields = service.models.fields
    for _ in range(rounds):
        for body in bodies:
            with watch("request body -> Ticket"):
                ticket = Ticket.model_validate_json(body)
            text = ticket.text
            with watch("embed (MiniLM)"):
                vectors = service.embedder.embed([text or " "])
            with watch("TF-IDF features"):
                tfidf = transform(fields["team"].features_, [text])
            with watch("field models predict_proba"):
                proba = {name: m.predict_proba([text], vectors, tfidf) for name, m in fields.items()}
            vector = vectors[0]
            with watch("ticket memory search"):
                neighbours, labelled = service.memory.neighbours(vector, NEIGHBOURS, exclude_id=None)
            with watch("SOP search (hybrid)"):
                hits = service.searcher.search(text, k=3, vector=vector)
            context = TicketContext(
                text=text,
                vector=vector,
                neighbours=neighbours,
                kb_hits=hits,
                tfidf=tfidf[0],
                proba={f: p[0] for f, p in proba.items()},
                classes=service.classes,
            )
            with watch("classify (category, priority)"):
                classification = service.classifier.classify(ticket, context)
            with watch("priority rules + route + owner"):
                priority = service.rules.apply(text, classification.priority)
                team_proba = dict(zip(fields["team"].classes_, proba["team"][0], strict=True))
                team, owned = service.router.decide(text, team_proba, labelled)
                service.router.owner(team.label, owned, service.clock())
            decisions = {"category": classification.category, "priority": priority, "team": team}
            with watch("abstain + holds (injection, known words)"):
                service._abstain(decisions, [])
                service._hold(text, classification, [])
            with watch("summary"):
                service.summary_writer.write(ticket, context)
            with watch("suggested reply"):
                service.reply_writer.write(
                    ticket, classification.category.label, priority.label, team.label, hits, context
                )
            with watch("whole triage() (the stages above, and the result)"):
                result = service.triage(ticket)
            with watch("response: validate + JSON"):
                response.dump_json(response.validate_python(result))
            with watch("metrics.observe_results"):
                metrics.observe_results([result])
    info = {
        "tickets": len(bodies),
        "rounds": rounds,
        "embedder": getattr(service.embedder, "name", "?"),
        "policy": settings.policy,
        "load_1min": round(os.getloadavg()[0], 2),
    }
    return watch.table(), info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="passes over the demo tickets")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows, info = profile(args.rounds)
    info["load_1min_before"] = round(load_before, 2)
    print(f"{json.dumps(info)}\n")
    print("| stage | wall ms (median) | thread CPU ms (median) | wall ms (mean) |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['stage']} | {r['wall_ms_p50']} | {r['cpu_ms_p50']} | {r['wall_ms_mean']} |")
    if args.json:
        args.json.write_text(json.dumps({"info": info, "stages": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
