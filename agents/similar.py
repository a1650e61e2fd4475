"""TicketMemory: past tickets in a FAISS index, for similar-ticket lookup, team votes and duplicates."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from agents.types import SimilarTicket


class TicketMemory:
    """Normalised ticket vectors with their id, team, category and resolution.

    Safe to search while another thread adds (FAISS itself is not: an add may move the vectors a search reads), so
    one memory can be kept current in the background while requests search it."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index = faiss.IndexFlatIP(dim)
        self.records: list[dict[str, Any]] = []
        self._positions: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, vectors: np.ndarray, records: list[dict[str, Any]]) -> None:
        if len(vectors) != len(records):
            raise ValueError(f"{len(vectors)} vectors but {len(records)} records")
        if len(records):
            with self._lock:
                self._append(vectors, records)

    def _append(self, vectors: np.ndarray, records: list[dict[str, Any]]) -> None:
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        for record in records:
            self._positions[str(record.get("id"))] = len(self.records)
            self.records.append(record)

    def upsert(self, vectors: np.ndarray, records: list[dict[str, Any]]) -> int:
        """Add tickets not in the memory yet; a known id gets the new record (its labels changed), its vector
        stays (a ticket's text does not change). Returns how many were added."""
        if len(vectors) != len(records):
            raise ValueError(f"{len(vectors)} vectors but {len(records)} records")
        with self._lock:
            fresh = [i for i, r in enumerate(records) if str(r.get("id")) not in self._positions]
            for record in records:
                pos = self._positions.get(str(record.get("id")))
                if pos is not None:
                    self.records[pos] = record
            if fresh:
                self._append(vectors[fresh], [records[i] for i in fresh])
            return len(fresh)

    def known(self, ticket_id: str) -> bool:
        return ticket_id in self._positions

    def trim(self, keep: int, newest: Callable[[dict[str, Any]], Any] | None = None) -> int:
        """Keep `keep` tickets: the newest by `newest(record)`, or those added last; the index is rebuilt from its
        own vectors. Returns how many went."""
        with self._lock:
            drop = len(self.records) - keep
            if drop <= 0:
                return 0
            order = list(range(len(self.records)))
            if newest is not None:
                order.sort(key=lambda pos: newest(self.records[pos]))
            kept = order[drop:]
            vectors = self.index.reconstruct_n(0, len(self.records))[kept]
            records = [self.records[pos] for pos in kept]
            self.index, self.records, self._positions = faiss.IndexFlatIP(self.dim), [], {}
            self._append(vectors, records)
            return drop

    @property
    def nbytes(self) -> int:
        """Bytes of the vectors (float32, dim each): the bulk of the memory."""
        return int(self.index.ntotal) * self.dim * 4

    def __len__(self) -> int:
        return len(self.records)

    def search(self, vector: np.ndarray, k: int = 5, exclude_id: str | None = None) -> list[SimilarTicket]:
        if not self.records or k < 1:
            return []
        query = np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32)
        with self._lock:
            want = min(k + (1 if exclude_id else 0), len(self.records))
            scores, ids = self.index.search(query, want)
            pairs = zip(scores[0], ids[0], strict=True)
            found = [(float(score), self.records[pos]) for score, pos in pairs if pos >= 0]
        out = [
            SimilarTicket(
                id=str(rec.get("id")),
                score=round(score, 4),
                team=rec.get("team"),
                category=rec.get("category"),
                resolution=rec.get("resolution"),
            )
            for score, rec in found
            if exclude_id is None or rec.get("id") != exclude_id
        ]
        return out[:k]

    def neighbours(
        self, vector: np.ndarray, k: int = 5, exclude_id: str | None = None
    ) -> tuple[list[SimilarTicket], list[SimilarTicket]]:
        """The k nearest tickets, and the k nearest whose labels people set (the training history: what may vote
        on a ticket's team); here both are the same search."""
        hits = self.search(vector, k, exclude_id)
        return hits, hits


class CombinedMemory(TicketMemory):
    """A model version's memory (its training tickets) and the stored tickets of this process, searched as one:
    the best k of both, a ticket in both counted once with its stored record (what is on the ticket of record now).

    `index`, `records` and len() are the version's, so saving these models saves the version's memory only."""

    def __init__(self, trained: TicketMemory, stored: TicketMemory) -> None:  # a view: no index of its own
        self.trained, self.stored = trained, stored
        self.dim, self.index, self.records = trained.dim, trained.index, trained.records
        self._positions, self._lock = trained._positions, trained._lock

    def search(self, vector: np.ndarray, k: int = 5, exclude_id: str | None = None) -> list[SimilarTicket]:
        return self.neighbours(vector, k, exclude_id)[0]

    def neighbours(
        self, vector: np.ndarray, k: int = 5, exclude_id: str | None = None
    ) -> tuple[list[SimilarTicket], list[SimilarTicket]]:
        """The best k of both, and the version's own best k: a stored ticket's labels may be triage's own guesses,
        so only the training tickets vote on a team. Each part is searched once."""
        trained = self.trained.search(vector, k, exclude_id)
        out, seen = [], set()
        for hit in sorted([*self.stored.search(vector, k, exclude_id), *trained], key=lambda h: -h.score):
            if hit.id not in seen:  # stable sort: the stored record wins a tie
                seen.add(hit.id)
                out.append(hit)
        return out[:k], trained


def team_votes(neighbours: list[SimilarTicket]) -> dict[str, float]:
    """Share of similarity mass per team among the neighbours (sums to 1, or empty)."""
    votes: dict[str, float] = {}
    for n in neighbours:
        if n.team and n.score > 0:
            votes[n.team] = votes.get(n.team, 0.0) + n.score
    total = sum(votes.values())
    return {team: v / total for team, v in votes.items()} if total else {}
