"""The stored tickets in each process's ticket memory: read from the database at start, then what changed since."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import and_, or_, select

from agents.classical.field_tokens import read_text
from agents.store.tables import TicketRow
from agents.store.tickets import Store, as_utc, utcnow

if TYPE_CHECKING:
    from agents.similar import TicketMemory
    from retrieval.embedders import Embedder

log = logging.getLogger(__name__)
# each look re-reads rows stamped this long before the newest one it took: a transaction commits after it stamped
# its rows, and replicas' clocks differ a little; a row seen before with the same stamp is skipped
LOOKBACK = timedelta(seconds=60)
PAGE = 500  # rows read and embedded at a time
TRIM_SLACK = 1.1  # the memory is trimmed back to its limit once it is this much over it
RECENT_TEXTS = 10_000  # vectors a process remembers of the texts it embedded last (15 MB at 384 dimensions)
COLUMNS: tuple[Any, ...] = (TicketRow.id, TicketRow.title, TicketRow.body, TicketRow.team, TicketRow.category)
COLUMNS += (TicketRow.resolution, TicketRow.updated_at, TicketRow.intake)


class MemoryStatus(BaseModel):
    """How current this process's memory of stored tickets is."""

    model_config = ConfigDict(extra="forbid")

    stored: int = 0  # stored tickets in the memory
    vector_bytes: int = 0
    watermark: datetime | None = None  # the newest change taken (a ticket's updated_at)
    refreshed_at: datetime | None = None  # the end of the last look that succeeded
    first_fill_seconds: float | None = None  # the look at start: every stored ticket read and embedded
    last_seconds: float | None = None
    added: int = 0  # tickets embedded and added since the start
    error: str | None = None  # the last look's failure (the database away, say); the next look tries again
    poll_seconds: float = 0.0


class RememberingEmbedder:
    """The process's embedder, remembering the vectors of the last `size` texts it embedded, so that the memory's
    sync takes the vector of a ticket this process triaged instead of embedding it a second time. `embed` itself
    always embeds (requests are never answered from the cache); only `recall_or_embed` looks it up."""

    def __init__(self, inner: Embedder, size: int = RECENT_TEXTS) -> None:
        self.inner, self.size = inner, size
        self.name, self.dim = inner.name, inner.dim
        self._recent: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = self.inner.embed(texts)
        self._remember([self._key(t) for t in texts], vectors)
        return vectors

    def recall_or_embed(self, texts: list[str]) -> np.ndarray:
        """The vectors of `texts`: remembered ones as they were, the others embedded now."""
        keys = [self._key(t) for t in texts]
        with self._lock:
            found = [self._recent.get(k) for k in keys]
        missing = [i for i, v in enumerate(found) if v is None]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, vector in enumerate(found):
            if vector is not None:
                out[i] = vector
        if missing:
            out[missing] = self.embed([texts[i] for i in missing])
        return out

    def _remember(self, keys: list[bytes], vectors: np.ndarray) -> None:
        with self._lock:
            for key, vector in zip(keys, vectors, strict=True):
                self._recent[key] = np.array(vector, dtype=np.float32)
                self._recent.move_to_end(key)
            while len(self._recent) > self.size:
                self._recent.popitem(last=False)


def memory_record(row: Any) -> dict[str, Any]:
    """A stored ticket as the memory keeps it: the labels on the ticket of record (applied by triage or set by a
    person; None where its mode applied nothing), the resolution people wrote, and when it last changed."""
    return {
        "id": row.id,
        "team": row.team,
        "category": row.category,
        "resolution": row.resolution,
        "updated_at": as_utc(row.updated_at),
    }


def changed_at(record: dict[str, Any]) -> datetime:
    return record["updated_at"]  # type: ignore[no-any-return]


