"""TicketMemory: past tickets in a FAISS index, for similar-ticket lookup, team votes and duplicates."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from agents.types import SimilarTicket


class TicketMemory:
    """Normalised ticket vectors with their id, team, category and resolution."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index = faiss.IndexFlatIP(dim)
        self.records: list[dict[str, Any]] = []

    def add(self, vectors: np.ndarray, records: list[dict[str, Any]]) -> None:
        if len(vectors) != len(records):
            raise ValueError(f"{len(vectors)} vectors but {len(records)} records")
        if len(records):
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
            self.records.extend(records)

    def __len__(self) -> int:
        return len(self.records)

    def search(self, vector: np.ndarray, k: int = 5, exclude_id: str | None = None) -> list[SimilarTicket]:
        if not self.records or k < 1:
            return []
        want = min(k + (1 if exclude_id else 0), len(self.records))
        scores, ids = self.index.search(np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32), want)
        out = []
        for score, pos in zip(scores[0], ids[0], strict=True):
            if pos < 0:
                continue
            rec = self.records[pos]
            if exclude_id is not None and rec.get("id") == exclude_id:
                continue
            out.append(
                SimilarTicket(
                    id=str(rec.get("id")),
                    score=round(float(score), 4),
                    team=rec.get("team"),
                    category=rec.get("category"),
                    resolution=rec.get("resolution"),
                )
            )
        return out[:k]


def team_votes(neighbours: list[SimilarTicket]) -> dict[str, float]:
    """Share of similarity mass per team among the neighbours (sums to 1, or empty)."""
    votes: dict[str, float] = {}
    for n in neighbours:
        if n.team and n.score > 0:
            votes[n.team] = votes.get(n.team, 0.0) + n.score
    total = sum(votes.values())
    return {team: v / total for team, v in votes.items()} if total else {}
