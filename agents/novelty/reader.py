"""Read a period's abstained tickets from the ticket store and find the possible new categories among them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from agents.classical.calibration import ThresholdChoice
from agents.digest.themes import VectorCache, clip, embed_once
from agents.errors import DataError, ModelNotTrained
from agents.novelty.clusters import Algorithm, find_new_categories_in
from agents.novelty.models import DEFAULT_DISTANCE, MIN_SIZE, TOPIC_FIELDS, AbstainedTicket, NewCategory
from agents.store.tables import TicketRow
from agents.store.tickets import Store
from agents.types import ticket_text
from retrieval.embedders import Embedder

log = logging.getLogger(__name__)
DAYS = 14  # two growth windows: the last 7 days against the 7 before
MAX_TICKETS = 3000  # the most recent abstained tickets clustered (average linkage holds n^2 distances)
MAX_CHARS = 300  # of a ticket's text embedded: the title and the start of the body say what it is about


def threshold_values(thresholds: Mapping[str, ThresholdChoice | float]) -> dict[str, float]:
    """The topic fields' thresholds as numbers; a topic field without one is a DataError (nothing can abstain)."""
    missing = [f for f in TOPIC_FIELDS if f not in thresholds]
    if missing:
        raise DataError("thresholds", f"no threshold for {', '.join(missing)}: need one for each of {TOPIC_FIELDS}")
    values = {f: thresholds[f] for f in TOPIC_FIELDS}
    return {f: v.threshold if isinstance(v, ThresholdChoice) else float(v) for f, v in values.items()}


def abstains(confidence: Mapping[str, Any], limits: Mapping[str, float]) -> bool:
    """Every topic field under its threshold; a result without a topic field's confidence does not abstain."""
    return all(isinstance(confidence.get(f), int | float) and confidence[f] < limits[f] for f in TOPIC_FIELDS)


@dataclass
class Period:
    """The triaged tickets created in a period: those every topic field abstained on, and the others' texts."""

    abstained: list[AbstainedTicket] = field(default_factory=list)
    background: list[str] = field(default_factory=list)
    triaged: int = 0


def read_period(
    store: Store,
    thresholds: Mapping[str, ThresholdChoice | float],
    *,
    now: datetime,
    days: int = DAYS,
    max_tickets: int = MAX_TICKETS,
) -> Period:
    """Triaged tickets created in the `days` up to `now`, most recent first; at most `max_tickets` abstained (and
    as many others) are kept. A ticket without text is skipped: there is nothing to cluster."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    limits = threshold_values(thresholds)
    t = TicketRow
    query = (
        select(t.id, t.title, t.body, t.team, t.created_at, t.result)
        .where(t.result.is_not(None), t.created_at > now - timedelta(days=days), t.created_at <= now)
        .order_by(t.created_at.desc(), t.id.desc())
    )
    period = Period()
    with store.read() as session:
        for tid, title, body, team, created, result in session.execute(query):
            period.triaged += 1
            text = ticket_text(title, body)
            if not text:
                continue
            result = result or {}
            if abstains(result.get("confidence") or {}, limits):
                if len(period.abstained) < max_tickets:
                    team = team or result.get("team")  # the ticket's team if one was set, else the predicted one
                    period.abstained.append(
                        AbstainedTicket(id=tid, title=title or "", text=text, created_at=created, team=team)
                    )
            elif len(period.background) < max_tickets:
                period.background.append(text)
    return period


def find_new_categories(
    store: Store,
    embedder: Embedder,
    thresholds: Mapping[str, ThresholdChoice | float],
    *,
    now: datetime,
    days: int = DAYS,
    min_size: int = MIN_SIZE,
    distance: float = DEFAULT_DISTANCE,
    algorithm: Algorithm = "agglomerative",
    cache: VectorCache | None = None,
) -> list[NewCategory]:
    """Possible new categories among the tickets created in the `days` up to `now` that every topic field
    (category, team) abstained on under `thresholds` (TriageModels.thresholds, or plain numbers); biggest first."""
    period = read_period(store, thresholds, now=now, days=days)
    if len(period.abstained) < min_size:
        return []
    texts = [clip(t.text, MAX_CHARS) for t in period.abstained]
    vectors = embed_once(embedder, texts, cache)
    return find_new_categories_in(
        period.abstained,
        vectors,
        now=now,
        background=period.background,
        min_size=min_size,
        algorithm=algorithm,
        distance=distance,
    )


def saved_thresholds(model_root: Path) -> dict[str, ThresholdChoice] | None:
    """The thresholds of the models a start would load from `model_root` (TRIAGE_DATA_DIR/models); None when
    nothing usable is saved there (nothing is trained or adopted by reading)."""
    from agents.classical.artifacts import read_manifest
    from agents.classical.training import FORMAT
    from agents.models.versions import current_model_dir

    try:
        manifest = read_manifest(current_model_dir(model_root), FORMAT)
        return {name: ThresholdChoice(**value) for name, value in manifest["thresholds"].items()}
    except (ModelNotTrained, DataError, KeyError, TypeError, ValueError) as exc:
        log.info("no usable saved models under %s (%s): no new-category check", model_root, exc)
        return None
