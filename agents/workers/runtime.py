"""What one worker process builds once and keeps: the ticket store and a triage engine per kind of queue, each
swapped for a promoted model version while the worker runs, over one memory of the stored tickets."""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from agents.settings import Settings
from agents.workers.config import FAST, LLM
from agents.workers.threads import ThreadBudget, limit_threads, thread_budget

if TYPE_CHECKING:
    from agents.app import NodeWatch, Shared
    from agents.models.live import LiveService
    from agents.service import TriageService
    from agents.similar import TicketMemory
    from agents.store.tickets import Store
    from retrieval.embedders import Embedder

log = logging.getLogger(__name__)


def classical_settings(settings: Settings) -> Settings:
    """The settings of the fast queue: the same models and index, no LLM whatever the policy says."""
    return settings.model_copy(update={"policy": "classical_only"})


class WorkerRuntime:
    """Built lazily in the process that runs the tasks (after the fork, under prefork), then kept for its life.
    Tasks of the fast queue get a classical-only engine; those of the llm queue the engine of the settings. Each
    engine follows the model pointer, and both search one memory of stored tickets, kept current by background
    threads started with the first engine (threads do not survive a fork, so never before it). Its numeric
    libraries share the cores it may use with the other `processes` of its pool (agents/workers/threads.py)."""

    def __init__(self, settings: Settings, processes: int | None = None) -> None:
        self.settings = settings
        self.budget: ThreadBudget = thread_budget(processes or settings.worker_concurrency)
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._shared: Shared | None = None
        self._embedder: Embedder | None = None
        self._services: dict[str, LiveService] = {}
        self._stored: TicketMemory | None = None
        self._watches: list[NodeWatch] = []

    def store(self) -> Store:
        """The store with a worker's claim lease (also on SQLite, where several worker processes share a file)."""
        with self._lock:
            return self._store_locked()

    def _store_locked(self) -> Store:
        """store() with the lock held."""
        if self._store is None:
            from agents.store.tickets import Store, database_url, make_engine

            lease = timedelta(seconds=self.settings.worker_claim_lease)
            url = database_url(self.settings.data_dir, self.settings.database_url)
            store = Store(make_engine(url), claim_lease=lease)
            store.migrate()
            self._store = store
        return self._store

    def _shared_parts(self) -> Shared:
        if self._shared is None:
            from agents.app import build_shared

            embedder = self._own_embedder()
            self._shared = build_shared(classical_settings(self.settings), embedder=embedder)  # llm adds a client
        return self._shared

    def _own_embedder(self) -> Embedder:
        """The process's embedder, built once with its thread budget (the thread pools capped on the way)."""
        if self._embedder is None:
            from agents.app import server_embedder

            limit_threads(self.budget, self.settings.embedder)
            self._embedder = server_embedder(self.settings)
        return self._embedder

    def embedder(self) -> Embedder:
        """The engines' embedder once they are built; before that one of its own (no SOP index loaded for it)."""
        with self._lock:
            if self._shared is not None:
                return self._shared.embedder
            return self._own_embedder()

    def service(self, queue: str) -> TriageService:
        """The engine for one queue's tickets, built on its first task (a failed build is tried again next task);
        the current version's: a promoted one is loaded in the background and used from the next task on."""
        return self.live(queue).current

    def live(self, queue: str) -> LiveService:
        with self._lock:
            if queue not in self._services:
                self._services[queue] = self._build(queue)
            return self._services[queue]

    def _build(self, queue: str) -> LiveService:
        from agents.app import build_live, watch_node, with_stored_memory
        from agents.llm.factory import start_chat
        from agents.llm.plan import plan_llm

        if queue not in (FAST, LLM):
            raise ValueError(f"no triage engine for the queue {queue!r}")
        first = not self._services
        if first:  # both queues' engines share one embedder that remembers, and one memory of stored tickets
            self._shared, self._stored = with_stored_memory(self.settings, self._shared_parts())
        shared = self._shared_parts()
        if queue == FAST:
            live = build_live(classical_settings(self.settings), shared, self._stored)
        else:
            chat = start_chat(self.settings)
            plan = plan_llm(self.settings, usable=chat is not None)  # what this queue's engine lets the LLM do
            parts = dataclasses.replace(shared, settings=self.settings, chat=chat, llm_plan=plan)
            live = build_live(self.settings, parts, self._stored)
        # one thread reads the stored tickets for both queues' engines; each engine watches the pointer
        self._watches.append(watch_node(self.settings, live, self._stored if first else None, self._store_locked()))
        log.info(
            "worker engine for the %s queue ready (policy %s, model version %s)",
            queue,
            service_policy(self.settings, queue),
            live.version,
        )
        return live

    def close(self) -> None:
        with self._lock:
            for watch in self._watches:
                watch.stop()
            self._watches = []
            if self._store is not None:
                self._store.close()
                self._store = None


def service_policy(settings: Settings, queue: str) -> str:
    return "classical_only" if queue == FAST else settings.policy
