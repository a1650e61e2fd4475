"""Replay a labelled history through shadow mode: train on the older part, triage the newer, agents' labels as final."""

from __future__ import annotations

import logging
import random
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.errors import DataError
from agents.jsonl import write_jsonl
from agents.settings import Settings
from agents.shadow.agreement import ShadowReport, build_report
from agents.store.outcomes import OUTCOME_FIELDS, read_outcomes

log = logging.getLogger(__name__)
BATCH = 64


def split_history(rows: Sequence[dict[str, Any]], replay: float, seed: int) -> tuple[list[dict], list[dict], str]:
    """Older rows to train on, newer rows to replay, and the order used: by `created_at` when every row has one,
    else a seeded shuffle (a history without dates has no "newer"; the report says which)."""
    if not 0 < replay < 1:
        raise DataError("--replay", f"the replayed share must be between 0 and 1, got {replay}")
    rows = list(rows)
    if all(r.get("created_at") for r in rows):
        rows.sort(key=lambda r: str(r["created_at"]))
        order = "created_at"
    else:
        random.Random(seed).shuffle(rows)
        order = f"seeded shuffle (seed {seed})"
    cut = round(len(rows) * (1 - replay))
    if cut < 10 or cut == len(rows):
        raise DataError("history", f"{len(rows)} rows leave too few to train on or to replay at share {replay}")
    return rows[:cut], rows[cut:], order


def replay_history(
    settings: Settings, rows: Sequence[dict[str, Any]], *, replay: float = 0.3, seed: int = 7, min_support: int = 30
) -> tuple[ShadowReport, dict[str, Any]]:
    """Train on the older rows, triage the newer ones with every field in shadow, record each row's labels as the
    agent's final values (PATCH, as an agent would) and report agreement. Runs in a temporary data folder."""
    from agents.app import build_service
    from agents.store.records import TicketPatch
    from agents.store.review import Review
    from agents.store.tickets import Store
    from agents.types import Ticket

    train, replayed, order = split_history(rows, replay, seed)
    with tempfile.TemporaryDirectory(prefix="shadow-replay-") as tmp:
        write_jsonl(Path(tmp) / "train.jsonl", train)
        scoped = settings.model_copy(
            update={
                "data_dir": Path(tmp) / "data",
                "training_data": Path(tmp) / "train.jsonl",
                "database_url": None,
                "policy": "classical_only",
                "default_mode": "shadow",
                "field_modes": {},
            }
        )
        started = time.perf_counter()
        service = build_service(scoped)
        trained_s = time.perf_counter() - started
        store = Store.open(scoped.data_dir)
        try:
            review = Review(store, service.kb)
            started = time.perf_counter()
            for i in range(0, len(replayed), BATCH):
                chunk = replayed[i : i + BATCH]
                records, _ = store.create([Ticket(title=r.get("title", ""), body=r.get("body", "")) for r in chunk])
                tickets = [Ticket(id=t.id, title=t.title, body=t.body) for t in records]
                results = service.triage_batch(tickets)
                store.save_results({t.id: res for t, res in zip(records, results, strict=True)})
                for record, row in zip(records, chunk, strict=True):
                    final = {f: str(row[f]) for f in OUTCOME_FIELDS if row.get(f) and str(row[f]) in review.labels[f]}
                    review.update(record.id, TicketPatch.model_validate(final), "replay")
            replay_s = time.perf_counter() - started
            outcomes = read_outcomes(store)
        finally:
            store.close()
    report = build_report(outcomes, target=settings.precision_target, until=datetime.now(UTC), min_support=min_support)
    facts = {
        "rows": len(rows),
        "trained_on": len(train),
        "replayed": len(replayed),
        "order": order,
        "train_seconds": round(trained_s, 1),
        "replay_seconds": round(replay_s, 1),
    }
    return report, facts