class StoredMemorySync:
    """Keeps `memory` holding the newest `max_tickets` stored tickets (any status but `received`), embedded with the
    process's own embedder. The first `refresh` reads them newest first (the tickets most likely to come back as
    duplicates are searchable soonest); each later one reads every ticket changed since the last look (by
    updated_at), embeds those it has not seen and updates the labels of the others. One thread calls it; requests
    search the memory meanwhile."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        memory: TicketMemory,
        *,
        max_tickets: int,
        poll_seconds: float = 0.0,
        clock: Callable[[], datetime] = utcnow,
        stopping: threading.Event | None = None,
        intake_fields: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        self.store, self.embedder, self.memory, self.max_tickets = store, embedder, memory, max_tickets
        self.intake_fields = intake_fields  # what the served models read of a ticket's intake (TriageModels.texts)
        self.clock = clock
        self.stopping = stopping or threading.Event()  # set: a look ends after its current page (shutting down)
        self._seen: dict[str, datetime] = {}  # ticket id -> the updated_at taken, within LOOKBACK of the watermark
        self._status = MemoryStatus(poll_seconds=poll_seconds)

    def status(self) -> MemoryStatus:
        return self._status.model_copy(update={"stored": len(self.memory), "vector_bytes": self.memory.nbytes})

    def refresh(self) -> int:
        """One look at the database; returns how many tickets were added. A failure is recorded and raised."""
        started = time.perf_counter()
        first = self._status.watermark is None and self._status.refreshed_at is None
        try:
            added = self._refresh()
        except Exception as exc:
            self._status = self._status.model_copy(update={"error": f"{type(exc).__name__}: {exc}"[:500]})
            raise
        seconds = round(time.perf_counter() - started, 3)
        if len(self.memory) > self.max_tickets * TRIM_SLACK:
            self.memory.trim(self.max_tickets, newest=changed_at)
        update: dict[str, Any] = {"refreshed_at": self.clock(), "last_seconds": seconds, "error": None}
        update["added"] = self._status.added + added
        if first:
            update["first_fill_seconds"] = seconds
            log.info("ticket memory: %d stored ticket(s) read and embedded in %.2f s", added, seconds)
        self._status = self._status.model_copy(update=update)
        return added

    def _refresh(self) -> int:
        watermark = self._status.watermark
        if watermark is None:
            return self._first_look()
        added, after = 0, None
        while not self.stopping.is_set() and (rows := self._page(watermark - LOOKBACK, after)):
            added += self._take(rows)
            last = rows[-1]
            after = (last.updated_at, last.id)
            newest = as_utc(last.updated_at)
            if self._status.watermark is None or newest > self._status.watermark:
                self._status = self._status.model_copy(update={"watermark": newest})
        if self._status.watermark is not None:
            horizon = self._status.watermark - LOOKBACK
            self._seen = {i: at for i, at in self._seen.items() if at >= horizon}
        return added

    def _first_look(self) -> int:
        """The newest max_tickets stored tickets, newest first, page by page. The watermark becomes the newest change
        there was when the look began (what changed meanwhile, the next look takes) once the look is complete: one
        that fails half-way is done again (the tickets it took are not embedded again)."""
        added, taken, before, newest = 0, 0, None, None
        while not self.stopping.is_set() and taken < self.max_tickets:
            if not (rows := self._page_down(before, min(PAGE, self.max_tickets - taken))):
                break
            newest = newest or as_utc(rows[0].updated_at)
            added += self._take(rows)
            taken += len(rows)
            before = (rows[-1].updated_at, rows[-1].id)
        if newest is not None and not self.stopping.is_set():
            self._status = self._status.model_copy(update={"watermark": newest})
        return added

    def _page(self, since: datetime, after: tuple[datetime, str] | None) -> list[Any]:
        """Up to PAGE rows changed at or after `since` (and after `after`), oldest change first."""
        t = TicketRow
        query = select(*COLUMNS).where(t.status != "received", t.updated_at >= since)
        if after is not None:
            at, ticket_id = after
            query = query.where(or_(t.updated_at > at, and_(t.updated_at == at, t.id > ticket_id)))
        with self.store.read() as session:
            return list(session.execute(query.order_by(t.updated_at, t.id).limit(PAGE)).all())

    def _page_down(self, before: tuple[datetime, str] | None, limit: int) -> list[Any]:
        """Up to `limit` rows changed before `before`, newest change first."""
        t = TicketRow
        query = select(*COLUMNS).where(t.status != "received")
        if before is not None:
            at, ticket_id = before
            query = query.where(or_(t.updated_at < at, and_(t.updated_at == at, t.id < ticket_id)))
        with self.store.read() as session:
            return list(session.execute(query.order_by(t.updated_at.desc(), t.id.desc()).limit(limit)).all())

    def _take(self, rows: list[Any]) -> int:
        """Embed the tickets not in the memory yet, refresh the records of the others; skip those seen already."""
        changed = [r for r in rows if self._seen.get(r.id) != as_utc(r.updated_at)]
        if not changed:
            return 0
        fresh = [i for i, r in enumerate(changed) if not self.memory.known(r.id)]
        vectors = np.zeros((len(changed), self.memory.dim), dtype=np.float32)
        if fresh:
            names = self.intake_fields()
            texts = [  # as the service embeds them
                read_text(changed[i].title, changed[i].body, changed[i].intake or {}, names) or " " for i in fresh
            ]
            embedder = self.embedder
            vectors[fresh] = (
                embedder.recall_or_embed(texts) if isinstance(embedder, RememberingEmbedder) else embedder.embed(texts)
            )
        added = self.memory.upsert(vectors, [memory_record(r) for r in changed])
        for row in changed:
            self._seen[row.id] = as_utc(row.updated_at)
        return added
